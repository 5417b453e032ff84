//! The analysts' console in a real browser: what an analyst does, found by
//! role and label as a person finds it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

/// Enter, as WebDriver types it.
const ENTER: &str = "\u{E007}";
const ESCAPE: &str = "\u{E00C}";

/// A server and a browser for one test; `None` when either is missing
/// outside CI (each says why).
async fn start(name: &str) -> Option<(TestApp, Browser)> {
    start_tweaked(name, |_| {}).await
}

async fn start_tweaked(
    name: &str,
    tweak: impl FnOnce(&mut threatwatch::config::Settings),
) -> Option<(TestApp, Browser)> {
    let app = TestApp::spawn_tweaked(Backend::Sqlite, tweak).await?;
    let b = Browser::start(name).await?;
    Some((app, b))
}

async fn sign_in(b: &Browser, app: &TestApp, path: &str, user: &str, password: &str) {
    b.goto(&app.url(path)).await;
    let name = b.get("textbox", "Username").await;
    b.type_into(&name, user).await;
    let pass = b.get("textbox", "Password").await;
    b.type_into(&pass, password).await;
    let go = b.get("button", "Sign in").await;
    b.click(&go).await;
    b.get("button", "Sign out").await;
}

/// A sensor's key, for ingesting as a sensor does.
async fn sensor_key(app: &TestApp) -> String {
    let admin = app.admin().await;
    app.ok(
        Some(&admin),
        "mutation { createApiKey(name: \"sensor\") { key } }",
        json!({}),
    )
    .await["createApiKey"]["key"]
        .as_str()
        .expect("key")
        .to_string()
}

/// Ingests one HIGH event as the sensor; returns the alert's id.
async fn raise(app: &TestApp, key: &str, source: &str, description: &str) -> String {
    let body: Value = app
        .client
        .post(app.url("/graphql"))
        .header("X-API-Key", key)
        .json(&json!({
            "query": "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { alert { id } } }",
            "variables": { "i": {
                "source": source, "eventType": "Intrusion", "severity": "HIGH",
                "description": description, "dedupKey": format!("{source}-key"),
            }},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["ingestEvent"]["alert"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("ingest: {body}"))
        .to_string()
}

async fn status_of(app: &TestApp, id: &str) -> String {
    let admin = app.admin().await;
    app.ok(
        Some(&admin),
        "query($id: ID!) { alert(id: $id) { status } }",
        json!({ "id": id }),
    )
    .await["alert"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_keeps_tokens_in_memory_and_sign_out_ends_the_session() {
    let Some((app, b)) = start("sign_in_and_out").await else {
        return;
    };
    b.check(async {
        b.goto(&app.url("/")).await;
        // A wrong password is said in words.
        b.type_into(&b.get("textbox", "Username").await, "admin")
            .await;
        b.type_into(&b.get("textbox", "Password").await, "wrong-password")
            .await;
        b.click(&b.get("button", "Sign in").await).await;
        let alert = b.get("alert", "Wrong username or password.").await;
        assert!(!b.text(&alert).await.contains('{'));
        let pass = b.get("textbox", "Password").await;
        b.clear(&pass).await;
        b.type_into(&pass, ADMIN_PASSWORD).await;
        b.click(&b.get("button", "Sign in").await).await;
        b.get("heading", "Alerts").await;
        b.get("list", "Alerts by status").await;
        // Nothing is stored where a script could find it later.
        let stored = b
            .eval(
                "return JSON.stringify([localStorage, sessionStorage, document.cookie])",
                json!([]),
            )
            .await;
        assert_eq!(stored, json!("[{},{},\"\"]"));
        let open = "SELECT COUNT(*) || '' AS value FROM sessions WHERE revoked_at IS NULL";
        assert_eq!(app.text_sql(open).await, "1");
        b.click(&b.get("button", "Sign out").await).await;
        b.get("button", "Sign in").await;
        b.see("You are signed out.").await;
        // The session ended on the server, not only in the page.
        assert_eq!(app.text_sql(open).await, "0");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_token_is_refreshed_before_it_expires() {
    let Some((app, b)) = start_tweaked("token_refresh", |s| {
        s.access_ttl = Duration::from_secs(3);
    })
    .await
    else {
        return;
    };
    let key = sensor_key(&app).await;
    b.check(async {
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        // The server closes a socket whose token expired at its next
        // check (every 15 s); live updates go on all the same.
        tokio::time::sleep(Duration::from_secs(18)).await;
        raise(&app, &key, "fw-later", "after the first token").await;
        b.until_within("the alert raised later", Duration::from_secs(4), || async {
            !b.all("link", Some("after the first token"))
                .await
                .is_empty()
        })
        .await;
        // Past many lifetimes of the first token, the console still works.
        b.click(&b.get("link", "Silences").await).await;
        b.get("heading", "Silences").await;
        b.get("table", "Active silences").await;
        assert!(!b.page_text().await.contains("session has ended"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_live_in_the_url_and_counts_come_from_stats() {
    let Some((app, b)) = start("filters_in_url").await else {
        return;
    };
    let key = sensor_key(&app).await;
    let first = raise(&app, &key, "fw-one", "first").await;
    raise(&app, &key, "fw-two", "second").await;
    let admin = app.admin().await;
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: RESOLVED) { id } }",
        json!({ "id": first }),
    )
    .await;
    b.check(async {
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        let counts = b.get("list", "Alerts by status").await;
        b.until("counts", || async {
            let t = b.text(&counts).await;
            t.contains("1 open") && t.contains("1 resolved") && t.contains("2 in all")
        })
        .await;
        let status = b.get("combobox", "Status").await;
        b.click(&status).await;
        b.click(&b.get_in(Some(&status), "option", "RESOLVED", true).await)
            .await;
        b.until("the URL holds the filter", || async {
            b.current_url().await.contains("status=RESOLVED")
        })
        .await;
        b.get("link", "first").await;
        b.gone("link", "second").await;
        // A shared link opens the same view, after signing in.
        let shared = b.current_url().await;
        let path = shared.trim_start_matches(&app.url(""));
        let other = Browser::start("filters_in_url_shared")
            .await
            .expect("second browser");
        other
            .check(async {
                sign_in(&other, &app, path, "admin", ADMIN_PASSWORD).await;
                other.get("link", "first").await;
                other.gone("link", "second").await;
            })
            .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_alert_appears_within_two_seconds_keeping_the_selection() {
    let Some((app, b)) = start("live_merge").await else {
        return;
    };
    let key = sensor_key(&app).await;
    raise(&app, &key, "fw-old", "old alert").await;
    b.check(async {
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        let pick = b.get("checkbox", "Select fw-old Intrusion alert").await;
        b.click(&pick).await;
        assert!(b.is_selected(&pick).await);
        // Let the subscriptions settle before the sensor speaks.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent = Instant::now();
        raise(&app, &key, "fw-new", "new alert").await;
        b.until_within(
            "the new alert in the list",
            Duration::from_secs(2),
            || async { !b.all("link", Some("new alert")).await.is_empty() },
        )
        .await;
        eprintln!("live: the new alert showed after {:?}", sent.elapsed());
        let pick = b.get("checkbox", "Select fw-old Intrusion alert").await;
        assert!(
            b.is_selected(&pick).await,
            "the selection survived the merge"
        );
        let toolbar = b.get("toolbar", "Bulk actions").await;
        assert!(b.text(&toolbar).await.contains("1 selected"));
        // Scrolled away, new alerts wait behind a banner instead.
        b.eval(
            "document.body.style.minHeight = '5000px'; window.scrollTo(0, 2000)",
            json!([]),
        )
        .await;
        raise(&app, &key, "fw-third", "third alert").await;
        raise(&app, &key, "fw-fourth", "fourth alert").await;
        let banner = b.get("button", "2 new alerts").await;
        assert!(b.all("link", Some("third alert")).await.is_empty());
        let y = b.eval("return window.scrollY", json!([])).await;
        assert_eq!(y, json!(2000), "the page did not jump");
        b.click(&banner).await;
        b.get("link", "third alert").await;
        b.get("link", "fourth alert").await;
        assert!(
            b.is_selected(&b.get("checkbox", "Select fw-old Intrusion alert").await)
                .await
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_resolve_is_all_or_nothing_and_says_so() {
    let Some((app, b)) = start("bulk_resolve").await else {
        return;
    };
    let key = sensor_key(&app).await;
    let one = raise(&app, &key, "fw-a", "alert a").await;
    let two = raise(&app, &key, "fw-b", "alert b").await;
    let three = raise(&app, &key, "fw-c", "alert c").await;
    b.check(async {
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        b.click(&b.get("checkbox", "Select fw-a Intrusion alert").await)
            .await;
        b.click(&b.get("checkbox", "Select fw-b Intrusion alert").await)
            .await;
        b.click(&b.get("button", "Resolve selected").await).await;
        b.get("status", "Resolved 2 alerts.").await;
        assert_eq!(status_of(&app, &one).await, "RESOLVED");
        assert_eq!(status_of(&app, &two).await, "RESOLVED");
        assert_eq!(status_of(&app, &three).await, "OPEN");
        // One of two cannot move back: nothing moves, and the page says so.
        b.click(&b.get("checkbox", "Select fw-a Intrusion alert").await)
            .await;
        b.click(&b.get("checkbox", "Select fw-c Intrusion alert").await)
            .await;
        b.click(&b.get("button", "Acknowledge selected").await)
            .await;
        let error = b.get_containing("alert", "Nothing was changed").await;
        let text = b.text(&error).await;
        assert!(
            !text.contains('{') && !text.contains("BAD_USER_INPUT"),
            "{text}"
        );
        assert_eq!(status_of(&app, &three).await, "OPEN");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_alert_comment_assign_to_me_and_silence_it() {
    let Some((app, b)) = start("alert_page").await else {
        return;
    };
    let key = sensor_key(&app).await;
    let id = raise(&app, &key, "fw-page", "noisy scanner").await;
    b.check(async {
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        b.click(&b.get("link", "noisy scanner").await).await;
        b.get("heading", "fw-page: Intrusion").await;
        // Comment.
        let comment = b.get("textbox", "Comment").await;
        b.type_into(&comment, "Looked at it; the scanner is ours.").await;
        b.click(&b.get("button", "Add comment").await).await;
        b.get("status", "Comment added.").await;
        let list = b.get("list", "Comments, newest first").await;
        assert!(b.text(&list).await.contains("the scanner is ours"));
        // A half-typed comment survives another analyst's change.
        b.type_into(&comment, "half a thou").await;
        let admin = app.admin().await;
        app.ok(
            Some(&admin),
            "mutation($id: ID!) { commentOnAlert(id: $id, body: \"from elsewhere\") { id } }",
            json!({ "id": id }),
        )
        .await;
        b.until("the other comment arrives", || async {
            b.text(&list).await.contains("from elsewhere")
        })
        .await;
        assert_eq!(b.value(&b.get("textbox", "Comment").await).await, "half a thou");
        // Assign to me.
        b.click(&b.get("button", "Assign to me").await).await;
        b.get("status", "Assigned to you.").await;
        b.gone("button", "Assign to me").await;
        let who = app
            .ok(Some(&admin), "query($id: ID!) { alert(id: $id) { assignee { username } } }", json!({ "id": id }))
            .await;
        assert_eq!(who["alert"]["assignee"]["username"], "admin");
        // Silence from the alert: source and dedup key prefilled, a reason required.
        b.click(&b.get("button", "Silence similar events").await).await;
        assert_eq!(b.value(&b.get("textbox", "Source").await).await, "fw-page");
        assert_eq!(b.value(&b.get("textbox", "Dedup key").await).await, "fw-page-key");
        let why = b.get("textbox", "Why (required)").await;
        b.click(&b.get("button", "Create silence").await).await;
        // The browser refuses the empty reason; nothing is created.
        let valid = b.eval("return arguments[0].checkValidity()", json!([why.0.clone()])).await;
        assert_eq!(valid, json!(false));
        b.type_into(&why, "Our own weekly scan").await;
        b.click(&b.get("button", "Create silence").await).await;
        b.get("status", "Silence created.").await;
        let silences = app
            .ok(Some(&admin), "{ silences(active: true) { source dedupKey comment createdBy } }", json!({}))
            .await;
        assert_eq!(
            silences["silences"],
            json!([{ "source": "fw-page", "dedupKey": "fw-page-key", "comment": "Our own weekly scan", "createdBy": "admin" }])
        );
        // And it is listed on the silences page, where it can be expired.
        b.click(&b.get("link", "Silences").await).await;
        let active = b.get("table", "Active silences").await;
        assert!(b.text(&active).await.contains("Our own weekly scan"));
        b.click(&b.get_containing("button", "Expire silence for fw-page").await).await;
        b.get("status", "Silence expired.").await;
        let expired = b.get("table", "Expired silences").await;
        b.until("the silence moves to expired", || async {
            b.text(&expired).await.contains("Our own weekly scan")
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_works_the_queue() {
    let Some((app, b)) = start("keyboard").await else {
        return;
    };
    let key = sensor_key(&app).await;
    let older = raise(&app, &key, "fw-k1", "keyboard one").await;
    let newer = raise(&app, &key, "fw-k2", "keyboard two").await;
    b.check(async {
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        b.get("link", "keyboard two").await;
        b.keys("?").await;
        b.get("dialog", "Keyboard shortcuts").await;
        b.keys(ESCAPE).await;
        b.gone("dialog", "Keyboard shortcuts").await;
        // j, x, j, x, a: both acknowledged.
        b.keys("jxjx").await;
        let toolbar = b.get("toolbar", "Bulk actions").await;
        b.until("two selected", || async {
            b.text(&toolbar).await.contains("2 selected")
        })
        .await;
        b.keys("a").await;
        b.get("status", "Acknowledged 2 alerts.").await;
        assert_eq!(status_of(&app, &older).await, "ACKNOWLEDGED");
        assert_eq!(status_of(&app, &newer).await, "ACKNOWLEDGED");
        // k back to the newest, r resolves the current one.
        b.keys("kr").await;
        b.get("status", "Resolved 1 alert.").await;
        assert_eq!(status_of(&app, &newer).await, "RESOLVED");
        // Enter opens it; / goes to the filters.
        b.keys(ENTER).await;
        b.get("heading", "fw-k2: Intrusion").await;
        b.eval("window.history.back()", json!([])).await;
        b.get("link", "keyboard one").await;
        b.keys("/").await;
        let focused = b
            .eval(
                "return document.activeElement.labels[0].textContent",
                json!([]),
            )
            .await;
        assert_eq!(focused, json!("Severity"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_sees_no_admin_actions() {
    let Some((app, b)) = start("analyst_view").await else {
        return;
    };
    let key = sensor_key(&app).await;
    raise(&app, &key, "fw-an", "for the analyst").await;
    app.user_with_role("ann", "ANALYST").await;
    b.check(async {
        sign_in(&b, &app, "/", "ann", "password-123").await;
        b.see("(ANALYST)").await;
        b.get("link", "for the analyst").await;
        assert!(b.all("checkbox", None).await.is_empty());
        assert!(b.all("toolbar", Some("Bulk actions")).await.is_empty());
        b.click(&b.get("link", "for the analyst").await).await;
        b.get("button", "Assign to me").await;
        b.get("button", "Add comment").await;
        for admin_only in ["Acknowledge", "Resolve", "Silence similar events", "Assign"] {
            assert!(
                b.all("button", Some(admin_only)).await.is_empty(),
                "{admin_only}"
            );
        }
        assert!(b.all("combobox", Some("Assign to")).await.is_empty());
        // The keys for admin actions do nothing either.
        b.keys("a").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(b.all("alert", None).await.is_empty());
        b.click(&b.get("link", "Silences").await).await;
        b.get("table", "Active silences").await;
        assert!(b.all("button", Some("New silence")).await.is_empty());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_elsewhere_asks_to_sign_in_again() {
    let Some((app, b)) = start("session_ended").await else {
        return;
    };
    app.user_with_role("ben", "ANALYST").await;
    b.check(async {
        sign_in(&b, &app, "/", "ben", "password-123").await;
        // An administrator disables the account: its sessions end.
        let admin = app.admin().await;
        let id = app
            .ok(
                Some(&admin),
                "{ users(first: 10) { nodes { id username } } }",
                json!({}),
            )
            .await["users"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "ben")
            .unwrap()["id"]
            .clone();
        app.ok(
            Some(&admin),
            "mutation($id: ID!) { updateUser(id: $id, input: { active: false }) { id } }",
            json!({ "id": id }),
        )
        .await;
        b.click(&b.get("link", "Silences").await).await;
        b.get("button", "Sign in").await;
        b.see("Your session has ended. Sign in again.").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folded_events_come_in_pages() {
    let Some((app, b)) = start("events_paged").await else {
        return;
    };
    let key = sensor_key(&app).await;
    let mut id = String::new();
    for _ in 0..23 {
        id = raise(&app, &key, "fw-fold", "folded again").await;
    }
    b.check(async {
        sign_in(&b, &app, &format!("/?alert={id}"), "admin", ADMIN_PASSWORD).await;
        b.get("heading", "Events (23)").await;
        let list = b.get("list", "Events, newest first").await;
        let items = || async {
            b.eval(
                "return arguments[0].children.length",
                json!([list.0.clone()]),
            )
            .await
        };
        assert_eq!(items().await, json!(20));
        b.click(&b.get("button", "More events").await).await;
        b.until("the rest of the events", || async {
            items().await == json!(23)
        })
        .await;
        b.gone("button", "More events").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_said_with_when_to_retry() {
    let Some((app, b)) = start_tweaked("rate_limited", |s| {
        s.rate_user = threatwatch::config::Quota::parse("X", "3/min").unwrap();
    })
    .await
    else {
        return;
    };
    b.check(async {
        sign_in(&b, &app, "/?view=silences", "admin", ADMIN_PASSWORD).await;
        b.click(&b.get("link", "Queue").await).await;
        b.click(&b.get("link", "Silences").await).await;
        let error = b
            .get_containing("alert", "Too many requests. Try again in")
            .await;
        let text = b.text(&error).await;
        assert!(text.contains("second"), "{text}");
        assert!(
            !text.contains('{') && !text.contains("RATE_LIMITED"),
            "{text}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrow_window_keeps_the_queue_usable() {
    let Some((app, b)) = start("narrow").await else {
        return;
    };
    let key = sensor_key(&app).await;
    raise(&app, &key, "fw-narrow", "narrow alert").await;
    b.check(async {
        b.resize(400, 800).await;
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        b.get("link", "narrow alert").await;
        b.get("checkbox", "Select fw-narrow Intrusion alert").await;
        b.get("button", "Resolve selected").await;
        // The page itself does not scroll sideways.
        let overflow = b
            .eval(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
                json!([]),
            )
            .await;
        assert!(overflow.as_i64().unwrap_or(i64::MAX) <= 0, "{overflow}");
        // Focus is visible: the focused link draws an outline.
        b.keys("j").await;
        let outline = b
            .eval("return getComputedStyle(document.activeElement).outlineStyle", json!([]))
            .await;
        assert_eq!(outline, json!("solid"));
    })
    .await;
}

/// Writes `docs/console.png`, the README's picture of the console:
/// `cargo test --test api console::readme_screenshot -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/console.png; run by hand after changing the console"]
async fn readme_screenshot() {
    let Some((app, b)) = start("readme_screenshot").await else {
        return;
    };
    let key = sensor_key(&app).await;
    let admin = app.admin().await;
    let mut ids = Vec::new();
    for (source, kind, severity, description) in [
        (
            "fw-edge-1",
            "PortScan",
            "HIGH",
            "Sequential SYN scan of 1,024 ports from 203.0.113.7",
        ),
        (
            "ids-core",
            "Intrusion",
            "CRITICAL",
            "Shellcode signature in HTTP body to 10.0.4.12",
        ),
        (
            "vpn-gw",
            "BruteForce",
            "HIGH",
            "41 failed logins for svc-backup in 2 minutes",
        ),
        ("cctv-lobby", "Tamper", "HIGH", "Camera 3 lens covered"),
        (
            "mail-relay",
            "Phishing",
            "CRITICAL",
            "Credential-harvest link sent to 12 mailboxes",
        ),
    ] {
        let body: Value = app
            .client
            .post(app.url("/graphql"))
            .header("X-API-Key", &key)
            .json(&json!({
                "query": "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { alert { id } } }",
                "variables": { "i": { "source": source, "eventType": kind, "severity": severity,
                    "description": description, "dedupKey": source } },
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(
            body["data"]["ingestEvent"]["alert"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    app.ok(
        Some(&admin),
        "mutation($ids: [ID!]!) { updateAlertStatuses(ids: $ids, status: ACKNOWLEDGED) { id } }",
        json!({ "ids": [ids[2]] }),
    )
    .await;
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: RESOLVED) { id } }",
        json!({ "id": ids[3] }),
    )
    .await;
    b.check(async {
        b.resize(1280, 640).await;
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        b.click(&b.get("checkbox", "Select ids-core Intrusion alert").await)
            .await;
        b.click(&b.get("checkbox", "Select mail-relay Phishing alert").await)
            .await;
        b.get_containing("list", "Alerts by status").await;
        b.see("5 in all").await;
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console.png");
        b.screenshot(&path).await;
        assert!(path.exists());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_pages_by_keyset() {
    let Some((app, b)) = start("paging").await else {
        return;
    };
    let key = sensor_key(&app).await;
    for i in 0..27 {
        raise(&app, &key, &format!("fw-p{i:02}"), &format!("paged {i:02}")).await;
    }
    b.check(async {
        sign_in(&b, &app, "/", "admin", ADMIN_PASSWORD).await;
        // Newest first: 26 down to 02 on the first page.
        b.get("link", "paged 26").await;
        b.get("link", "paged 02").await;
        assert!(b.all("link", Some("paged 01")).await.is_empty());
        b.click(&b.get("button", "Older").await).await;
        b.get("link", "paged 01").await;
        b.get("link", "paged 00").await;
        b.gone("link", "paged 26").await;
        assert!(b.current_url().await.contains("after="));
        b.click(&b.get("button", "Newer").await).await;
        b.get("link", "paged 26").await;
        b.get("link", "paged 02").await;
        b.gone("link", "paged 01").await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_assigns_anyone_and_acts_on_the_alert_page() {
    let Some((app, b)) = start("admin_assigns").await else {
        return;
    };
    let key = sensor_key(&app).await;
    let id = raise(&app, &key, "fw-as", "to hand over").await;
    app.user_with_role("ann", "ANALYST").await;
    b.check(async {
        sign_in(&b, &app, &format!("/?alert={id}"), "admin", ADMIN_PASSWORD).await;
        let to = b.get("combobox", "Assign to").await;
        b.click(&to).await;
        b.click(&b.get_in(Some(&to), "option", "ann", true).await)
            .await;
        b.click(&b.get("button", "Assign").await).await;
        b.get("status", "Assigned.").await;
        let admin = app.admin().await;
        let who = app
            .ok(
                Some(&admin),
                "query($id: ID!) { alert(id: $id) { assignee { username } } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(who["alert"]["assignee"]["username"], "ann");
        b.get("button", "Unassign").await;
        b.click(&b.get("button", "Acknowledge").await).await;
        b.get("status", "Alert acknowledged.").await;
        b.gone("button", "Acknowledge").await;
        assert_eq!(status_of(&app, &id).await, "ACKNOWLEDGED");
        b.click(&b.get("button", "Resolve").await).await;
        b.get("status", "Alert resolved.").await;
        b.gone("button", "Resolve").await;
        assert_eq!(status_of(&app, &id).await, "RESOLVED");
    })
    .await;
}

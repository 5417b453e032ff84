//! Triage: ownership, notes, bulk actions, lifecycle times.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp};

const ASSIGN: &str = "mutation($id: ID!, $a: ID) { assignAlert(id: $id, assignee: $a) { id assignee { id username } } }";
const BULK: &str = "mutation($ids: [ID!]!, $s: AlertStatus!) { updateAlertStatuses(ids: $ids, status: $s) { id status acknowledgedAt resolvedAt } }";

async fn alerts(app: &TestApp, token: &str, n: usize) -> Vec<String> {
    let inputs: Vec<_> = (0..n).map(|i| json!({ "source": format!("S{i}"), "eventType": "X", "severity": "HIGH", "description": "d" })).collect();
    let d = app
        .ok(
            Some(token),
            "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { alert { id } } }",
            json!({ "i": inputs }),
        )
        .await;
    d["ingestEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alert"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.ok(Some(token), "{ me { id } }", json!({})).await["me"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ids_of(d: &Value) -> Vec<String> {
    d["alerts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

async fn assignment_rules_and_filters(app: TestApp) {
    let admin = app.admin().await;
    let ana = app.user_with_role("ana", "ANALYST").await;
    let bob = app.user_with_role("bob", "ANALYST").await;
    let cam = app.user_with_role("cam", "SENSOR").await;
    let (ana_id, bob_id, cam_id) = (
        user_id(&app, &ana).await,
        user_id(&app, &bob).await,
        user_id(&app, &cam).await,
    );
    let a = alerts(&app, &admin, 3).await;

    // An admin assigns anyone who works alerts.
    let d = app
        .ok(Some(&admin), ASSIGN, json!({ "id": a[0], "a": bob_id }))
        .await;
    assert_eq!(d["assignAlert"]["assignee"]["username"], "bob");
    assert_eq!(
        code(
            &app.gql(Some(&admin), ASSIGN, json!({ "id": a[1], "a": cam_id }))
                .await
        ),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(
            &app.gql(Some(&admin), ASSIGN, json!({ "id": a[1], "a": "999999" }))
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app.gql(Some(&admin), ASSIGN, json!({ "id": "999999", "a": ana_id }))
                .await
        ),
        "NOT_FOUND"
    );

    // An analyst takes a free alert, cannot take bob's, cannot give one away.
    app.ok(Some(&ana), ASSIGN, json!({ "id": a[1], "a": ana_id }))
        .await;
    assert_eq!(
        code(
            &app.gql(Some(&ana), ASSIGN, json!({ "id": a[0], "a": ana_id }))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(Some(&ana), ASSIGN, json!({ "id": a[0], "a": null }))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(Some(&ana), ASSIGN, json!({ "id": a[2], "a": bob_id }))
                .await
        ),
        "FORBIDDEN"
    );

    let mine = app
        .ok(
            Some(&ana),
            "query($a: ID) { alerts(assignee: $a) { totalCount nodes { id } } }",
            json!({ "a": ana_id }),
        )
        .await;
    assert_eq!(ids_of(&mine), [a[1].clone()]);
    assert_eq!(mine["alerts"]["totalCount"], 1);
    let free = app
        .ok(
            Some(&ana),
            "{ alerts(unassigned: true, status: OPEN) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids_of(&free), [a[2].clone()]);
    assert_eq!(free["alerts"]["totalCount"], 1);
    let both = app
        .gql(
            Some(&ana),
            "query($a: ID) { alerts(assignee: $a, unassigned: true) { totalCount } }",
            json!({ "a": ana_id }),
        )
        .await;
    assert_eq!(code(&both), "BAD_USER_INPUT");

    // A page resolves each alert's own owner (loaded together, newest first).
    let page = app
        .ok(
            Some(&ana),
            "{ alerts { nodes { id assignee { username } } } }",
            json!({}),
        )
        .await;
    let owners: Vec<(&str, &Value)> = page["alerts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), &n["assignee"]["username"]))
        .collect();
    assert_eq!(
        owners,
        [
            (a[2].as_str(), &Value::Null),
            (a[1].as_str(), &json!("ana")),
            (a[0].as_str(), &json!("bob")),
        ]
    );

    // And gives their own back.
    let d = app
        .ok(Some(&ana), ASSIGN, json!({ "id": a[1], "a": null }))
        .await;
    assert!(d["assignAlert"]["assignee"].is_null());
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_ASSIGNED) { totalCount nodes { actor detail } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 3);
    assert_eq!(log["auditLog"]["nodes"][0]["actor"], "ana");
}

/// An ANALYST naming someone else is refused before the assignee is read:
/// an id that names nobody, a disabled user, a SENSOR and another analyst
/// all get the same FORBIDDEN answer, so the answer says nothing about them.
async fn analyst_cannot_probe_users_through_assign(app: TestApp) {
    let admin = app.admin().await;
    let ana = app.user_with_role("ana", "ANALYST").await;
    let bob = app.user_with_role("bob", "ANALYST").await;
    let cam = app.user_with_role("cam", "SENSOR").await;
    let gone = app.user_with_role("gone", "ADMIN").await;
    let ids = [
        user_id(&app, &bob).await,
        user_id(&app, &cam).await,
        user_id(&app, &gone).await,
        "999999".to_string(),
    ];
    app.exec_sql("UPDATE users SET is_active = false WHERE username = 'gone'")
        .await;
    let a = alerts(&app, &admin, 1).await;
    let mut answers = Vec::new();
    for id in &ids {
        let body = app
            .gql(Some(&ana), ASSIGN, json!({ "id": a[0], "a": id }))
            .await;
        answers.push((
            code(&body).to_string(),
            body["errors"][0]["message"].clone(),
        ));
    }
    assert_eq!(answers[0].0, "FORBIDDEN", "{answers:?}");
    assert!(answers.iter().all(|x| *x == answers[0]), "{answers:?}");
}

async fn comments_are_kept_newest_first(app: TestApp) {
    let admin = app.admin().await;
    let ana = app.user_with_role("ana", "ANALYST").await;
    let a = alerts(&app, &admin, 1).await;
    let q = "mutation($id: ID!, $b: String!) { commentOnAlert(id: $id, body: $b) { id author body createdAt } }";
    for (who, body) in [
        (&ana, "looks like a scan"),
        (&admin, "blocked at the edge"),
        (&ana, "closing"),
    ] {
        app.ok(Some(who), q, json!({ "id": a[0], "b": body })).await;
    }
    for (body, expected) in [
        ("", "BAD_USER_INPUT"),
        (&"x".repeat(10_001)[..], "BAD_USER_INPUT"),
    ] {
        assert_eq!(
            code(
                &app.gql(Some(&ana), q, json!({ "id": a[0], "b": body }))
                    .await
            ),
            expected
        );
    }
    assert_eq!(
        code(
            &app.gql(Some(&ana), q, json!({ "id": "999999", "b": "x" }))
                .await
        ),
        "NOT_FOUND"
    );
    let d = app
        .ok(Some(&ana), "query($id: ID!) { alert(id: $id) { comments(first: 2) { totalCount nodes { author body } pageInfo { hasNextPage endCursor } } } }", json!({ "id": a[0] }))
        .await;
    let c = &d["alert"]["comments"];
    assert_eq!(c["totalCount"], 3);
    assert_eq!(c["nodes"][0], json!({ "author": "ana", "body": "closing" }));
    assert_eq!(c["nodes"][1]["author"], "admin");
    assert_eq!(c["pageInfo"]["hasNextPage"], true);
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_COMMENTED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 3);
    assert!(app
        .try_exec_sql("UPDATE alert_comments SET body = 'rewritten'")
        .await
        .is_err());
    assert!(app
        .try_exec_sql("DELETE FROM alert_comments")
        .await
        .is_err());
    let sensor = app.user_with_role("cam", "SENSOR").await;
    assert_eq!(
        code(
            &app.gql(Some(&sensor), q, json!({ "id": a[0], "b": "x" }))
                .await
        ),
        "FORBIDDEN"
    );
}

async fn bulk_changes_are_all_or_nothing(app: TestApp) {
    let admin = app.admin().await;
    let a = alerts(&app, &admin, 4).await;
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: RESOLVED) { id } }",
        json!({ "id": a[3] }),
    )
    .await;

    // A resolved alert cannot go back: the whole call fails, nothing moves.
    let body = app
        .gql(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], a[3]], "s": "ACKNOWLEDGED" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("ids[1]"));
    let body = app
        .gql(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], "999999"], "s": "ACKNOWLEDGED" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let open = app
        .ok(
            Some(&admin),
            "{ alerts(status: OPEN) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(open["alerts"]["totalCount"], 3);

    let d = app
        .ok(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], a[1], a[2]], "s": "ACKNOWLEDGED" }),
        )
        .await;
    let moved = d["updateAlertStatuses"].as_array().unwrap();
    assert_eq!(moved.len(), 3);
    assert!(moved.iter().all(|m| m["status"] == "ACKNOWLEDGED"
        && m["acknowledgedAt"].is_string()
        && m["resolvedAt"].is_null()));
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_STATUS_CHANGED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 4);

    for (ids, why) in [
        (json!([]), "empty"),
        (
            json!((0..501).map(|i| i.to_string()).collect::<Vec<_>>()),
            "too many",
        ),
        (json!([a[0], a[0]]), "twice"),
    ] {
        assert_eq!(
            code(
                &app.gql(Some(&admin), BULK, json!({ "ids": ids, "s": "RESOLVED" }))
                    .await
            ),
            "BAD_USER_INPUT",
            "{why}"
        );
    }
    let ana = app.user_with_role("ana", "ANALYST").await;
    assert_eq!(
        code(
            &app.gql(Some(&ana), BULK, json!({ "ids": [a[0]], "s": "RESOLVED" }))
                .await
        ),
        "FORBIDDEN"
    );
}

async fn lifecycle_times_and_means(app: TestApp) {
    let admin = app.admin().await;
    let stats = "query($s: DateTime) { alertStats(since: $s) { meanSecondsToAcknowledge meanSecondsToResolve } }";
    let d = app.ok(Some(&admin), stats, json!({})).await;
    assert!(d["alertStats"]["meanSecondsToAcknowledge"].is_null());
    assert!(d["alertStats"]["meanSecondsToResolve"].is_null());

    let a = alerts(&app, &admin, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.ok(
        Some(&admin),
        BULK,
        json!({ "ids": [a[0]], "s": "ACKNOWLEDGED" }),
    )
    .await;
    let d = app
        .ok(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], a[1]], "s": "RESOLVED" }),
        )
        .await;
    let done = d["updateAlertStatuses"].as_array().unwrap();
    assert!(done[0]["acknowledgedAt"].is_string());
    assert!(
        done[1]["acknowledgedAt"].is_null(),
        "straight to RESOLVED was never acknowledged"
    );
    assert!(done[1]["resolvedAt"].is_string());

    let d = app.ok(Some(&admin), stats, json!({})).await;
    let ack = d["alertStats"]["meanSecondsToAcknowledge"]
        .as_f64()
        .unwrap();
    let res = d["alertStats"]["meanSecondsToResolve"].as_f64().unwrap();
    assert!((0.25..30.0).contains(&ack), "{ack}");
    assert!(res >= ack, "{res} {ack}");
    let d = app
        .ok(Some(&admin), stats, json!({ "s": "2020-01-01T00:00:00Z" }))
        .await;
    assert!(
        (d["alertStats"]["meanSecondsToAcknowledge"]
            .as_f64()
            .unwrap()
            - ack)
            .abs()
            < 0.01
    );
    let d = app
        .ok(
            Some(&admin),
            stats,
            json!({ "s": "2999-01-01T00:00:00+02:00" }),
        )
        .await;
    assert!(d["alertStats"]["meanSecondsToAcknowledge"].is_null());
    assert_eq!(
        code(
            &app.gql(Some(&admin), stats, json!({ "s": "yesterday" }))
                .await
        ),
        "BAD_USER_INPUT"
    );

    let ev = app.ok(Some(&admin), "query($id: ID!) { alert(id: $id) { events { totalCount nodes { id } } event { id } } }", json!({ "id": a[0] })).await;
    assert_eq!(ev["alert"]["events"]["totalCount"], 1);
    assert_eq!(
        ev["alert"]["events"]["nodes"][0]["id"],
        ev["alert"]["event"]["id"]
    );
}

both!(
    assignment_rules_and_filters,
    analyst_cannot_probe_users_through_assign,
    comments_are_kept_newest_first,
    bulk_changes_are_all_or_nothing,
    lifecycle_times_and_means,
);

const REPEAT: &str = "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id alert { id occurrences event { id } } } alert { id occurrences lastSeenAt createdAt } } }";

fn repeat(source: &str, key: Option<&str>, severity: &str) -> Value {
    json!({ "i": { "source": source, "eventType": "BruteForce", "severity": severity, "description": "failed logins", "dedupKey": key } })
}

async fn repeats_fold_into_the_open_alert(app: TestApp) {
    let admin = app.admin().await;
    let first = app
        .ok(
            Some(&admin),
            REPEAT,
            repeat("Server-1", Some("ssh-brute"), "HIGH"),
        )
        .await["ingestEvent"]
        .clone();
    let a1 = first["alert"]["id"].as_str().unwrap().to_string();
    assert_eq!(first["alert"]["occurrences"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let second = app
        .ok(
            Some(&admin),
            REPEAT,
            repeat("Server-1", Some("ssh-brute"), "CRITICAL"),
        )
        .await["ingestEvent"]
        .clone();
    assert_eq!(second["alert"]["id"], a1.as_str());
    assert_eq!(second["alert"]["occurrences"], 2);
    assert!(
        second["alert"]["lastSeenAt"].as_str().unwrap()
            > second["alert"]["createdAt"].as_str().unwrap()
    );
    // The repeat points at the alert, whose event is still the first one.
    assert_eq!(second["event"]["alert"]["id"], a1.as_str());
    assert_eq!(
        second["event"]["alert"]["event"]["id"],
        first["event"]["id"]
    );

    // Another source, no key, or a LOW event: no folding.
    let other = app
        .ok(
            Some(&admin),
            REPEAT,
            repeat("Server-2", Some("ssh-brute"), "HIGH"),
        )
        .await;
    assert_ne!(other["ingestEvent"]["alert"]["id"], a1.as_str());
    let plain = app
        .ok(Some(&admin), REPEAT, repeat("Server-1", None, "HIGH"))
        .await;
    assert_ne!(plain["ingestEvent"]["alert"]["id"], a1.as_str());
    let low = app
        .ok(
            Some(&admin),
            REPEAT,
            repeat("Server-1", Some("ssh-brute"), "LOW"),
        )
        .await;
    assert!(low["ingestEvent"]["alert"].is_null());

    let d = app
        .ok(Some(&admin), "query($id: ID!) { alert(id: $id) { occurrences events(first: 10) { totalCount nodes { id } } } }", json!({ "id": a1 }))
        .await;
    assert_eq!(d["alert"]["occurrences"], 2);
    assert_eq!(d["alert"]["events"]["totalCount"], 2);
    assert_eq!(
        d["alert"]["events"]["nodes"][0]["id"],
        second["event"]["id"]
    );

    // Once resolved, a repeat raises a new alert.
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: RESOLVED) { id } }",
        json!({ "id": a1 }),
    )
    .await;
    let again = app
        .ok(
            Some(&admin),
            REPEAT,
            repeat("Server-1", Some("ssh-brute"), "HIGH"),
        )
        .await;
    assert_ne!(again["ingestEvent"]["alert"]["id"], a1.as_str());
    assert_eq!(again["ingestEvent"]["alert"]["occurrences"], 1);

    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_CREATED) { totalCount } alertStats { total } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 4);
    assert_eq!(log["alertStats"]["total"], 4);

    // Repeats inside one batch fold too.
    let q = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { alert { id occurrences } } }";
    let one = json!({ "source": "IDS-1", "eventType": "X", "severity": "HIGH", "description": "d", "dedupKey": "batch-key" });
    let d = app
        .ok(Some(&admin), q, json!({ "i": [one, one, one] }))
        .await;
    let done = d["ingestEvents"].as_array().unwrap();
    assert!(done
        .iter()
        .all(|p| p["alert"]["id"] == done[0]["alert"]["id"]));
    let id = done[0]["alert"]["id"].as_str().unwrap();
    let d = app
        .ok(
            Some(&admin),
            "query($id: ID!) { alert(id: $id) { occurrences } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(d["alert"]["occurrences"], 3);
}

/// Many clients repeat one key at once, through two instances on
/// PostgreSQL: exactly one alert, and every event counted.
async fn concurrent_repeats_raise_one_alert(app: TestApp) {
    let admin = app.admin().await;
    let peer = if app.db_is_postgres() {
        Some(app.peer().await)
    } else {
        None
    };
    let mut tasks = Vec::new();
    for n in 0..40 {
        let client = app.client.clone();
        let url = match (&peer, n % 2) {
            (Some(p), 1) => p.url("/graphql"),
            _ => app.url("/graphql"),
        };
        let token = admin.clone();
        tasks.push(tokio::spawn(async move {
            let body: Value = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": REPEAT, "variables": repeat("Firewall-1", Some("syn-flood"), "CRITICAL") }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(body.get("errors").is_none(), "{body}");
            body["data"]["ingestEvent"]["alert"]["id"].as_str().unwrap().to_string()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one alert for all repeats: {ids:?}");
    let d = app.ok(Some(&admin), "query($id: ID!) { alert(id: $id) { occurrences events { totalCount } } alerts { totalCount } }", json!({ "id": ids[0] })).await;
    assert_eq!(d["alert"]["occurrences"], 40);
    assert_eq!(d["alert"]["events"]["totalCount"], 40);
    assert_eq!(d["alerts"]["totalCount"], 1);
}

const SILENCE: &str = "mutation($i: SilenceInput!) { createSilence(input: $i) { id source severity comment createdBy endsAt expiredAt } }";

async fn silences_hold_events_back_while_they_last(app: TestApp) {
    let admin = app.admin().await;
    let in_secs = |s: i64| (chrono::Utc::now() + chrono::Duration::seconds(s)).to_rfc3339();
    let s = app
        .ok(Some(&admin), SILENCE, json!({ "i": { "source": "Scanner-1", "severity": "HIGH", "comment": "weekly pentest", "endsAt": in_secs(2) } }))
        .await;
    let sid = s["createSilence"]["id"].as_str().unwrap().to_string();
    assert_eq!(s["createSilence"]["createdBy"], "admin");

    let q = "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id silencedBy { id comment } } alert { id } } }";
    let ev = |source: &str, severity: &str| json!({ "i": { "source": source, "eventType": "PortScan", "severity": severity, "description": "d" } });
    let held = app.ok(Some(&admin), q, ev("Scanner-1", "HIGH")).await;
    assert!(held["ingestEvent"]["alert"].is_null());
    assert_eq!(
        held["ingestEvent"]["event"]["silencedBy"]["id"],
        sid.as_str()
    );
    // Other severities or sources are not matched.
    assert!(
        app.ok(Some(&admin), q, ev("Scanner-1", "CRITICAL")).await["ingestEvent"]["alert"]
            .is_object()
    );
    assert!(
        app.ok(Some(&admin), q, ev("Scanner-2", "HIGH")).await["ingestEvent"]["alert"].is_object()
    );

    let analyst = app.user_with_role("ana", "ANALYST").await;
    let live = app
        .ok(
            Some(&analyst),
            "{ silences(active: true) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(live["silences"][0]["id"], sid.as_str());

    // It ends by itself while events keep arriving.
    tokio::time::sleep(std::time::Duration::from_millis(2_300)).await;
    assert!(
        app.ok(Some(&admin), q, ev("Scanner-1", "HIGH")).await["ingestEvent"]["alert"].is_object()
    );
    let d = app.ok(Some(&analyst), "{ active: silences(active: true) { id } ended: silences(active: false) { id } all: silences { id } }", json!({})).await;
    assert_eq!(d["active"].as_array().unwrap().len(), 0);
    assert_eq!(d["ended"].as_array().unwrap().len(), 1);

    // Or early, with expireSilence.
    let s2 = app.ok(Some(&admin), SILENCE, json!({ "i": { "eventType": "PortScan", "comment": "noise", "endsAt": in_secs(3600) } })).await;
    let s2 = s2["createSilence"]["id"].as_str().unwrap().to_string();
    assert!(
        app.ok(Some(&admin), q, ev("Scanner-9", "HIGH")).await["ingestEvent"]["alert"].is_null()
    );
    let e = app
        .ok(
            Some(&admin),
            "mutation($id: ID!) { expireSilence(id: $id) { expiredAt } }",
            json!({ "id": s2 }),
        )
        .await;
    assert!(e["expireSilence"]["expiredAt"].is_string());
    assert!(
        app.ok(Some(&admin), q, ev("Scanner-9", "HIGH")).await["ingestEvent"]["alert"].is_object()
    );

    let log = app.ok(Some(&admin), "{ c: auditLog(action: SILENCE_CREATED) { totalCount } e: auditLog(action: SILENCE_EXPIRED) { totalCount } }", json!({})).await;
    assert_eq!(log["c"]["totalCount"], 2);
    assert_eq!(log["e"]["totalCount"], 1);

    for (input, rule) in [
        (
            json!({ "comment": "x", "endsAt": in_secs(60) }),
            "at least one",
        ),
        (
            json!({ "source": "S", "comment": "x", "endsAt": in_secs(-60) }),
            "future",
        ),
        (
            json!({ "source": "S", "comment": "", "endsAt": in_secs(60) }),
            "comment",
        ),
    ] {
        let body = app.gql(Some(&admin), SILENCE, json!({ "i": input })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(rule),
            "{body}"
        );
    }
    let body = app
        .gql(
            Some(&analyst),
            SILENCE,
            json!({ "i": { "source": "S", "comment": "x", "endsAt": in_secs(60) } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    assert_eq!(
        code(
            &app.gql(
                Some(&admin),
                "mutation { expireSilence(id: \"999999\") { id } }",
                json!({})
            )
            .await
        ),
        "NOT_FOUND"
    );
}

both!(
    repeats_fold_into_the_open_alert,
    concurrent_repeats_raise_one_alert,
    silences_hold_events_back_while_they_last,
);

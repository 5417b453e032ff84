//! The console's and the playground's pages and files, served from the
//! binary: headers, caching, compression, hostile paths; and the playground
//! in a real browser, offline.

use crate::browser::Browser;
use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

const CSP: &str = threatwatch::web::CONTENT_SECURITY_POLICY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_strict_policy_and_revalidate() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    for path in ["/", "/graphql"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
        assert_eq!(h["cache-control"], "no-cache");
        assert_eq!(h["x-frame-options"], "DENY");
        let html = r.text().await.unwrap();
        // No inline script and nothing from another origin.
        assert!(!html.contains("<script>"), "{path}: inline script");
        assert!(
            !html.contains("http://") && !html.contains("https://") && !html.contains("//unpkg")
        );
        for tag in html.split("<script").skip(1) {
            assert!(
                tag.trim_start().starts_with("src=") || tag.contains(" src="),
                "{path}: {tag}"
            );
        }
    }
    assert!(CSP.contains("script-src 'self'") && !CSP.contains("unsafe"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_have_etags_cache_headers_and_gzip() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let path = "/assets/vendor/graphiql-3.9.0/graphiql.min.js";
    // Plain, for a client that takes no compression.
    let plain = app
        .client
        .get(app.url(path))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(
        plain.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(plain.headers()["vary"], "Accept-Encoding");
    assert!(plain.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let plain_len = plain.bytes().await.unwrap().len();
    assert!(plain_len > 500_000);
    // Gzipped for one that does.
    let zipped = app
        .client
        .get(app.url(path))
        .header("accept-encoding", "gzip, deflate")
        .send()
        .await
        .unwrap();
    assert_eq!(zipped.headers()["content-encoding"], "gzip");
    let zetag = zipped.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(etag, zetag, "each encoding has its own tag");
    let zipped_len = zipped.bytes().await.unwrap().len();
    assert!(zipped_len * 3 < plain_len, "{zipped_len} of {plain_len}");
    // Revalidation: either tag answers 304 with no body.
    for tag in [&etag, &zetag] {
        let r = app
            .client
            .get(app.url(path))
            .header("if-none-match", tag.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304);
        assert!(r.headers().contains_key("etag"));
        assert!(r.bytes().await.unwrap().is_empty());
    }
    // The console's own modules are revalidated every time.
    let r = app
        .client
        .get(app.url("/assets/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-cache");
    // The licences are served beside the files they cover.
    let r = app
        .client
        .get(app.url("/assets/vendor/react-18.3.1/LICENSE"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("MIT License"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_asset_requests_find_nothing() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let long = format!("/assets/{}", "a/".repeat(3000));
    for path in [
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/%2e%2e/Cargo.toml",
        "/assets/..%2fCargo.toml",
        "/assets//etc/passwd",
        "/assets/console/",
        "/assets/console/app.js%00.png",
        "/assets/CONSOLE/APP.JS",
        "/assets/vendor/README.md/..",
        long.as_str(),
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert!(
            r.status() == 404 || r.status() == 400,
            "{path}: {}",
            r.status()
        );
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("[package]") && !body.contains("root:"),
            "{path}"
        );
    }
    // Odd conditional and encoding headers: a full answer, never a 304 or
    // a body the client cannot read.
    for (name, value) in [
        ("if-none-match", "\"nope\""),
        ("if-none-match", ",,,"),
        ("if-none-match", "W/"),
        ("accept-encoding", "gzip;q=0"),
        ("accept-encoding", "gzip;q=banana"),
        ("accept-encoding", "br"),
        ("accept-encoding", ";;;,,"),
    ] {
        let r = app
            .client
            .get(app.url("/assets/console/style.css"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}: {value}");
        if name == "accept-encoding" && value != "gzip;q=banana" {
            assert!(r.headers().get("content-encoding").is_none(), "{value}");
        }
    }
    // Only GET (and HEAD).
    let r = app
        .client
        .post(app.url("/assets/console/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_renders_offline_and_runs_a_query() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let Some(b) = Browser::start("playground_renders_offline_and_runs_a_query").await else {
        return;
    };
    b.check(async {
        let query = format!(
            "mutation {{ login(username: \"admin\", password: \"{ADMIN_PASSWORD}\") {{ tokenType }} }}"
        );
        let url = reqwest::Url::parse_with_params(&app.url("/graphql"), [("query", query.as_str())])
            .unwrap();
        b.goto(url.as_str()).await;
        let run = b.get_containing("button", "Execute query").await;
        // The header editor holds the Authorization hint.
        b.get("button", "Headers").await;
        b.see("Authorization").await;
        b.click(&run).await;
        let result = b.get("region", "Result Window").await;
        b.until("the result shows the token type", || async {
            b.text(&result).await.contains("\"tokenType\": \"Bearer\"")
        })
        .await;
        // The log is read for real: a message of our own shows in it.
        b.eval("console.error('probe-from-test')", serde_json::json!([])).await;
        let log = b.console_log().await;
        assert!(log.iter().any(|l| l.contains("probe-from-test")), "{log:?}");
        assert!(
            !log.iter().any(|l| l.contains("Content Security Policy") || l.contains("Refused")),
            "{log:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_subscribes_through_the_socket() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let Some(b) = Browser::start("playground_subscribes_through_the_socket").await else {
        return;
    };
    let token = app.admin().await;
    b.check(async {
        let query = "subscription { alertCreated { event { source } } }";
        let url =
            reqwest::Url::parse_with_params(&app.url("/graphql"), [("query", query)]).unwrap();
        b.goto(url.as_str()).await;
        // Replace the hint in the header editor with a real token.
        let headers = b.get("region", "Headers").await;
        b.see("Authorization").await;
        b.click(&headers).await;
        b.ctrl("a").await;
        b.keys(&format!("{{\"Authorization\": \"Bearer {token}\"}}"))
            .await;
        b.click(&b.get_containing("button", "Execute query").await)
            .await;
        // Once the socket is up, an alert raised elsewhere shows in the result.
        let result = b.get("region", "Result Window").await;
        let started = std::time::Instant::now();
        loop {
            app.ingest(&token, "HIGH", "fw-playground").await;
            if b.text(&result).await.contains("fw-playground") {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "no subscription result; the result says: {}",
                b.text(&result).await
            );
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    })
    .await;
}

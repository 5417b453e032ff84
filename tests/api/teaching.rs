//! Errors a person can cause say what to do, token refreshes are counted per
//! session, and `/metrics` can have an address of its own.

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{code, test_settings, Backend, TestApp, TestDb, ADMIN_PASSWORD};
use crate::live::{connect, send};
use crate::{both, both_with};

const SEVERITIES: &str = "expected one of LOW, MEDIUM, HIGH, CRITICAL";

async fn enum_errors_list_the_values(app: TestApp) {
    let admin = app.admin().await;
    // A literal, a variable, and a variable inside an input object.
    let literal = app
        .gql(
            Some(&admin),
            "{ alerts(severity: high) { totalCount } }",
            json!({}),
        )
        .await;
    let variable = app
        .gql(
            Some(&admin),
            "query($s: Severity) { alerts(severity: $s) { totalCount } }",
            json!({ "s": "high" }),
        )
        .await;
    let nested = app
        .gql(
            Some(&admin),
            "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id } } }",
            json!({ "i": { "source": "fw", "eventType": "Scan", "severity": "severe", "description": "d" } }),
        )
        .await;
    for (body, field, value) in [
        (&literal, "severity", "high"),
        (&variable, "severity", "high"),
        (&nested, "input.severity", "severe"),
    ] {
        assert_eq!(code(body), "BAD_USER_INPUT", "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert_eq!(
            message,
            format!("{field}: Severity: \"{value}\" is not a value; {SEVERITIES}"),
            "{body}"
        );
    }
    // Hostile: a huge value is refused the same way, and nothing is stored.
    let huge = "x".repeat(20_000);
    let body = app
        .gql(
            Some(&admin),
            "query($s: AlertStatus) { alerts(status: $s) { totalCount } }",
            json!({ "s": huge }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expected one of OPEN, ACKNOWLEDGED, RESOLVED"),
        "{body}"
    );
    let events = app
        .ok(Some(&admin), "{ events { totalCount } }", json!({}))
        .await;
    assert_eq!(events["events"]["totalCount"], 0);

    // The REST path of the old system takes any case and lists the values.
    let token = rest_token(&app).await;
    let r = app
        .client
        .post(app.url("/api/v1/event/ingest/"))
        .bearer_auth(&token)
        .json(&json!({ "source": "fw", "event_type": "Scan", "severity": "severe", "description": "d" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let said = body["severity"][0].as_str().unwrap_or_default();
    assert!(said.contains("low, medium, high, critical"), "{body}");
    let r = app
        .client
        .post(app.url("/api/v1/event/ingest/"))
        .bearer_auth(&token)
        .json(&json!({ "source": "fw", "event_type": "Scan", "severity": "high", "description": "d" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the old path still takes \"high\"");
    let r = app
        .client
        .get(app.url("/api/v1/alerts/?status=closed"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["status"][0]
            .as_str()
            .unwrap_or_default()
            .contains("open, acknowledged, resolved"),
        "{body}"
    );
}

async fn rest_token(app: &TestApp) -> String {
    let r: Value = app
        .client
        .post(app.url("/api/v1/auth/login/"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access"].as_str().unwrap_or_default().to_string()
}

async fn bad_date_times_name_their_field(app: TestApp) {
    let admin = app.admin().await;
    let literal = app
        .gql(
            Some(&admin),
            "mutation { createSilence(input: { source: \"fw\", comment: \"c\", endsAt: \"tomorrow\" }) { id } }",
            json!({}),
        )
        .await;
    let variable = app
        .gql(
            Some(&admin),
            "mutation($i: SilenceInput!) { createSilence(input: $i) { id } }",
            json!({ "i": { "source": "fw", "comment": "c", "endsAt": "2099-13-45" } }),
        )
        .await;
    let not_text = app
        .gql(
            Some(&admin),
            "mutation($i: SilenceInput!) { createSilence(input: $i) { id } }",
            json!({ "i": { "source": "fw", "comment": "c", "endsAt": 4102444800u64 } }),
        )
        .await;
    let argument = app
        .gql(
            Some(&admin),
            "query($d: DateTime) { alertStats(since: $d) { total } }",
            json!({ "d": "yesterday" }),
        )
        .await;
    for (body, field) in [
        (&literal, "input.endsAt"),
        (&variable, "input.endsAt"),
        (&not_text, "input.endsAt"),
        (&argument, "since"),
    ] {
        assert_eq!(code(body), "BAD_USER_INPUT", "{body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{field}: expected an RFC 3339 date-time")),
            "{body}"
        );
    }
    let silences = app.ok(Some(&admin), "{ silences { id } }", json!({})).await;
    assert_eq!(silences["silences"], json!([]));
    // A good one still passes.
    app.ok(
        Some(&admin),
        "mutation($i: SilenceInput!) { createSilence(input: $i) { id } }",
        json!({ "i": { "source": "fw", "comment": "c", "endsAt": "2099-01-01T00:00:00+01:00" } }),
    )
    .await;
}

async fn an_api_key_sent_as_a_bearer_token_gets_a_hint(app: TestApp) {
    let admin = app.admin().await;
    let key = app
        .ok(
            Some(&admin),
            "mutation { createApiKey(name: \"fw-1\") { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let ingest = "mutation { ingestEvent(input: { source: \"fw\", eventType: \"Scan\", severity: LOW, description: \"d\" }) { event { id } } }";
    let body = app.gql(Some(&key), ingest, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("the X-API-Key header"),
        "{body}"
    );
    // The same key where it belongs works.
    let r: Value = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", &key)
        .json(&json!({ "query": ingest }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(r.get("errors").is_none(), "{r}");
    // The REST path of the old sensors says the same, in DRF's shape.
    let r = app
        .client
        .post(app.url("/api/v1/event/ingest/"))
        .bearer_auth(&key)
        .json(
            &json!({ "source": "fw", "event_type": "Scan", "severity": "low", "description": "d" }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("X-API-Key"),
        "{body}"
    );
    // A bearer token that is nothing of ours gets no hint about keys.
    let body = app.gql(Some("not-a-token"), ingest, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert!(!body.to_string().contains("X-API-Key"), "{body}");

    // On the WebSocket the close reason says the same.
    let mut s = connect(app.addr).await;
    send(
        &mut s,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {key}") } }),
    )
    .await;
    let closed = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(10), s.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    };
    let frame = closed.expect("a close frame");
    assert_eq!(u16::from(frame.code), 4401);
    assert!(
        frame.reason.contains("X-API-Key") && frame.reason.ends_with("connection_init)"),
        "the whole hint fits a close frame: {}",
        frame.reason
    );
}

const LOGIN: &str =
    "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken refreshToken } }";
const REFRESH: &str = "mutation($t: String!) { refreshToken(refreshToken: $t) { refreshToken } }";

/// A refresh as a dashboard sends it: no credentials, from one address.
async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": REFRESH, "variables": { "t": token } }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Several analysts behind one address (a NAT) keep refreshing past the
/// anonymous quota of 2; each session, and each account, has its own quota
/// (3 here), and tokens we did not sign still cost the address's quota.
async fn refreshes_are_counted_per_session(app: TestApp) {
    // Five analysts' sessions, opened on another instance without quotas,
    // so that making them spends nothing of this one's.
    let peer = app
        .peer_with(|s| {
            s.rate_anon = None;
            s.rate_user = None;
        })
        .await;
    let login = |user: String, password: String| {
        let req = app
            .client
            .post(peer.url("/graphql"))
            .json(&json!({ "query": LOGIN, "variables": { "u": user, "p": password } }));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let admin = login("admin".into(), ADMIN_PASSWORD.into()).await["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tokens = Vec::new();
    for i in 0..5 {
        let created: Value = app
            .client
            .post(peer.url("/graphql"))
            .bearer_auth(&admin)
            .json(&json!({
                "query": "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
                "variables": { "i": { "username": format!("analyst{i}"), "password": "password-123", "role": "ANALYST" } }
            }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(created.get("errors").is_none(), "{created}");
        let r = login(format!("analyst{i}"), "password-123".into()).await;
        tokens.push(
            r["data"]["login"]["refreshToken"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Two rounds: ten refreshes from one address, five times its quota.
    for round in 0..2 {
        for token in &mut tokens {
            let (status, body) = refresh(&app, token).await;
            assert_eq!(status, 200, "round {round}: {body}");
            *token = body["data"]["refreshToken"]["refreshToken"]
                .as_str()
                .unwrap_or_else(|| panic!("round {round}: {body}"))
                .to_string();
        }
    }
    // One session hammered: past three refreshes in the minute it is refused.
    let (status, body) = refresh(&app, &tokens[0]).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = refresh(
        &app,
        body["data"]["refreshToken"]["refreshToken"]
            .as_str()
            .unwrap(),
    )
    .await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    // The old REST path counts a refresh the same way.
    for token in &tokens[1..] {
        let r = app
            .client
            .post(app.url("/api/v1/auth/refresh/"))
            .json(&json!({ "refresh": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Sessions of one account share that account's quota: opening more
    // sessions buys no more refreshes.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let r = login("admin".into(), ADMIN_PASSWORD.into()).await;
        sessions.push(
            r["data"]["login"]["refreshToken"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut limited = 0;
    for token in &sessions {
        let (_, body) = refresh(&app, token).await;
        if body.get("errors").is_some() {
            assert_eq!(code(&body), "RATE_LIMITED", "{body}");
            limited += 1;
        }
    }
    assert_eq!(limited, 1, "four sessions of one account, a quota of three");
    // Guessing: tokens we did not sign cost the address's quota of two.
    let mut refused = false;
    for i in 0..3 {
        let (status, body) = refresh(&app, &format!("garbage-{i}")).await;
        if status == 429 || code(&body) == "RATE_LIMITED" {
            refused = true;
            break;
        }
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    assert!(refused, "garbage refresh tokens must be throttled");
    // And a refresh does not make room for anything else on that address.
    let r = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

fn two_anonymous_three_per_session(s: &mut threatwatch::config::Settings) {
    s.rate_anon = threatwatch::config::Quota::parse("X", "2/min").unwrap();
    s.rate_user = threatwatch::config::Quota::parse("X", "3/min").unwrap();
}

/// `THREATWATCH_METRICS_BIND` moves `/metrics` off the API address.
async fn metrics_on_their_own_address(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let mut settings = test_settings(db.url());
    settings.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    let server = threatwatch::app::Server::build(settings)
        .await
        .expect("server starts");
    let api = server.local_addr().unwrap();
    let metrics = server.metrics_addr().expect("a metrics address").unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let at = |addr: std::net::SocketAddr, path: &str| format!("http://{addr}{path}");
    let r = client.get(at(api, "/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = client.get(at(metrics, "/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("# TYPE"));
    // The metrics address serves nothing else.
    for path in ["/graphql", "/healthz", "/api/v1/alerts/"] {
        let r = client.get(at(metrics, path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
    let r = client.get(at(api, "/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    // Both listeners are gone after shutdown.
    assert!(client.get(at(metrics, "/metrics")).send().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_bind_sqlite() {
    metrics_on_their_own_address(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_bind_postgres() {
    metrics_on_their_own_address(Backend::Postgres).await;
}

both!(
    enum_errors_list_the_values,
    bad_date_times_name_their_field,
    an_api_key_sent_as_a_bearer_token_gets_a_hint,
);

both_with!(
    refreshes_are_counted_per_session => super::two_anonymous_three_per_session,
);

//! Token lifecycle, API keys, throttling and hostile input.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{code, TestApp, ADMIN_PASSWORD};
use crate::{both, both_with};

const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";
const LOGOUT: &str = "mutation($t: String!) { logout(refreshToken: $t) }";
const INGEST: &str =
    "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id } alert { id } } }";

fn event() -> Value {
    json!({ "i": { "source": "Sensor-9", "eventType": "Intrusion", "severity": "HIGH", "description": "d" } })
}

async fn pair(app: &TestApp) -> (String, String) {
    let body = app.login("admin", ADMIN_PASSWORD).await;
    let l = &body["data"]["login"];
    (
        l["accessToken"].as_str().unwrap().into(),
        l["refreshToken"].as_str().unwrap().into(),
    )
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_chain(app: TestApp) {
    let (_, first) = pair(&app).await;
    let rotated = app.ok(None, REFRESH, json!({ "t": first })).await;
    let second = rotated["refreshToken"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let access = rotated["refreshToken"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    app.ok(Some(&access), "{ me { username } }", json!({}))
        .await;

    // The retired token comes back: someone holds a copy. The whole chain dies.
    let reuse = app.gql(None, REFRESH, json!({ "t": first })).await;
    assert_eq!(code(&reuse), "UNAUTHENTICATED");
    let after = app.gql(None, REFRESH, json!({ "t": second })).await;
    assert_eq!(code(&after), "UNAUTHENTICATED");
    let me = app
        .gql(Some(&access), "{ me { username } }", json!({}))
        .await;
    assert_eq!(code(&me), "UNAUTHENTICATED");

    let admin = app.admin().await;
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: TOKEN_REVOKED) { totalCount nodes { actor detail } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 1);
    assert!(log["auditLog"]["nodes"][0]["detail"]
        .as_str()
        .unwrap()
        .contains("reused"));
}

async fn logout_revokes_across_instances(app: TestApp) {
    let (access, refresh) = pair(&app).await;
    let peer = app.peer().await;
    let d = app.ok(None, LOGOUT, json!({ "t": refresh })).await;
    assert_eq!(d["logout"], true);

    // The peer never saw the logout; the database tells it.
    let body: Value = app
        .client
        .post(peer.url("/graphql"))
        .json(&json!({ "query": REFRESH, "variables": { "t": refresh } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let me = app
        .gql(Some(&access), "{ me { username } }", json!({}))
        .await;
    assert_eq!(code(&me), "UNAUTHENTICATED");
    // Another session of the same user is untouched.
    let other = app.admin().await;
    app.ok(Some(&other), "{ me { username } }", json!({})).await;
}

async fn disabled_accounts_lose_their_tokens(app: TestApp) {
    let analyst = app.user_with_role("ana", "ANALYST").await;
    app.ok(Some(&analyst), "{ alerts { totalCount } }", json!({}))
        .await;
    app.exec_sql("UPDATE users SET is_active = FALSE WHERE username = 'ana'")
        .await;
    // Credential checks are cached for a few seconds per instance.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let body = app
        .gql(Some(&analyst), "{ alerts { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(
        code(&app.login("ana", "password-123").await),
        "UNAUTHENTICATED"
    );
}

async fn api_keys_ingest_as_sensors_until_revoked(app: TestApp) {
    let admin = app.admin().await;
    let created = app
        .ok(Some(&admin), "mutation { createApiKey(name: \"Firewall-1\") { key apiKey { id name createdAt lastUsedAt revokedAt } } }", json!({}))
        .await;
    let key = created["createApiKey"]["key"].as_str().unwrap().to_string();
    let id = created["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("tw_"));

    let send = |query: &'static str, vars: Value| {
        let req = app
            .client
            .post(app.url("/graphql"))
            .header("x-api-key", key.clone())
            .json(&json!({ "query": query, "variables": vars }));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let done = send(INGEST, event()).await;
    assert!(done.get("errors").is_none(), "{done}");
    let forbidden = send("{ alerts { totalCount } }", json!({})).await;
    assert_eq!(code(&forbidden), "FORBIDDEN");

    let keys = app
        .ok(
            Some(&admin),
            "{ apiKeys { id name lastUsedAt revokedAt } }",
            json!({}),
        )
        .await;
    assert_eq!(keys["apiKeys"][0]["name"], "Firewall-1");
    assert!(keys["apiKeys"][0]["lastUsedAt"].is_string(), "{keys}");
    assert!(
        !keys.to_string().contains(&key),
        "the key is never shown again"
    );

    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_CREATED) { nodes { actor } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["nodes"][0]["actor"], "apikey:Firewall-1");

    let revoked = app
        .ok(
            Some(&admin),
            "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert!(revoked["revokeApiKey"]["revokedAt"].is_string());
    let refused = send(INGEST, event()).await;
    assert_eq!(code(&refused), "UNAUTHENTICATED");

    for action in ["API_KEY_CREATED", "API_KEY_REVOKED"] {
        let log = app
            .ok(
                Some(&admin),
                &format!("{{ auditLog(action: {action}) {{ totalCount }} }}"),
                json!({}),
            )
            .await;
        assert_eq!(log["auditLog"]["totalCount"], 1, "{action}");
    }
    let bad = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", "tw_forged")
        .json(&json!({ "query": INGEST, "variables": event() }))
        .send()
        .await
        .unwrap();
    assert_eq!(code(&bad.json::<Value>().await.unwrap()), "UNAUTHENTICATED");
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let body = app
        .gql(
            Some(&analyst),
            "mutation { createApiKey(name: \"x\") { key } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    // Names are unique among live keys, whatever their case.
    app.ok(
        Some(&admin),
        "mutation { createApiKey(name: \"Gate-1\") { key } }",
        json!({}),
    )
    .await;
    let dup = app
        .gql(
            Some(&admin),
            "mutation { createApiKey(name: \"gate-1\") { key } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&dup), "BAD_USER_INPUT");
}

async fn anonymous_requests_are_throttled_per_ip(app: TestApp) {
    for _ in 0..3 {
        app.gql(None, "{ __typename }", json!({})).await;
    }
    let r = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), "RATE_LIMITED");
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], retry);
    // Health checks are never throttled.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn password_guesses_are_counted_per_attempt(app: TestApp) {
    // 20 aliases in one document: at most the quota (3) in password checks.
    let fields: String = (0..20)
        .map(|i| {
            format!("l{i}: login(username: \"admin\", password: \"guess-{i}\") {{ tokenType }} ")
        })
        .collect();
    let body = app
        .gql(None, &format!("mutation {{ {fields} }}"), json!({}))
        .await;
    let errors = body["errors"].as_array().unwrap();
    let codes: Vec<&str> = errors
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes.len(), 20);
    assert!(
        codes.iter().filter(|c| **c == "UNAUTHENTICATED").count() <= 3,
        "{codes:?}"
    );
    assert!(
        codes.iter().filter(|c| **c == "RATE_LIMITED").count() >= 17,
        "{codes:?}"
    );
    assert!(errors
        .iter()
        .any(|e| e["extensions"]["retryAfter"].as_u64().is_some()));
}

async fn batches_count_every_operation(app: TestApp) {
    let batch: Vec<_> = (0..4)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let r = app
        .client
        .post(app.url("/graphql"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "4 operations against a quota of 3");
}

async fn failed_logins_slow_one_username(app: TestApp) {
    for i in 0..6 {
        let body = app.login("admin", &format!("wrong-{i}")).await;
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    // Now even the right password waits, for this username only.
    let body = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(code(&body), "RATE_LIMITED");
    let wait = body["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&wait));
    let other = app.login("someone", "wrong-password").await;
    assert_eq!(code(&other), "UNAUTHENTICATED");
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert!(app.login("admin", ADMIN_PASSWORD).await["data"]["login"].is_object());
}

/// A username no account can have (here as large as a request body may
/// carry) is refused like any failed login, without a lookup or a password
/// check, and what is recorded of it is cut to a username's length.
async fn a_huge_username_is_refused_before_any_lookup(app: TestApp) {
    let admin = app.admin().await;
    let size = (16 << 20).min(threatwatch::app::MAX_BODY_BYTES - 4096);
    let huge = "A".repeat(size);
    let wrong = app.login("admin", "not-the-password").await;
    // Anonymous, it never gets past the small body cap of requests without
    // credentials; a signed-in client may send that much, and `login`.
    // The answer comes from the headers and closes the connection, so the
    // body is not sent: a client still writing it could see the close first.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            size + 200
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let mut answer = vec![0u8; 1024];
        let n = sock.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    let started = std::time::Instant::now();
    let body = app
        .gql(
            Some(&admin),
            "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }",
            json!({ "u": huge, "p": "not-the-password" }),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(code(&body), "UNAUTHENTICATED", "{}", body.to_string().len());
    assert_eq!(body["errors"][0]["message"], wrong["errors"][0]["message"]);
    // Generous: what it bounds is minutes of hashing, not milliseconds.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let with_space = app.login("admin ", "not-the-password").await;
    assert_eq!(code(&with_space), "UNAUTHENTICATED");
    // Never looked up, so never counted against a username either: past
    // the free failures these would wait if they were.
    let long = "b".repeat(151);
    for _ in 0..7 {
        assert_eq!(code(&app.login(&long, "x").await), "UNAUTHENTICATED");
    }

    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: LOGIN_FAILED, first: 20) { nodes { detail } } }",
            json!({}),
        )
        .await;
    let details: Vec<&str> = log["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 10, "{details:?}");
    assert!(details.iter().all(|d| d.len() < 200), "{details:?}");
    // The real account is untouched by the huge name's failure.
    app.token("admin", ADMIN_PASSWORD).await;
}

/// After the free failures, a burst of parallel guesses at one username
/// gets one password check through the window; the rest wait. Counted in
/// LOGIN_FAILED entries, one per check that ran. Three usernames, since
/// one burst may happen to arrive one by one.
async fn parallel_guesses_get_one_check_through_the_window(app: TestApp) {
    let admin = app.admin().await;
    let app = &app;
    let mut checked = 0;
    for name in ["ana", "bob", "cid"] {
        app.user_with_role(name, "ANALYST").await;
        for i in 0..5 {
            let body = app.login(name, &format!("wrong-{i}")).await;
            assert_eq!(code(&body), "UNAUTHENTICATED");
        }
        let answers = futures_util::future::join_all(
            (0..16).map(|i| async move { app.login(name, &format!("parallel-{i}")).await }),
        )
        .await;
        let codes: Vec<&str> = answers.iter().map(code).collect();
        let through = codes.iter().filter(|c| **c == "UNAUTHENTICATED").count();
        assert!(through <= 1, "{name}: {codes:?}");
        assert_eq!(
            codes.iter().filter(|c| **c == "RATE_LIMITED").count(),
            16 - through,
            "{codes:?}"
        );
        checked += through;
    }
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: LOGIN_FAILED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 3 * 5 + checked);
}

async fn users_are_throttled_per_user(app: TestApp) {
    let admin = app.admin().await;
    for _ in 0..3 {
        app.ok(Some(&admin), "{ me { username } }", json!({})).await;
    }
    let r = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&admin)
        .json(&json!({ "query": "{ me { username } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

async fn forwarded_for_is_believed_only_from_trusted_proxies(app: TestApp) {
    // 127.0.0.1 is trusted here: each forwarded client has its own quota.
    for client in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..3 {
            let r = app
                .client
                .post(app.url("/graphql"))
                .header("x-forwarded-for", client)
                .json(&json!({ "query": "{ __typename }" }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = app
            .client
            .post(app.url("/graphql"))
            .header("x-forwarded-for", format!("10.9.9.9, {client}"))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            429,
            "the rightmost untrusted address is the client"
        );
    }
    let admin = {
        let r = app.client.post(app.url("/graphql")).header("x-forwarded-for", "198.51.100.7").json(&json!({ "query": format!("mutation {{ login(username: \"admin\", password: \"{ADMIN_PASSWORD}\") {{ accessToken }} }}") })).send().await.unwrap();
        r.json::<Value>().await.unwrap()["data"]["login"]["accessToken"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: LOGIN_SUCCEEDED) { nodes { ip } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["nodes"][0]["ip"], "198.51.100.7");
}

async fn forwarded_for_is_ignored_from_others(app: TestApp) {
    for i in 0..3 {
        app.client
            .post(app.url("/graphql"))
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .unwrap();
    }
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", "203.0.113.99")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        429,
        "spoofed X-Forwarded-For must not buy a fresh quota"
    );
}

async fn the_audit_log_cannot_be_changed(app: TestApp) {
    app.admin().await;
    for sql in [
        "UPDATE audit_log SET actor = 'someone-else'",
        "DELETE FROM audit_log",
    ] {
        let err = app.try_exec_sql(sql).await.unwrap_err();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
    let admin = app.admin().await;
    let log = app
        .ok(Some(&admin), "{ auditLog { nodes { actor } } }", json!({}))
        .await;
    assert!(!log.to_string().contains("someone-else"));
}

both!(
    the_audit_log_cannot_be_changed,
    refresh_tokens_rotate_and_reuse_revokes_the_chain,
    logout_revokes_across_instances,
    disabled_accounts_lose_their_tokens,
    api_keys_ingest_as_sensors_until_revoked,
);

fn three_per_minute(s: &mut threatwatch::config::Settings) {
    let q = threatwatch::config::Quota::parse("X", "3/min").unwrap();
    s.rate_anon = q;
    s.rate_user = q;
}

fn trusting_loopback(s: &mut threatwatch::config::Settings) {
    three_per_minute(s);
    s.trusted_proxies = threatwatch::config::parse_networks("X", "127.0.0.1").unwrap();
}

both_with!(
    anonymous_requests_are_throttled_per_ip => super::three_per_minute,
    password_guesses_are_counted_per_attempt => super::three_per_minute,
    batches_count_every_operation => super::three_per_minute,
    users_are_throttled_per_user => super::three_per_minute,
    forwarded_for_is_believed_only_from_trusted_proxies => super::trusting_loopback,
    forwarded_for_is_ignored_from_others => super::three_per_minute,
    failed_logins_slow_one_username => |_| {},
);

both!(
    a_huge_username_is_refused_before_any_lookup,
    parallel_guesses_get_one_check_through_the_window,
);

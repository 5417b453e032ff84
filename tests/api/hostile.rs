//! Hostile input: each gets its clean error, nothing is stored, and the
//! server answers the next request.

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use threatwatch::auth::token::{Claims, TokenType};
use threatwatch::domain::Role;

use crate::both_with;
use crate::helpers::{code, TestApp};

const SECRET: &str = "test-secret-that-is-at-least-32-characters";

fn known_secret(s: &mut threatwatch::config::Settings) {
    s.jwt_secret = Some(SECRET.into());
    s.cors_origins = vec!["https://dash.example".into()];
}

fn no_introspection(s: &mut threatwatch::config::Settings) {
    s.introspection = false;
}

async fn nothing_stored(app: &TestApp) {
    let admin = app.admin().await;
    let d = app
        .ok(
            Some(&admin),
            "{ events { totalCount } alerts { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(d["events"]["totalCount"], 0);
    assert_eq!(d["alerts"]["totalCount"], 0);
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn post_raw(app: &TestApp, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url("/graphql"))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn malformed_bodies(app: TestApp) {
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "application/json",
            b"{\"query\": \"{ __typename }\"".to_vec(),
            400,
        ),
        ("application/json", vec![0xff, 0xfe, 0x7b, 0x7d], 400),
        ("application/json", b"[]".to_vec(), 400),
        ("application/json", b"42".to_vec(), 400),
        ("application/json", b"{\"query\": 5}".to_vec(), 400),
        (
            "application/x-www-form-urlencoded",
            b"query=%7B__typename%7D".to_vec(),
            415,
        ),
        ("multipart/form-data; boundary=x", b"--x--".to_vec(), 415),
    ];
    for (ct, body, status) in cases {
        let r = post_raw(&app, ct, body.clone()).await;
        assert_eq!(
            r.status().as_u16(),
            status,
            "{ct} {:?}",
            String::from_utf8_lossy(&body)
        );
        let v: Value = r.json().await.unwrap();
        assert_eq!(code(&v), "BAD_USER_INPUT");
    }
    // A body over the limit is refused from its Content-Length, before it is
    // read: a raw socket shows the answer without racing the upload.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"query\": \"",
        17 * 1024 * 1024
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = sock.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("BAD_USER_INPUT"), "{answer}");
    nothing_stored(&app).await;
}

async fn abusive_documents(app: TestApp) {
    let admin = app.admin().await;
    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("event {{ alert {{ {deep} }} }}");
    }
    let too_deep = format!("{{ alerts {{ nodes {{ {deep} }} }} }}");
    let aliases: String = (0..200).map(|i| format!("a{i}: __typename ")).collect();
    let long = format!("{{ __typename {} }}", " ".repeat(20_000));
    for q in [
        too_deep,
        format!("{{ {aliases} }}"),
        long,
        "{ a: __typename ".repeat(3),
    ] {
        let body = app.gql(Some(&admin), &q, json!({})).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{}", &q[..q.len().min(80)]);
        assert!(body["data"].is_null());
    }
    // Wrong variable types and unknown enum values.
    let ingest = "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id } } }";
    for vars in [
        json!({ "i": { "source": 5, "eventType": "X", "severity": "HIGH", "description": "d" } }),
        json!({ "i": { "source": "S", "eventType": "X", "severity": "high", "description": "d" } }),
        json!({ "i": { "source": "S", "eventType": "X", "severity": "HIGH", "description": "d", "extra": 1 } }),
        json!({ "i": { "source": "S", "eventType": "X", "severity": "HIGH", "description": "d".repeat(1_000_000) } }),
        json!({ "i": "not an object" }),
    ] {
        let body = app.gql(Some(&admin), ingest, vars).await;
        assert_eq!(code(&body), "BAD_USER_INPUT");
    }
    nothing_stored(&app).await;
}

fn forge(secret: &str, typ: TokenType, exp_offset: i64, role: Role) -> String {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: "1".into(),
        username: "admin".into(),
        role,
        typ,
        iss: "threatwatch".into(),
        aud: "threatwatch".into(),
        iat: now,
        exp: now + exp_offset,
        jti: "j".into(),
        sid: "s".into(),
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn forged_tokens(app: TestApp) {
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let valid = forge(SECRET, TokenType::Access, 300, Role::Admin);
    let payload = valid.split('.').nth(1).unwrap().to_string();
    let cases = [
        (
            "expired",
            forge(SECRET, TokenType::Access, -3600, Role::Admin),
        ),
        (
            "other secret",
            forge(
                "another-secret-that-is-32-characters-long",
                TokenType::Access,
                300,
                Role::Admin,
            ),
        ),
        (
            "none algorithm",
            format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#)),
        ),
        (
            "HS512",
            format!(
                "{}.{payload}.{}",
                b64(r#"{"alg":"HS512","typ":"JWT"}"#),
                valid.split('.').nth(2).unwrap()
            ),
        ),
        (
            "refresh as access",
            forge(SECRET, TokenType::Refresh, 300, Role::Admin),
        ),
        // Signed with the real key but for a session that was never started.
        ("unknown session", valid.clone()),
        ("truncated", valid[..valid.len() - 5].to_string()),
    ];
    let ingest = "mutation { ingestEvent(input: {source: \"S\", eventType: \"X\", severity: HIGH, description: \"d\"}) { event { id } } }";
    for (what, token) in cases {
        let body = app.gql(Some(&token), ingest, json!({})).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{what}");
    }
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .json(&json!({ "query": ingest }))
        .send()
        .await
        .unwrap();
    assert_eq!(code(&r.json::<Value>().await.unwrap()), "UNAUTHENTICATED");
    nothing_stored(&app).await;
}

async fn cors_and_headers(app: TestApp) {
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let r = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
}

async fn introspection_can_be_turned_off(app: TestApp) {
    let body = app
        .gql(None, "{ __schema { types { name } } }", json!({}))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    // Through a fragment, and without suggestions that would spell out the
    // schema instead.
    let body = app
        .gql(
            None,
            "{ ...F } fragment F on Query { __type(name: \"Alert\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let admin = app.admin().await;
    let body = app.gql(Some(&admin), "{ alert { id } }", json!({})).await;
    assert!(!body.to_string().contains("Did you mean"), "{body}");
    let body = app.gql(Some(&admin), "{ alertz { id } }", json!({})).await;
    assert!(!body.to_string().contains("alerts"), "{body}");
}

both_with!(
    malformed_bodies => |_| {},
    abusive_documents => |_| {},
    forged_tokens => super::known_secret,
    cors_and_headers => super::known_secret,
    introspection_can_be_turned_off => super::no_introspection,
);

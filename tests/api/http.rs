use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::TestApp;
use crate::{both, both_with};

/// Sends a request head (and the first `body` bytes) on a raw socket, so a
/// test can hold back the rest of the body.
async fn raw_post(app: &TestApp, extra_headers: &str, length: usize, body: &[u8]) -> TcpStream {
    let mut sock = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {length}\r\n\r\n"
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body).await.unwrap();
    sock
}

/// The head and start of the answer, within `wait`.
async fn answer(sock: &mut TcpStream, wait: Duration) -> String {
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(wait, sock.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
}

/// A GraphQL request of about `size` bytes: a tiny query, padded variables.
fn padded(size: usize) -> Vec<u8> {
    json!({ "query": "{ __typename }", "variables": { "pad": "x".repeat(size) } })
        .to_string()
        .into_bytes()
}

async fn health_readiness_and_playground(app: TestApp) {
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let html = r.text().await.unwrap();
    assert!(html.contains("graphiql") || html.contains("GraphiQL"));
    assert!(html.contains("/assets/playground/init.js"));
}

async fn malformed_requests_get_clean_errors(app: TestApp) {
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let r = app
        .client
        .post(app.url("/graphql"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    let body = app.gql(None, "{ alerts { ", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let body = app.gql(None, "{ noSuchField }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let batch: Vec<_> = (0..11)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let r = app
        .client
        .post(app.url("/graphql"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let batch: Vec<_> = (0..3)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let r: serde_json::Value = app
        .client
        .post(app.url("/graphql"))
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r.as_array().unwrap().len(), 3);

    // And the server still answers.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Without valid credentials a request can only log in or read the schema:
/// its body is capped at 64 KiB, refused from the header before it is read;
/// with credentials the same body is served.
async fn bodies_without_credentials_are_capped_small(app: TestApp) {
    let big = padded(100 * 1024);
    for auth in ["", "Authorization: Bearer not-a-token\r\n"] {
        // Only the head is sent: the answer comes without the body.
        let mut sock = raw_post(&app, auth, big.len(), b"").await;
        let a = answer(&mut sock, Duration::from_secs(5)).await;
        assert!(a.starts_with("http/1.1 413"), "{auth}: {a}");
        assert!(a.contains("without valid credentials"), "{a}");
        assert!(a.contains("connection: close"), "{a}");
    }
    // Undeclared size (chunked) is cut at the same limit.
    let mut sock = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    sock.write_all(head.as_bytes()).await.unwrap();
    for chunk in big.chunks(8192) {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), chunk, b"\r\n"].concat();
        // The server may answer and close before the last chunk.
        if sock.write_all(&framed).await.is_err() {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let a = answer(&mut sock, Duration::from_secs(5)).await;
    assert!(a.starts_with("http/1.1 413"), "{a}");
    let admin = app.admin().await;
    assert_eq!(signed_in_post(&app, &admin, big).await, 200);
    let small = app.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(small["data"]["__typename"], "Query");
}

/// The status of a raw JSON body posted with a user's token.
async fn signed_in_post(app: &TestApp, token: &str, body: Vec<u8>) -> reqwest::StatusCode {
    app.client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

/// A caller over its quota is answered from the headers: the server does
/// not wait for a body it would refuse anyway.
async fn the_quota_is_checked_before_the_body_is_read(app: TestApp) {
    let r = app.gql(None, "{ __typename }", json!({})).await;
    assert!(r.get("errors").is_none(), "{r}");
    let mut sock = raw_post(&app, "", 1000, b"{").await;
    let a = answer(&mut sock, Duration::from_secs(5)).await;
    assert!(a.starts_with("http/1.1 429"), "{a}");
    assert!(a.contains("retry-after"), "{a}");
}

/// A body that does not arrive in time is answered 408 and its large-body
/// permit freed; while every permit is held, a further large request waits
/// a bounded time and is answered 503 with Retry-After.
async fn slow_bodies_time_out_and_free_their_permits(app: TestApp) {
    let admin = app.admin().await;
    let auth = format!("Authorization: Bearer {admin}\r\n");
    let big = padded(100 * 1024);
    let mut slow = Vec::new();
    for _ in 0..threatwatch::http::large_request_permits() {
        slow.push(raw_post(&app, &auth, big.len(), &big[..10]).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut waiting = raw_post(&app, &auth, big.len(), &big).await;
    let a = answer(&mut waiting, Duration::from_secs(20)).await;
    assert!(a.starts_with("http/1.1 503"), "{a}");
    assert!(a.contains("retry-after: "), "{a}");
    assert!(a.contains("rate_limited"), "{a}");
    for sock in &mut slow {
        let a = answer(sock, Duration::from_secs(20)).await;
        assert!(a.starts_with("http/1.1 408"), "{a}");
        assert!(a.contains("connection: close"), "{a}");
    }
    // The permits are back: a large request is served.
    assert_eq!(signed_in_post(&app, &admin, big).await, 200);
}

/// From a trusted proxy, an `X-Forwarded-For` with an entry that is not an
/// address is not believed: the request counts against the proxy itself,
/// not against an address the client picked.
async fn an_unparsable_forwarded_entry_is_not_believed(app: TestApp) {
    let post = |xff: &'static str| {
        app.client
            .post(app.url("/graphql"))
            .header("x-forwarded-for", xff)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
    };
    assert_eq!(post("198.51.100.7").await.unwrap().status(), 200);
    // Both land on the proxy's own quota of one.
    assert_eq!(post("198.51.100.8, nope").await.unwrap().status(), 200);
    assert_eq!(
        post("198.51.100.9, 1.2.3.4:80").await.unwrap().status(),
        429
    );
    assert_eq!(post("198.51.100.10").await.unwrap().status(), 200);
}

both!(
    health_readiness_and_playground,
    malformed_requests_get_clean_errors,
    bodies_without_credentials_are_capped_small,
    slow_bodies_time_out_and_free_their_permits,
);

fn one_per_minute(s: &mut threatwatch::config::Settings) {
    s.rate_anon = threatwatch::config::Quota::parse("X", "1/min").unwrap();
}

fn one_per_minute_behind_loopback(s: &mut threatwatch::config::Settings) {
    one_per_minute(s);
    s.trusted_proxies = threatwatch::config::parse_networks("X", "127.0.0.1").unwrap();
}

both_with!(
    the_quota_is_checked_before_the_body_is_read => super::one_per_minute,
    an_unparsable_forwarded_entry_is_not_believed => super::one_per_minute_behind_loopback,
);

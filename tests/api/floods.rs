//! Floods of distinct client addresses through a trusted proxy.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{Backend, TestApp, ADMIN_PASSWORD};

/// Past the limiter's table size, which is what locked everybody out before;
/// the 200,000 is driven through the throttle directly in its unit
/// tests, as over HTTP it takes minutes in a debug build.
const FLOOD: u32 = 110_000;
/// Connections the flood is spread over, each carrying pipelined requests.
const CONNECTIONS: u32 = 4;

/// Sends `count` body-less requests from addresses `first..first+count`
/// (as X-Forwarded-For) pipelined on one connection, and reads as many
/// answers.
async fn flood(addr: std::net::SocketAddr, first: u32, count: u32) {
    let sock = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = sock.into_split();
    let sending = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        for n in first..first + count {
            let ip = std::net::Ipv4Addr::from(n);
            buf.extend_from_slice(
                format!(
                    "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Forwarded-For: {ip}\r\nContent-Length: 0\r\n\r\n"
                )
                .as_bytes(),
            );
            if buf.len() > 60 * 1024 {
                writer.write_all(&buf).await.unwrap();
                buf.clear();
            }
        }
        writer.write_all(&buf).await.unwrap();
        writer
    });
    // Each answer has exactly one blank line ending its head.
    let mut seen = 0;
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while seen < count {
        let n = reader.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed after {seen} answers");
        carry.extend_from_slice(&buf[..n]);
        seen += carry.windows(4).filter(|w| w == b"\r\n\r\n").count() as u32;
        let keep = carry.len().min(3);
        carry.drain(..carry.len() - keep);
    }
    let _writer = sending.await.unwrap();
}

/// A flood of distinct addresses, each spending the anonymous quota, must not
/// lock a person at another address out of `login`. The limiter is the
/// same on either database, so this runs on SQLite only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_still_works_after_a_flood_of_addresses() {
    let Some(app) = TestApp::spawn_tweaked(Backend::Sqlite, |s| {
        // One request an hour: no flooding key turns idle during the test,
        // so the table stays as full as the flood made it.
        s.rate_anon = threatwatch::config::Quota::parse("X", "1/hour").unwrap();
        s.trusted_proxies = threatwatch::config::parse_networks("X", "127.0.0.1").unwrap();
    })
    .await
    else {
        return;
    };
    let per = FLOOD / CONNECTIONS;
    let base = u32::from(std::net::Ipv4Addr::new(10, 0, 0, 0));
    let floods = (0..CONNECTIONS).map(|c| flood(app.addr, base + c * per, per));
    tokio::time::timeout(
        Duration::from_secs(300),
        futures_util::future::join_all(floods),
    )
    .await
    .expect("the flood is answered");

    let login = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", "192.0.2.7")
        .json(&json!({
            "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
            "variables": { "p": ADMIN_PASSWORD },
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let body: serde_json::Value = login.json().await.unwrap();
    assert!(body["data"]["login"]["accessToken"].is_string(), "{body}");
}

//! Live alerts over WebSocket (graphql-transport-ws), metrics, request ids.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::both;
use crate::helpers::{Backend, TestApp};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(addr: std::net::SocketAddr) -> Socket {
    let mut req = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (socket, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrade");
    assert_eq!(
        resp.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    socket
}

pub async fn send(socket: &mut Socket, v: Value) {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .unwrap();
}

/// The next protocol message (skipping pings), or the close code.
pub async fn recv(socket: &mut Socket) -> Result<Value, Option<u16>> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s");
        match msg {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "ping" {
                    continue;
                }
                return Ok(v);
            }
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

/// Nothing arrives for a moment (pings aside), and the socket stays open:
/// a close, an error or the end of the stream fails as a message would.
pub async fn quiet(socket: &mut Socket) {
    let until = tokio::time::Instant::now() + Duration::from_millis(300);
    loop {
        match tokio::time::timeout_at(until, socket.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(t))))
                if serde_json::from_str::<Value>(&t).is_ok_and(|v| v["type"] == "ping") =>
            {
                continue
            }
            Ok(other) => panic!("expected nothing, got {other:?}"),
        }
    }
}

pub async fn subscribed(addr: std::net::SocketAddr, token: &str, id: &str, query: &str) -> Socket {
    let mut s = connect(addr).await;
    send(&mut s, json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } })).await;
    assert_eq!(recv(&mut s).await.unwrap()["type"], "connection_ack");
    send(
        &mut s,
        json!({ "id": id, "type": "subscribe", "payload": { "query": query } }),
    )
    .await;
    // Give the server a moment to register the subscription.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s
}

async fn alerts_arrive_live_after_commit(app: TestApp) {
    let admin = app.admin().await;
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let mut created = subscribed(
        app.addr,
        &analyst,
        "1",
        "subscription { alertCreated(severity: CRITICAL) { id status severity event { source } } }",
    )
    .await;
    let mut updated = subscribed(
        app.addr,
        &admin,
        "2",
        "subscription { alertUpdated { id status } }",
    )
    .await;

    app.ingest(&admin, "HIGH", "Firewall-1").await;
    app.ingest(&admin, "LOW", "Firewall-1").await;
    let critical = app.ingest(&admin, "CRITICAL", "Server-1").await;
    let msg = recv(&mut created).await.unwrap();
    assert_eq!(msg["type"], "next");
    assert_eq!(msg["id"], "1");
    assert_eq!(
        msg["payload"]["data"]["alertCreated"]["id"],
        critical["alert"]["id"]
    );
    assert_eq!(
        msg["payload"]["data"]["alertCreated"]["event"]["source"],
        "Server-1"
    );
    quiet(&mut created).await;

    let id = critical["alert"]["id"].as_str().unwrap();
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: ACKNOWLEDGED) { id } }",
        json!({ "id": id }),
    )
    .await;
    let msg = recv(&mut updated).await.unwrap();
    assert_eq!(
        msg["payload"]["data"]["alertUpdated"],
        json!({ "id": id, "status": "ACKNOWLEDGED" })
    );

    // complete ends one subscription, the socket stays.
    send(&mut created, json!({ "id": "1", "type": "complete" })).await;
    assert_eq!(
        recv(&mut created).await.unwrap(),
        json!({ "type": "complete", "id": "1" })
    );
    app.ingest(&admin, "CRITICAL", "Server-2").await;
    quiet(&mut created).await;
}

async fn sockets_without_the_right_credentials_are_closed(app: TestApp) {
    let admin = app.admin().await;
    let key = app
        .ok(
            Some(&admin),
            "mutation { createApiKey(name: \"cam\") { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let cases = [
        (json!({}), 4401),
        (json!({ "Authorization": "Bearer not-a-token" }), 4401),
        (json!({ "X-API-Key": key }), 4403),
    ];
    for (payload, expected) in cases {
        let mut s = connect(app.addr).await;
        send(
            &mut s,
            json!({ "type": "connection_init", "payload": payload }),
        )
        .await;
        assert_eq!(recv(&mut s).await.unwrap_err(), Some(expected), "{payload}");
    }
    // Subscribing before the handshake.
    let mut s = connect(app.addr).await;
    send(&mut s, json!({ "id": "1", "type": "subscribe", "payload": { "query": "subscription { alertUpdated { id } }" } })).await;
    assert_eq!(recv(&mut s).await.unwrap_err(), Some(4401));
    // A SENSOR-role person may not subscribe either.
    let sensor = app.user_with_role("cam2", "SENSOR").await;
    let mut s = connect(app.addr).await;
    send(&mut s, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {sensor}") } })).await;
    assert_eq!(recv(&mut s).await.unwrap_err(), Some(4403));
}

async fn shutdown_closes_subscriptions(mut app: TestApp) {
    let admin = app.admin().await;
    let mut s = subscribed(
        app.addr,
        &admin,
        "1",
        "subscription { alertCreated { id } }",
    )
    .await;
    app.stop().await;
    assert_eq!(
        recv(&mut s).await.unwrap_err(),
        Some(u16::from(CloseCode::Away))
    );
}

async fn metrics_and_request_ids(app: TestApp) {
    let admin = app.admin().await;
    app.ingest(&admin, "CRITICAL", "Server-1").await;
    app.gql(Some(&admin), "{ nope }", json!({})).await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-request-id").is_some());
    let text = r.text().await.unwrap();
    for needle in [
        "threatwatch_http_requests_total{route=\"/graphql\",status=\"200\"}",
        "threatwatch_http_request_duration_seconds_bucket",
        "threatwatch_graphql_errors_total{code=\"BAD_USER_INPUT\"}",
        "threatwatch_events_ingested_total",
        "threatwatch_alerts_raised_total{severity=\"CRITICAL\"}",
        "threatwatch_subscriptions_open",
        "threatwatch_db_pool_connections{state=\"open\"}",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}");
    }
    let r = app
        .client
        .post(app.url("/graphql"))
        .header("x-request-id", "abc-123")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
}

both!(
    alerts_arrive_live_after_commit,
    sockets_without_the_right_credentials_are_closed,
    shutdown_closes_subscriptions,
    metrics_and_request_ids,
);

/// Two instances over one PostgreSQL: an alert raised through A reaches a
/// subscriber of B.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_cross_instances_over_postgres() {
    let Some(a) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let b = a.peer().await;
    let admin = a.admin().await;
    let mut sub = subscribed(
        b.addr,
        &admin,
        "1",
        "subscription { alertCreated { id event { source } } }",
    )
    .await;
    let mut upd = subscribed(
        b.addr,
        &admin,
        "2",
        "subscription { alertUpdated { id status } }",
    )
    .await;
    let done = a.ingest(&admin, "HIGH", "Firewall-A").await;
    let msg = recv(&mut sub).await.unwrap();
    assert_eq!(
        msg["payload"]["data"]["alertCreated"]["id"],
        done["alert"]["id"]
    );
    assert_eq!(
        msg["payload"]["data"]["alertCreated"]["event"]["source"],
        "Firewall-A"
    );
    quiet(&mut sub).await;
    let id = done["alert"]["id"].as_str().unwrap();
    a.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: RESOLVED) { id } }",
        json!({ "id": id }),
    )
    .await;
    let msg = recv(&mut upd).await.unwrap();
    assert_eq!(msg["payload"]["data"]["alertUpdated"]["status"], "RESOLVED");
}

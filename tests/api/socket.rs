//! The WebSocket obeys the rules of HTTP: quotas, the client address, and
//! per-socket caps on message size, running operations and subscriptions.

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{code, TestApp, ADMIN_PASSWORD};
use crate::live::{connect, quiet, recv, send, Socket};
use crate::{both, both_with};
use futures_util::SinkExt;

/// A socket past its handshake with `token`.
async fn authed(app: &TestApp, token: &str) -> Socket {
    let mut s = connect(app.addr).await;
    send(
        &mut s,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } }),
    )
    .await;
    assert_eq!(recv(&mut s).await.unwrap()["type"], "connection_ack");
    s
}

async fn subscribe(s: &mut Socket, id: &str, payload: Value) {
    send(
        s,
        json!({ "id": id, "type": "subscribe", "payload": payload }),
    )
    .await;
}

/// The answer to a query or mutation: its `next` payload, then `complete`.
async fn answer(s: &mut Socket, id: &str) -> Value {
    let next = recv(s).await.unwrap();
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["id"], id);
    assert_eq!(
        recv(s).await.unwrap(),
        json!({ "type": "complete", "id": id })
    );
    next["payload"].clone()
}

/// A protocol `error` for `id` saying RATE_LIMITED with a retryAfter.
fn assert_refused(msg: &Value, id: &str) {
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(msg["id"], id, "{msg}");
    let ext = &msg["payload"][0]["extensions"];
    assert_eq!(ext["code"], "RATE_LIMITED", "{msg}");
    assert!(ext["retryAfter"].as_u64().is_some_and(|s| s >= 1), "{msg}");
}

async fn still_open(s: &mut Socket) {
    send(s, json!({ "type": "ping" })).await;
    assert_eq!(recv(s).await.unwrap()["type"], "pong");
}

fn login_request() -> Value {
    json!({
        "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
        "variables": { "p": ADMIN_PASSWORD },
    })
}

/// Operations over the socket spend the user's quota like HTTP requests:
/// the one over it is refused alone and the socket stays open; HTTP with
/// the same token finds the quota spent too.
async fn socket_operations_count_against_the_quota(app: TestApp) {
    let admin = app.admin().await;
    let mut s = authed(&app, &admin).await;
    for id in ["1", "2", "3"] {
        subscribe(&mut s, id, json!({ "query": "{ __typename }" })).await;
        let payload = answer(&mut s, id).await;
        assert_eq!(payload["data"]["__typename"], "Query");
    }
    subscribe(&mut s, "4", json!({ "query": "{ __typename }" })).await;
    assert_refused(&recv(&mut s).await.unwrap(), "4");
    still_open(&mut s).await;
    let r = app.gql(Some(&admin), "{ __typename }", json!({})).await;
    assert_eq!(code(&r), "RATE_LIMITED");
}

/// Subscribes sent right behind `connection_init`, before its answer, are
/// screened as well: none starts before the socket is authenticated and
/// counted.
async fn a_burst_behind_connection_init_is_counted_too(app: TestApp) {
    let admin = app.admin().await;
    let mut s = connect(app.addr).await;
    send(
        &mut s,
        json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {admin}") } }),
    )
    .await;
    for id in ["1", "2", "3", "4"] {
        subscribe(&mut s, id, json!({ "query": "{ __typename }" })).await;
    }
    assert_eq!(recv(&mut s).await.unwrap()["type"], "connection_ack");
    // The refusal may overtake the answers.
    let (mut completed, mut refused) = (0, Vec::new());
    while completed + refused.len() < 4 {
        let msg = recv(&mut s).await.unwrap();
        match msg["type"].as_str() {
            Some("complete") => completed += 1,
            Some("error") => refused.push(msg),
            Some("next") => assert_eq!(msg["payload"]["data"]["__typename"], "Query"),
            _ => panic!("unexpected {msg}"),
        }
    }
    assert_eq!(completed, 3);
    assert_refused(&refused[0], "4");
}

/// `login` over a socket runs with the client's address: its password
/// checks count against that address's quota, and the audit trail has it.
async fn socket_login_carries_the_client_ip(app: TestApp) {
    // One password check over HTTP here, two over the socket: the quota of 3.
    let admin = app.admin().await;
    let mut s = authed(&app, &admin).await;
    for id in ["1", "2"] {
        subscribe(&mut s, id, login_request()).await;
        let payload = answer(&mut s, id).await;
        assert!(
            payload["data"]["login"]["accessToken"].is_string(),
            "{payload}"
        );
    }
    subscribe(&mut s, "3", login_request()).await;
    let payload = answer(&mut s, "3").await;
    assert_eq!(code(&payload), "RATE_LIMITED", "{payload}");
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: LOGIN_SUCCEEDED, first: 10) { nodes { ip } } }",
            json!({}),
        )
        .await;
    let nodes = log["auditLog"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{log}");
    for node in nodes {
        assert_eq!(node["ip"], "127.0.0.1", "{log}");
    }
}

/// A message up to the cap is served; one past it closes the socket with
/// 1009 (RFC 6455: message too big).
async fn oversized_messages_close_the_socket(app: TestApp) {
    let limit = threatwatch::ws::MAX_MESSAGE_BYTES;
    let admin = app.admin().await;
    let mut s = authed(&app, &admin).await;
    let pad = "x".repeat(limit - 200);
    subscribe(
        &mut s,
        "1",
        json!({ "query": "{ __typename }", "variables": { "pad": pad } }),
    )
    .await;
    assert_eq!(answer(&mut s, "1").await["data"]["__typename"], "Query");
    let pad = "x".repeat(limit + 1);
    // The server may close before the whole message is written.
    let _ = s
        .send(Message::Text(
            json!({ "id": "2", "type": "subscribe", "payload": { "query": "{ __typename }", "variables": { "pad": pad } } })
                .to_string()
                .into(),
        ))
        .await;
    assert_eq!(recv(&mut s).await.unwrap_err(), Some(1009));
}

/// At most 10 queries or mutations run at once on a socket: 11 slow logins
/// sent together see one refused, the others answered; then there is room.
async fn operations_in_flight_are_capped(app: TestApp) {
    let cap = threatwatch::ws::MAX_OPERATIONS_IN_FLIGHT;
    let admin = app.admin().await;
    let mut s = authed(&app, &admin).await;
    // Each for a name of its own: concurrent checks of one name are held
    // back by the per-username backoff, which is not what this measures.
    for n in 0..=cap {
        let probe = json!({
            "query": "mutation($u: String!) { login(username: $u, password: \"wrong-password\") { accessToken } }",
            "variables": { "u": format!("probe-{n}") },
        });
        subscribe(&mut s, &n.to_string(), probe).await;
    }
    let (mut completed, mut refused) = (0, Vec::new());
    while completed + refused.len() < cap + 1 {
        let msg = recv(&mut s).await.unwrap();
        match msg["type"].as_str() {
            Some("complete") => completed += 1,
            Some("error") => refused.push(msg),
            Some("next") => assert_eq!(
                msg["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
                "{msg}"
            ),
            _ => panic!("unexpected {msg}"),
        }
    }
    assert_eq!(completed, cap);
    assert_eq!(refused.len(), 1);
    assert_refused(&refused[0], &cap.to_string());
    subscribe(&mut s, "again", login_request()).await;
    assert!(answer(&mut s, "again").await["data"]["login"].is_object());
}

/// At most 20 live subscriptions per socket; completing one makes room, and
/// queries still run beside them. Reusing a live id closes with 4409.
async fn subscriptions_per_socket_are_capped(app: TestApp) {
    let cap = threatwatch::ws::MAX_SUBSCRIPTIONS;
    let admin = app.admin().await;
    let mut s = authed(&app, &admin).await;
    let live = json!({ "query": "subscription { alertCreated { id } }" });
    for n in 0..cap {
        subscribe(&mut s, &format!("s{n}"), live.clone()).await;
    }
    quiet(&mut s).await;
    subscribe(&mut s, "over", live.clone()).await;
    let msg = recv(&mut s).await.unwrap();
    assert_refused(&msg, "over");
    assert!(msg.to_string().contains("at most 20"), "{msg}");
    subscribe(&mut s, "q", json!({ "query": "{ __typename }" })).await;
    assert_eq!(answer(&mut s, "q").await["data"]["__typename"], "Query");
    send(&mut s, json!({ "id": "s0", "type": "complete" })).await;
    assert_eq!(
        recv(&mut s).await.unwrap(),
        json!({ "type": "complete", "id": "s0" })
    );
    subscribe(&mut s, "over", live.clone()).await;
    quiet(&mut s).await;
    // An alert reaches every one of them.
    app.ingest(&admin, "HIGH", "Firewall-1").await;
    let mut ids = Vec::new();
    for _ in 0..cap {
        let msg = recv(&mut s).await.unwrap();
        assert_eq!(msg["type"], "next", "{msg}");
        ids.push(msg["id"].as_str().unwrap().to_string());
    }
    assert!(ids.contains(&"over".to_string()));
    subscribe(&mut s, "s1", live).await;
    assert_eq!(recv(&mut s).await.unwrap_err(), Some(4409));
}

/// A message that is not JSON closes with graphql-transport-ws's 4400.
async fn invalid_messages_close_with_4400(app: TestApp) {
    let admin = app.admin().await;
    let mut s = authed(&app, &admin).await;
    s.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(recv(&mut s).await.unwrap_err(), Some(4400));
}

/// Documents sent over the socket meet the same budgets before anything
/// parses them: brackets nested past what the parser may recurse through,
/// and a named subscription sent without an operationName (which must be
/// counted as a subscription, not hold an operation slot for ever).
async fn socket_documents_meet_the_budgets(app: TestApp) {
    let admin = app.admin().await;
    let mut s = authed(&app, &admin).await;
    let deep = format!("{{ a(x: {}) }}", "[".repeat(14_900));
    subscribe(&mut s, "deep", json!({ "query": deep })).await;
    let refused = answer(&mut s, "deep").await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("brackets nested"),
        "{refused}"
    );
    still_open(&mut s).await;
    for n in 0..threatwatch::ws::MAX_OPERATIONS_IN_FLIGHT + 1 {
        subscribe(
            &mut s,
            &format!("live{n}"),
            json!({ "query": "subscription Named { alertCreated { id } }" }),
        )
        .await;
    }
    // Were those counted as operations, the last one would have been
    // refused and this query would find no slot.
    subscribe(&mut s, "q", json!({ "query": "{ __typename }" })).await;
    assert_eq!(answer(&mut s, "q").await["data"]["__typename"], "Query");
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

both!(
    socket_documents_meet_the_budgets,
    oversized_messages_close_the_socket,
    subscriptions_per_socket_are_capped,
    invalid_messages_close_with_4400,
);

both_with!(
    socket_operations_count_against_the_quota => |s| {
        s.rate_user = threatwatch::config::Quota::parse("X", "3/min").unwrap();
    },
    a_burst_behind_connection_init_is_counted_too => |s| {
        s.rate_user = threatwatch::config::Quota::parse("X", "3/min").unwrap();
    },
    socket_login_carries_the_client_ip => |s| {
        s.rate_anon = threatwatch::config::Quota::parse("X", "3/min").unwrap();
    },
    // bcrypt at this cost keeps each login running long enough for all of
    // them to be read before the first ends.
    operations_in_flight_are_capped => |s| s.bcrypt_cost = 10,
);

//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`).
//!
//! async-graphql speaks the protocol; this module adds what it leaves to us:
//! authentication at `connection_init` with the protocol's close codes (4401
//! bad or missing credentials, 4403 a role that may not subscribe), a bound
//! on how long a socket may stay unauthenticated (4408), a re-check of the
//! credentials while the socket lives (a token that expires or a session
//! that is revoked closes it), a bound on how long one slow client may hold
//! its own sender, and a clean close (1001) on shutdown.
//!
//! It also holds a socket to the rules of HTTP: every client message is
//! screened before async-graphql sees it. Each `subscribe` counts against
//! the quota of the socket's principal, as an HTTP request does; one over
//! it, or over the socket's caps on running operations and live
//! subscriptions, gets a protocol `error` for its id (code RATE_LIMITED with
//! `retryAfter`, from `Error::wire` as every error's code) and the socket
//! stays open. Operations run with the client address computed as for HTTP,
//! so `login` over a socket has its per-IP quota and audit entries their
//! address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use async_graphql::http::{WebSocket as GqlWebSocket, WebSocketProtocols, WsMessage};
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::Data;
use std::str::FromStr;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::{Credentials, Principal};
use crate::domain::Role;
use crate::error::{Error, Wire};
use crate::http::{self, AppState};
use crate::metrics;
use crate::service::ClientIp;
use crate::throttle::Subject;

/// How long a socket may take to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a live socket's credentials are checked again.
const RECHECK_EVERY: Duration = Duration::from_secs(15);
/// How long one message may take to reach a client before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest message a client may send. A dashboard's `subscribe` is a
/// few KiB; large documents and batches belong on HTTP, where large-body
/// permits bound the memory they hold at once. A larger message closes the
/// socket with 1009, RFC 6455's code for a message too big to process
/// (graphql-transport-ws defines none of its own).
pub const MAX_MESSAGE_BYTES: usize = http::LARGE_BODY_BYTES as usize;
/// Queries and mutations one socket may have running at once: what one
/// HTTP request may carry, so a socket buys no more concurrent work than a
/// request does.
pub const MAX_OPERATIONS_IN_FLIGHT: usize = http::MAX_BATCH_OPERATIONS;
/// Live subscriptions one socket may hold. A dashboard keeps one or two per
/// panel; each costs a stream that filters every alert raised.
pub const MAX_SUBSCRIPTIONS: usize = 20;
/// `retryAfter` for an operation refused by a per-socket cap: running
/// operations end within moments, subscriptions when the client completes
/// one.
const CAP_RETRY_SECS: u64 = 1;
/// Client messages screened and waiting for async-graphql: reading from the
/// client stops while this many wait.
const INBOX: usize = 8;

/// Where errors answered here surfaced, for the log.
const AT: &str = "WebSocket";

/// Marks the init error messages that carry a close code for us to apply.
const CODE_SEPARATOR: char = '\u{1f}';

pub async fn subscriptions(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The client's first protocol we speak; graphql-transport-ws otherwise.
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
        .unwrap_or(WebSocketProtocols::GraphQLWS);
    let ip = http::client_ip(peer.ip(), &headers, &app.service.settings.trusted_proxies);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, app, protocol, ip))
}

/// The credentials a `connection_init` payload carries: `Authorization` or
/// `X-API-Key`, matched without regard to case as HTTP headers are.
fn payload_credentials(payload: &serde_json::Value) -> (Option<String>, Option<String>) {
    let mut authorization = None;
    let mut api_key = None;
    if let Some(map) = payload.as_object() {
        for (k, v) in map {
            match (k.to_ascii_lowercase().as_str(), v.as_str()) {
                ("authorization", Some(v)) => authorization = Some(v.to_string()),
                ("x-api-key", Some(v)) => api_key = Some(v.to_string()),
                _ => {}
            }
        }
    }
    (authorization, api_key)
}

fn may_subscribe(p: &Principal) -> bool {
    matches!(p.role(), Role::Admin | Role::Analyst)
}

/// What an authenticated socket is checked again with and counted against.
#[derive(Clone)]
struct Session {
    authorization: Option<String>,
    api_key: Option<String>,
    subject: Subject,
}

/// What a socket has running, by operation id.
#[derive(Default)]
struct Running {
    kinds: HashMap<String, Kind>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Operation,
    Subscription,
}

impl Running {
    fn count(&self, kind: Kind) -> usize {
        self.kinds.values().filter(|k| **k == kind).count()
    }
}

/// A client message as far as screening needs it.
#[derive(Deserialize)]
struct Incoming {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

/// What to do with a client message.
enum Verdict {
    Forward,
    /// `connection_init`: forward it, and read nothing more until the
    /// socket is authenticated, so no operation starts unscreened.
    Init,
    /// Answer the operation `id` with an error; the socket stays.
    Refuse {
        id: String,
        wire: Wire,
    },
    Close(u16, String),
}

/// Screens one client message: a `subscribe` is counted against the
/// session's quota and the socket's caps before it may start.
fn screen(app: &AppState, session: Option<&Session>, running: &mut Running, raw: &[u8]) -> Verdict {
    let message: Incoming = match serde_json::from_slice(raw) {
        Ok(m) => m,
        Err(e) => return Verdict::Close(4400, format!("invalid message: {e}")),
    };
    match message.kind.as_str() {
        "subscribe" | "start" => {}
        "connection_init" => return Verdict::Init,
        _ => return Verdict::Forward,
    }
    // Before the handshake async-graphql refuses it (4401).
    let Some(session) = session else {
        return Verdict::Forward;
    };
    let Some(id) = message.id else {
        return Verdict::Close(4400, "subscribe needs an id".into());
    };
    if running.kinds.contains_key(&id) {
        return Verdict::Close(4409, format!("Subscriber for {id} already exists"));
    }
    if let Err(e) = http::count(app, session.subject, 1) {
        return Verdict::Refuse {
            id,
            wire: e.wire(AT),
        };
    }
    let kind = kind_of(message.payload.as_ref());
    let (cap, what) = match kind {
        Kind::Operation => (MAX_OPERATIONS_IN_FLIGHT, "queries and mutations running"),
        Kind::Subscription => (MAX_SUBSCRIPTIONS, "live subscriptions"),
    };
    if running.count(kind) >= cap {
        let over = Error::RateLimited {
            retry_after_secs: CAP_RETRY_SECS,
        };
        return Verdict::Refuse {
            id,
            wire: over
                .wire(AT)
                .saying(format!("a socket may have at most {cap} {what} at once")),
        };
    }
    running.kinds.insert(id, kind);
    Verdict::Forward
}

/// Whether a subscribe payload starts a subscription. Anything unreadable
/// counts as an operation: async-graphql answers it with an error at once.
fn kind_of(payload: Option<&Value>) -> Kind {
    let Some(query) = payload.and_then(|p| p.get("query")).and_then(Value::as_str) else {
        return Kind::Operation;
    };
    // What the gateway refuses from the text alone is never run; nor may it
    // reach the parser here (deep brackets would overflow its stack).
    if crate::graphql::limits::check_text(query).is_err() {
        return Kind::Operation;
    }
    let name = payload
        .and_then(|p| p.get("operationName"))
        .and_then(Value::as_str);
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return Kind::Operation;
    };
    let ty = match &document.operations {
        DocumentOperations::Single(op) => Some(op.node.ty),
        // One named operation runs without an operationName too.
        DocumentOperations::Multiple(ops) if name.is_none() && ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        DocumentOperations::Multiple(ops) => ops
            .iter()
            .find(|(n, _)| Some(n.as_str()) == name)
            .map(|(_, op)| op.node.ty),
    };
    match ty {
        Some(OperationType::Subscription) => Kind::Subscription,
        _ => Kind::Operation,
    }
}

/// The id of a `complete` async-graphql sends: the operation has ended.
fn completed(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Complete {
        id: String,
    }
    if !text.starts_with("{\"type\":\"complete\"") {
        return None;
    }
    serde_json::from_str::<Complete>(text).ok().map(|c| c.id)
}

/// The protocol's `error` message for one operation, its error written by
/// `graphql::errors` from `wire`.
fn refusal(protocol: WebSocketProtocols, id: &str, wire: &Wire) -> String {
    let err = crate::graphql::errors::error(wire);
    // graphql-transport-ws sends a list of errors, the older protocol one.
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => serde_json::json!([err]),
        WebSocketProtocols::SubscriptionsTransportWS => serde_json::json!(err),
    };
    serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string()
}

/// The close for a message the transport refused to read.
fn unreadable(e: &axum::Error) -> (u16, String) {
    // tungstenite's error type is not reachable through axum; its variant
    // name is the stable part of what it prints.
    if format!("{e:?}").contains("MessageTooLong") {
        return (
            1009,
            format!("messages are limited to {MAX_MESSAGE_BYTES} bytes"),
        );
    }
    (1002, "unreadable message".into())
}

async fn send_text(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    text: String,
) -> bool {
    let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await;
    matches!(sent, Ok(Ok(())))
}

async fn serve(socket: WebSocket, app: AppState, protocol: WebSocketProtocols, ip: IpAddr) {
    let (mut sink, mut source) = socket.split();
    let (inbox, inbox_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(INBOX);
    let input = futures_util::stream::unfold(inbox_rx, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    });
    let (checked_tx, checked_rx) = tokio::sync::watch::channel::<Option<Session>>(None);
    let service = app.service.clone();
    let outgoing = GqlWebSocket::new(app.schema.clone(), input, protocol).on_connection_init(
        move |payload| async move {
            let (authorization, api_key) = payload_credentials(&payload);
            let creds = service
                .authenticate(authorization.as_deref(), api_key.as_deref())
                .await;
            match creds {
                Credentials::Valid(p) if may_subscribe(&p) => {
                    let subject = http::subject(&Credentials::Valid(p.clone()), ip);
                    let _ = checked_tx.send(Some(Session {
                        authorization,
                        api_key,
                        subject,
                    }));
                    let mut data = Data::default();
                    data.insert(Credentials::Valid(p));
                    data.insert(ClientIp(Some(ip.to_string())));
                    Ok(data)
                }
                Credentials::Valid(p) => {
                    Err(coded(4403, &format!("role {} may not subscribe", p.role())))
                }
                Credentials::Invalid(why) => Err(coded(4401, &why)),
                Credentials::None => Err(coded(
                    4401,
                    "connection_init must carry Authorization or X-API-Key",
                )),
            }
        },
    );

    let mut outgoing = std::pin::pin!(outgoing);
    let mut shutdown = app.service.shutdown.subscribe();
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    let mut counted = false;
    let mut running = Running::default();
    let mut init_sent = false;

    let close = loop {
        let session = checked_rx.borrow().clone();
        let authenticated = session.is_some();
        if authenticated && !counted {
            counted = true;
            metrics::subscriptions_opened();
        }
        tokio::select! {
            // A message is read only once there is room to pass it on: the
            // client's TCP window is the queue, not our memory.
            (room, incoming) = async {
                let room = inbox.reserve().await;
                (room, source.next().await)
            }, if authenticated || !init_sent => {
                let Ok(room) = room else {
                    break None;
                };
                let raw = match incoming {
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Close(_))) | None => break None,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break Some(unreadable(&e)),
                };
                let verdict = screen(&app, session.as_ref(), &mut running, &raw);
                if matches!(verdict, Verdict::Init) {
                    init_sent = true;
                }
                match verdict {
                    Verdict::Forward | Verdict::Init => room.send(raw),
                    Verdict::Refuse { id, wire } => {
                        if !send_text(&mut sink, refusal(protocol, &id, &wire)).await {
                            break None;
                        }
                    }
                    Verdict::Close(code, reason) => break Some((code, reason)),
                }
            }
            message = outgoing.next() => match message {
                Some(WsMessage::Text(text)) => {
                    if let Some(id) = completed(&text) {
                        running.kinds.remove(&id);
                    }
                    if !send_text(&mut sink, text).await {
                        break None;
                    }
                }
                Some(WsMessage::Close(code, reason)) => break Some(translate(code, reason)),
                None => break None,
            },
            _ = &mut init_deadline, if !authenticated => {
                break Some((4408, "connection_init not received in time".to_string()));
            }
            _ = recheck.tick(), if authenticated => {
                let (authorization, api_key) = session
                    .map(|s| (s.authorization, s.api_key))
                    .unwrap_or_default();
                match app.service.authenticate(authorization.as_deref(), api_key.as_deref()).await {
                    Credentials::Valid(p) if may_subscribe(&p) => {}
                    Credentials::Valid(_) => break Some((4403, "role may no longer subscribe".into())),
                    Credentials::Invalid(why) => break Some((4401, why)),
                    Credentials::None => break Some((4401, "credentials expired".into())),
                }
            }
            _ = shutdown.changed() => break Some((1001, "server shutting down".to_string())),
        }
    };
    if counted {
        metrics::subscriptions_closed();
    }
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.chars().take(120).collect::<String>().into(),
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
    let _ = sink.close().await;
}

fn coded(code: u16, message: &str) -> async_graphql::Error {
    async_graphql::Error::new(format!("{code}{CODE_SEPARATOR}{message}"))
}

/// Applies our close codes to async-graphql's generic ones.
fn translate(code: u16, reason: String) -> (u16, String) {
    if let Some((c, msg)) = reason.split_once(CODE_SEPARATOR) {
        if let Ok(c) = c.parse() {
            return (c, msg.to_string());
        }
    }
    match code {
        // A subscribe before the handshake: the protocol says 4401.
        1011 => (4401, "Unauthorized".to_string()),
        _ => (code, reason),
    }
}

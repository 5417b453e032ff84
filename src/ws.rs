//! GraphQL subscriptions over WebSocket (`graphql-transport-ws`).
//!
//! async-graphql speaks the protocol; this module adds what it leaves to us:
//! authentication at `connection_init` with the protocol's close codes (4401
//! bad or missing credentials, 4403 a role that may not subscribe), a bound
//! on how long a socket may stay unauthenticated (4408), a re-check of the
//! credentials while the socket lives (a token that expires or a session
//! that is revoked closes it), a bound on how long one slow client may hold
//! its own sender, and a clean close (1001) on shutdown.

use std::time::Duration;

use async_graphql::http::{WebSocket as GqlWebSocket, WebSocketProtocols, WsMessage};
use async_graphql::Data;
use std::str::FromStr;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};

use crate::auth::{Credentials, Principal};
use crate::domain::Role;
use crate::http::AppState;
use crate::metrics;

/// How long a socket may take to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a live socket's credentials are checked again.
const RECHECK_EVERY: Duration = Duration::from_secs(15);
/// How long one message may take to reach a client before it is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Marks the init error messages that carry a close code for us to apply.
const CODE_SEPARATOR: char = '\u{1f}';

pub async fn subscriptions(
    State(app): State<AppState>,
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
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(socket, app, protocol))
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

async fn serve(socket: WebSocket, app: AppState, protocol: WebSocketProtocols) {
    let (mut sink, source) = socket.split();
    let input = source
        .take_while(|m| futures_util::future::ready(m.is_ok()))
        .filter_map(|m| async move {
            match m {
                Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
                Ok(Message::Binary(b)) => Some(b.to_vec()),
                _ => None,
            }
        });
    let (checked_tx, mut checked_rx) =
        tokio::sync::watch::channel::<Option<(Option<String>, Option<String>)>>(None);
    let service = app.service.clone();
    let outgoing = GqlWebSocket::new(app.schema.clone(), input, protocol).on_connection_init(
        move |payload| async move {
            let (authorization, api_key) = payload_credentials(&payload);
            let creds = service
                .authenticate(authorization.as_deref(), api_key.as_deref())
                .await;
            match creds {
                Credentials::Valid(p) if may_subscribe(&p) => {
                    let _ = checked_tx.send(Some((authorization, api_key)));
                    let mut data = Data::default();
                    data.insert(Credentials::Valid(p));
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

    let close = loop {
        let authenticated = checked_rx.borrow().is_some();
        if authenticated && !counted {
            counted = true;
            metrics::subscriptions_opened();
        }
        tokio::select! {
            message = outgoing.next() => match message {
                Some(WsMessage::Text(text)) => {
                    let sent = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text.into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
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
                let (authorization, api_key) = checked_rx.borrow_and_update().clone().unwrap_or_default();
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

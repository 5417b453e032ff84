//! HTTP routes: GraphQL, the playground, health and readiness. Handlers
//! only translate HTTP to the schema and back.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse, ServerError};
use async_graphql_axum::GraphQLResponse;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::app::MAX_BODY_BYTES;
use crate::auth::{Credentials, Principal};
use crate::error::Error;
use crate::graphql::Gateway;
use crate::service::{ClientIp, Service};
use crate::throttle::Subject;
use ipnet::IpNet;

/// Operations one HTTP request may carry in a JSON array (OWASP: cap
/// batches, or one request multiplies into many).
pub const MAX_BATCH_OPERATIONS: usize = 10;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub schema: Gateway,
    /// Permits for requests with large bodies, see `LARGE_BODY_BYTES`.
    pub large_requests: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Bodies past this size (or of unknown size) are read and run a few at a
/// time. A single-event mutation is well under 1 KiB; `ingestEvents` with
/// 1,000 events is about 150 KiB, and while it runs it holds that body, its
/// parsed input and its answer, about 4 MiB: 64 of them at once took the
/// server to 260 MiB. The one ingest writer commits them one after another
/// anyway, so waiting here costs no throughput.
pub const LARGE_BODY_BYTES: u64 = 64 * 1024;

/// How many large requests run at once: one per core keeps every core and
/// the writer busy (two per core ran no faster and held 8 MiB more).
pub fn large_request_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A GraphQL-shaped error response for requests refused before execution,
/// so that clients find `errors[].extensions.code` here too.
fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut err = ServerError::new(message, None);
    err.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    (status, Json(serde_json::json!({ "errors": [err] }))).into_response()
}

/// 413, closing the connection: the rest of the body is never read, so the
/// connection cannot carry another request, and clients must not reuse it.
fn too_large() -> Response {
    let mut r = refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        "BAD_USER_INPUT",
        format!("request body is larger than {MAX_BODY_BYTES} bytes"),
    );
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

pub async fn graphql(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refused from the header alone, before a byte of the body is read.
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    // Held until the answer is built; the semaphore is never closed.
    let _permit = match declared {
        Some(n) if n <= LARGE_BODY_BYTES => None,
        _ => app.large_requests.acquire().await.ok(),
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "Content-Type must be application/json",
        );
    }
    let batch = match parse_batch(&body) {
        Ok(b) => b,
        Err(msg) => return refuse(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", msg),
    };
    let operations = match &batch {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(list) => list.len(),
    };
    if operations == 0 || operations > MAX_BATCH_OPERATIONS {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            format!("a batch must hold 1 to {MAX_BATCH_OPERATIONS} operations, got {operations}"),
        );
    }

    let (credentials, ip) = match admit(&app, peer, &headers, operations as u32).await {
        Ok(admitted) => admitted,
        Err(e) => return rate_limited(&e),
    };
    let batch = batch.data(credentials).data(ip);
    let response: BatchResponse = async_graphql::Executor::execute_batch(&app.schema, batch).await;
    GraphQLResponse::from(response).into_response()
}

/// Who is calling and from where, counted against their quota: the same
/// admission for GraphQL and the REST paths. `operations` is what the
/// request asks for (a batch counts each of its operations).
pub async fn admit(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    operations: u32,
) -> Result<(Credentials, ClientIp), Error> {
    let service = &app.service;
    let ip = client_ip(peer.ip(), headers, &service.settings.trusted_proxies);
    // A header that is not text cannot be valid credentials; it is passed
    // on as such rather than ignored.
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let api_key = headers
        .get("x-api-key")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"));
    let credentials = service.authenticate(authorization, api_key).await;
    let subject = match &credentials {
        Credentials::Valid(Principal::User { id, .. }) => Subject::User(*id),
        Credentials::Valid(Principal::ApiKey { id, .. }) => Subject::ApiKey(*id),
        Credentials::None | Credentials::Invalid(_) => Subject::Anonymous(ip.into()),
    };
    if let Err(e) = service.security.throttle.request(subject, operations) {
        crate::metrics::rate_limited("request");
        return Err(e);
    }
    Ok((credentials, ClientIp(Some(ip.to_string()))))
}

/// One operation (`{...}`) or a batch (`[{...}, ...]`). Decided by the
/// first byte, since serde would also read a struct from an array.
fn parse_batch(body: &[u8]) -> Result<BatchRequest, String> {
    let bad = |e: serde_json::Error| format!("request body is not a GraphQL request in JSON: {e}");
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => serde_json::from_slice(body)
            .map(BatchRequest::Single)
            .map_err(bad),
        Some(b'[') => serde_json::from_slice(body)
            .map(BatchRequest::Batch)
            .map_err(bad),
        _ => Err("request body must be a JSON object {\"query\": ...} or an array of them".into()),
    }
}

/// HTTP 429 with `Retry-After`, for a request refused as a whole.
fn rate_limited(e: &Error) -> Response {
    let secs = match e {
        Error::RateLimited { retry_after_secs } => *retry_after_secs,
        _ => 60,
    };
    let mut err = ServerError::new(e.to_string(), None);
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", "RATE_LIMITED");
    ext.set("retryAfter", secs);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, secs.to_string())],
        Json(serde_json::json!({ "errors": [err] })),
    )
        .into_response()
}

/// The client's address: the socket's peer, unless that peer is a trusted
/// proxy, in which case the nearest untrusted address in X-Forwarded-For
/// (the rightmost, since each proxy appends; the leftmost is the client's
/// own claim and can say anything).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
}

pub async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("threatwatch")
            .finish(),
    )
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Counts and times every request by route (the matched pattern, so ids in
/// paths do not explode the label set) and status. A plain tower layer:
/// `middleware::from_fn` boxed the rest of the stack on every request.
#[derive(Clone, Copy, Default)]
pub struct TrackLayer;

impl<S> tower::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track { inner }
    }
}

#[derive(Clone)]
pub struct Track<S> {
    inner: S,
}

impl<S, B> tower::Service<axum::http::Request<B>> for Track<S>
where
    S: tower::Service<axum::http::Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        Tracked {
            route: request.extensions().get::<MatchedPath>().cloned(),
            started: std::time::Instant::now(),
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Tracked<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
        started: std::time::Instant,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            crate::metrics::http_request(
                this.route.as_ref().map_or("unmatched", |p| p.as_str()),
                response.status(),
                this.started.elapsed(),
            );
        }
        Poll::Ready(result)
    }
}

/// Prometheus text format. Not rate-limited: Prometheus polls it.
pub async fn metrics(State(app): State<AppState>) -> Response {
    let (open, idle) = app.service.db.pool_state();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(open, idle),
    )
        .into_response()
}

/// Ready only while the database answers, so that a load balancer stops
/// sending traffic to an instance that would only fail it.
pub async fn readyz(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), app.service.db.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database did not answer").into_response(),
    }
}

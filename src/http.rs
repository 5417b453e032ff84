//! HTTP routes: GraphQL, health and readiness (the pages are `web`'s). Handlers
//! only translate HTTP to the schema and back. Requests refused before
//! execution (media type, body, batch size, quota) are answered in GraphQL's
//! error shape; their codes come from `Error::wire`, as every error's do.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_graphql::{BatchRequest, BatchResponse};
use async_graphql_axum::GraphQLResponse;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::MAX_BODY_BYTES;
use crate::auth::{Credentials, Principal};
use crate::error::{Error, Wire};
use crate::graphql::{errors, Gateway};
use crate::service::{ClientIp, Service};
use crate::throttle::Subject;
use axum::body::Bytes;
use ipnet::IpNet;
use tokio::sync::OwnedSemaphorePermit;

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
/// parsed input and its answer, a few MiB: many at once multiply the
/// server's memory. The one ingest writer commits them one after another
/// anyway, so waiting here costs no throughput.
pub const LARGE_BODY_BYTES: u64 = 64 * 1024;

/// How many large requests run at once: one per core keeps every core and
/// the writer busy (two per core ran no faster and held more memory).
pub fn large_request_permits() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Bodies of requests without valid credentials. All such a request can do
/// is `login`, `refreshToken`, `logout` or read the schema: documents of at
/// most 15,000 characters with a few short variables, so even a full batch
/// of them fits. Equal to `LARGE_BODY_BYTES`, so these requests never wait
/// for or hold a large-body permit.
pub const MAX_ANON_BODY_BYTES: usize = LARGE_BODY_BYTES as usize;

/// How long a body may take to arrive once its headers have. A slow sender
/// holds a connection, and maybe a large-body permit, for nothing: 16 MiB in
/// this time needs about 13 Mbit/s, a 1,000-event ingest about 120 kbit/s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a large request waits for a permit before it is answered 503.
/// Not getting one in this time means every permit has been busy with
/// several large requests; the client (or the load balancer, which takes
/// 503 as "try another instance") does better coming back than queueing
/// here while a flood piles up behind it.
pub const PERMIT_WAIT: Duration = Duration::from_secs(5);

/// `Retry-After` when no large-body permit came free in time.
const BUSY_RETRY_SECS: u64 = 2;

/// Where errors answered here surfaced, for the log.
const AT: &str = "HTTP edge";

/// A GraphQL-shaped error response for requests refused before execution,
/// so that clients find `errors[].extensions.code` here too (written from
/// `wire` by `graphql::errors`), with `Retry-After` when the refusal says
/// when to retry.
fn refuse(status: StatusCode, wire: &Wire) -> Response {
    let body = Json(serde_json::json!({ "errors": [errors::error(wire)] }));
    match wire.retry_after {
        Some(secs) => (status, [(header::RETRY_AFTER, secs.to_string())], body).into_response(),
        None => (status, body).into_response(),
    }
}

/// A request refused as a whole before execution, for what it is.
fn bad_request(status: StatusCode, message: impl Into<String>) -> Response {
    refuse(status, &Error::invalid_request(message).wire(AT))
}

/// Marks a response after which the connection is closed: the rest of the
/// body is never read, so the connection cannot carry another request.
fn closing(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

/// Why a request body was not read.
#[derive(Debug)]
pub enum BodyRefusal {
    /// Over the byte limit that applies to the caller (413).
    TooLarge(usize),
    /// Not arrived within `BODY_TIMEOUT` (408).
    TimedOut,
    /// No large-body permit within `PERMIT_WAIT` (503).
    Busy,
}

impl BodyRefusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TimedOut => StatusCode::REQUEST_TIMEOUT,
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::TooLarge(MAX_ANON_BODY_BYTES) => format!(
                "request body is larger than {MAX_ANON_BODY_BYTES} bytes, the limit for requests without valid credentials"
            ),
            Self::TooLarge(limit) => format!("request body is larger than {limit} bytes"),
            Self::TimedOut => format!(
                "request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
            Self::Busy => format!(
                "the server is busy with large requests; retry in {BUSY_RETRY_SECS} s"
            ),
        }
    }

    /// Seconds for `Retry-After`, when retrying the same request can work.
    pub fn retry_after(&self) -> Option<u64> {
        matches!(self, Self::Busy).then_some(BUSY_RETRY_SECS)
    }

    /// What clients are told: a limit to retry later (RATE_LIMITED, in
    /// the refusal's own words), or a fault of the request.
    pub fn wire(&self) -> Wire {
        match self.retry_after() {
            Some(retry_after_secs) => Error::RateLimited { retry_after_secs }
                .wire(AT)
                .saying(self.message()),
            None => Error::invalid_request(self.message()).wire(AT),
        }
    }

    /// As GraphQL answers it. The connection is closed after a body that
    /// was not read to its end.
    fn into_response(self) -> Response {
        let answer = refuse(self.status(), &self.wire());
        match self.retry_after() {
            Some(_) => answer,
            None => closing(answer),
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Reads a body within the caller's limit and `BODY_TIMEOUT`, first taking
/// a large-body permit when it may be large. The permit is to be held until
/// the answer is built.
pub async fn read_body(
    app: &AppState,
    admitted: &Admitted,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<(Bytes, Option<OwnedSemaphorePermit>), BodyRefusal> {
    let limit = admitted.body_limit();
    let declared = declared_length(headers);
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyRefusal::TooLarge(limit));
    }
    let small = declared.is_some_and(|n| n <= LARGE_BODY_BYTES) || limit as u64 <= LARGE_BODY_BYTES;
    let permit = if small {
        None
    } else {
        let wait = app.large_requests.clone().acquire_owned();
        match tokio::time::timeout(PERMIT_WAIT, wait).await {
            Ok(Ok(permit)) => Some(permit),
            // The semaphore is never closed; a closed one is no reason to fail.
            Ok(Err(_)) => None,
            Err(_) => return Err(BodyRefusal::Busy),
        }
    };
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok((bytes, permit)),
        Ok(Err(_)) => Err(BodyRefusal::TooLarge(limit)),
        Err(_) => Err(BodyRefusal::TimedOut),
    }
}

pub async fn graphql(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    // Refused from the headers alone, before any other work.
    if declared_length(&headers).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return BodyRefusal::TooLarge(MAX_BODY_BYTES).into_response();
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return bad_request(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    }
    // Who it is and whether their quota has room, before a byte of the body
    // is read: a refused caller costs no body, and an anonymous one only a
    // small one.
    let admitted = match admit(&app, peer, &headers).await {
        Ok(admitted) => admitted,
        Err(e) => return rate_limited(&e),
    };
    let (body, _permit) = match read_body(&app, &admitted, &headers, body).await {
        Ok(read) => read,
        Err(refusal) => return refusal.into_response(),
    };
    let batch = match parse_batch(&body) {
        Ok(b) => b,
        Err(msg) => return bad_request(StatusCode::BAD_REQUEST, msg),
    };
    let operations = match &batch {
        BatchRequest::Single(_) => 1,
        BatchRequest::Batch(list) => list.len(),
    };
    if operations == 0 || operations > MAX_BATCH_OPERATIONS {
        return bad_request(
            StatusCode::BAD_REQUEST,
            format!("a batch must hold 1 to {MAX_BATCH_OPERATIONS} operations, got {operations}"),
        );
    }
    let refreshes = match admitted.subject {
        Subject::Anonymous(_) => refresh_operations(&batch),
        Subject::User(_) | Subject::ApiKey(_) => 0,
    };
    if let Err(e) = admitted.count_operations(&app, operations as u32, refreshes) {
        return rate_limited(&e);
    }
    let batch = batch.data(admitted.credentials).data(admitted.ip);
    let response: BatchResponse = async_graphql::Executor::execute_batch(&app.schema, batch).await;
    GraphQLResponse::from(response).into_response()
}

/// A caller let in: who, from where, and whose quota it counts against.
pub struct Admitted {
    pub credentials: Credentials,
    pub ip: ClientIp,
    subject: Subject,
}

impl Admitted {
    /// The body limit for this caller: small without valid credentials.
    pub fn body_limit(&self) -> usize {
        match self.credentials {
            Credentials::Valid(_) => MAX_BODY_BYTES,
            Credentials::None | Credentials::Invalid(_) => MAX_ANON_BODY_BYTES,
        }
    }

    /// Counts the operations of the whole request, once the body says how
    /// many there are: admission counted one already. `refreshes` of them
    /// are token refreshes, which the refresh itself counts per session;
    /// an anonymous caller gets back what admission took for them.
    pub fn count_operations(
        &self,
        app: &AppState,
        operations: u32,
        refreshes: u32,
    ) -> Result<(), Error> {
        let others = operations.saturating_sub(refreshes);
        match others {
            0 => {
                app.service
                    .security
                    .throttle
                    .not_anonymous_after_all(self.subject, 1);
                Ok(())
            }
            1 => Ok(()),
            more => count(app, self.subject, more - 1),
        }
    }
}

/// The quota subject of a caller's credentials; anonymous and invalid ones
/// count against their address.
pub fn subject(credentials: &Credentials, ip: IpAddr) -> Subject {
    match credentials {
        Credentials::Valid(Principal::User { id, .. }) => Subject::User(*id),
        Credentials::Valid(Principal::ApiKey { id, .. }) => Subject::ApiKey(*id),
        Credentials::None | Credentials::Invalid(_) => Subject::Anonymous(ip.into()),
    }
}

/// Counts `operations` against `subject`'s quota.
pub fn count(app: &AppState, subject: Subject, operations: u32) -> Result<(), Error> {
    let counted = app.service.security.throttle.request(subject, operations);
    if counted.is_err() {
        crate::metrics::rate_limited("request");
    }
    counted
}

/// Who is calling and from where, from the headers alone, counted as one
/// operation against their quota: the same admission for GraphQL and the
/// REST paths.
pub async fn admit(
    app: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Result<Admitted, Error> {
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
    let subject = subject(&credentials, ip);
    count(app, subject, 1)?;
    Ok(Admitted {
        credentials,
        ip: ClientIp(Some(ip.to_string())),
        subject,
    })
}

/// How many operations of `batch` do nothing but refresh tokens (and ask
/// for `__typename`). Only those are taken off an address's quota, so the
/// test is strict: fragments, other fields, or a document that does not
/// parse make an ordinary operation.
fn refresh_operations(batch: &BatchRequest) -> u32 {
    let requests = match batch {
        BatchRequest::Single(r) => std::slice::from_ref(r),
        BatchRequest::Batch(list) => list.as_slice(),
    };
    requests
        .iter()
        .filter(|r| only_refreshes(&r.query, r.operation_name.as_deref()))
        .count() as u32
}

fn only_refreshes(query: &str, operation_name: Option<&str>) -> bool {
    use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
    if !query.contains("refreshToken") {
        return false;
    }
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return false;
    };
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), None) => op,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => op,
            None => return false,
        },
        _ => return false,
    };
    let operation = &operation.node;
    if operation.ty != OperationType::Mutation {
        return false;
    }
    let mut refreshes = 0;
    for item in &operation.selection_set.node.items {
        match &item.node {
            Selection::Field(f) if f.node.name.node == "refreshToken" => refreshes += 1,
            Selection::Field(f) if f.node.name.node == "__typename" => {}
            _ => return false,
        }
    }
    refreshes > 0
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

/// HTTP 429 with `Retry-After`, for a request over its quota as a whole
/// (`count` refuses only with RATE_LIMITED).
fn rate_limited(e: &Error) -> Response {
    refuse(StatusCode::TOO_MANY_REQUESTS, &e.wire(AT))
}

/// The client's address: the socket's peer, unless that peer is a trusted
/// proxy, in which case the nearest untrusted address in X-Forwarded-For
/// (the rightmost, since each proxy appends; the leftmost is the client's
/// own claim and can say anything). A header with an entry that is not an
/// address is not believed at all: skipping the entry would let a client
/// choose which of the remaining addresses counts as its own.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut forwarded = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else {
            return peer;
        };
        for entry in value.split(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) => forwarded.push(ip),
                Err(_) => return peer,
            }
        }
    }
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(forwarded.first())
        .copied()
        .unwrap_or(peer)
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
    metrics_of(State(app.service)).await
}

/// `/metrics` where it has an address of its own, without the API's state.
pub async fn metrics_of(State(service): State<Service>) -> Response {
    let (open, idle) = service.pool_state();
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
    match tokio::time::timeout(Duration::from_secs(2), app.service.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = ?e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database did not answer").into_response(),
    }
}

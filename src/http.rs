//! HTTP routes: GraphQL, the playground, health and readiness. Handlers
//! only translate HTTP to the schema and back.

use std::net::SocketAddr;
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse, ServerError};
use async_graphql_axum::GraphQLResponse;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;

use crate::auth::Credentials;
use crate::graphql::AppSchema;
use crate::service::{ClientIp, Service};

/// Operations one HTTP request may carry in a JSON array (OWASP: cap
/// batches, or one request multiplies into many).
pub const MAX_BATCH_OPERATIONS: usize = 10;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub schema: AppSchema,
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

pub async fn graphql(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                format!(
                    "request body is larger than {} bytes",
                    crate::app::MAX_BODY_BYTES
                ),
            )
        }
        Err(e) => return refuse(e.status(), "BAD_USER_INPUT", e.body_text()),
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
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                format!("request body is not a GraphQL request in JSON: {e}"),
            )
        }
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

    let credentials = credentials(&app.service, &headers);
    let ip = ClientIp(Some(peer.ip().to_string()));
    let batch = batch.data(credentials).data(ip);
    let response: BatchResponse = app.schema.execute_batch(batch).await;
    GraphQLResponse::from(response).into_response()
}

/// Reads `Authorization: Bearer` or `X-API-Key`.
fn credentials(service: &Service, headers: &HeaderMap) -> Credentials {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return match value.to_str() {
            Ok(v) => service.authenticate_bearer(v),
            Err(_) => Credentials::Invalid("Authorization header is not valid text".into()),
        };
    }
    if headers.contains_key("x-api-key") {
        return Credentials::Invalid("unknown or revoked API key".into());
    }
    Credentials::None
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

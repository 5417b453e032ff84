//! The REST paths of the Django/DRF Threat Alert System, kept so that its
//! sensors and scripts keep working while they move to GraphQL.
//!
//! Same domain code as GraphQL (validation, roles, audit, throttling, one
//! transaction); only the shapes are the old ones: SimpleJWT's token pair,
//! DRF's page format and error bodies (`{"detail": …}` or field → messages)
//! and status codes. A service error is told as `Error::wire` tells it
//! everywhere (its code, the field at fault and its rule kept apart,
//! internal detail hidden), rendered here in DRF's words. Bodies may be JSON, urlencoded or multipart forms, as
//! DRF accepts them. `THREATWATCH_REST_COMPAT=off` removes these routes.

use std::collections::HashMap;

use axum::extract::{ConnectInfo, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::token::TokenPair;
use crate::auth::{Credentials, Principal};
use crate::domain::alert::{AlertFilter, AlertWithEvent};
use crate::domain::event::EventRecord;
use crate::domain::event::RawEvent;
use crate::domain::{AlertStatus, Role, Severity};
use crate::error::{Code, Error};
use crate::http::{admit, read_body, AppState, BodyRefusal};
use crate::service::ClientIp;

/// DRF's PAGE_SIZE in the old system.
const PAGE_SIZE: i64 = 10;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/login/", post(login))
        .route("/api/v1/auth/refresh/", post(refresh))
        .route("/api/v1/event/ingest/", post(ingest))
        .route("/api/v1/alerts/", get(list_alerts))
        // DRF's UpdateAPIView takes PUT as well as PATCH.
        .route(
            "/api/v1/alerts/{id}/",
            patch(update_alert).put(update_alert),
        )
}

/// The valid values of an enum, as the old system's clients send them
/// (any case is taken).
fn choices<T: Copy + Into<&'static str>>(all: &[T]) -> String {
    let names: Vec<&str> = all.iter().map(|v| (*v).into()).collect();
    format!(
        "expected one of {} (in any case).",
        names.join(", ").to_lowercase()
    )
}

/// An error as DRF renders it.
struct Drf(StatusCode, Value, Option<u64>);

impl IntoResponse for Drf {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(self.1)).into_response();
        if let Some(secs) = self.2 {
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

fn detail(status: StatusCode, msg: &str) -> Drf {
    Drf(status, json!({ "detail": msg }), None)
}

/// Field names the old API used, from ours.
fn snake(field: &str) -> String {
    let field = field.rsplit('.').next().unwrap_or(field);
    let mut out = String::with_capacity(field.len() + 4);
    for c in field.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// DRF's status for each code.
fn status(code: Code) -> StatusCode {
    match code {
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::BadUserInput => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Code::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for Drf {
    fn from(e: Error) -> Self {
        let wire = e.wire("REST");
        let status = status(wire.code);
        match wire.code {
            // DRF keys a message by the one field at fault; one that names
            // several fields ("first, last") or none is about the input as
            // a whole.
            Code::BadUserInput => match &wire.field {
                Some(field) if !field.contains(' ') => {
                    Drf(status, json!({ snake(field): [wire.text] }), None)
                }
                _ => Drf(
                    status,
                    json!({ "non_field_errors": [wire.message()] }),
                    None,
                ),
            },
            Code::Unauthenticated => detail(status, &wire.text),
            Code::Forbidden => detail(status, "You do not have permission to perform this action."),
            Code::NotFound => detail(status, "Not found."),
            Code::RateLimited => {
                let secs = wire.retry_after.unwrap_or_default();
                Drf(
                    status,
                    json!({ "detail": format!("Request was throttled. Expected available in {secs} seconds.") }),
                    Some(secs),
                )
            }
            Code::InternalServerError => detail(status, "A server error occurred."),
        }
    }
}

/// A request body as JSON, urlencoded form or multipart form, flattened to
/// strings (all the old endpoints take flat string fields).
struct Fields(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = Drf;

    async fn from_request(req: Request, state: &S) -> Result<Self, Drf> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let parse_error = |what: &str| {
            detail(
                StatusCode::BAD_REQUEST,
                &format!("JSON parse error - {what}"),
            )
        };
        if content_type.starts_with("application/json") {
            let Json(v): Json<Value> = Json::from_request(req, state)
                .await
                .map_err(|e| parse_error(&e.body_text()))?;
            let Value::Object(map) = v else {
                return Err(Drf(
                    StatusCode::BAD_REQUEST,
                    json!({ "non_field_errors": ["Invalid data. Expected a dictionary."] }),
                    None,
                ));
            };
            let fields = map
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    Value::Null => None,
                    other => Some((k, other.to_string())),
                })
                .collect();
            return Ok(Fields(fields));
        }
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let Form(map): Form<HashMap<String, String>> = Form::from_request(req, state)
                .await
                .map_err(|e| detail(StatusCode::BAD_REQUEST, &e.body_text()))?;
            return Ok(Fields(map));
        }
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state)
                .await
                .map_err(|e| detail(StatusCode::BAD_REQUEST, &e.body_text()))?;
            let mut map = HashMap::new();
            while let Some(field) = multipart
                .next_field()
                .await
                .map_err(|e| detail(StatusCode::BAD_REQUEST, &e.body_text()))?
            {
                let Some(name) = field.name().map(str::to_string) else {
                    continue;
                };
                let text = field
                    .text()
                    .await
                    .map_err(|e| detail(StatusCode::BAD_REQUEST, &e.body_text()))?;
                map.insert(name, text);
            }
            return Ok(Fields(map));
        }
        Err(detail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &format!("Unsupported media type \"{content_type}\" in request."),
        ))
    }
}

impl Fields {
    fn required(&self, name: &str) -> Result<String, Drf> {
        self.0.get(name).cloned().ok_or_else(|| {
            Drf(
                StatusCode::BAD_REQUEST,
                json!({ name: ["This field is required."] }),
                None,
            )
        })
    }
}

/// Authenticates and counts the request against its quota, as GraphQL does.
async fn caller(
    app: &AppState,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
) -> Result<(Credentials, ClientIp), Drf> {
    let admitted = admit(app, peer, headers).await?;
    Ok((admitted.credentials, admitted.ip))
}

/// Admits the request from its headers, as GraphQL does, and only then
/// reads its body, within the caller's limit and deadline.
async fn caller_with_fields(
    app: &AppState,
    peer: std::net::SocketAddr,
    request: Request,
) -> Result<(Credentials, ClientIp, Fields), Drf> {
    let (parts, body) = request.into_parts();
    let admitted = admit(app, peer, &parts.headers).await?;
    // One event per request: the permit, if any, is not needed past parsing.
    let (bytes, _permit) = read_body(app, &admitted, &parts.headers, body).await?;
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    let fields = Fields::from_request(request, &()).await?;
    Ok((admitted.credentials, admitted.ip, fields))
}

impl From<BodyRefusal> for Drf {
    fn from(r: BodyRefusal) -> Self {
        let wire = r.wire();
        Drf(
            r.status(),
            json!({ "detail": wire.message() }),
            wire.retry_after,
        )
    }
}

/// The principal, if its role is one of `roles`.
fn principal(credentials: Credentials, roles: &[Role]) -> Result<Principal, Drf> {
    match credentials {
        Credentials::Valid(p) if roles.contains(&p.role()) => Ok(p),
        Credentials::Valid(_) => Err(Error::forbidden("role").into()),
        // SimpleJWT's words, unless the token was an API key: then where
        // keys go, since old sensors moving to keys make that mistake.
        Credentials::Invalid(why) if why == crate::service::API_KEY_AS_BEARER => Err(Drf(
            StatusCode::UNAUTHORIZED,
            json!({ "detail": why, "code": "token_not_valid" }),
            None,
        )),
        Credentials::Invalid(_) => Err(Drf(
            StatusCode::UNAUTHORIZED,
            json!({ "detail": "Given token not valid for any token type", "code": "token_not_valid" }),
            None,
        )),
        Credentials::None => Err(detail(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        )),
    }
}

fn timestamp(t: chrono::NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn event_json(e: &EventRecord) -> Value {
    json!({
        "id": e.id,
        "source": e.source,
        "event_type": e.event_type,
        "severity": e.severity.as_str(),
        "description": e.description,
        "timestamp": timestamp(e.created_at),
    })
}

fn alert_json(a: &AlertWithEvent) -> Value {
    json!({
        "id": a.alert.id,
        "event": event_json(&a.event),
        "status": a.alert.status.as_str(),
        "created_at": timestamp(a.alert.created_at),
        "updated_at": timestamp(a.alert.updated_at),
    })
}

fn pair_json(pair: &TokenPair) -> Value {
    json!({ "access": pair.access_token, "refresh": pair.refresh_token })
}

async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    request: Request,
) -> Result<Json<Value>, Drf> {
    let (_, ip, fields) = caller_with_fields(&app, peer, request).await?;
    let username = fields.required("username")?;
    let password = fields.required("password")?;
    match app.service.login(&username, &password, &ip).await {
        Ok(pair) => Ok(Json(pair_json(&pair))),
        Err(Error::Unauthenticated(_)) => Err(detail(
            StatusCode::UNAUTHORIZED,
            "No active account found with the given credentials",
        )),
        Err(e) => Err(e.into()),
    }
}

async fn refresh(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    request: Request,
) -> Result<Json<Value>, Drf> {
    let (parts, body) = request.into_parts();
    let admitted = admit(&app, peer, &parts.headers).await?;
    let (bytes, _permit) = read_body(&app, &admitted, &parts.headers, body).await?;
    // Counted per session by the refresh itself, as on GraphQL.
    admitted.count_operations(&app, 1, 1)?;
    let fields = Fields::from_request(
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        &(),
    )
    .await?;
    let ip = admitted.ip;
    let token = fields.required("refresh")?;
    match app.service.refresh(&token, &ip).await {
        Ok(pair) => Ok(Json(pair_json(&pair))),
        Err(Error::Unauthenticated(_)) => Err(Drf(
            StatusCode::UNAUTHORIZED,
            json!({ "detail": "Token is invalid or expired", "code": "token_not_valid" }),
            None,
        )),
        Err(e) => Err(e.into()),
    }
}

async fn ingest(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    request: Request,
) -> Result<Response, Drf> {
    let (credentials, ip, fields) = caller_with_fields(&app, peer, request).await?;
    let who = principal(credentials, &[Role::Admin, Role::Analyst, Role::Sensor])?;
    let severity_text = fields.required("severity")?;
    let severity: Severity = severity_text
        .trim()
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| {
            Drf(
                StatusCode::BAD_REQUEST,
                json!({ "severity": [format!("\"{severity_text}\" is not a valid choice; {}", choices(Severity::ALL))] }),
                None,
            )
        })?;
    let raw = RawEvent {
        source: fields.required("source")?,
        event_type: fields.required("event_type")?,
        severity: Some(severity),
        description: fields.required("description")?,
        external_id: None,
        dedup_key: None,
        occurred_at: None,
    };
    let mut done = app.service.ingest(&who, vec![raw], "input", &ip).await?;
    let stored = done
        .pop()
        .ok_or_else(|| Drf::from(Error::internal(anyhow::anyhow!("nothing stored"))))?;
    Ok((StatusCode::CREATED, Json(event_json(&stored.event))).into_response())
}

#[derive(Deserialize)]
struct AlertQuery {
    status: Option<String>,
    #[serde(rename = "event__severity")]
    severity: Option<String>,
    ordering: Option<String>,
    page: Option<String>,
}

async fn list_alerts(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, Drf> {
    let (credentials, _) = caller(&app, peer, &headers).await?;
    principal(credentials, &[Role::Admin, Role::Analyst])?;
    let choice = |field: &str, raw: &Option<String>| -> Result<Option<String>, Drf> {
        Ok(raw.as_ref().filter(|s| !s.is_empty()).map(|s| s.to_ascii_uppercase()))
            .and_then(|v| match v {
                Some(v) if field == "status" && v.parse::<AlertStatus>().is_err() => Err(v),
                Some(v) if field == "event__severity" && v.parse::<Severity>().is_err() => Err(v),
                other => Ok(other),
            })
            .map_err(|v| {
                Drf(
                    StatusCode::BAD_REQUEST,
                    json!({ field: [format!("Select a valid choice. {v} is not one of the available choices; {}", if field == "status" { choices(AlertStatus::ALL) } else { choices(Severity::ALL) })] }),
                    None,
                )
            })
    };
    let filter = AlertFilter {
        status: choice("status", &q.status)?.and_then(|s| s.parse().ok()),
        severity: choice("event__severity", &q.severity)?.and_then(|s| s.parse().ok()),
        ..AlertFilter::default()
    };
    // Without `ordering` the old view listed alerts in the database's order
    // (its queryset had none), which is oldest first; scripts that walk
    // `page=1, 2, ...` rely on pages that new alerts do not shift.
    let newest_first = match q.ordering.as_deref() {
        Some("-created_at") => true,
        None | Some("") | Some("created_at") => false,
        Some(other) => {
            return Err(Drf(
                StatusCode::BAD_REQUEST,
                json!({ "ordering": [format!("\"{other}\" is not a valid ordering; use created_at or -created_at.")] }),
                None,
            ))
        }
    };
    let page_no: i64 = match q.page.as_deref() {
        None | Some("") => 1,
        Some(p) => p
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| detail(StatusCode::NOT_FOUND, "Invalid page."))?,
    };
    let count = app.service.count_alerts(filter.clone()).await?;
    let pages = ((count + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    if page_no > pages {
        return Err(detail(StatusCode::NOT_FOUND, "Invalid page."));
    }
    let rows = app
        .service
        .alerts_by_offset(filter, newest_first, (page_no - 1) * PAGE_SIZE, PAGE_SIZE)
        .await?;
    let link = |n: i64| -> Value {
        let mut params: Vec<String> = Vec::new();
        if let Some(s) = q.status.as_deref().filter(|s| !s.is_empty()) {
            params.push(format!("status={s}"));
        }
        if let Some(s) = q.severity.as_deref().filter(|s| !s.is_empty()) {
            params.push(format!("event__severity={s}"));
        }
        if let Some(o) = q.ordering.as_deref().filter(|s| !s.is_empty()) {
            params.push(format!("ordering={o}"));
        }
        if n > 1 {
            params.push(format!("page={n}"));
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        json!(format!("http://{host}/api/v1/alerts/{query}"))
    };
    Ok(Json(json!({
        "count": count,
        "next": if page_no < pages { link(page_no + 1) } else { Value::Null },
        "previous": if page_no > 1 { link(page_no - 1) } else { Value::Null },
        "results": rows.iter().map(alert_json).collect::<Vec<_>>(),
    })))
}

async fn update_alert(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Json<Value>, Drf> {
    let (credentials, ip, fields) = caller_with_fields(&app, peer, request).await?;
    let who = principal(credentials, &[Role::Admin])?;
    let id = crate::domain::id::parse("id", &id)
        .map_err(|_| detail(StatusCode::NOT_FOUND, "Not found."))?;
    let raw = fields.required("status")?;
    let status: AlertStatus = raw.trim().to_ascii_uppercase().parse().map_err(|_| {
        Drf(
            StatusCode::BAD_REQUEST,
            json!({ "status": [format!("\"{raw}\" is not a valid choice; {}", choices(AlertStatus::ALL))] }),
            None,
        )
    })?;
    let alert = app
        .service
        .update_alert_status(&who, id, status, &ip)
        .await?;
    Ok(Json(alert_json(&alert)))
}

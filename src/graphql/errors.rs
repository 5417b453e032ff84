//! The single place where errors get the contract's `extensions.code`.
//!
//! Resolvers return `crate::error::Error`, which async-graphql keeps as the
//! error's source; `finish` reads it back on every response (the gateway in
//! `graphql` calls it for HTTP and WebSocket alike), sets the code, and hides
//! internal detail. Errors that async-graphql raises itself (parse,
//! validation, bad variables, limits) are all faults of the request:
//! BAD_USER_INPUT.

use async_graphql::{Response, ServerError};

use crate::error::Error;

/// Errors one response carries. A document can earn an error for each of
/// its values in each of its operations; past the first few the rest say
/// nothing new, and each costs memory and bytes on the wire.
pub const MAX_ERRORS: usize = 50;

pub fn finish(mut response: Response) -> Response {
    let more = response.errors.len().saturating_sub(MAX_ERRORS);
    if more > 0 {
        response.errors.truncate(MAX_ERRORS);
        response.errors.push(ServerError::new(
            format!("{more} more errors are not shown"),
            None,
        ));
    }
    for err in &mut response.errors {
        classify(err);
    }
    response
}

pub fn classify(err: &mut ServerError) {
    let (code, retry_after) = match err.source::<Error>() {
        Some(Error::Internal(detail)) => {
            tracing::error!(error = ?detail, path = ?err.path, "internal error");
            err.message = "internal server error".into();
            ("INTERNAL_SERVER_ERROR", None)
        }
        Some(e @ Error::RateLimited { retry_after_secs }) => (e.code(), Some(*retry_after_secs)),
        Some(e) => (e.code(), None),
        None => {
            explain_limit(err);
            ("BAD_USER_INPUT", None)
        }
    };
    crate::metrics::graphql_error(code);
    if code == "RATE_LIMITED" {
        crate::metrics::rate_limited("field");
    }
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", code);
    if let Some(secs) = retry_after {
        ext.set("retryAfter", secs);
    }
}

/// async-graphql's own words for a query over the node budget do not say
/// which budget, or how the cost is counted.
fn explain_limit(err: &mut ServerError) {
    if err.message == "Query is too complex." {
        err.message = format!(
            "query: its worst case is more than {} nodes (each list field counts its page size, `first` or the default, times its items)",
            super::limits::MAX_NODES
        );
    }
}

/// The code a finished error carries (for metrics and HTTP status choice).
pub fn code_of(err: &ServerError) -> Option<String> {
    match err.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

//! The single place where errors get the contract's `extensions.code`.
//!
//! Resolvers return `crate::error::Error`, which async-graphql keeps as the
//! error's source; this extension reads it back on every response (HTTP and
//! WebSocket alike), sets the code, and hides internal detail. Errors that
//! async-graphql raises itself (parse, validation, bad variables, limits)
//! are all faults of the request: BAD_USER_INPUT.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe,
};
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::futures_util::StreamExt;
use async_graphql::{Response, ServerError};

use crate::error::Error;

pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        crate::metrics::graphql_operation();
        finish(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(finish).boxed()
    }
}

fn finish(mut response: Response) -> Response {
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
        None => ("BAD_USER_INPUT", None),
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

/// The code a finished error carries (for metrics and HTTP status choice).
pub fn code_of(err: &ServerError) -> Option<String> {
    match err.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

//! Errors in GraphQL's shape: `errors[].message` and `extensions.code`
//! (with `retryAfter` for a limit).
//!
//! The code, the message and `retryAfter` come from `Error::wire`, the one
//! place that decides them; this module only writes them into GraphQL's
//! errors. Resolvers return `crate::error::Error`, which async-graphql keeps
//! as the error's source; `finish` reads it back on every response (the
//! gateway in `graphql` calls it for HTTP and WebSocket alike). Errors that
//! async-graphql raises itself (parse, validation, bad variables, limits)
//! have no such source; they are all faults of the request and pass through
//! the same function as a bad request: BAD_USER_INPUT. The HTTP edge
//! (`http`) and the WebSocket (`ws`) build the errors they answer before
//! execution with `error`, from the same function.

use async_graphql::{Response, ServerError};

use crate::error::{Code, Error, Wire};

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

/// Gives one error of a response its code and its message for clients.
pub fn classify(err: &mut ServerError) {
    let wire = match err.source::<Error>() {
        Some(e) => e.wire(&err.path),
        None => {
            explain_limit(err);
            Error::invalid_request(std::mem::take(&mut err.message)).wire(&err.path)
        }
    };
    crate::metrics::graphql_error(wire.code.as_str());
    if wire.code == Code::RateLimited {
        crate::metrics::rate_limited("field");
    }
    mark(err, &wire);
}

/// Writes `wire` into a GraphQL error: its message, `extensions.code` and,
/// for a limit, `extensions.retryAfter`. The field stays in the message, as
/// the contract words it.
pub fn mark(err: &mut ServerError, wire: &Wire) {
    err.message = wire.message();
    let ext = err.extensions.get_or_insert_with(Default::default);
    ext.set("code", wire.code.as_str());
    if let Some(secs) = wire.retry_after {
        ext.set("retryAfter", secs);
    }
}

/// A GraphQL error for an answer given outside execution (a request the
/// HTTP edge refuses, an operation the WebSocket refuses).
pub fn error(wire: &Wire) -> ServerError {
    let mut err = ServerError::new(String::new(), None);
    mark(&mut err, wire);
    err
}

/// async-graphql's own words for a query over the node budget do not say
/// which budget, or how the cost is counted; for a value that is not one of
/// an enum's, not which values are; for a bad date-time, not what one
/// looks like.
fn explain_limit(err: &mut ServerError) {
    if err.message == "Query is too complex." {
        err.message = format!(
            "query: its worst case is more than {} nodes (each list field counts its page size, `first` or the default, times its items)",
            super::limits::MAX_NODES
        );
    } else if let Some(better) = explain_value(&err.message) {
        err.message = better;
    }
}

/// Rewrites async-graphql's `Invalid value for argument "PATH", REASON`
/// for the reasons a person most often causes, naming the field first as
/// every other BAD_USER_INPUT does.
fn explain_value(message: &str) -> Option<String> {
    let rest = message.strip_prefix("Invalid value for argument \"")?;
    let (path, reason) = rest.split_once("\", ")?;
    if let Some(enum_and_value) = reason.strip_prefix("enumeration type \"") {
        let (name, value) = enum_and_value.split_once("\" does not contain the value \"")?;
        let value = value.strip_suffix('"')?;
        let values = enum_values(name)?;
        return Some(format!(
            "{path}: {name}: {:?} is not a value; expected one of {}",
            value,
            values.join(", ")
        ));
    }
    if reason == "expected type \"DateTime\"" {
        return Some(format!("{path}: {}", super::scalars::EXPECTED));
    }
    None
}

/// The values of the schema's enum `name`, read once from the schema.
fn enum_values(name: &str) -> Option<&'static [String]> {
    use std::collections::HashMap;
    use std::sync::OnceLock;
    static ENUMS: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    ENUMS
        .get_or_init(|| {
            use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
            let Ok(doc) = async_graphql::parser::parse_schema(super::sdl()) else {
                return HashMap::new();
            };
            doc.definitions
                .into_iter()
                .filter_map(|d| match d {
                    TypeSystemDefinition::Type(t) => Some(t.node),
                    _ => None,
                })
                .filter_map(|t| match t.kind {
                    TypeKind::Enum(e) => Some((
                        t.name.node.to_string(),
                        e.values
                            .into_iter()
                            .map(|v| v.node.value.node.to_string())
                            .collect(),
                    )),
                    _ => None,
                })
                .collect()
        })
        .get(name)
        .map(Vec::as_slice)
}

/// The code a finished error carries (for metrics and HTTP status choice).
pub fn code_of(err: &ServerError) -> Option<String> {
    match err.extensions.as_ref()?.get("code")? {
        async_graphql::Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::explain_value;

    #[test]
    fn enum_values_are_listed() {
        let said = explain_value(
            "Invalid value for argument \"input.severity\", enumeration type \"Severity\" does not contain the value \"high\"",
        );
        assert_eq!(
            said.as_deref(),
            Some("input.severity: Severity: \"high\" is not a value; expected one of LOW, MEDIUM, HIGH, CRITICAL")
        );
    }

    #[test]
    fn date_times_name_their_field() {
        let said = explain_value(
            "Invalid value for argument \"input.endsAt\", expected type \"DateTime\"",
        )
        .unwrap_or_default();
        assert!(
            said.starts_with("input.endsAt: expected an RFC 3339"),
            "{said}"
        );
        assert_eq!(explain_value("Unknown field \"x\""), None);
    }
}

//! The one error type of the service. What clients are told about an error
//! (its `extensions.code`, its message, the field at fault, `retryAfter`)
//! is decided in one place, `Error::wire` (see `wire`); GraphQL, the HTTP
//! edge, the WebSocket and the REST paths only render that in their shapes.

mod wire;

pub use wire::{Code, Wire};

/// What went wrong, in the terms a client is told about.
///
/// Storage and other internal failures keep their detail for the log and
/// are shown to clients only as `INTERNAL_SERVER_ERROR`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    /// The input `field` breaks `rule`. An empty `field` means no one field
    /// is at fault (the request or the operation as a whole); the message
    /// is then the rule alone.
    #[error("{}", Labelled(field, rule))]
    BadInput { field: String, rule: String },
    /// The thing the input `field` names does not exist; `what` says which.
    #[error("{}", Labelled(field, what))]
    NotFound { field: String, what: String },
    /// An event repeats a (source, externalId) pair with other content. The
    /// client is told `rule` on the event's `externalId`; `index` is the
    /// event's place in the batch it came in, for the front end to name
    /// the field, and `detail` is for the audit log.
    #[error("externalId: {rule}")]
    EventConflict {
        index: usize,
        rule: String,
        detail: String,
    },
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

/// "field: text", or the text alone without a field.
struct Labelled<'a>(&'a str, &'a str);

impl std::fmt::Display for Labelled<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            "" => f.write_str(self.1),
            field => write!(f, "{field}: {}", self.1),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The input `field` breaks `rule` (say `input.source`, "must not be
    /// empty").
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::BadInput {
            field: field.into(),
            rule: rule.into(),
        }
    }

    /// The request or operation as a whole breaks `rule`, no one field of
    /// it: the message is the rule alone.
    pub fn invalid_request(rule: impl Into<String>) -> Self {
        Self::invalid(String::new(), rule)
    }

    /// The thing the input `field` names does not exist (`id`, "no alert
    /// with id 7").
    pub fn missing(field: impl Into<String>, what: impl Into<String>) -> Self {
        Self::NotFound {
            field: field.into(),
            what: what.into(),
        }
    }

    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Self::Unauthenticated(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    /// Whether the database refused a write for a unique index, i.e. a
    /// concurrent writer got there first and a retry will see its row.
    pub fn is_conflict(&self) -> bool {
        match self {
            Self::Internal(e) => e.chain().any(|cause| {
                cause
                    .downcast_ref::<diesel::result::Error>()
                    .is_some_and(crate::db::is_unique_violation)
            }),
            _ => false,
        }
    }

    /// The contract's `extensions.code`.
    pub fn code(&self) -> &'static str {
        Code::of(self).as_str()
    }
}

impl From<diesel::result::Error> for Error {
    fn from(e: diesel::result::Error) -> Self {
        Self::Internal(anyhow::Error::new(e).context("database query failed"))
    }
}

impl From<diesel_async::pooled_connection::bb8::RunError> for Error {
    fn from(e: diesel_async::pooled_connection::bb8::RunError) -> Self {
        Self::Internal(anyhow::Error::new(e).context("no database connection"))
    }
}

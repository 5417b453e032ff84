//! The one error type of the service, and its mapping to the contract's
//! `extensions.code` (see `graphql::errors`, the single place it happens).

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
    /// The message names the field and the rule it breaks.
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn bad_input(msg: impl Into<String>) -> Self {
        Self::BadInput(msg.into())
    }

    /// The input `field` breaks `rule` (say `input.source`, "must not be
    /// empty").
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Self::BadInput(format!("{}: {}", field.into(), rule.into()))
    }

    /// The thing the input `field` names does not exist (`id`, "no alert
    /// with id 7").
    pub fn missing(field: impl Into<String>, what: impl Into<String>) -> Self {
        Self::NotFound(format!("{}: {}", field.into(), what.into()))
    }

    pub fn unauthenticated(msg: impl Into<String>) -> Self {
        Self::Unauthenticated(msg.into())
    }

    pub fn forbidden(msg: impl Into<String>) -> Self {
        Self::Forbidden(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::NotFound(msg.into())
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
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::BadInput(_) => "BAD_USER_INPUT",
            Self::NotFound(_) => "NOT_FOUND",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
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

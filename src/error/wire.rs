//! An error as clients are told about it, whatever the transport.
//!
//! `Error::wire` is the one place that decides an error's code, the message
//! clients read (internal detail is logged here, once, and never shown), the
//! field at fault and `retryAfter`. GraphQL (`graphql::errors`, which also
//! serves the HTTP edge and the WebSocket) and the REST paths only render
//! these parts in their own shapes.

use std::fmt::Debug;

use super::Error;

/// The contract's `extensions.code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    BadUserInput,
    NotFound,
    RateLimited,
    InternalServerError,
}

impl Code {
    pub fn of(err: &Error) -> Self {
        match err {
            Error::Unauthenticated(_) => Self::Unauthenticated,
            Error::Forbidden(_) => Self::Forbidden,
            Error::BadInput { .. } | Error::EventConflict { .. } => Self::BadUserInput,
            Error::NotFound { .. } => Self::NotFound,
            Error::RateLimited { .. } => Self::RateLimited,
            Error::Internal(_) => Self::InternalServerError,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::BadUserInput => "BAD_USER_INPUT",
            Self::NotFound => "NOT_FOUND",
            Self::RateLimited => "RATE_LIMITED",
            Self::InternalServerError => "INTERNAL_SERVER_ERROR",
        }
    }
}

/// The parts of an error every transport shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wire {
    pub code: Code,
    /// The input at fault, when one field is; shapes that key errors by
    /// field (REST) use it, the others read it in `message`.
    pub field: Option<String>,
    /// What clients are told; with a field, the rule that field breaks (or
    /// what it names that does not exist), without the field's name.
    pub text: String,
    /// Seconds until a retry can succeed, for a refusal by a limit.
    pub retry_after: Option<u64>,
}

impl Wire {
    /// The message as GraphQL and WebSocket clients read it: "field: text",
    /// or the text alone.
    pub fn message(&self) -> String {
        match &self.field {
            Some(field) => format!("{field}: {}", self.text),
            None => self.text.clone(),
        }
    }

    /// The same answer in the caller's own words, for a refusal that
    /// explains itself better than its error does (which limit it hit).
    pub fn saying(self, message: impl Into<String>) -> Self {
        Self {
            field: None,
            text: message.into(),
            ..self
        }
    }
}

impl Error {
    /// What clients are told about this error. Internal detail is logged
    /// here, with `at` to say where it surfaced, and replaced by a message
    /// that reveals nothing; call this once per error answered.
    pub fn wire(&self, at: impl Debug) -> Wire {
        let code = Code::of(self);
        let (field, text, retry_after) = match self {
            Error::BadInput { field, rule: text } | Error::NotFound { field, what: text } => {
                let field = (!field.is_empty()).then(|| field.clone());
                (field, text.clone(), None)
            }
            // The service renames this to the event's own field; a batch
            // it reaches unnamed still says which field.
            Error::EventConflict { rule, .. } => (Some("externalId".into()), rule.clone(), None),
            Error::RateLimited { retry_after_secs } => {
                (None, self.to_string(), Some(*retry_after_secs))
            }
            Error::Internal(detail) => {
                tracing::error!(error = ?detail, at = ?at, "internal error");
                (None, self.to_string(), None)
            }
            Error::Unauthenticated(msg) | Error::Forbidden(msg) => (None, msg.clone(), None),
        };
        Wire {
            code,
            field,
            text,
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(e: Error) -> Wire {
        e.wire("test")
    }

    #[test]
    fn each_variant_has_its_code() {
        let cases = [
            (Error::unauthenticated("who?"), "UNAUTHENTICATED"),
            (Error::forbidden("no"), "FORBIDDEN"),
            (Error::invalid("id", "bad"), "BAD_USER_INPUT"),
            (Error::missing("id", "none"), "NOT_FOUND"),
            (
                Error::RateLimited {
                    retry_after_secs: 3,
                },
                "RATE_LIMITED",
            ),
            (
                Error::internal(anyhow::anyhow!("disk on fire")),
                "INTERNAL_SERVER_ERROR",
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code);
            assert_eq!(wire(e).code.as_str(), code);
        }
    }

    #[test]
    fn messages_are_the_errors_own_words() {
        let w = wire(Error::unauthenticated("token has expired"));
        assert_eq!(w.field, None);
        assert_eq!(w.message(), "token has expired");
        let w = wire(Error::forbidden("role SENSOR may not use this field"));
        assert_eq!(w.message(), "role SENSOR may not use this field");
        assert_eq!(w.retry_after, None);
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let w = wire(Error::RateLimited {
            retry_after_secs: 7,
        });
        assert_eq!(w.retry_after, Some(7));
        assert_eq!(w.field, None);
        assert_eq!(w.message(), "rate limit exceeded; retry in 7 s");
    }

    #[test]
    fn internal_detail_is_hidden() {
        let e = Error::internal(anyhow::anyhow!("SELECT * FROM users; /var/lib/db"));
        let w = wire(e);
        assert_eq!(w.message(), "internal server error");
        assert_eq!(w.field, None);
        assert!(!w.message().contains("SELECT"));
    }

    #[test]
    fn field_and_rule_stay_apart() {
        let e = Error::invalid("input.source", "must not be empty");
        assert_eq!(e.to_string(), "input.source: must not be empty");
        let w = wire(e);
        assert_eq!(w.field.as_deref(), Some("input.source"));
        assert_eq!(w.text, "must not be empty");
        assert_eq!(w.message(), "input.source: must not be empty");

        let w = wire(Error::missing("id", "no alert with id 7"));
        assert_eq!(w.field.as_deref(), Some("id"));
        assert_eq!(w.text, "no alert with id 7");
        assert_eq!(w.message(), "id: no alert with id 7");
    }

    #[test]
    fn a_rule_with_a_colon_is_not_split() {
        let e = Error::invalid(
            "THREATWATCH_ADMIN_PASSWORD",
            "password: must be at least 8 characters",
        );
        let w = wire(e);
        assert_eq!(w.field.as_deref(), Some("THREATWATCH_ADMIN_PASSWORD"));
        assert_eq!(w.text, "password: must be at least 8 characters");
        assert_eq!(
            w.message(),
            "THREATWATCH_ADMIN_PASSWORD: password: must be at least 8 characters"
        );
    }

    #[test]
    fn without_a_field_the_message_is_the_rule() {
        let e = Error::invalid_request("Content-Type must be application/json");
        assert_eq!(e.to_string(), "Content-Type must be application/json");
        let w = wire(e);
        assert_eq!(w.field, None);
        assert_eq!(w.message(), "Content-Type must be application/json");
    }

    #[test]
    fn saying_keeps_code_and_retry() {
        let w = wire(Error::RateLimited {
            retry_after_secs: 1,
        })
        .saying("a socket may have at most 20 live subscriptions at once");
        assert_eq!(w.code, Code::RateLimited);
        assert_eq!(w.retry_after, Some(1));
        assert_eq!(
            w.message(),
            "a socket may have at most 20 live subscriptions at once"
        );
    }
}

//! The `DateTime` scalar: RFC 3339 in UTC, e.g. "2026-11-24T09:30:00.123Z".

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{NaiveDateTime, SecondsFormat};

/// What a bad `DateTime` is told, after the name of its field.
pub const EXPECTED: &str =
    "expected an RFC 3339 date-time such as 2026-11-24T09:30:00Z (or with an offset, +01:00)";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime(pub NaiveDateTime);

/// An instant as RFC 3339 in UTC, e.g. "2026-11-24T09:30:00.123Z". Inputs
/// may carry any offset; they are converted to UTC.
#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        let Value::String(text) = &value else {
            return Err(InputValueError::expected_type(value));
        };
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| DateTime(t.naive_utc()))
            .map_err(|_| InputValueError::custom(EXPECTED))
    }

    /// Checked while the document is validated, where async-graphql names
    /// the argument or input field at fault (`input.endsAt`); a value that
    /// only failed in `parse` would be reported without it.
    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(text) if chrono::DateTime::parse_from_rfc3339(text).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(
            self.0
                .and_utc()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        )
    }
}

impl From<NaiveDateTime> for DateTime {
    fn from(t: NaiveDateTime) -> Self {
        Self(t)
    }
}

//! A security event as a sensor reports it, validated.

use std::fmt::Display;

use chrono::NaiveDateTime;

use super::alert::{AlertRecord, AlertWithEvent};
use super::Severity;
use crate::error::{Error, Result};

/// An event that passed validation and may be stored as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    pub source: String,
    pub event_type: String,
    pub severity: Severity,
    pub description: String,
    pub external_id: Option<String>,
    pub dedup_key: Option<String>,
}

/// What a client sent, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawEvent {
    pub source: String,
    pub event_type: String,
    pub severity: Option<Severity>,
    pub description: String,
    pub external_id: Option<String>,
    pub dedup_key: Option<String>,
}

pub const MAX_LABEL_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_EXTERNAL_ID_CHARS: usize = 200;

/// A short label (source, event type): trimmed, 1..=max characters, no
/// control characters, since these end up in dashboards, logs and filters.
/// `field` is only formatted when the value is refused.
pub fn label(field: impl Display, raw: &str, max: usize) -> Result<String> {
    checked_label(&field, raw, max).map(str::to_string)
}

/// `label` for a value the caller owns: kept as it is unless it needed
/// trimming, so a valid event costs no copies.
fn owned_label(field: impl Display, raw: String, max: usize) -> Result<String> {
    let trimmed = checked_label(&field, &raw, max)?.len();
    Ok(if trimmed == raw.len() {
        raw
    } else {
        raw.trim().to_string()
    })
}

fn checked_label<'a>(field: &dyn Display, raw: &'a str, max: usize) -> Result<&'a str> {
    let value = raw.trim();
    let chars = value.chars().count();
    if chars == 0 {
        return Err(Error::invalid(field.to_string(), "must not be empty"));
    }
    if chars > max {
        return Err(Error::invalid(
            field.to_string(),
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field.to_string(),
            "must not contain control characters",
        ));
    }
    Ok(value)
}

/// Free text: 1..=max characters, not blank. Line breaks and tabs are kept;
/// NUL is refused because PostgreSQL cannot store it in text.
pub fn text(field: impl Display, raw: &str, max: usize) -> Result<String> {
    checked_text(&field, raw, max)?;
    Ok(raw.to_string())
}

fn checked_text(field: &dyn Display, raw: &str, max: usize) -> Result<()> {
    if raw.trim().is_empty() {
        return Err(Error::invalid(field.to_string(), "must not be empty"));
    }
    let chars = raw.chars().count();
    if chars > max {
        return Err(Error::invalid(
            field.to_string(),
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    if raw.contains('\0') {
        return Err(Error::invalid(
            field.to_string(),
            "must not contain NUL characters",
        ));
    }
    Ok(())
}

/// A field's name under its input's prefix (`inputs[3].source`), written
/// out only if an error message needs it.
struct FieldName<'a, P>(&'a P, &'a str);

impl<P: Display> Display for FieldName<'_, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

impl NewEvent {
    /// Validates every field; `field_prefix` locates the input in the request
    /// (e.g. `input.` or `inputs[3].`) so the message names the exact field.
    pub fn parse(raw: RawEvent, field_prefix: impl Display) -> Result<Self> {
        let f = |name| FieldName(&field_prefix, name);
        let RawEvent {
            source,
            event_type,
            severity,
            description,
            external_id,
            dedup_key,
        } = raw;
        Ok(Self {
            source: owned_label(f("source"), source, MAX_LABEL_CHARS)?,
            event_type: owned_label(f("eventType"), event_type, MAX_LABEL_CHARS)?,
            severity: severity
                .ok_or_else(|| Error::invalid(f("severity").to_string(), "is required"))?,
            description: {
                checked_text(&f("description"), &description, MAX_DESCRIPTION_CHARS)?;
                description
            },
            external_id: external_id
                .map(|id| owned_label(f("externalId"), id, MAX_EXTERNAL_ID_CHARS))
                .transpose()?,
            dedup_key: dedup_key
                .map(|k| owned_label(f("dedupKey"), k, MAX_EXTERNAL_ID_CHARS))
                .transpose()?,
        })
    }
}

/// An event as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub id: i64,
    pub source: String,
    pub event_type: String,
    pub severity: Severity,
    pub description: String,
    pub created_at: NaiveDateTime,
    pub external_id: Option<String>,
    /// The alert the event raised or was folded into.
    pub alert_id: Option<i64>,
    pub dedup_key: Option<String>,
    /// The silence that kept it from raising an alert.
    pub silenced_by: Option<i64>,
}

/// An event with the alert it raised, if any (one left join).
#[derive(Clone, Debug, PartialEq)]
pub struct EventWithAlert {
    pub event: EventRecord,
    pub alert: Option<AlertRecord>,
}

/// One event to store, with who sent it (for the audit entry of its alert).
#[derive(Clone, Debug)]
pub struct Ingest {
    pub event: NewEvent,
    pub actor: String,
    pub ip: Option<String>,
}

/// What one ingested event became.
#[derive(Clone, Debug)]
pub struct Ingested {
    pub event: EventRecord,
    /// The alert it raised or was folded into, with that alert's raising
    /// event; `None` for LOW/MEDIUM and for silenced events.
    pub alert: Option<AlertWithEvent>,
    /// False when the (source, externalId) pair was already stored and this
    /// is the earlier event, returned again.
    pub created: bool,
    /// True when this event raised its alert (rather than being folded into
    /// an existing one or returned again).
    pub raised: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawEvent {
        RawEvent {
            source: " Firewall-1 ".into(),
            event_type: "Intrusion".into(),
            severity: Some(Severity::High),
            description: "Port scan from 10.0.0.8\nblocked".into(),
            external_id: None,
            dedup_key: None,
        }
    }

    #[test]
    fn accepts_and_trims_labels() {
        let e = NewEvent::parse(raw(), "input.").unwrap();
        assert_eq!(e.source, "Firewall-1");
        assert_eq!(e.description, "Port scan from 10.0.0.8\nblocked");
    }

    #[test]
    fn names_the_field_and_rule() {
        let cases: Vec<(RawEvent, &str)> = vec![
            (
                RawEvent {
                    source: "  ".into(),
                    ..raw()
                },
                "input.source: must not be empty",
            ),
            (
                RawEvent {
                    source: "x".repeat(101),
                    ..raw()
                },
                "input.source: must be at most 100 characters, got 101",
            ),
            (
                RawEvent {
                    event_type: "a\u{7}b".into(),
                    ..raw()
                },
                "input.eventType: must not contain control characters",
            ),
            (
                RawEvent {
                    description: "x".repeat(10_001),
                    ..raw()
                },
                "input.description: must be at most 10000 characters, got 10001",
            ),
            (
                RawEvent {
                    description: "a\0b".into(),
                    ..raw()
                },
                "input.description: must not contain NUL characters",
            ),
        ];
        for (input, msg) in cases {
            let err = NewEvent::parse(input, "input.").unwrap_err();
            assert_eq!(err.to_string(), msg);
            assert_eq!(err.code(), "BAD_USER_INPUT");
        }
    }

    #[test]
    fn limits_count_characters_not_bytes() {
        let e = NewEvent::parse(
            RawEvent {
                source: "é".repeat(100),
                ..raw()
            },
            "",
        );
        assert!(e.is_ok());
    }
}

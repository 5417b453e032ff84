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
    /// The sensor's own time of the event, when it sent one.
    pub occurred_at: Option<NaiveDateTime>,
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
    pub occurred_at: Option<NaiveDateTime>,
}

/// How far ahead of the service's clock a sensor's `occurredAt` may be.
/// Clocks drift by seconds; a time minutes ahead is a sensor whose clock
/// or time zone is wrong, and stored as it is it would sort the event
/// above everything that really happens next.
pub const MAX_CLOCK_AHEAD: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

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
            occurred_at,
        } = raw;
        if let Some(at) = occurred_at {
            occurred(&f("occurredAt"), at, super::now())?;
        }
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
            occurred_at,
        })
    }
}

/// Refuses an `occurredAt` too far ahead of `now`.
fn occurred(field: &dyn Display, at: NaiveDateTime, now: NaiveDateTime) -> Result<()> {
    if at > now + MAX_CLOCK_AHEAD {
        return Err(Error::invalid(
            field.to_string(),
            format!(
                "is {} s ahead of the service's clock (now {}); at most {} minutes ahead \
                 is accepted: check the sensor's clock and time zone (times are UTC)",
                (at - now).num_seconds(),
                now.and_utc()
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                MAX_CLOCK_AHEAD.num_minutes()
            ),
        ));
    }
    Ok(())
}

impl NewEvent {
    /// Refuses an `occurredAt` from before the retention window: the team
    /// chose to keep nothing that old, so a sensor replaying a backlog
    /// learns at once which events fall outside it (retention itself goes
    /// by when events were stored, and would keep such an event a window
    /// longer). The batch is refused whole, as for any invalid item.
    pub fn within_retention(
        &self,
        field_prefix: impl Display,
        window: std::time::Duration,
    ) -> Result<()> {
        let (Some(at), Ok(window)) = (self.occurred_at, chrono::TimeDelta::from_std(window)) else {
            return Ok(());
        };
        let now = super::now();
        match now.checked_sub_signed(window) {
            Some(oldest) if at < oldest => Err(Error::invalid(
                format!("{field_prefix}occurredAt"),
                format!(
                    "is older than the retention window (THREATWATCH_RETENTION, {}): events \
                     from before {} are not kept",
                    humantime::format_duration(window.to_std().unwrap_or_default()),
                    oldest
                        .and_utc()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ),
            )),
            _ => Ok(()),
        }
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
    /// The sensor's time of the event; `None` when it sent none.
    pub occurred_at: Option<NaiveDateTime>,
}

impl EventRecord {
    /// When the event happened: the sensor's time, or when it was stored.
    pub fn occurred(&self) -> NaiveDateTime {
        self.occurred_at.unwrap_or(self.created_at)
    }
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
            occurred_at: None,
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
    fn occurred_at_may_not_run_ahead_of_the_clock() {
        let now = crate::domain::now();
        let at = |secs| RawEvent {
            occurred_at: Some(now + chrono::TimeDelta::seconds(secs)),
            ..raw()
        };
        assert!(NewEvent::parse(at(-86_400 * 365), "input.").is_ok());
        assert!(NewEvent::parse(at(240), "input.").is_ok());
        let err = NewEvent::parse(at(3_600), "inputs[2].").unwrap_err();
        assert_eq!(err.code(), "BAD_USER_INPUT");
        let msg = err.to_string();
        assert!(msg.starts_with("inputs[2].occurredAt: is 3"), "{msg}");
        assert!(msg.contains("at most 5 minutes ahead"), "{msg}");
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

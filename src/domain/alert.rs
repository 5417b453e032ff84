//! The alert lifecycle.

use chrono::NaiveDateTime;

use super::event::EventRecord;
use super::filter::Narrowing;
use super::{AlertStatus, Severity};

/// What a status change means: `None` when the alert is already there. A
/// refused move is the rule alone; the caller names the argument at fault
/// (`status` for one alert, `ids[3]` in a bulk change).
///
/// Alerts only move forward (OPEN -> ACKNOWLEDGED -> RESOLVED, or straight to
/// RESOLVED): a resolved alert is closed history that audit and repeat
/// folding rely on, so reopening is refused rather than silently allowed.
pub fn transition(from: AlertStatus, to: AlertStatus) -> Result<Option<AlertStatus>, String> {
    use AlertStatus::*;
    match (from, to) {
        (a, b) if a == b => Ok(None),
        (Open, Acknowledged) | (Open, Resolved) | (Acknowledged, Resolved) => Ok(Some(to)),
        _ => Err(format!("an alert that is {from} cannot move back to {to}")),
    }
}

/// An alert as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertRecord {
    pub id: i64,
    pub event_id: i64,
    pub severity: Severity,
    pub status: AlertStatus,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub assignee_id: Option<i64>,
    pub acknowledged_at: Option<NaiveDateTime>,
    pub resolved_at: Option<NaiveDateTime>,
    pub occurrences: i64,
    pub last_seen_at: Option<NaiveDateTime>,
}

/// An alert with the event that raised it: what every alert query returns,
/// loaded with one join so that `alert { event }` costs no extra query.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertWithEvent {
    pub alert: AlertRecord,
    pub event: EventRecord,
}

/// The filters `alerts` takes. Each has an index that ends in the list's
/// order; combined, a page walks the index of one and checks the others.
#[derive(Clone, Debug, Default)]
pub struct AlertFilter {
    pub severity: Option<Severity>,
    pub status: Option<AlertStatus>,
    pub assignee: Option<i64>,
    pub unassigned: bool,
    /// Source, event type, creation time and words (of the raising event).
    pub narrowing: Narrowing,
}

/// The filters `events` takes.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub severity: Option<Severity>,
    /// Source, event type, `timestamp` and words.
    pub narrowing: Narrowing,
}

/// The outcome of a status change.
#[derive(Clone, Debug)]
pub struct StatusChange {
    pub alert: AlertWithEvent,
    /// The status before, when it changed; `None` when it already had it.
    pub from: Option<AlertStatus>,
}

/// A note on an alert, as stored. Never edited or deleted.
#[derive(Clone, Debug, PartialEq)]
pub struct CommentRecord {
    pub id: i64,
    pub alert_id: i64,
    pub author: String,
    pub body: String,
    pub created_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;
    use AlertStatus::*;

    #[test]
    fn forward_moves_only() {
        assert_eq!(transition(Open, Acknowledged).unwrap(), Some(Acknowledged));
        assert_eq!(transition(Open, Resolved).unwrap(), Some(Resolved));
        assert_eq!(transition(Acknowledged, Resolved).unwrap(), Some(Resolved));
        assert_eq!(transition(Resolved, Resolved).unwrap(), None);
        assert!(transition(Resolved, Open).is_err());
        assert!(transition(Acknowledged, Open).is_err());
        assert!(transition(Resolved, Acknowledged).is_err());
    }
}

//! Silences: an analyst's "not now" for events that would raise alerts.

use chrono::NaiveDateTime;

use super::event::NewEvent;
use super::Severity;

/// A live silence as the ingest rule sees it: its id and its matchers. A
/// matcher left `None` matches anything; a silence with none at all
/// matches every event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Silence {
    pub id: i64,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub dedup_key: Option<String>,
}

impl Silence {
    /// Whether the silence covers this event: every matcher it has agrees.
    /// A `dedup_key` matcher never covers an event without a key.
    pub fn matches(&self, e: &NewEvent) -> bool {
        self.source.as_ref().is_none_or(|s| *s == e.source)
            && self.event_type.as_ref().is_none_or(|t| *t == e.event_type)
            && self.severity.is_none_or(|s| s == e.severity)
            && self
                .dedup_key
                .as_ref()
                .is_none_or(|k| Some(k) == e.dedup_key.as_ref())
    }
}

/// A silence as stored, with who made it, why, and until when.
#[derive(Clone, Debug, PartialEq)]
pub struct SilenceRecord {
    pub id: i64,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub dedup_key: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
    pub expired_at: Option<NaiveDateTime>,
}

impl SilenceRecord {
    /// What the ingest rule matches events against.
    pub fn matcher(&self) -> Silence {
        Silence {
            id: self.id,
            source: self.source.clone(),
            event_type: self.event_type.clone(),
            severity: self.severity,
            dedup_key: self.dedup_key.clone(),
        }
    }
}

/// A validated silence to create.
#[derive(Clone, Debug)]
pub struct NewSilence {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub dedup_key: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub ends_at: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(dedup_key: Option<&str>) -> NewEvent {
        NewEvent {
            source: "fw".into(),
            event_type: "scan".into(),
            severity: Severity::High,
            description: "d".into(),
            external_id: None,
            dedup_key: dedup_key.map(str::to_string),
            occurred_at: None,
        }
    }

    fn silence() -> Silence {
        Silence {
            id: 1,
            source: None,
            event_type: None,
            severity: None,
            dedup_key: None,
        }
    }

    #[test]
    fn no_matchers_match_everything() {
        assert!(silence().matches(&event(None)));
        assert!(silence().matches(&event(Some("k"))));
    }

    #[test]
    fn every_matcher_must_agree() {
        let s = Silence {
            source: Some("fw".into()),
            severity: Some(Severity::High),
            ..silence()
        };
        assert!(s.matches(&event(None)));
        let other_severity = Silence {
            severity: Some(Severity::Critical),
            ..s.clone()
        };
        assert!(!other_severity.matches(&event(None)));
        let other_type = Silence {
            event_type: Some("login".into()),
            ..s
        };
        assert!(!other_type.matches(&event(None)));
    }

    #[test]
    fn a_key_matcher_needs_that_key() {
        let s = Silence {
            dedup_key: Some("k".into()),
            ..silence()
        };
        assert!(s.matches(&event(Some("k"))));
        assert!(!s.matches(&event(Some("j"))));
        assert!(!s.matches(&event(None)));
    }
}

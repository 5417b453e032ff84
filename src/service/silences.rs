//! Silences for known noise.

use chrono::NaiveDateTime;

use super::{audit, ClientIp, Service};
use crate::auth::Principal;
use crate::domain::event::{label, text, MAX_EXTERNAL_ID_CHARS, MAX_LABEL_CHARS};
use crate::domain::silence::{NewSilence, SilenceRecord};
use crate::domain::{AuditAction, Severity};
use crate::error::{Error, Result};

/// What a client asked for, before validation.
pub struct SilenceRequest {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub dedup_key: Option<String>,
    pub comment: String,
    pub ends_at: NaiveDateTime,
}

impl Service {
    pub async fn create_silence(
        &self,
        who: &Principal,
        req: SilenceRequest,
        ip: &ClientIp,
    ) -> Result<SilenceRecord> {
        let new = NewSilence {
            source: req
                .source
                .map(|s| label("input.source", &s, MAX_LABEL_CHARS))
                .transpose()?,
            event_type: req
                .event_type
                .map(|s| label("input.eventType", &s, MAX_LABEL_CHARS))
                .transpose()?,
            severity: req.severity,
            dedup_key: req
                .dedup_key
                .map(|s| label("input.dedupKey", &s, MAX_EXTERNAL_ID_CHARS))
                .transpose()?,
            comment: text("input.comment", &req.comment, 1_000)?,
            created_by: who.actor(),
            ends_at: req.ends_at,
        };
        if new.source.is_none()
            && new.event_type.is_none()
            && new.severity.is_none()
            && new.dedup_key.is_none()
        {
            return Err(Error::invalid(
                "input",
                "give at least one of source, eventType, severity, dedupKey",
            ));
        }
        if new.ends_at <= crate::domain::now() {
            return Err(Error::invalid("input.endsAt", "must be in the future"));
        }
        let mut entry = audit(AuditAction::SilenceCreated, who.actor(), ip);
        entry.detail = Some(
            serde_json::json!({
                "source": new.source,
                "eventType": new.event_type,
                "severity": new.severity.map(|s| s.as_str()),
                "dedupKey": new.dedup_key,
                "endsAt": new.ends_at.and_utc().to_rfc3339(),
            })
            .to_string(),
        );
        self.db.create_silence(new, entry).await
    }

    pub async fn expire_silence(
        &self,
        who: &Principal,
        id: i64,
        ip: &ClientIp,
    ) -> Result<SilenceRecord> {
        let entry = audit(AuditAction::SilenceExpired, who.actor(), ip);
        self.db.expire_silence(id, entry).await
    }

    /// Silences, newest first: `Some(true)` only live ones, `Some(false)`
    /// only ended ones (expired or past `endsAt`), `None` all.
    pub async fn silences(&self, active: Option<bool>) -> Result<Vec<SilenceRecord>> {
        self.db.silences(active).await
    }

    /// Silences by id, in no particular order; ids not found are left out.
    pub async fn silences_by_ids(&self, ids: Vec<i64>) -> Result<Vec<SilenceRecord>> {
        self.db.silences_by_ids(ids).await
    }
}

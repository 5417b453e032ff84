//! Ingesting and listing events.

use super::{audit, ClientIp, Service};
use crate::auth::Principal;
use crate::domain::alert::EventFilter;
use crate::domain::event::{EventWithAlert, Ingest, Ingested, NewEvent, RawEvent};
use crate::domain::page::{Page, PageOf};
use crate::domain::AuditAction;
use crate::error::{Error, Result};
use crate::throttle::Subject;

/// Most events one `ingestEvents` call may carry.
pub const MAX_EVENTS_PER_CALL: usize = 1_000;

impl Service {
    /// Validates every event first (so a bad one stores nothing), then
    /// commits them all in one transaction through the group-commit writer.
    pub async fn ingest(
        &self,
        principal: &Principal,
        raw: Vec<RawEvent>,
        field: &str,
        ip: &ClientIp,
    ) -> Result<Vec<Ingested>> {
        if raw.is_empty() || raw.len() > MAX_EVENTS_PER_CALL {
            return Err(Error::invalid(
                field,
                format!(
                    "must hold 1 to {MAX_EVENTS_PER_CALL} events, got {}",
                    raw.len()
                ),
            ));
        }
        let single = raw.len() == 1 && field == "input";
        let prefix = |i| ItemPrefix {
            field,
            index: (!single).then_some(i),
        };
        let items = raw
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let event = NewEvent::parse(r, prefix(i))?;
                if let Some(window) = self.settings.retention {
                    event.within_retention(prefix(i), window)?;
                }
                may_ingest_for(principal, &event.source, &prefix(i))?;
                Ok(Ingest {
                    event,
                    actor: principal.actor(),
                    ip: ip.0.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        match self.writer.submit(items).await {
            Err(Error::EventConflict {
                index,
                rule,
                detail,
            }) => {
                // The batch is refused and stores nothing; the attempt is
                // recorded on its own, since a sensor sending another
                // sensor's ids is what an admin needs to see. Each record
                // costs the caller one more request of its quota: a
                // document of many aliased conflicting ingests is one
                // request at admission, and must not buy that many rows.
                if self
                    .security
                    .throttle
                    .request(subject_of(principal), 1)
                    .is_ok()
                {
                    let mut entry = audit(AuditAction::EventConflict, principal.actor(), ip);
                    entry.target_type = Some("Event".into());
                    entry.detail = Some(detail);
                    if let Err(e) = self.db.append_audit(entry).await {
                        tracing::error!(error = ?e, "could not record an event conflict");
                    }
                } else {
                    crate::metrics::rate_limited("event_conflict_audit");
                    tracing::warn!(actor = %principal.actor(), "event conflicts over quota; not audited one by one");
                }
                Err(Error::invalid(format!("{}externalId", prefix(index)), rule))
            }
            result => result,
        }
    }

    pub async fn events(&self, filter: EventFilter, page: Page) -> Result<PageOf<EventWithAlert>> {
        Ok(page.finish(self.db.events_page(filter, page).await?))
    }

    pub async fn count_events(&self, filter: EventFilter) -> Result<i64> {
        self.db.count_events(filter).await
    }

    pub async fn event(&self, id: i64) -> Result<Option<EventWithAlert>> {
        self.db.event(id).await
    }
}

/// Whose quota a principal's work counts against.
fn subject_of(principal: &Principal) -> Subject {
    match principal {
        Principal::User { id, .. } => Subject::User(*id),
        Principal::ApiKey { id, .. } => Subject::ApiKey(*id),
    }
}

/// A key bound to sources ingests only for those; people and unbound keys
/// for any source.
fn may_ingest_for(principal: &Principal, source: &str, prefix: &ItemPrefix<'_>) -> Result<()> {
    let Principal::ApiKey {
        name,
        sources: Some(allowed),
        ..
    } = principal
    else {
        return Ok(());
    };
    if allowed.iter().any(|s| s == source) {
        return Ok(());
    }
    Err(Error::forbidden(format!(
        "{prefix}source: the API key {name:?} may ingest only for {}; {source:?} is not one \
         of them (an admin can create a key for it)",
        allowed
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// `input.` or `inputs[3].`, written out only into an error message.
struct ItemPrefix<'a> {
    field: &'a str,
    index: Option<usize>,
}

impl std::fmt::Display for ItemPrefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.index {
            Some(i) => write!(f, "{}[{i}].", self.field),
            None => write!(f, "{}.", self.field),
        }
    }
}

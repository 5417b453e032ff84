//! Ingesting and listing events.

use super::{ClientIp, Service};
use crate::auth::Principal;
use crate::domain::alert::EventFilter;
use crate::domain::event::{EventWithAlert, Ingest, Ingested, NewEvent, RawEvent};
use crate::domain::page::{Page, PageOf};
use crate::error::{Error, Result};

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
        let items = raw
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let prefix = ItemPrefix {
                    field,
                    index: (!single).then_some(i),
                };
                Ok(Ingest {
                    event: NewEvent::parse(r, prefix)?,
                    actor: principal.actor(),
                    ip: ip.0.clone(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.writer.submit(items).await
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

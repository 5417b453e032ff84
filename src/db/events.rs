//! Events, and the ingest transaction that stores them with their alerts.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AlertRow, EventRow, EventWithAlert, NewAudit};
use super::schema::{alerts, audit_log, events};
use super::Db;
use crate::domain::event::NewEvent;
use crate::domain::page::Page;
use crate::domain::{AlertStatus, AuditAction, Severity};
use crate::error::Result;

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
    pub event: EventRow,
    pub alert: Option<AlertRow>,
    /// False when the (source, externalId) pair was already stored and this
    /// is the earlier event, returned again.
    pub created: bool,
}

impl Db {
    pub async fn events_page(
        &self,
        severity: Option<Severity>,
        page: Page,
    ) -> Result<Vec<EventWithAlert>> {
        run!(self, |conn| {
            let mut query = events::table
                .left_join(alerts::table)
                .select((EventRow::as_select(), Option::<AlertRow>::as_select()))
                .into_boxed();
            if let Some(s) = severity {
                query = query.filter(events::severity.eq(s.as_str()));
            }
            let rows: Vec<(EventRow, Option<AlertRow>)> =
                paged!(query, &page, events::id).load(conn).await?;
            Ok(rows
                .into_iter()
                .map(|(event, alert)| EventWithAlert { event, alert })
                .collect())
        })
    }

    pub async fn count_events(&self, severity: Option<Severity>) -> Result<i64> {
        run!(self, |conn| {
            let mut query = events::table.into_boxed();
            if let Some(s) = severity {
                query = query.filter(events::severity.eq(s.as_str()));
            }
            Ok(query.count().get_result(conn).await?)
        })
    }

    /// Stores every event in one transaction, each HIGH or CRITICAL one with
    /// its OPEN alert and ALERT_CREATED audit entry: all of them or none.
    pub async fn ingest(&self, batch: Vec<Ingest>) -> Result<Vec<Ingested>> {
        transaction!(self, |conn| {
            let mut out = Vec::with_capacity(batch.len());
            for item in &batch {
                let now = crate::domain::now();
                let e = &item.event;
                if let Some(external_id) = &e.external_id {
                    let earlier: Option<(EventRow, Option<AlertRow>)> = events::table
                        .left_join(alerts::table)
                        .filter(events::source.eq(&e.source))
                        .filter(events::external_id.eq(external_id))
                        .select((EventRow::as_select(), Option::<AlertRow>::as_select()))
                        .first(conn)
                        .await
                        .optional()?;
                    if let Some((event, alert)) = earlier {
                        out.push(Ingested {
                            event,
                            alert,
                            created: false,
                        });
                        continue;
                    }
                }
                let event: EventRow = diesel::insert_into(events::table)
                    .values((
                        events::source.eq(&e.source),
                        events::event_type.eq(&e.event_type),
                        events::severity.eq(e.severity.as_str()),
                        events::description.eq(&e.description),
                        events::created_at.eq(now),
                        events::external_id.eq(&e.external_id),
                    ))
                    .returning(EventRow::as_returning())
                    .get_result(conn)
                    .await?;
                let alert = if e.severity.raises_alert() {
                    let alert: AlertRow = diesel::insert_into(alerts::table)
                        .values((
                            alerts::event_id.eq(event.id),
                            alerts::severity.eq(e.severity.as_str()),
                            alerts::status.eq(AlertStatus::Open.as_str()),
                            alerts::created_at.eq(now),
                            alerts::updated_at.eq(now),
                        ))
                        .returning(AlertRow::as_returning())
                        .get_result(conn)
                        .await?;
                    let audit = NewAudit {
                        at: now,
                        action: AuditAction::AlertCreated.as_str().into(),
                        actor: item.actor.clone(),
                        target_type: Some("Alert".into()),
                        target_id: Some(alert.id.to_string()),
                        detail: Some(
                            serde_json::json!({
                                "eventId": event.id.to_string(),
                                "severity": e.severity.as_str(),
                                "source": e.source,
                            })
                            .to_string(),
                        ),
                        ip: item.ip.clone(),
                    };
                    diesel::insert_into(audit_log::table)
                        .values(&audit)
                        .execute(conn)
                        .await?;
                    Some(alert)
                } else {
                    None
                };
                out.push(Ingested {
                    event,
                    alert,
                    created: true,
                });
            }
            // One counter update per severity per batch, not per alert.
            for severity in Severity::ALL {
                let raised = out
                    .iter()
                    .filter(|i| i.created)
                    .filter_map(|i| i.alert.as_ref())
                    .filter(|a| a.severity == *severity)
                    .count();
                if raised > 0 {
                    let raised = i32::try_from(raised).unwrap_or(i32::MAX);
                    count!(conn, AlertStatus::Open, severity, raised)?;
                }
            }
            Ok(out)
        })
    }
}

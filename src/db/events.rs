//! Events, and the ingest transaction that stores them with their alerts.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};
use diesel_async::RunQueryDsl;

use super::models::{AlertRow, EventRow, EventWithAlert, NewAudit};
use super::schema::{alerts, events};
use super::{Db, Pool};
use crate::domain::page::Page;
use crate::domain::{AlertStatus, AuditAction, Severity};
use crate::error::{Error, Result};

/// One event to store, with who sent it (for the audit entry of its alert).
#[derive(Clone, Debug)]
pub struct Ingest {
    pub event: crate::domain::event::NewEvent,
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
    ///
    /// A batch costs a handful of statements whatever its size (one insert
    /// per table, in chunks), which is what lets group commit scale.
    pub async fn ingest(&self, batch: Vec<Ingest>) -> Result<Vec<Ingested>> {
        let style = match self.pool() {
            Pool::Sqlite(_) => Placeholders::Question,
            Pool::Postgres(_) => Placeholders::Dollar,
        };
        transaction!(self, |conn| {
            let now = crate::domain::now();
            let mut out: Vec<Option<Ingested>> = vec![None; batch.len()];
            // (source, externalId) seen earlier in this batch -> its index.
            let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
            let mut repeats: Vec<(usize, usize)> = Vec::new();
            let mut fresh: Vec<usize> = Vec::with_capacity(batch.len());
            for (i, item) in batch.iter().enumerate() {
                let e = &item.event;
                if let Some(external_id) = e.external_id.as_deref() {
                    if let Some(&first) = first_of.get(&(e.source.as_str(), external_id)) {
                        repeats.push((i, first));
                        continue;
                    }
                    let earlier: Option<(EventRow, Option<AlertRow>)> = events::table
                        .left_join(alerts::table)
                        .filter(events::source.eq(&e.source))
                        .filter(events::external_id.eq(external_id))
                        .select((EventRow::as_select(), Option::<AlertRow>::as_select()))
                        .first(conn)
                        .await
                        .optional()?;
                    if let Some((event, alert)) = earlier {
                        out[i] = Some(Ingested {
                            event,
                            alert,
                            created: false,
                        });
                        continue;
                    }
                    first_of.insert((e.source.as_str(), external_id), i);
                }
                fresh.push(i);
            }

            let mut stored: Vec<EventRow> = Vec::with_capacity(fresh.len());
            for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
                let mut query = diesel::sql_query(multi_row_insert(
                    style,
                    "events (source, event_type, severity, description, created_at, external_id)",
                    6,
                    chunk.len(),
                    EVENT_COLUMNS,
                ))
                .into_boxed();
                for &i in chunk {
                    let e = &batch[i].event;
                    query = query
                        .bind::<Text, _>(&e.source)
                        .bind::<Text, _>(&e.event_type)
                        .bind::<Text, _>(e.severity.as_str())
                        .bind::<Text, _>(&e.description)
                        .bind::<Timestamp, _>(now)
                        .bind::<Nullable<Text>, _>(e.external_id.as_deref());
                }
                let mut got: Vec<EventRow> = query.load(conn).await?;
                // Ids grow in the order rows were inserted; RETURNING's own
                // order is not promised, so the ids put them back in order.
                got.sort_unstable_by_key(|e| e.id);
                stored.extend(got);
            }
            if stored.len() != fresh.len() {
                return Err(Error::internal(anyhow::anyhow!(
                    "stored {} events of {}",
                    stored.len(),
                    fresh.len()
                )));
            }

            let raising: Vec<(usize, &EventRow)> = fresh
                .iter()
                .zip(&stored)
                .filter(|(_, e)| e.severity.raises_alert())
                .map(|(&i, e)| (i, e))
                .collect();
            let mut alert_of: HashMap<i64, AlertRow> = HashMap::with_capacity(raising.len());
            for chunk in raising.chunks(ROWS_PER_STATEMENT) {
                let mut query = diesel::sql_query(multi_row_insert(
                    style,
                    "alerts (event_id, severity, status, created_at, updated_at)",
                    5,
                    chunk.len(),
                    ALERT_COLUMNS,
                ))
                .into_boxed();
                for (_, e) in chunk {
                    query = query
                        .bind::<BigInt, _>(e.id)
                        .bind::<Text, _>(e.severity.as_str())
                        .bind::<Text, _>(AlertStatus::Open.as_str())
                        .bind::<Timestamp, _>(now)
                        .bind::<Timestamp, _>(now);
                }
                let got: Vec<AlertRow> = query.load(conn).await?;
                alert_of.extend(got.into_iter().map(|a| (a.event_id, a)));
            }
            let audits: Vec<NewAudit> = raising
                .iter()
                .filter_map(|(i, e)| {
                    let alert = alert_of.get(&e.id)?;
                    Some(NewAudit {
                        at: now,
                        action: AuditAction::AlertCreated.as_str().into(),
                        actor: batch[*i].actor.clone(),
                        target_type: Some("Alert".into()),
                        target_id: Some(alert.id.to_string()),
                        detail: Some(
                            serde_json::json!({
                                "eventId": e.id.to_string(),
                                "severity": e.severity.as_str(),
                                "source": e.source,
                            })
                            .to_string(),
                        ),
                        ip: batch[*i].ip.clone(),
                    })
                })
                .collect();
            if audits.len() != raising.len() {
                return Err(Error::internal(anyhow::anyhow!("an alert was not stored")));
            }
            let linked: Vec<i64> = alert_of.keys().copied().collect();
            for chunk in linked.chunks(ROWS_PER_STATEMENT) {
                diesel::update(events::table.filter(events::id.eq_any(chunk)))
                    .set(
                        events::alert_id.eq(alerts::table
                            .filter(alerts::event_id.eq(events::id))
                            .select(alerts::id)
                            .single_value()),
                    )
                    .execute(conn)
                    .await?;
            }
            for chunk in audits.chunks(ROWS_PER_STATEMENT) {
                let mut query = diesel::sql_query(multi_row_insert(
                    style,
                    "audit_log (at, action, actor, target_type, target_id, detail, ip)",
                    7,
                    chunk.len(),
                    "",
                ))
                .into_boxed();
                for a in chunk {
                    query = query
                        .bind::<Timestamp, _>(a.at)
                        .bind::<Text, _>(&a.action)
                        .bind::<Text, _>(&a.actor)
                        .bind::<Nullable<Text>, _>(a.target_type.as_deref())
                        .bind::<Nullable<Text>, _>(a.target_id.as_deref())
                        .bind::<Nullable<Text>, _>(a.detail.as_deref())
                        .bind::<Nullable<Text>, _>(a.ip.as_deref());
                }
                query.execute(conn).await?;
            }
            // One counter update per severity per batch, not per alert.
            for severity in Severity::ALL {
                let raised = alert_of
                    .values()
                    .filter(|a| a.severity == *severity)
                    .count();
                if raised > 0 {
                    let raised = i32::try_from(raised).unwrap_or(i32::MAX);
                    count!(conn, AlertStatus::Open, severity, raised)?;
                }
            }

            for (&i, mut event) in fresh.iter().zip(stored) {
                let alert = alert_of.remove(&event.id);
                event.alert_id = alert.as_ref().map(|a| a.id);
                out[i] = Some(Ingested {
                    event,
                    alert,
                    created: true,
                });
            }
            for (i, first) in repeats {
                out[i] = out[first].clone().map(|done| Ingested {
                    created: false,
                    ..done
                });
            }
            out.into_iter()
                .map(|done| {
                    done.ok_or_else(|| Error::internal(anyhow::anyhow!("an event was not stored")))
                })
                .collect()
        })
    }
}

/// Rows per multi-row INSERT: far below SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters, with up to seven columns a row.
const ROWS_PER_STATEMENT: usize = 1_000;

const EVENT_COLUMNS: &str =
    "id, source, event_type, severity, description, created_at, external_id, alert_id";
const ALERT_COLUMNS: &str = "id, event_id, severity, status, created_at, updated_at, \
     assignee_id, acknowledged_at, resolved_at";

/// How the backend spells bind parameters. SQLite would accept `$N` too,
/// but as *named* parameters, looked up by name one by one: quadratic in a
/// statement with thousands of them.
#[derive(Clone, Copy)]
enum Placeholders {
    Dollar,
    Question,
}

/// `INSERT INTO <target> VALUES ($1, …), (…) [RETURNING <returning>]` for
/// `rows` rows of `columns` values. Diesel's own batch insert does not reach
/// SQLite through diesel-async, and one statement per row would cost a
/// thread hop per row there; this one statement serves both backends.
fn multi_row_insert(
    style: Placeholders,
    target: &str,
    columns: usize,
    rows: usize,
    returning: &str,
) -> String {
    let mut sql = String::with_capacity(40 + target.len() + rows * columns * 6);
    sql.push_str("INSERT INTO ");
    sql.push_str(target);
    sql.push_str(" VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            match style {
                Placeholders::Dollar => {
                    sql.push('$');
                    sql.push_str(&n.to_string());
                }
                Placeholders::Question => sql.push('?'),
            }
        }
        sql.push(')');
    }
    if !returning.is_empty() {
        sql.push_str(" RETURNING ");
        sql.push_str(returning);
    }
    sql
}

impl Db {
    /// The events that belong to an alert, newest first.
    pub async fn alert_events_page(
        &self,
        alert_id: i64,
        page: Page,
    ) -> Result<Vec<EventWithAlert>> {
        run!(self, |conn| {
            let query = events::table
                .left_join(alerts::table)
                .filter(events::alert_id.eq(alert_id))
                .select((EventRow::as_select(), Option::<AlertRow>::as_select()))
                .into_boxed();
            let rows: Vec<(EventRow, Option<AlertRow>)> =
                paged!(query, &page, events::id).load(conn).await?;
            Ok(rows
                .into_iter()
                .map(|(event, alert)| EventWithAlert { event, alert })
                .collect())
        })
    }

    pub async fn count_alert_events(&self, alert_id: i64) -> Result<i64> {
        run!(self, |conn| {
            Ok(events::table
                .filter(events::alert_id.eq(alert_id))
                .count()
                .get_result(conn)
                .await?)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn multi_row_insert_numbers_every_value() {
        assert_eq!(
            super::multi_row_insert(super::Placeholders::Dollar, "t (a, b)", 2, 2, "id"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING id"
        );
        assert_eq!(
            super::multi_row_insert(super::Placeholders::Question, "t (a)", 1, 2, ""),
            "INSERT INTO t (a) VALUES (?), (?)"
        );
    }
}

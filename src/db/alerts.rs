//! Alerts: reading them and moving them through their lifecycle.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AlertRow, AlertWithEvent, EventRow, NewAudit};
use super::schema::{alert_counts, alerts, audit_log, events};
use super::Db;
use crate::domain::page::Page;
use crate::domain::{alert, AlertStatus, Severity};
use crate::error::{Error, Result};

/// The filters `alerts` takes; each combination is served by an index.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlertFilter {
    pub severity: Option<Severity>,
    pub status: Option<AlertStatus>,
}

/// The outcome of a status change.
#[derive(Clone, Debug)]
pub struct StatusChange {
    pub alert: AlertWithEvent,
    /// The status before, when it changed; `None` when it already had it.
    pub from: Option<AlertStatus>,
}

impl Db {
    pub async fn alerts_page(
        &self,
        filter: AlertFilter,
        page: Page,
    ) -> Result<Vec<AlertWithEvent>> {
        run!(self, |conn| {
            let mut query = alerts::table
                .inner_join(events::table)
                .select((AlertRow::as_select(), EventRow::as_select()))
                .into_boxed();
            if let Some(s) = filter.severity {
                query = query.filter(alerts::severity.eq(s.as_str()));
            }
            if let Some(s) = filter.status {
                query = query.filter(alerts::status.eq(s.as_str()));
            }
            let rows: Vec<(AlertRow, EventRow)> =
                paged!(query, &page, alerts::id).load(conn).await?;
            Ok(rows
                .into_iter()
                .map(|(alert, event)| AlertWithEvent { alert, event })
                .collect())
        })
    }

    /// Served from the maintained counters: twelve rows at most.
    pub async fn count_alerts(&self, filter: AlertFilter) -> Result<i64> {
        run!(self, |conn| {
            let mut query = alert_counts::table.select(alert_counts::count).into_boxed();
            if let Some(s) = filter.severity {
                query = query.filter(alert_counts::severity.eq(s.as_str()));
            }
            if let Some(s) = filter.status {
                query = query.filter(alert_counts::status.eq(s.as_str()));
            }
            let counts: Vec<i64> = query.load(conn).await?;
            Ok(counts.into_iter().sum())
        })
    }

    pub async fn alert(&self, id: i64) -> Result<Option<AlertWithEvent>> {
        run!(self, |conn| {
            let row: Option<(AlertRow, EventRow)> = alerts::table
                .inner_join(events::table)
                .filter(alerts::id.eq(id))
                .select((AlertRow::as_select(), EventRow::as_select()))
                .first(conn)
                .await
                .optional()?;
            Ok(row.map(|(alert, event)| AlertWithEvent { alert, event }))
        })
    }

    /// Moves an alert to `to` if the lifecycle allows it, with its
    /// ALERT_STATUS_CHANGED entry in the same transaction. The update is
    /// conditional on the status read, so two admins racing cannot both
    /// record a move from the same state.
    pub async fn update_alert_status(
        &self,
        id: i64,
        to: AlertStatus,
        audit: NewAudit,
    ) -> Result<StatusChange> {
        transaction!(self, |conn| {
            let (current, event): (AlertRow, EventRow) = alerts::table
                .inner_join(events::table)
                .filter(alerts::id.eq(id))
                .select((AlertRow::as_select(), EventRow::as_select()))
                .first(conn)
                .await
                .optional()?
                .ok_or_else(|| Error::not_found(format!("id: no alert with id {id}")))?;
            let Some(to) = alert::transition(current.status, to)? else {
                let unchanged = StatusChange {
                    alert: AlertWithEvent {
                        alert: current,
                        event,
                    },
                    from: None,
                };
                return Ok((unchanged, None));
            };
            let now = crate::domain::now();
            let updated: Option<AlertRow> = diesel::update(
                alerts::table
                    .filter(alerts::id.eq(id))
                    .filter(alerts::status.eq(current.status.as_str())),
            )
            .set((alerts::status.eq(to.as_str()), alerts::updated_at.eq(now)))
            .returning(AlertRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            let Some(updated) = updated else {
                return Err(Error::bad_input(
                    "status: the alert changed meanwhile; read it again and retry",
                ));
            };
            let audit = NewAudit {
                at: now,
                target_type: Some("Alert".into()),
                target_id: Some(id.to_string()),
                detail: Some(
                    serde_json::json!({ "from": current.status.as_str(), "to": to.as_str() })
                        .to_string(),
                ),
                ..audit.clone()
            };
            diesel::insert_into(audit_log::table)
                .values(&audit)
                .execute(conn)
                .await?;
            count!(conn, current.status, current.severity, -1)?;
            count!(conn, to, current.severity, 1)?;
            let changed = StatusChange {
                alert: AlertWithEvent {
                    alert: updated,
                    event,
                },
                from: Some(current.status),
            };
            Ok((changed, Some(audit)))
        })
        .map(|(change, audit)| {
            audit.iter().for_each(super::audit::log);
            change
        })
    }
}

impl Db {
    /// Alert counts per (status, severity), from the maintained counters.
    pub async fn alert_counts(&self) -> Result<Vec<(AlertStatus, Severity, i64)>> {
        run!(self, |conn| {
            let rows: Vec<(String, String, i64)> = alert_counts::table
                .select((
                    alert_counts::status,
                    alert_counts::severity,
                    alert_counts::count,
                ))
                .load(conn)
                .await?;
            rows.into_iter()
                .map(|(status, severity, n)| {
                    Ok((
                        status
                            .parse()
                            .map_err(|e: String| Error::internal(anyhow::anyhow!(e)))?,
                        severity
                            .parse()
                            .map_err(|e: String| Error::internal(anyhow::anyhow!(e)))?,
                        n,
                    ))
                })
                .collect()
        })
    }
}

impl Db {
    /// The alerts with these ids, in one query (for relayed notices).
    pub async fn alerts_by_ids(&self, ids: Vec<i64>) -> Result<Vec<AlertWithEvent>> {
        run!(self, |conn| {
            let rows: Vec<(AlertRow, EventRow)> = alerts::table
                .inner_join(events::table)
                .filter(alerts::id.eq_any(&ids))
                .order(alerts::id.asc())
                .select((AlertRow::as_select(), EventRow::as_select()))
                .load(conn)
                .await?;
            Ok(rows
                .into_iter()
                .map(|(alert, event)| AlertWithEvent { alert, event })
                .collect())
        })
    }
}

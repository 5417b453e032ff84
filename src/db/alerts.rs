//! Alerts: reading them and moving them through their lifecycle.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AlertRow, AlertWithEvent, EventRow, NewAudit};
use super::schema::{alert_counts, alert_lifecycle, alerts, events};
use super::Db;
use crate::domain::page::Page;
use crate::domain::{alert, AlertStatus, Severity};
use crate::error::{Error, Result};

/// The filters `alerts` takes; each combination is served by an index.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlertFilter {
    pub severity: Option<Severity>,
    pub status: Option<AlertStatus>,
    pub assignee: Option<i64>,
    pub unassigned: bool,
}

impl AlertFilter {
    /// Whether the maintained (status, severity) counters can count it.
    fn counted_by_counters(&self) -> bool {
        self.assignee.is_none() && !self.unassigned
    }
}

/// How often one `assignAlert` re-reads an owner that another assignment
/// changed under it before giving up: each retry means another assignment
/// committed, so this bounds the work a burst of them can cause.
const MAX_ASSIGN_ATTEMPTS: usize = 32;

/// The outcome of a status change.
#[derive(Clone, Debug)]
pub struct StatusChange {
    pub alert: AlertWithEvent,
    /// The status before, when it changed; `None` when it already had it.
    pub from: Option<AlertStatus>,
}

/// Applies an alert filter to a boxed query over `alerts`.
macro_rules! filtered {
    ($query:expr, $filter:expr) => {{
        let filter: &AlertFilter = $filter;
        let mut query = $query;
        if let Some(s) = filter.severity {
            query = query.filter(alerts::severity.eq(s.as_str()));
        }
        if let Some(s) = filter.status {
            query = query.filter(alerts::status.eq(s.as_str()));
        }
        if let Some(a) = filter.assignee {
            query = query.filter(alerts::assignee_id.eq(a));
        }
        if filter.unassigned {
            query = query.filter(alerts::assignee_id.is_null());
        }
        query
    }};
}

/// Records the first time an alert reaches a status (when, and the seconds
/// since it was raised) and adds it to the all-time sums behind the means.
macro_rules! first_reached {
    ($conn:expr, $id:expr, $now:expr, $took:expr, $at:ident, $seconds:ident, $count:ident) => {
        diesel::update(alerts::table.find($id))
            .set((alerts::$at.eq($now), alerts::$seconds.eq($took)))
            .execute($conn)
            .await?;
        diesel::update(alert_lifecycle::table)
            .set((
                alert_lifecycle::$count.eq(alert_lifecycle::$count + 1i64),
                alert_lifecycle::$seconds.eq(alert_lifecycle::$seconds + $took),
            ))
            .execute($conn)
            .await?;
    };
}

/// Moves alert `$id` to `$to` inside the caller's transaction: lifecycle
/// times, counters and the audit entry included. Evaluates to
/// `Result<(StatusChange, Option<NewAudit>)>`; the audit entry is `None`
/// when the alert already had the status. `$field` names the argument in
/// errors about the alert (`id`, `ids[3]`), `$move_field` the one in a
/// refused move (`status` for a single alert, `ids[3]` in a bulk change).
macro_rules! change_status {
    ($conn:expr, $id:expr, $to:expr, $audit:expr, $field:expr, $move_field:expr) => {
        async {
            let (id, to, field, move_field): (i64, AlertStatus, &str, &str) =
                ($id, $to, $field, $move_field);
            let (current, event): (AlertRow, EventRow) = alerts::table
                .inner_join(events::table)
                .filter(alerts::id.eq(id))
                .select((AlertRow::as_select(), EventRow::as_select()))
                .first($conn)
                .await
                .optional()?
                .ok_or_else(|| Error::not_found(format!("{field}: no alert with id {id}")))?;
            let to = match alert::transition(current.status, to) {
                Ok(Some(to)) => to,
                Ok(None) => {
                    let unchanged = StatusChange {
                        alert: AlertWithEvent { alert: current, event },
                        from: None,
                    };
                    return Ok((unchanged, None));
                }
                Err(rule) => return Err(Error::bad_input(format!("{move_field}: {rule}"))),
            };
            let now = crate::domain::now();
            let updated: Option<AlertRow> = diesel::update(
                alerts::table
                    .filter(alerts::id.eq(id))
                    .filter(alerts::status.eq(current.status.as_str())),
            )
            .set((alerts::status.eq(to.as_str()), alerts::updated_at.eq(now)))
            .returning(AlertRow::as_returning())
            .get_result($conn)
            .await
            .optional()?;
            let Some(mut updated) = updated else {
                return Err(Error::bad_input(format!(
                    "{field}: the alert changed meanwhile; read it again and retry"
                )));
            };
            let took = (now - current.created_at).num_milliseconds() as f64 / 1000.0;
            if to == AlertStatus::Acknowledged && current.acknowledged_at.is_none() {
                first_reached!($conn, id, now, took, acknowledged_at, seconds_to_acknowledge, acknowledged);
                updated.acknowledged_at = Some(now);
            }
            if to == AlertStatus::Resolved && current.resolved_at.is_none() {
                first_reached!($conn, id, now, took, resolved_at, seconds_to_resolve, resolved);
                updated.resolved_at = Some(now);
            }
            let audit = NewAudit {
                at: now,
                target_type: Some("Alert".into()),
                target_id: Some(id.to_string()),
                detail: Some(
                    serde_json::json!({ "from": current.status.as_str(), "to": to.as_str() })
                        .to_string(),
                ),
                ..$audit.clone()
            };
            append_audit!($conn, &audit)?;
            count!($conn, current.status, current.severity, -1)?;
            count!($conn, to, current.severity, 1)?;
            let changed = StatusChange {
                alert: AlertWithEvent { alert: updated, event },
                from: Some(current.status),
            };
            Ok::<_, Error>((changed, Some(audit)))
        }
    };
}

impl Db {
    pub async fn alerts_page(
        &self,
        filter: AlertFilter,
        page: Page,
    ) -> Result<Vec<AlertWithEvent>> {
        let rows = load!(self, (AlertRow, EventRow), || {
            let query = alerts::table
                .inner_join(events::table)
                .select((AlertRow::as_select(), EventRow::as_select()))
                .into_boxed();
            let query = filtered!(query, &filter);
            paged!(query, &page, alerts::id)
        });
        Ok(rows
            .into_iter()
            .map(|(alert, event)| AlertWithEvent { alert, event })
            .collect())
    }

    /// A page by offset, for the old REST API's numbered pages (its clients
    /// ask for page N; the cost grows with N, as it did there).
    pub async fn alerts_offset_page(
        &self,
        filter: AlertFilter,
        newest_first: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AlertWithEvent>> {
        run!(self, |conn| {
            let query = alerts::table
                .inner_join(events::table)
                .select((AlertRow::as_select(), EventRow::as_select()))
                .into_boxed();
            let query = filtered!(query, &filter);
            let query = if newest_first {
                query.order(alerts::id.desc())
            } else {
                query.order(alerts::id.asc())
            };
            let rows: Vec<(AlertRow, EventRow)> =
                query.offset(offset).limit(limit).load(conn).await?;
            Ok(rows
                .into_iter()
                .map(|(alert, event)| AlertWithEvent { alert, event })
                .collect())
        })
    }

    /// From the maintained counters (twelve rows at most) when the filter
    /// is by status and severity only; otherwise an index count.
    pub async fn count_alerts(&self, filter: AlertFilter) -> Result<i64> {
        if !filter.counted_by_counters() {
            return run!(self, |conn| {
                let query = filtered!(alerts::table.into_boxed(), &filter);
                Ok(query.count().get_result(conn).await?)
            });
        }
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
            change_status!(conn, id, to, audit, "id", "status").await
        })
        .map(super::audit::logged_if)
    }

    /// Moves every alert, or none: the first that cannot move fails them all.
    pub async fn update_alert_statuses(
        &self,
        ids: Vec<i64>,
        to: AlertStatus,
        audit: NewAudit,
    ) -> Result<Vec<StatusChange>> {
        transaction!(self, |conn| {
            let mut changes = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                let field = format!("ids[{i}]");
                changes.push(change_status!(conn, *id, to, audit, &field, &field).await?);
            }
            Ok(changes)
        })
        .map(|changes| changes.into_iter().map(super::audit::logged_if).collect())
    }

    /// Sets or clears the alert's owner, with its ALERT_ASSIGNED entry.
    /// `allowed` sees the current owner and may refuse the change.
    ///
    /// The update is conditional on the owner read, so the entry's `from` is
    /// the owner the change replaced even when assignments race; one that
    /// lost the race reads the new owner and is decided again.
    pub async fn assign_alert(
        &self,
        id: i64,
        assignee: Option<i64>,
        allowed: impl Fn(Option<i64>) -> Result<()> + Send + Sync + 'static,
        audit: NewAudit,
    ) -> Result<AlertWithEvent> {
        transaction!(self, |conn| {
            for _ in 0..MAX_ASSIGN_ATTEMPTS {
                let (current, event): (AlertRow, EventRow) = alerts::table
                    .inner_join(events::table)
                    .filter(alerts::id.eq(id))
                    .select((AlertRow::as_select(), EventRow::as_select()))
                    .first(conn)
                    .await
                    .optional()?
                    .ok_or_else(|| Error::not_found(format!("id: no alert with id {id}")))?;
                allowed(current.assignee_id)?;
                if current.assignee_id == assignee {
                    return Ok((
                        AlertWithEvent {
                            alert: current,
                            event,
                        },
                        None,
                    ));
                }
                let now = crate::domain::now();
                let update = diesel::update(alerts::table.filter(alerts::id.eq(id)))
                    .set((alerts::assignee_id.eq(assignee), alerts::updated_at.eq(now)))
                    .into_boxed();
                let update = match current.assignee_id {
                    Some(owner) => update.filter(alerts::assignee_id.eq(owner)),
                    None => update.filter(alerts::assignee_id.is_null()),
                };
                let updated: Option<AlertRow> = update
                    .returning(AlertRow::as_returning())
                    .get_result(conn)
                    .await
                    .optional()?;
                let Some(updated) = updated else {
                    continue;
                };
                let audit = NewAudit {
                    at: now,
                    target_type: Some("Alert".into()),
                    target_id: Some(id.to_string()),
                    detail: Some(
                        serde_json::json!({
                            "from": current.assignee_id.map(|a| a.to_string()),
                            "to": assignee.map(|a| a.to_string()),
                        })
                        .to_string(),
                    ),
                    ..audit.clone()
                };
                append_audit!(conn, &audit)?;
                return Ok((
                    AlertWithEvent {
                        alert: updated,
                        event,
                    },
                    Some(audit),
                ));
            }
            Err(Error::bad_input(
                "id: the alert's owner kept changing meanwhile; read it again and retry",
            ))
        })
        .map(super::audit::logged_if)
    }

    /// Mean seconds to acknowledge and to resolve: all time from the
    /// maintained sums, or for alerts created since `since` (an index range).
    pub async fn lifecycle_means(
        &self,
        since: Option<chrono::NaiveDateTime>,
    ) -> Result<(Option<f64>, Option<f64>)> {
        run!(self, |conn| {
            match since {
                None => {
                    let (acked, ack_sum, resolved, resolve_sum): (i64, f64, i64, f64) =
                        alert_lifecycle::table
                            .select((
                                alert_lifecycle::acknowledged,
                                alert_lifecycle::seconds_to_acknowledge,
                                alert_lifecycle::resolved,
                                alert_lifecycle::seconds_to_resolve,
                            ))
                            .first(conn)
                            .await?;
                    let mean = |n: i64, sum: f64| (n > 0).then(|| sum / n as f64);
                    Ok((mean(acked, ack_sum), mean(resolved, resolve_sum)))
                }
                Some(since) => {
                    let means: (Option<f64>, Option<f64>) = alerts::table
                        .filter(alerts::created_at.ge(since))
                        .select((
                            diesel::dsl::avg(alerts::seconds_to_acknowledge),
                            diesel::dsl::avg(alerts::seconds_to_resolve),
                        ))
                        .first(conn)
                        .await?;
                    Ok(means)
                }
            }
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

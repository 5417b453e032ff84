//! Alerts: reading them and moving them through their lifecycle.

use chrono::NaiveDateTime;
use diesel::dsl;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::{BigInt, Double, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::conn::Loadable;
use super::models::{columns, AlertRow, AlertWithEvent, Cols, EventRow, NewAudit};
use super::schema::{alert_counts, alert_lifecycle, alerts, alerts_fts, events};
use super::sql::{
    fts5_match, keyset, timed_keyset, Hint, List, Maybe, Sort, Statement, Walk, Words,
};
use super::{audit, outbox, Conn, Db};
use crate::domain::alert::{AlertFilter, StatusChange};
use crate::domain::filter::Search;
use crate::domain::page::Page;
use crate::domain::webhook::Change;
use crate::domain::{alert, AlertStatus, Severity, WebhookTrigger};
use crate::error::{Error, Result};

impl AlertFilter {
    /// Whether the maintained (status, severity) counters can count it.
    fn counted_by_counters(&self) -> bool {
        self.assignee.is_none() && !self.unassigned && self.narrowing.is_empty()
    }
}

/// How often one `assignAlert` re-reads an owner that another assignment
/// changed under it before giving up: each retry means another assignment
/// committed, so this bounds the work a burst of them can cause.
const MAX_ASSIGN_ATTEMPTS: usize = 32;

/// The alerts a filter keeps: one condition per filter, each always true
/// when the filter is not given.
type Matching = dsl::And<
    dsl::And<
        dsl::And<
            dsl::And<
                dsl::And<
                    dsl::And<
                        dsl::And<
                            dsl::And<
                                Maybe<dsl::Eq<Hint<alerts::severity>, String>>,
                                Maybe<dsl::Eq<Hint<alerts::status>, String>>,
                            >,
                            Maybe<dsl::Eq<Hint<alerts::assignee_id>, i64>>,
                        >,
                        Maybe<dsl::IsNull<Hint<alerts::assignee_id>>>,
                    >,
                    Maybe<dsl::Eq<Hint<alerts::source>, String>>,
                >,
                Maybe<dsl::Eq<Hint<alerts::event_type>, String>>,
            >,
            Maybe<dsl::GtEq<Hint<alerts::created_at>, NaiveDateTime>>,
        >,
        Maybe<dsl::LtEq<Hint<alerts::created_at>, NaiveDateTime>>,
    >,
    Maybe<Words>,
>;

/// `walk`: which index the page walks, which the conditions then leave
/// to it (see `sql::Hint`): on a search page (SQLite's), every condition
/// is only checked, and the search is the driving FTS5 index rather than a
/// condition; on a time-ordered page, the (created_at, id) indexes (and
/// (source, created_at, id)) walk.
fn matching(filter: &AlertFilter, walk: Walk) -> Matching {
    let n = &filter.narrowing;
    Maybe(filter.severity.map(|s| {
        Hint {
            column: alerts::severity,
            checked: walk != Walk::Id,
        }
        .eq(s.as_str().to_owned())
    }))
    .and(Maybe(filter.status.map(|s| {
        Hint {
            column: alerts::status,
            checked: walk != Walk::Id,
        }
        .eq(s.as_str().to_owned())
    })))
    .and(Maybe(filter.assignee.map(|a| {
        Hint {
            column: alerts::assignee_id,
            checked: walk != Walk::Id,
        }
        .eq(a)
    })))
    .and(Maybe(filter.unassigned.then(|| {
        Hint {
            column: alerts::assignee_id,
            checked: walk != Walk::Id,
        }
        .is_null()
    })))
    .and(Maybe(n.source.clone().map(|s| {
        Hint {
            column: alerts::source,
            checked: walk == Walk::Words,
        }
        .eq(s)
    })))
    .and(Maybe(n.event_type.clone().map(|t| {
        Hint {
            column: alerts::event_type,
            checked: walk != Walk::Id,
        }
        .eq(t)
    })))
    .and(Maybe(n.since.map(|t| {
        Hint {
            column: alerts::created_at,
            checked: walk == Walk::Words,
        }
        .ge(t)
    })))
    .and(Maybe(n.until.map(|t| {
        Hint {
            column: alerts::created_at,
            checked: walk == Walk::Words,
        }
        .le(t)
    })))
    .and(Maybe(
        n.search
            .as_ref()
            .filter(|_| walk != Walk::Words)
            .map(|s| Words::new(List::Alerts, s)),
    ))
}

/// The creation time of the alert a cursor names, which a page in
/// (created_at, id) order starts from; `field` names the cursor's argument.
async fn cursor_time(
    conn: &mut Conn<'_>,
    id: Option<i64>,
    field: &str,
) -> Result<Option<(NaiveDateTime, i64)>> {
    let Some(id) = id else { return Ok(None) };
    let at: Option<NaiveDateTime> = conn
        .first(alerts::table.find(id).select(alerts::created_at))
        .await
        .optional()?;
    match at {
        Some(at) => Ok(Some((at, id))),
        None => Err(Error::invalid(
            field,
            "names no alert (any more); start again from the first page",
        )),
    }
}

/// A page's rows.
type Rows = (AlertRow, EventRow);

/// The page in id order (see `Db::alerts_page`).
fn by_id(
    filter: &AlertFilter,
    page: &Page,
) -> impl Loadable<'static, Rows> + QueryFragment<Sqlite> {
    let k = keyset(page, alerts::id);
    with_events()
        .filter(matching(filter, Walk::Id))
        .filter(k.range)
        .order(k.order)
        .limit(k.limit)
}

/// The page in (created_at, id) order, its cursors with their rows' times.
fn by_time(
    filter: &AlertFilter,
    page: &Page,
    below: Option<(NaiveDateTime, i64)>,
    above: Option<(NaiveDateTime, i64)>,
) -> impl Loadable<'static, Rows> + QueryFragment<Sqlite> {
    let n = &filter.narrowing;
    let k = timed_keyset(
        page,
        List::Alerts,
        (alerts::created_at, alerts::id),
        below,
        above,
        (n.since, n.until),
    );
    let mut bounded = filter.clone();
    bounded.narrowing.since = k.since;
    bounded.narrowing.until = k.until;
    with_events()
        .filter(matching(&bounded, Walk::Time))
        .filter(k.range)
        .order(k.order)
        .limit(k.limit)
}

/// SQLite's search page, driven by the alerts' FTS5 index in id order.
fn by_words(
    filter: &AlertFilter,
    search: &Search,
    page: &Page,
) -> impl Loadable<'static, Rows> + QueryFragment<Sqlite> {
    let k = keyset(page, alerts_fts::rowid);
    alerts_fts::table
        .inner_join(alerts::table.on(alerts::id.eq(alerts_fts::rowid)))
        .inner_join(events::table.on(events::id.eq(alerts::event_id)))
        .select((columns::<AlertRow>(), columns::<EventRow>()))
        .filter(fts5_match(List::Alerts, search))
        .filter(matching(filter, Walk::Words))
        .filter(k.range)
        .order(k.order)
        .limit(k.limit)
}

/// Alerts with the events that raised them.
fn with_events(
) -> dsl::Select<dsl::InnerJoin<alerts::table, events::table>, (Cols<AlertRow>, Cols<EventRow>)> {
    alerts::table
        .inner_join(events::table)
        .select((columns::<AlertRow>(), columns::<EventRow>()))
}

fn paired(rows: Vec<(AlertRow, EventRow)>) -> Vec<AlertWithEvent> {
    rows.into_iter()
        .map(|(alert, event)| AlertWithEvent { alert, event })
        .collect()
}

/// One alert with its raising event.
pub(super) async fn find(conn: &mut Conn<'_>, id: i64) -> Result<Option<AlertWithEvent>> {
    let row: Option<(AlertRow, EventRow)> = conn
        .first(with_events().filter(alerts::id.eq(id)).limit(1))
        .await
        .optional()?;
    Ok(row.map(|(alert, event)| AlertWithEvent { alert, event }))
}

/// Adds `delta` to the alert counter of (`status`, `severity`) inside the
/// caller's transaction. A `Statement`, so that connections keep it
/// prepared (Diesel re-prepares every `UPDATE` it builds).
pub(super) async fn count(
    conn: &mut Conn<'_>,
    status: AlertStatus,
    severity: Severity,
    delta: i64,
) -> Result<()> {
    let query = Statement::new("UPDATE alert_counts SET count = count + ")
        .bind::<BigInt, _>(delta)
        .sql(" WHERE status = ")
        .bind::<Text, _>(status.as_str())
        .sql(" AND severity = ")
        .bind::<Text, _>(severity.as_str());
    conn.execute(query).await?;
    Ok(())
}

/// A status an alert reaches for the first time, which its lifecycle
/// times and the all-time sums behind the means record.
#[derive(Clone, Copy)]
enum Milestone {
    Acknowledged,
    Resolved,
}

impl Milestone {
    /// The alert's columns (when, seconds since raised) and the sums'
    /// columns (how many, total seconds).
    fn columns(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Acknowledged => ("acknowledged_at", "seconds_to_acknowledge", "acknowledged"),
            Self::Resolved => ("resolved_at", "seconds_to_resolve", "resolved"),
        }
    }
}

/// Records the first time an alert reaches a milestone and adds it to the
/// all-time sums.
async fn first_reached(
    conn: &mut Conn<'_>,
    id: i64,
    now: chrono::NaiveDateTime,
    took: f64,
    milestone: Milestone,
) -> Result<()> {
    let (at, seconds, reached) = milestone.columns();
    let alert = Statement::new(format!("UPDATE alerts SET {at} = "))
        .bind::<Timestamp, _>(now)
        .sql(format!(", {seconds} = "))
        .bind::<Double, _>(took)
        .sql(" WHERE id = ")
        .bind::<BigInt, _>(id);
    conn.execute(alert).await?;
    let sums = Statement::new(format!(
        "UPDATE alert_lifecycle SET {reached} = {reached} + 1, {seconds} = {seconds} + "
    ))
    .bind::<Double, _>(took);
    conn.execute(sums).await?;
    Ok(())
}

/// Moves alert `id` to `to` inside the caller's transaction: lifecycle
/// times, counters and the audit entry included. The audit entry is `None`
/// when the alert already had the status. `field` names the argument in
/// errors about the alert (`id`, `ids[3]`), `move_field` the one in a
/// refused move (`status` for a single alert, `ids[3]` in a bulk change).
/// The update is conditional on the status read, so two admins racing
/// cannot both record a move from the same state.
async fn change_status(
    conn: &mut Conn<'_>,
    id: i64,
    to: AlertStatus,
    audit: &NewAudit,
    field: &str,
    move_field: &str,
) -> Result<(StatusChange, Option<NewAudit>)> {
    let AlertWithEvent {
        alert: current,
        event,
    } = find(conn, id)
        .await?
        .ok_or_else(|| Error::missing(field, format!("no alert with id {id}")))?;
    let to = match alert::transition(current.status, to) {
        Ok(Some(to)) => to,
        Ok(None) => {
            let unchanged = StatusChange {
                alert: AlertWithEvent {
                    alert: current,
                    event,
                },
                from: None,
            };
            return Ok((unchanged, None));
        }
        Err(rule) => return Err(Error::invalid(move_field, rule)),
    };
    let now = crate::domain::now();
    let updated: Option<AlertRow> = conn
        .first(
            diesel::update(
                alerts::table
                    .filter(alerts::id.eq(id))
                    .filter(alerts::status.eq(current.status.as_str().to_owned())),
            )
            .set((
                alerts::status.eq(to.as_str().to_owned()),
                alerts::updated_at.eq(now),
            ))
            .returning(columns::<AlertRow>()),
        )
        .await
        .optional()?;
    let Some(mut updated) = updated else {
        return Err(Error::invalid(
            field,
            "the alert changed meanwhile; read it again and retry",
        ));
    };
    let took = (now - current.created_at).num_milliseconds() as f64 / 1000.0;
    if to == AlertStatus::Acknowledged && current.acknowledged_at.is_none() {
        first_reached(conn, id, now, took, Milestone::Acknowledged).await?;
        updated.acknowledged_at = Some(now);
    }
    if to == AlertStatus::Resolved && current.resolved_at.is_none() {
        first_reached(conn, id, now, took, Milestone::Resolved).await?;
        updated.resolved_at = Some(now);
    }
    let entry = NewAudit {
        at: now,
        target_type: Some("Alert".into()),
        target_id: Some(id.to_string()),
        detail: Some(
            serde_json::json!({ "from": current.status.as_str(), "to": to.as_str() }).to_string(),
        ),
        ..audit.clone()
    };
    audit::append(conn, &entry).await?;
    count(conn, current.status, current.severity, -1).await?;
    count(conn, to, current.severity, 1).await?;
    let changed = StatusChange {
        alert: AlertWithEvent {
            alert: updated,
            event,
        },
        from: Some(current.status),
    };
    Ok((changed, Some(entry)))
}

/// One attempt at changing an alert's owner from `current` to `assignee`:
/// conditional on the owner read, so `None` means another assignment
/// committed in between.
async fn set_owner(
    conn: &mut Conn<'_>,
    id: i64,
    current: Option<i64>,
    assignee: Option<i64>,
    now: chrono::NaiveDateTime,
) -> Result<Option<AlertRow>> {
    let target = alerts::table
        .filter(alerts::id.eq(id))
        .filter(Maybe(current.map(|owner| alerts::assignee_id.eq(owner))))
        .filter(Maybe(
            current.is_none().then(|| alerts::assignee_id.is_null()),
        ));
    let update = diesel::update(target)
        .set((alerts::assignee_id.eq(assignee), alerts::updated_at.eq(now)))
        .returning(columns::<AlertRow>());
    Ok(conn.first(update).await.optional()?)
}

/// The outbox rows of status changes, in their transaction: one
/// ALERT_STATUS_CHANGED per alert that moved (none for an alert that
/// already had the status). Reads nothing more when no endpoint wants it.
async fn report_statuses(conn: &mut Conn<'_>, changes: &[&StatusChange]) -> Result<()> {
    let moved: Vec<(&StatusChange, AlertStatus)> =
        changes.iter().filter_map(|c| Some((*c, c.from?))).collect();
    if moved.is_empty() {
        return Ok(());
    }
    let hooks = outbox::enabled(conn).await?;
    if !hooks.any_wants(WebhookTrigger::AlertStatusChanged) {
        return Ok(());
    }
    let owners: Vec<i64> = moved
        .iter()
        .filter_map(|(c, _)| c.alert.alert.assignee_id)
        .collect();
    let names = outbox::usernames(conn, &owners).await?;
    let items: Vec<outbox::Item<'_>> = moved
        .iter()
        .map(|(c, from)| outbox::Item {
            change: Change::StatusChanged {
                from: *from,
                to: c.alert.alert.status,
            },
            alert: &c.alert,
            assignee: c
                .alert
                .alert
                .assignee_id
                .and_then(|id| names.get(&id))
                .map(String::as_str),
        })
        .collect();
    outbox::enqueue_to(conn, &hooks, &items, crate::domain::now()).await?;
    Ok(())
}

/// The outbox rows of a new owner, in its transaction, with the old and
/// new owners' usernames as they are at the change.
async fn report_assignment(
    conn: &mut Conn<'_>,
    alert: &AlertWithEvent,
    from: Option<i64>,
) -> Result<()> {
    let hooks = outbox::enabled(conn).await?;
    if !hooks.any_wants(WebhookTrigger::AlertAssigned) {
        return Ok(());
    }
    let to = alert.alert.assignee_id;
    let ids: Vec<i64> = from.into_iter().chain(to).collect();
    let names = outbox::usernames(conn, &ids).await?;
    let name = |id: Option<i64>| id.and_then(|id| names.get(&id)).cloned();
    let item = outbox::Item {
        change: Change::Assigned {
            from: name(from),
            to: name(to),
        },
        alert,
        assignee: to.and_then(|id| names.get(&id)).map(String::as_str),
    };
    outbox::enqueue_to(conn, &hooks, &[item], crate::domain::now()).await?;
    Ok(())
}

/// The outbox rows of a comment on alert `id`, in its transaction.
pub(super) async fn report_comment(
    conn: &mut Conn<'_>,
    id: i64,
    author: &str,
    body: &str,
) -> Result<()> {
    let hooks = outbox::enabled(conn).await?;
    if !hooks.any_wants(WebhookTrigger::AlertCommented) {
        return Ok(());
    }
    let Some(alert) = find(conn, id).await? else {
        return Ok(());
    };
    let owners: Vec<i64> = alert.alert.assignee_id.into_iter().collect();
    let names = outbox::usernames(conn, &owners).await?;
    let item = outbox::Item {
        change: Change::Commented {
            author: author.to_owned(),
            body: body.to_owned(),
        },
        alert: &alert,
        assignee: alert
            .alert
            .assignee_id
            .and_then(|id| names.get(&id))
            .map(String::as_str),
    };
    outbox::enqueue_to(conn, &hooks, &[item], crate::domain::now()).await?;
    Ok(())
}

impl Db {
    /// One keyset page in one of three shapes, each a single index walk
    /// that stops at the page size: by id (the usual list), by
    /// (created_at, id) when cut to a time range (see `sql::Around`), and on
    /// SQLite, a search driven by its FTS5 index in id order (see
    /// `sql::Fts5Match`), which a search with a time range keeps. Searches run as reads that may take a while:
    /// how far a walk goes before the page fills depends on the words.
    pub async fn alerts_page(
        &self,
        filter: AlertFilter,
        page: Page,
    ) -> Result<Vec<AlertWithEvent>> {
        let searching = filter.narrowing.search.is_some();
        if searching {
            self.index_alert_words().await?;
        }
        let work = async move |mut conn: Conn<'_>| {
            let n = &filter.narrowing;
            let rows = if let (Some(search), false) = (&n.search, conn.is_postgres()) {
                conn.load(by_words(&filter, search, &page)).await?
            } else if n.by_time() {
                let below = cursor_time(&mut conn, page.below, "after").await?;
                let above = cursor_time(&mut conn, page.above, "before").await?;
                conn.load(by_time(&filter, &page, below, above)).await?
            } else {
                conn.load(by_id(&filter, &page)).await?
            };
            Ok(paired(rows))
        };
        if searching {
            self.read(work).await
        } else {
            self.read_page(work).await
        }
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
        self.read(async move |mut conn| {
            let query = with_events()
                .filter(matching(&filter, Walk::Id))
                .order(Sort {
                    column: alerts::id,
                    descending: newest_first,
                })
                .offset(offset)
                .limit(limit);
            Ok(paired(conn.load(query).await?))
        })
        .await
    }

    /// From the maintained counters (twelve rows at most) when the filter
    /// is by status and severity only; otherwise an index count.
    pub async fn count_alerts(&self, filter: AlertFilter) -> Result<i64> {
        if filter.narrowing.search.is_some() {
            self.index_alert_words().await?;
        }
        self.read(async move |mut conn| {
            if !filter.counted_by_counters() {
                let query = alerts::table.filter(matching(&filter, Walk::Id)).count();
                return Ok(conn.first(query).await?);
            }
            let query = alert_counts::table
                .select(alert_counts::count)
                .filter(Maybe(
                    filter
                        .severity
                        .map(|s| alert_counts::severity.eq(s.as_str().to_owned())),
                ))
                .filter(Maybe(
                    filter
                        .status
                        .map(|s| alert_counts::status.eq(s.as_str().to_owned())),
                ));
            let counts: Vec<i64> = conn.load(query).await?;
            Ok(counts.into_iter().sum())
        })
        .await
    }

    pub async fn alert(&self, id: i64) -> Result<Option<AlertWithEvent>> {
        self.read(async move |mut conn| find(&mut conn, id).await)
            .await
    }

    /// Moves an alert to `to` if the lifecycle allows it, with its
    /// ALERT_STATUS_CHANGED entry in the same transaction.
    pub async fn update_alert_status(
        &self,
        id: i64,
        to: AlertStatus,
        entry: NewAudit,
    ) -> Result<StatusChange> {
        self.transaction(async move |mut conn| {
            let (change, entry) = change_status(&mut conn, id, to, &entry, "id", "status").await?;
            report_statuses(&mut conn, &[&change]).await?;
            Ok((change, entry))
        })
        .await
        .map(audit::logged_if)
    }

    /// Moves every alert, or none: the first that cannot move fails them all.
    pub async fn update_alert_statuses(
        &self,
        ids: Vec<i64>,
        to: AlertStatus,
        entry: NewAudit,
    ) -> Result<Vec<StatusChange>> {
        self.transaction(async move |mut conn| {
            let mut changes = Vec::with_capacity(ids.len());
            for (i, id) in ids.iter().enumerate() {
                let field = format!("ids[{i}]");
                changes.push(change_status(&mut conn, *id, to, &entry, &field, &field).await?);
            }
            let moved: Vec<&StatusChange> = changes.iter().map(|(c, _)| c).collect();
            report_statuses(&mut conn, &moved).await?;
            Ok(changes)
        })
        .await
        .map(|changes| changes.into_iter().map(audit::logged_if).collect())
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
        entry: NewAudit,
    ) -> Result<(AlertWithEvent, bool)> {
        self.transaction(async move |mut conn| {
            for _ in 0..MAX_ASSIGN_ATTEMPTS {
                let AlertWithEvent {
                    alert: current,
                    event,
                } = find(&mut conn, id)
                    .await?
                    .ok_or_else(|| Error::missing("id", format!("no alert with id {id}")))?;
                allowed(current.assignee_id)?;
                if current.assignee_id == assignee {
                    let unchanged = AlertWithEvent {
                        alert: current,
                        event,
                    };
                    return Ok((unchanged, None));
                }
                let now = crate::domain::now();
                let Some(updated) =
                    set_owner(&mut conn, id, current.assignee_id, assignee, now).await?
                else {
                    continue;
                };
                let entry = NewAudit {
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
                    ..entry.clone()
                };
                audit::append(&mut conn, &entry).await?;
                let changed = AlertWithEvent {
                    alert: updated,
                    event,
                };
                report_assignment(&mut conn, &changed, current.assignee_id).await?;
                return Ok((changed, Some(entry)));
            }
            Err(Error::invalid(
                "id",
                "the alert's owner kept changing meanwhile; read it again and retry",
            ))
        })
        .await
        .map(|(alert, entry)| {
            let changed = entry.is_some();
            (audit::logged_if((alert, entry)), changed)
        })
    }

    /// Mean seconds to acknowledge and to resolve: all time from the
    /// maintained sums, or for alerts created since `since` (an index range).
    pub async fn lifecycle_means(
        &self,
        since: Option<chrono::NaiveDateTime>,
    ) -> Result<(Option<f64>, Option<f64>)> {
        self.read(async move |mut conn| {
            let Some(since) = since else {
                let sums = alert_lifecycle::table.select((
                    alert_lifecycle::acknowledged,
                    alert_lifecycle::seconds_to_acknowledge,
                    alert_lifecycle::resolved,
                    alert_lifecycle::seconds_to_resolve,
                ));
                let (acked, ack_sum, resolved, resolve_sum): (i64, f64, i64, f64) =
                    conn.first(sums.limit(1)).await?;
                let mean = |n: i64, sum: f64| (n > 0).then(|| sum / n as f64);
                return Ok((mean(acked, ack_sum), mean(resolved, resolve_sum)));
            };
            let means = alerts::table.filter(alerts::created_at.ge(since)).select((
                dsl::avg(alerts::seconds_to_acknowledge),
                dsl::avg(alerts::seconds_to_resolve),
            ));
            Ok(conn.first(means).await?)
        })
        .await
    }

    /// Alert counts per (status, severity): all time from the maintained
    /// counters, or counted over the alerts created since `since` (a range
    /// of the creation-time index).
    pub async fn alert_counts(
        &self,
        since: Option<chrono::NaiveDateTime>,
    ) -> Result<Vec<(AlertStatus, Severity, i64)>> {
        self.read(async move |mut conn| {
            if let Some(since) = since {
                let counted = alerts::table
                    .filter(alerts::created_at.ge(since))
                    .group_by((alerts::status, alerts::severity))
                    .select((alerts::status, alerts::severity, dsl::count_star()));
                return Ok(conn.load(counted).await?);
            }
            let rows: Vec<(AlertStatus, Severity, i64)> = conn
                .load(alert_counts::table.select((
                    alert_counts::status,
                    alert_counts::severity,
                    alert_counts::count,
                )))
                .await?;
            Ok(rows)
        })
        .await
    }

    /// The alerts with these ids, in one query (for relayed notices).
    pub async fn alerts_by_ids(&self, ids: Vec<i64>) -> Result<Vec<AlertWithEvent>> {
        self.read(async move |mut conn| {
            let query = with_events()
                .filter(alerts::id.eq_any(ids))
                .order(alerts::id.asc());
            Ok(paired(conn.load(query).await?))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::event_pages::samples::{at, narrowing, pages};
    use super::super::event_pages::sqlite_plan;
    use super::{by_id, by_time, by_words};
    use crate::domain::alert::AlertFilter;
    use crate::domain::filter::{Narrowing, Search};
    use crate::domain::Severity;

    /// Every page shape is one index walk in the page's order: no sort of
    /// the matching rows, whichever cursor it starts from.
    #[test]
    fn alert_pages_walk_an_index_in_their_order() {
        for page in pages() {
            let cursor = |id: Option<i64>| id.map(|id| (at(1), id));
            let f = AlertFilter {
                narrowing: narrowing(Some("fw-1"), false, None),
                ..Default::default()
            };
            assert!(f.narrowing.by_time());
            let plan = sqlite_plan(&by_time(&f, &page, cursor(page.below), cursor(page.above)));
            assert!(plan.contains("alerts_source_created_at_id"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");

            let f = AlertFilter {
                narrowing: Narrowing::parse(None, Some("Malware"), None, None, None).unwrap(),
                ..Default::default()
            };
            assert!(!f.narrowing.by_time());
            let plan = sqlite_plan(&by_id(&f, &page));
            assert!(plan.contains("PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");

            let f = AlertFilter {
                narrowing: narrowing(Some("fw-1"), true, None),
                ..Default::default()
            };
            let plan = sqlite_plan(&by_time(&f, &page, cursor(page.below), cursor(page.above)));
            assert!(plan.contains("alerts_source_created_at_id"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            let f = AlertFilter {
                severity: Some(Severity::High),
                narrowing: narrowing(None, true, None),
                ..Default::default()
            };
            let plan = sqlite_plan(&by_time(&f, &page, cursor(page.below), cursor(page.above)));
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");

            let search = Search::parse("evil \"NEAR(").unwrap();
            let f = AlertFilter {
                narrowing: narrowing(Some("fw-1"), true, Some("evil")),
                ..Default::default()
            };
            let plan = sqlite_plan(&by_words(&f, &search, &page));
            assert!(plan.starts_with("SCAN alerts_fts VIRTUAL TABLE"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}

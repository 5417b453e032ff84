//! Retention's deletes (`THREATWATCH_RETENTION`), in small transactions.
//!
//! Every step is one short write transaction with a bounded number of
//! rows, so ingest, which shares the one SQLite writer, waits at most one
//! step. Each step keeps what the service reports exact as rows go: the
//! alert counters, the all-time lifecycle sums behind the mean times, and
//! on SQLite the queue of ids whose words the word indexer drops (a
//! trigger on `events` and `alerts`; `db::words`). Every delete re-checks its
//! condition and counts only the rows it removed, so instances that purge
//! the same PostgreSQL database at once never count a row twice.
//!
//! The newest event and the newest alert are never deleted, however old:
//! SQLite gives a new row the largest id plus one, so deleting the largest
//! would hand its id (and those below it) out again, to rows that the word
//! index, cursors, webhook deliveries and audit entries would mistake for
//! the deleted ones.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sqlite::Sqlite;

use super::conn::Loadable;
use super::schema::{alert_comments, alert_lifecycle, alerts, events};
use super::sql::ResolvedAlert;
use super::{Conn, Db, Held};
use crate::domain::{AlertStatus, Severity};
use crate::error::{Error, Result};

/// Alerts removed per step, with their comments and raising events.
const ALERTS_PER_STEP: i64 = 100;

/// Events removed per step: each deletes its row and its index entries
/// and, on SQLite, queues its id for the word indexer, which makes a
/// delete dearer than an insert.
pub const EVENTS_PER_STEP: i64 = 500;

/// Old events a step reads to find unlinked ones: events that belong to
/// an alert still kept are passed over, and this bounds how many a step
/// may pass over before it yields.
const EVENTS_READ_PER_STEP: i64 = 5_000;

/// What a pass (or a step) removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub alerts: i64,
    pub events: i64,
    pub comments: i64,
}

impl Purged {
    pub fn add(&mut self, other: Purged) {
        self.alerts += other.alerts;
        self.events += other.events;
        self.comments += other.comments;
    }

    pub fn is_empty(&self) -> bool {
        *self == Purged::default()
    }
}

/// Old events a step will delete (see `Db::old_events`).
#[derive(Debug, Default)]
pub struct OldEvents {
    ids: Vec<i64>,
}

impl OldEvents {
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Where an event step goes on from: the (created_at, id) of the last
/// event it read.
pub type EventMark = Option<(NaiveDateTime, i64)>;

/// A purged alert's row, as its delete returned it.
type Gone = (i64, i64, String, Option<f64>, Option<f64>);

impl Db {
    /// Up to one step's worth of alerts resolved before `cutoff`, longest
    /// resolved first (the partial index `alerts_resolved_at`). Alerts
    /// imported as RESOLVED have no time of resolving (the old system kept
    /// none); their last change stands in for it.
    pub async fn expired_alerts(&self, cutoff: NaiveDateTime) -> Result<Vec<i64>> {
        self.read(async move |mut conn| {
            let mut ids: Vec<i64> = conn.load(resolved_undated(cutoff)).await?;
            ids.extend(conn.load::<_, i64>(resolved_before(cutoff)).await?);
            ids.truncate(ALERTS_PER_STEP as usize);
            Ok(ids)
        })
        .await
    }

    /// Deletes up to `EVENTS_PER_STEP` of the events folded into `ids`
    /// (never the event that raised each, which goes with its alert);
    /// how many went. Call until it returns less than `EVENTS_PER_STEP`:
    /// an alert of a storm may hold millions.
    pub async fn purge_folded_events(&self, ids: Vec<i64>) -> Result<Held<i64>> {
        self.held(async move |mut conn| {
            let raising: Vec<i64> = conn
                .load(
                    alerts::table
                        .filter(alerts::id.eq_any(&ids))
                        .select(alerts::event_id),
                )
                .await?;
            let newest = newest_event(&mut conn).await?;
            let doomed: Vec<i64> = conn
                .load(
                    events::table
                        .filter(events::alert_id.eq_any(&ids))
                        .filter(diesel::dsl::not(events::id.eq_any(&raising)))
                        .filter(events::id.ne(newest))
                        .select(events::id)
                        .limit(EVENTS_PER_STEP),
                )
                .await?;
            if doomed.is_empty() {
                return Ok(0);
            }
            let n = conn
                .execute(diesel::delete(
                    events::table.filter(events::id.eq_any(&doomed)),
                ))
                .await?;
            Ok(n as i64)
        })
        .await
    }

    /// Deletes the alerts among `ids` still resolved before `cutoff`, with
    /// their comments and the events that raised them, in one transaction;
    /// call `purge_folded_events` first. Counters and lifecycle sums lose
    /// exactly the alerts this delete removed.
    pub async fn purge_alerts(&self, ids: Vec<i64>, cutoff: NaiveDateTime) -> Result<Held<Purged>> {
        self.held(async move |mut conn| purge_alerts(&mut conn, &ids, cutoff).await)
            .await
    }

    /// Up to `EVENTS_PER_STEP` events created before `cutoff` that belong
    /// to no alert, reading at most `EVENTS_READ_PER_STEP` old events from
    /// `after` on in (created_at, id) order; and where the next step goes
    /// on (None: nothing older is left to read). A read, apart from the
    /// delete (`purge_old_events`): it takes no write lock, so it may take
    /// as long as a busy machine makes it without holding up ingest.
    pub async fn old_events(
        &self,
        cutoff: NaiveDateTime,
        after: EventMark,
    ) -> Result<(OldEvents, EventMark)> {
        let read: Vec<OldRow> = self
            .read(async move |mut conn| {
                Ok(match after {
                    None => conn.load(old_read(cutoff)).await?,
                    Some(mark) => conn.load(old_read_after(cutoff, mark)).await?,
                })
            })
            .await?;
        let read_all = read.len() as i64 == EVENTS_READ_PER_STEP;
        let mut ids = Vec::new();
        let mut last = None;
        for (id, at, alert) in read {
            last = Some((at, id));
            if alert.is_none() {
                ids.push(id);
                if ids.len() as i64 == EVENTS_PER_STEP {
                    break;
                }
            }
        }
        let next = if read_all || ids.len() as i64 == EVENTS_PER_STEP {
            last
        } else {
            None
        };
        Ok((OldEvents { ids }, next))
    }

    /// Deletes the events `old_events` found that still belong to no
    /// alert; how many went.
    pub async fn purge_old_events(&self, old: OldEvents) -> Result<Held<i64>> {
        let doomed = old.ids;
        self.held(async move |mut conn| {
            // An event is linked only as it is stored, so one read
            // unlinked stays so; the condition is checked again all
            // the same.
            let newest = newest_event(&mut conn).await?;
            let n = conn
                .execute(diesel::delete(
                    events::table
                        .filter(events::id.eq_any(&doomed))
                        .filter(events::alert_id.is_null())
                        .filter(events::id.ne(newest)),
                ))
                .await?;
            Ok(n as i64)
        })
        .await
    }
}

/// Alerts imported as RESOLVED (no time of resolving) and last changed
/// before `cutoff`. Ordered as the partial index `alerts_resolved_at`
/// keeps them (all under a NULL `resolved_at`, then by id), so that both
/// databases read them as one range of it: ordered by id alone,
/// PostgreSQL walked the primary key through every alert to find none,
/// on every step.
fn resolved_undated(cutoff: NaiveDateTime) -> impl Loadable<'static, i64> + QueryFragment<Sqlite> {
    alerts::table
        .filter(ResolvedAlert)
        .filter(alerts::resolved_at.is_null())
        .filter(alerts::updated_at.lt(cutoff))
        .select(alerts::id)
        .order((alerts::resolved_at, alerts::id))
        .limit(ALERTS_PER_STEP)
}

/// Alerts resolved before `cutoff`, longest resolved first.
fn resolved_before(cutoff: NaiveDateTime) -> impl Loadable<'static, i64> + QueryFragment<Sqlite> {
    alerts::table
        .filter(ResolvedAlert)
        .filter(alerts::resolved_at.lt(cutoff))
        .select(alerts::id)
        .order((alerts::resolved_at, alerts::id))
        .limit(ALERTS_PER_STEP)
}

/// A step's read of old events, oldest first.
type OldRow = (i64, NaiveDateTime, Option<i64>);

/// The first step's read: events created before `cutoff` in (created_at,
/// id) order, one range of the `events_created_at_id` index.
fn old_read(cutoff: NaiveDateTime) -> impl Loadable<'static, OldRow> + QueryFragment<Sqlite> {
    events::table
        .filter(events::created_at.lt(cutoff))
        .select((events::id, events::created_at, events::alert_id))
        .order((events::created_at, events::id))
        .limit(EVENTS_READ_PER_STEP)
}

/// A later step's read: the same after the (created_at, id) `mark`,
/// spelled so that `created_at >= at` narrows the same index range and the
/// rest only filters it. As `created_at > at OR (created_at = at AND id >
/// id)`, SQLite answered each branch from the index and sorted their union
/// in a temporary b-tree: every step read and sorted the whole remaining
/// backlog to keep 5,000 rows.
fn old_read_after(
    cutoff: NaiveDateTime,
    (at, id): (NaiveDateTime, i64),
) -> impl Loadable<'static, OldRow> + QueryFragment<Sqlite> {
    events::table
        .filter(events::created_at.lt(cutoff))
        .filter(events::created_at.ge(at))
        .filter(events::created_at.gt(at).or(events::id.gt(id)))
        .select((events::id, events::created_at, events::alert_id))
        .order((events::created_at, events::id))
        .limit(EVENTS_READ_PER_STEP)
}

/// The largest event id (0 when there is none), which no purge deletes.
async fn newest_event(conn: &mut Conn<'_>) -> Result<i64> {
    let newest: Option<i64> = conn
        .first(events::table.select(diesel::dsl::max(events::id)))
        .await?;
    Ok(newest.unwrap_or(0))
}

async fn purge_alerts(conn: &mut Conn<'_>, ids: &[i64], cutoff: NaiveDateTime) -> Result<Purged> {
    let newest_alert: Option<i64> = conn
        .first(alerts::table.select(diesel::dsl::max(alerts::id)))
        .await?;
    let newest_event = newest_event(conn).await?;
    let expired = alerts::table
        .filter(alerts::id.eq_any(ids))
        .filter(alerts::status.eq(AlertStatus::Resolved.as_str()))
        .filter(
            alerts::resolved_at.lt(cutoff).or(alerts::resolved_at
                .is_null()
                .and(alerts::updated_at.lt(cutoff))),
        )
        .filter(alerts::id.ne(newest_alert.unwrap_or(0)))
        .filter(alerts::event_id.ne(newest_event));
    // Only alerts whose folded events are all gone (`purge_folded_events`;
    // another instance may still be at it), so that one statement below
    // touches one event per alert however large the alert was.
    let folded = events::table
        .filter(events::alert_id.eq(alerts::id.nullable()))
        .filter(events::id.ne(alerts::event_id));
    let free: Vec<(i64, i64)> = conn
        .load(
            expired
                .clone()
                .filter(diesel::dsl::not(diesel::dsl::exists(folded)))
                .select((alerts::id, alerts::event_id)),
        )
        .await?;
    if free.is_empty() {
        return Ok(Purged::default());
    }
    let (ids, raising): (Vec<i64>, Vec<i64>) = free.into_iter().unzip();
    // Events and alerts point at each other (events.alert_id, and the
    // raising event's alerts.event_id): unlink first, then delete both.
    conn.execute(
        diesel::update(events::table.filter(events::id.eq_any(&raising)))
            .set(events::alert_id.eq(None::<i64>)),
    )
    .await?;
    let comments = conn
        .execute(diesel::delete(
            alert_comments::table.filter(alert_comments::alert_id.eq_any(&ids)),
        ))
        .await? as i64;
    let gone: Vec<Gone> = conn
        .load(
            diesel::delete(expired.filter(alerts::id.eq_any(&ids))).returning((
                alerts::id,
                alerts::event_id,
                alerts::severity,
                alerts::seconds_to_acknowledge,
                alerts::seconds_to_resolve,
            )),
        )
        .await?;
    if gone.is_empty() {
        return Ok(Purged {
            comments,
            ..Purged::default()
        });
    }
    let raising: Vec<i64> = gone.iter().map(|g| g.1).collect();
    let events = conn
        .execute(diesel::delete(
            events::table.filter(events::id.eq_any(&raising)),
        ))
        .await? as i64;
    uncount(conn, &gone).await?;
    Ok(Purged {
        alerts: gone.len() as i64,
        events,
        comments,
    })
}

/// Takes purged alerts out of the counters and the lifecycle sums, so that
/// `alertStats` reads as if they had never been.
async fn uncount(conn: &mut Conn<'_>, gone: &[Gone]) -> Result<()> {
    let mut by_severity = std::collections::BTreeMap::<&str, i64>::new();
    let (mut acked, mut to_ack, mut resolved, mut to_resolve) = (0i64, 0f64, 0i64, 0f64);
    for (_, _, severity, ack, res) in gone {
        *by_severity.entry(severity.as_str()).or_default() += 1;
        if let Some(s) = ack {
            acked += 1;
            to_ack += s;
        }
        if let Some(s) = res {
            resolved += 1;
            to_resolve += s;
        }
    }
    for (severity, n) in by_severity {
        let severity: Severity = severity
            .parse()
            .map_err(|_| Error::internal(anyhow::anyhow!("stored severity {severity:?}")))?;
        super::alerts::count(conn, AlertStatus::Resolved, severity, -n).await?;
    }
    use alert_lifecycle::dsl as l;
    conn.execute(diesel::update(l::alert_lifecycle).set((
        l::acknowledged.eq(l::acknowledged - acked),
        l::seconds_to_acknowledge.eq(l::seconds_to_acknowledge - to_ack),
        l::resolved.eq(l::resolved - resolved),
        l::seconds_to_resolve.eq(l::seconds_to_resolve - to_resolve),
    )))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::event_pages::sqlite_plan;
    use super::*;

    /// Each step reads one range of the index in its order and stops at
    /// its limit, however much of the backlog is left behind the mark.
    #[test]
    fn a_step_reads_old_events_in_index_order() {
        let at = |h| {
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
                .and_then(|d| d.and_hms_opt(h, 0, 0))
                .unwrap()
        };
        for plan in [
            sqlite_plan(&old_read(at(12))),
            sqlite_plan(&old_read_after(at(12), (at(3), 42))),
        ] {
            assert!(plan.contains("events_created_at_id"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
            assert!(!plan.contains("MULTI-INDEX OR"), "{plan}");
        }
    }

    /// Both reads of expired alerts are one range of the partial index of
    /// resolved alerts, in its order: no walk of every resolved alert, no
    /// sort.
    #[test]
    fn expired_alerts_are_read_from_the_resolved_index() {
        let cutoff = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap();
        for plan in [
            sqlite_plan(&resolved_before(cutoff)),
            sqlite_plan(&resolved_undated(cutoff)),
        ] {
            assert!(plan.contains("alerts_resolved_at"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }
}

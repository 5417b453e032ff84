//! Retention's deletes (`THREATWATCH_RETENTION`), in small transactions.
//!
//! Every step is one short write transaction with a bounded number of
//! rows, so ingest, which shares the one SQLite writer, waits at most one
//! step. Each step keeps what the service reports exact as rows go: the
//! alert counters, the all-time lifecycle sums behind the mean times, and
//! the word index (a trigger on `events`). Every delete re-checks its
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

use super::schema::{alert_comments, alert_lifecycle, alerts, events};
use super::{Conn, Db};
use crate::domain::{AlertStatus, Severity};
use crate::error::{Error, Result};

/// Alerts removed per step, with their comments and raising events.
const ALERTS_PER_STEP: i64 = 100;

/// Events removed per step: each takes its word index entry with it,
/// which makes a delete several times dearer than an insert.
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
            let resolved = alerts::table
                .filter(alerts::status.eq(AlertStatus::Resolved.as_str()))
                .select(alerts::id)
                .limit(ALERTS_PER_STEP);
            let mut ids: Vec<i64> = conn
                .load(
                    resolved
                        .filter(alerts::resolved_at.is_null())
                        .filter(alerts::updated_at.lt(cutoff))
                        .order(alerts::id),
                )
                .await?;
            ids.extend(
                conn.load::<_, i64>(
                    resolved
                        .filter(alerts::resolved_at.lt(cutoff))
                        .order((alerts::resolved_at, alerts::id)),
                )
                .await?,
            );
            ids.truncate(ALERTS_PER_STEP as usize);
            Ok(ids)
        })
        .await
    }

    /// Deletes up to `EVENTS_PER_STEP` of the events folded into `ids`
    /// (never the event that raised each, which goes with its alert);
    /// how many went. Call until it returns less than `EVENTS_PER_STEP`:
    /// an alert of a storm may hold millions.
    pub async fn purge_folded_events(&self, ids: Vec<i64>) -> Result<i64> {
        self.transaction(async move |mut conn| {
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
    pub async fn purge_alerts(&self, ids: Vec<i64>, cutoff: NaiveDateTime) -> Result<Purged> {
        self.transaction(async move |mut conn| purge_alerts(&mut conn, &ids, cutoff).await)
            .await
    }

    /// Deletes up to `EVENTS_PER_STEP` events created before `cutoff` that
    /// belong to no alert, reading at most `EVENTS_READ_PER_STEP` old events
    /// from `after` on in (created_at, id) order; how many went, and where
    /// the next step goes on (None: nothing older is left to read).
    pub async fn purge_old_events(
        &self,
        cutoff: NaiveDateTime,
        after: EventMark,
    ) -> Result<(i64, EventMark)> {
        let read: Vec<(i64, NaiveDateTime, Option<i64>)> = self
            .read(async move |mut conn| {
                let old = events::table
                    .filter(events::created_at.lt(cutoff))
                    .select((events::id, events::created_at, events::alert_id))
                    .order((events::created_at, events::id))
                    .limit(EVENTS_READ_PER_STEP);
                Ok(match after {
                    None => conn.load(old).await?,
                    Some((at, id)) => {
                        conn.load(
                            old.filter(
                                events::created_at
                                    .gt(at)
                                    .or(events::created_at.eq(at).and(events::id.gt(id))),
                            ),
                        )
                        .await?
                    }
                })
            })
            .await?;
        let read_all = read.len() as i64 == EVENTS_READ_PER_STEP;
        let mut doomed = Vec::new();
        let mut last = None;
        for (id, at, alert) in read {
            last = Some((at, id));
            if alert.is_none() {
                doomed.push(id);
                if doomed.len() as i64 == EVENTS_PER_STEP {
                    break;
                }
            }
        }
        let next = if read_all || doomed.len() as i64 == EVENTS_PER_STEP {
            last
        } else {
            None
        };
        if doomed.is_empty() {
            return Ok((0, next));
        }
        let gone = self
            .transaction(async move |mut conn| {
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
            .await?;
        Ok((gone, next))
    }
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

//! Retention's deletes (`THREATWATCH_RETENTION`), in small transactions.
//!
//! Every step is one short write transaction with a bounded number of
//! rows, so ingest, which shares the one SQLite writer, waits at most one
//! step. Each step keeps what the service reports exact as rows go: the
//! alert counters, the all-time lifecycle sums behind the mean times, and
//! the word index (a trigger on `events`). Every delete re-checks its
//! condition and counts only the rows it removed, so instances that purge
//! the same PostgreSQL database at once never count a row twice.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{alert_comments, alert_lifecycle, alerts, events};
use super::{Conn, Db};
use crate::domain::{AlertStatus, Severity};
use crate::error::{Error, Result};

/// Alerts removed per step, with their comments and raising events.
const ALERTS_PER_STEP: i64 = 200;

/// Events removed per step.
pub const EVENTS_PER_STEP: i64 = 2_000;

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
    /// resolved first (the partial index `alerts_resolved_at`).
    pub async fn expired_alerts(&self, cutoff: NaiveDateTime) -> Result<Vec<i64>> {
        self.read(async move |mut conn| {
            let ids = conn
                .load(
                    alerts::table
                        .filter(alerts::status.eq(AlertStatus::Resolved.as_str()))
                        .filter(alerts::resolved_at.lt(cutoff))
                        .order((alerts::resolved_at, alerts::id))
                        .select(alerts::id)
                        .limit(ALERTS_PER_STEP),
                )
                .await?;
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
            let doomed: Vec<i64> = conn
                .load(
                    events::table
                        .filter(events::alert_id.eq_any(&ids))
                        .filter(diesel::dsl::not(events::id.eq_any(&raising)))
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
        let next = match read.last() {
            Some(&(id, at, _)) if read.len() as i64 == EVENTS_READ_PER_STEP => Some((at, id)),
            _ => None,
        };
        let mut unlinked: Vec<i64> = read
            .into_iter()
            .filter(|(_, _, alert)| alert.is_none())
            .map(|(id, _, _)| id)
            .collect();
        let mut gone = 0;
        while !unlinked.is_empty() {
            let part: Vec<i64> = unlinked
                .drain(..unlinked.len().min(EVENTS_PER_STEP as usize))
                .collect();
            gone += self
                .transaction(async move |mut conn| {
                    // An event is linked only as it is stored, so one read
                    // unlinked stays so; the condition is checked again all
                    // the same.
                    let n = conn
                        .execute(diesel::delete(
                            events::table
                                .filter(events::id.eq_any(&part))
                                .filter(events::alert_id.is_null()),
                        ))
                        .await?;
                    Ok(n as i64)
                })
                .await?;
        }
        Ok((gone, next))
    }
}

async fn purge_alerts(conn: &mut Conn<'_>, ids: &[i64], cutoff: NaiveDateTime) -> Result<Purged> {
    let expired = alerts::table
        .filter(alerts::id.eq_any(ids))
        .filter(alerts::status.eq(AlertStatus::Resolved.as_str()))
        .filter(alerts::resolved_at.lt(cutoff));
    let ids: Vec<i64> = conn.load(expired.clone().select(alerts::id)).await?;
    if ids.is_empty() {
        return Ok(Purged::default());
    }
    // Events and alerts point at each other (events.alert_id, and the
    // raising event's alerts.event_id): unlink first, then delete both.
    conn.execute(
        diesel::update(events::table.filter(events::alert_id.eq_any(&ids)))
            .set(events::alert_id.eq(None::<i64>)),
    )
    .await?;
    let comments = conn
        .execute(diesel::delete(
            alert_comments::table.filter(alert_comments::alert_id.eq_any(&ids)),
        ))
        .await? as i64;
    let gone: Vec<Gone> = conn
        .load(diesel::delete(expired).returning((
            alerts::id,
            alerts::event_id,
            alerts::severity,
            alerts::seconds_to_acknowledge,
            alerts::seconds_to_resolve,
        )))
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

//! Retention (`THREATWATCH_RETENTION`): what goes, in what order, and the
//! pass's record in the audit log. The deletes themselves, and how each
//! keeps counters exact, are `db::retention`'s.

use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Service;
use crate::db::models::NewAudit;
use crate::db::retention::{Purged, EVENTS_PER_STEP};
use crate::db::Held;
use crate::domain::AuditAction;
use crate::error::{Error, Result};
use crate::ingest::Pacing;

/// The shortest pause after a step.
const BETWEEN_STEPS: Duration = Duration::from_millis(10);

/// How much longer than a step held the database the pause after it is
/// while ingest is busy (`ingest::Pacing`): a pass then holds the writer at
/// most a twentieth of the time, so a large backlog (retention turned on
/// over years of data) is worked off beside a flood, not instead of it. A
/// delete costs storage about what an insert does (the row, its index
/// entries, its words, their share of the WAL and the checkpoints), so a
/// pass holding the writer a tenth of the time cost a saturated SQLite
/// far more than a tenth of its rate (see bench/retention.sh). With
/// ingest idle there is no pause but the shortest.
const PAUSE_PER_STEP: f64 = 19.0;

/// When a pass's next write may start. Only the time a step held the
/// database counts, scaled by how busy ingest is: the reads that find
/// what to delete take no write lock, and on a busy machine they take far
/// longer than the delete (waiting for a core), so pacing by a step's
/// whole time would slow the purge many times over without sparing ingest
/// anything. A read runs during the pause before the write it prepares.
#[derive(Debug)]
struct Pace {
    next: Instant,
    pacing: Pacing,
    closed: watch::Receiver<bool>,
}

impl Pace {
    /// `busy`: the ingest writer's busy clock now (`Writer::busy_nanos`).
    fn new(busy: u64, closed: watch::Receiver<bool>) -> Self {
        let now = Instant::now();
        Self {
            next: now,
            pacing: Pacing::new(PAUSE_PER_STEP, busy, now.into_std()),
            closed,
        }
    }

    /// Waits until the next write may start; false when the service is
    /// shutting down instead, and the pass should stop where it is.
    async fn ready(&mut self) -> bool {
        let waited = tokio::select! {
            _ = tokio::time::sleep_until(self.next) => true,
            _ = self.closed.wait_for(|closed| *closed) => false,
        };
        waited && !*self.closed.borrow()
    }

    /// Records a step of `what` that removed `rows`, holding the database
    /// for `held`, with the writer's busy clock `busy` read after it.
    fn took(&mut self, what: &'static str, rows: i64, held: Duration, busy: u64) {
        tracing::debug!(
            step = what,
            rows,
            held_ms = held.as_secs_f64() * 1e3,
            "retention step"
        );
        let now = Instant::now();
        let pause = self.pacing.pause(held, busy, now.into_std());
        self.next = now + pause.max(BETWEEN_STEPS);
    }
}

impl Service {
    /// One retention pass: resolved alerts past the window with all their
    /// events and comments, then events past the window that belong to no
    /// alert. Recorded in the audit log when anything went.
    pub async fn purge_expired(&self, window: Duration) -> Result<Purged> {
        let window = chrono::TimeDelta::from_std(window).map_err(Error::internal)?;
        let now = crate::domain::now();
        let Some(cutoff) = now.checked_sub_signed(window) else {
            return Ok(Purged::default());
        };
        let mut total = Purged::default();
        let mut pace = Pace::new(self.writer.busy_nanos(), self.shutdown.subscribe());
        let result = self.purge_steps(cutoff, &mut pace, &mut total).await;
        // What went is recorded even when a step failed or shutdown
        // stopped the pass half-way: every step before it committed.
        if !total.is_empty() {
            self.db
                .append_audit(purge_entry(&total, cutoff, now))
                .await?;
        }
        result.map(|()| total)
    }

    /// The pass's steps, each added to `total` as it commits; stops early
    /// when the service shuts down.
    async fn purge_steps(
        &self,
        cutoff: chrono::NaiveDateTime,
        pace: &mut Pace,
        total: &mut Purged,
    ) -> Result<()> {
        loop {
            let ids = self.db.expired_alerts(cutoff).await?;
            if ids.is_empty() {
                break;
            }
            loop {
                if !pace.ready().await {
                    return Ok(());
                }
                let Held { value: n, held } = self.db.purge_folded_events(ids.clone()).await?;
                total.events += n;
                pace.took("folded events", n, held, self.writer.busy_nanos());
                if n < EVENTS_PER_STEP {
                    break;
                }
            }
            if !pace.ready().await {
                return Ok(());
            }
            let Held {
                value: removed,
                held,
            } = self.db.purge_alerts(ids, cutoff).await?;
            total.add(removed);
            pace.took("alerts", removed.alerts, held, self.writer.busy_nanos());
            if removed.alerts == 0 {
                // Another instance took them; the next pass goes on.
                break;
            }
        }
        let mut mark = None;
        loop {
            let (old, next) = self.db.old_events(cutoff, mark).await?;
            if !old.is_empty() {
                if !pace.ready().await {
                    return Ok(());
                }
                let Held { value: n, held } = self.db.purge_old_events(old).await?;
                total.events += n;
                pace.took("old events", n, held, self.writer.busy_nanos());
            }
            match next {
                Some(next) => mark = Some(next),
                None => return Ok(()),
            }
        }
    }
}

fn purge_entry(
    purged: &Purged,
    cutoff: chrono::NaiveDateTime,
    now: chrono::NaiveDateTime,
) -> NewAudit {
    NewAudit {
        at: now,
        action: AuditAction::RetentionPurged.as_str().into(),
        actor: "system".into(),
        target_type: None,
        target_id: None,
        detail: Some(
            json!({
                "alerts": purged.alerts,
                "events": purged.events,
                "comments": purged.comments,
                "before": cutoff.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            })
            .to_string(),
        ),
        ip: None,
    }
}

/// Runs a pass every `retention_every` while retention is on, until the
/// service shuts down; a failed pass is logged and tried again at the next.
pub async fn run(service: Service) {
    let Some(window) = service.settings.retention else {
        return;
    };
    let mut closed = service.shutdown.subscribe();
    let mut tick = tokio::time::interval(service.settings.retention_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closed.wait_for(|closed| *closed) => return,
        }
        // A pass that removed anything is logged with its audit entry.
        if let Err(e) = service.purge_expired(window).await {
            tracing::warn!(error = %e, "retention: pass failed; retrying at the next");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While ingest is busy, a step is followed by nineteen times its hold
    /// on the database; while it is idle, by the shortest pause only.
    #[tokio::test]
    async fn a_pass_yields_to_a_busy_ingest_only() {
        let (_open, closed) = watch::channel(false);
        let mut pace = Pace::new(0, closed);
        let held = Duration::from_millis(10);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let busy = 1_000_000_000; // a second of commits since: saturated
        pace.took("old events", 500, held, busy);
        let pause = pace.next - Instant::now();
        assert!(pause > Duration::from_millis(150), "{pause:?}");
        assert!(pause <= held.mul_f64(PAUSE_PER_STEP), "{pause:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
        pace.took("old events", 500, held, busy); // no commits since: idle
        assert!(pace.next - Instant::now() <= BETWEEN_STEPS);
    }

    #[tokio::test]
    async fn a_read_during_the_pause_does_not_lengthen_it() {
        let (_open, closed) = watch::channel(false);
        let mut pace = Pace::new(0, closed);
        let start = Instant::now();
        assert!(pace.ready().await);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "the first write waits for nothing"
        );
        // A step that held the database 100 ms under a busy ingest pauses
        // the next 1.9 s; the next step's read takes 2 s (a busy machine),
        // and its write goes right after it rather than 1.9 s later.
        tokio::time::sleep(Duration::from_millis(10)).await;
        pace.took("old events", 500, Duration::from_millis(100), u64::MAX / 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let read_done = Instant::now();
        assert!(pace.ready().await);
        assert!(read_done.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn shutdown_ends_the_pause_and_the_pass() {
        let (close, closed) = watch::channel(false);
        let mut pace = Pace::new(0, closed);
        tokio::time::sleep(Duration::from_millis(10)).await;
        pace.took("old events", 500, Duration::from_secs(1), u64::MAX / 2);
        let start = Instant::now();
        let closing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let _ = close.send(true);
        });
        assert!(
            !pace.ready().await,
            "a closing service starts no more steps"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nor waits out the pause"
        );
        let _ = closing.await;
    }
}

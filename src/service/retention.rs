//! Retention (`THREATWATCH_RETENTION`): what goes, in what order, and the
//! pass's record in the audit log. The deletes themselves, and how each
//! keeps counters exact, are `db::retention`'s.

use std::time::{Duration, Instant};

use serde_json::json;

use super::Service;
use crate::db::models::NewAudit;
use crate::db::retention::{Purged, EVENTS_PER_STEP};
use crate::domain::AuditAction;
use crate::error::{Error, Result};

/// The shortest pause after a step.
const BETWEEN_STEPS: Duration = Duration::from_millis(10);

/// How much longer than a step the pause after it is: a pass holds the
/// writer at most a tenth of the time, so a large backlog (retention turned
/// on over years of data) is worked off beside ingest, not instead of it.
const PAUSE_PER_STEP: u32 = 9;

/// Waits after a step of `what` that began at `began` and removed `rows`.
async fn pace(began: Instant, what: &'static str, rows: i64) {
    let took = began.elapsed();
    tracing::debug!(
        step = what,
        rows,
        took_ms = took.as_secs_f64() * 1e3,
        "retention step"
    );
    let pause = took.saturating_mul(PAUSE_PER_STEP).max(BETWEEN_STEPS);
    tokio::time::sleep(pause).await;
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
        loop {
            let ids = self.db.expired_alerts(cutoff).await?;
            if ids.is_empty() {
                break;
            }
            loop {
                let began = Instant::now();
                let n = self.db.purge_folded_events(ids.clone()).await?;
                total.events += n;
                pace(began, "folded events", n).await;
                if n < EVENTS_PER_STEP {
                    break;
                }
            }
            let began = Instant::now();
            let step = self.db.purge_alerts(ids, cutoff).await?;
            total.add(step);
            pace(began, "alerts", step.alerts).await;
            if step.alerts == 0 {
                // Another instance took them; the next pass goes on.
                break;
            }
        }
        let mut mark = None;
        loop {
            let began = Instant::now();
            let (n, next) = self.db.purge_old_events(cutoff, mark).await?;
            total.events += n;
            match next {
                Some(next) => mark = Some(next),
                None => break,
            }
            pace(began, "old events", n).await;
        }
        if !total.is_empty() {
            self.db
                .append_audit(purge_entry(&total, cutoff, now))
                .await?;
        }
        Ok(total)
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

/// Runs a pass every `retention_every` while retention is on; a failed
/// pass is logged and tried again at the next.
pub async fn run(service: Service) {
    let Some(window) = service.settings.retention else {
        return;
    };
    let mut tick = tokio::time::interval(service.settings.retention_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // A pass that removed anything is logged with its audit entry.
        if let Err(e) = service.purge_expired(window).await {
            tracing::warn!(error = %e, "retention: pass failed; retrying at the next");
        }
    }
}

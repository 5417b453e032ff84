//! The delivery worker: sends the outbox's due deliveries and records how
//! each attempt went.
//!
//! Endpoints are served side by side: each may have `PER_WEBHOOK` attempts
//! in flight and all together `IN_FLIGHT`, and work is claimed per endpoint
//! up to its free slots, so a slow or dead receiver fills only its own
//! slots and never delays another's deliveries. Ingest never waits on the
//! worker: it only commits rows and pokes it (`Service::wake_deliveries`);
//! a poll every second picks up retries that came due and rows committed
//! by other instances.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::JoinSet;

use super::client::{Answer, Delivery, Sender, ATTEMPT_TIMEOUT};
use crate::db::deliveries::{Attempt, Recorded};
use crate::domain::webhook::{DeliveryRecord, WebhookRecord};
use crate::notify::address::AddressPolicy;
use crate::service::Service;

/// Attempts one endpoint may have in flight.
const PER_WEBHOOK: usize = 4;
/// Attempts in flight altogether.
const IN_FLIGHT: usize = 64;
/// How often due retries (and other instances' rows) are looked for.
const POLL: Duration = Duration::from_secs(1);
/// How often the oldest pending delivery's age is measured.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// How long shutdown waits for the attempts in flight: short enough for a
/// container's stop grace period; an attempt cut off is made again once its
/// lease runs out.
const DRAIN: Duration = Duration::from_secs(5);
/// How often delivered rows past their keep are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the worker; it stops when the service begins shutting down,
/// after the attempts in flight have been recorded (or, past `DRAIN`,
/// left to their lease).
pub fn start(service: &Service) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let policy = AddressPolicy::new(service.settings.webhook_allow_nets.clone());
    let sender = Sender::new(policy, ATTEMPT_TIMEOUT)?;
    Ok(tokio::spawn(run(service.clone(), sender)))
}

async fn run(service: Service, sender: Sender) {
    let mut closed = service.shutdown.subscribe();
    let mut flying: JoinSet<()> = JoinSet::new();
    // Each attempt's endpoint by task, so that a slot is freed however the
    // task ends (a panic included).
    let mut tasks: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut per_hook: HashMap<i64, usize> = HashMap::new();
    let mut gauge = tokio::time::interval(GAUGE_EVERY);
    gauge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*closed.borrow() {
        if flying.len() < IN_FLIGHT {
            fill(&service, &sender, &mut flying, &mut tasks, &mut per_hook).await;
        }
        tokio::select! {
            Some(done) = flying.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "webhook deliveries: an attempt failed");
                        e.id()
                    }
                };
                if let Some(hook) = tasks.remove(&id) {
                    release(&mut per_hook, hook);
                }
                // Whatever else finished meanwhile, so that the next claim
                // takes several rows in one transaction rather than one each.
                while let Some(done) = flying.try_join_next_with_id() {
                    let id = done.map_or_else(|e| e.id(), |(id, ())| id);
                    if let Some(hook) = tasks.remove(&id) {
                        release(&mut per_hook, hook);
                    }
                }
            }
            () = service.deliveries.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            _ = gauge.tick() => measure(&service).await,
            _ = prune.tick() => prune_old(&service).await,
            _ = closed.changed() => {}
        }
    }
    // Let the attempts under way finish and be recorded; one cut off here
    // is attempted again once its lease runs out.
    let drain = async { while flying.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        flying.abort_all();
    }
}

fn release(per_hook: &mut HashMap<i64, usize>, hook: i64) {
    if let Some(n) = per_hook.get_mut(&hook) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_hook.remove(&hook);
        }
    }
}

/// Claims due work for every endpoint with free slots and starts it.
async fn fill(
    service: &Service,
    sender: &Sender,
    flying: &mut JoinSet<()>,
    tasks: &mut HashMap<tokio::task::Id, i64>,
    per_hook: &mut HashMap<i64, usize>,
) {
    let hooks = match service.webhooks_with_due_deliveries().await {
        Ok(hooks) => hooks,
        Err(e) => {
            tracing::warn!(error = %e, "webhook deliveries: cannot read the outbox");
            return;
        }
    };
    for hook_id in hooks {
        let busy = per_hook.get(&hook_id).copied().unwrap_or(0);
        let free = PER_WEBHOOK
            .saturating_sub(busy)
            .min(IN_FLIGHT.saturating_sub(flying.len()));
        if free == 0 {
            continue;
        }
        let claimed = match service
            .claim_deliveries(hook_id, i64::try_from(free).unwrap_or(1))
            .await
        {
            Ok(Some(claimed)) => claimed,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, webhook = hook_id, "webhook deliveries: cannot claim");
                continue;
            }
        };
        let (hook, rows) = claimed;
        for row in rows {
            *per_hook.entry(hook_id).or_default() += 1;
            let task = flying.spawn(attempt(service.clone(), sender.clone(), hook.clone(), row));
            tasks.insert(task.id(), hook_id);
        }
    }
}

/// Makes one attempt and records it.
async fn attempt(service: Service, sender: Sender, hook: WebhookRecord, row: DeliveryRecord) {
    let now = crate::domain::now();
    let outcome = match service.signing_secrets(&hook, now) {
        Ok(secrets) => {
            let answer = sender
                .attempt(&Delivery {
                    url: &hook.url,
                    message_id: &row.message_id,
                    timestamp: now.and_utc().timestamp(),
                    body: &row.body,
                    secrets: &secrets,
                })
                .await;
            match answer {
                Answer::Delivered { status } => Attempt::Delivered {
                    status: i32::from(status),
                },
                Answer::Failed {
                    status,
                    error,
                    retry_after,
                    gone,
                } => Attempt::Failed {
                    status: status.map(i32::from),
                    error,
                    retry_after,
                    gone,
                },
            }
        }
        // Nothing is sent unsigned: the key the secrets are sealed under
        // changed. Retried, and visible in lastError.
        Err(_) => Attempt::Failed {
            status: None,
            error: "the signing secret cannot be opened (was THREATWATCH_SECRET_KEY changed?)"
                .into(),
            retry_after: None,
            gone: false,
        },
    };
    let refused =
        matches!(&outcome, Attempt::Failed { error, .. } if error.starts_with("refused address"));
    match service.record_delivery_attempt(row.id, outcome).await {
        Ok(recorded) => {
            let result = match recorded {
                Recorded::Delivered => "delivered",
                _ if refused => "refused",
                Recorded::Retry => "retry",
                Recorded::Failed => "failed",
                Recorded::Gone => return,
            };
            crate::metrics::webhook_delivery(result);
        }
        Err(e) => {
            // The lease runs out and the delivery is attempted again.
            tracing::warn!(error = %e, delivery = row.id, "webhook deliveries: cannot record an attempt");
        }
    }
}

async fn measure(service: &Service) {
    match service.oldest_pending_delivery().await {
        Ok(oldest) => {
            let age = oldest.map_or(0, |at| (crate::domain::now() - at).num_seconds().max(0));
            crate::metrics::oldest_pending_delivery(age);
        }
        Err(e) => tracing::warn!(error = %e, "webhook deliveries: cannot measure the outbox"),
    }
    if let Err(e) = service.refresh_webhooks_live().await {
        tracing::warn!(error = %e, "webhook deliveries: cannot read whether any webhook is on");
    }
}

async fn prune_old(service: &Service) {
    // A keep longer than the calendar reaches back keeps everything.
    let Some(before) = chrono::TimeDelta::from_std(service.settings.webhook_keep)
        .ok()
        .and_then(|keep| crate::domain::now().checked_sub_signed(keep))
    else {
        return;
    };
    match service.prune_deliveries(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "webhook deliveries: delivered rows pruned"),
        Err(e) => tracing::warn!(error = %e, "webhook deliveries: cannot prune"),
    }
}

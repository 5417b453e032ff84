//! The delivery worker: sends the outbox's due deliveries and records how
//! each attempt went.
//!
//! - **Endpoints side by side.** Each endpoint has a lane: the deliveries
//!   claimed for it and at most `PER_WEBHOOK` attempts in flight (all
//!   together `IN_FLIGHT`), so a slow or dead receiver fills only its own
//!   lane and never delays another's deliveries.
//! - **Storage in batches.** One claim round takes work for every endpoint
//!   at once (on PostgreSQL one transaction leasing it; on SQLite, which
//!   one process owns, a read: the worker remembers what it holds);
//!   outcomes go to a recorder that writes those of `RECORD_LINGER` in one
//!   transaction. On SQLite's single writer a transaction per delivery
//!   would take the write lock from ingest thousands of times a second. An endpoint that answers promptly gets up to `AHEAD`
//!   deliveries claimed ahead; a new, slow or failing one only its free
//!   slots, so little of its work sits leased and unattempted.
//! - **Ingest first.** Attempts run on a thread of their own at a lower CPU
//!   priority: on a saturated machine ingest keeps the processor and the
//!   deliveries queue up (durably) to be sent as soon as it has time to
//!   spare. Storage calls run on the service's runtime at normal priority,
//!   so a transaction never holds SQLite's write lock while its thread
//!   waits for the processor; its writes are paced instead (`Pacing`):
//!   while the ingest writer is busy, the next write of a kind (a batch
//!   of changes fanned out, or a batch of outcomes) waits up to
//!   `STORAGE_PAUSE` times as long as the last one took, so under a flood
//!   the worker's rows take at most about a tenth of the time of a
//!   thread, however large the backlog; while ingest is idle there is no
//!   pause, and a backlog drains at full speed.
//! - **Never waits on ingest, never makes it wait.** Ingest only commits
//!   rows and pokes the worker (`Service::wake_deliveries`); pokes closer
//!   together than `CLAIM_GAP` make one claim round, and a poll every
//!   second picks up retries that came due and rows committed by other
//!   instances.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::client::{Answer, Delivery, Sender, ATTEMPT_TIMEOUT};
use crate::db::deliveries::{Attempt, Recorded};
use crate::domain::webhook::{DeliveryRecord, WebhookRecord};
use crate::ingest::Pacing;
use crate::notify::address::AddressPolicy;
use crate::service::Service;

/// Attempts one endpoint may have in flight.
const PER_WEBHOOK: usize = 4;
/// Attempts in flight altogether.
const IN_FLIGHT: usize = 64;
/// Deliveries claimed ahead for an endpoint that answers promptly: enough
/// that a round every few milliseconds keeps a fast receiver busy, few
/// enough to be attempted long before their lease runs out.
const AHEAD: usize = 256;
/// An endpoint whose attempts take longer than this (or fail) is claimed
/// for only its free slots.
const PROMPT: Duration = Duration::from_secs(1);
/// A claimed delivery is attempted only while its lease has this much
/// left: an attempt never outlives the lease that keeps other instances
/// off it. One that waited too long is dropped here and claimed again
/// once its lease is out.
const LEASE_MARGIN: Duration = Duration::from_secs(ATTEMPT_TIMEOUT.as_secs() + 5);
/// Least time between two claim rounds: ingest pokes after every batch it
/// commits, and those pokes make one round. Every round is a write
/// transaction that ingest waits for on SQLite, so they are kept few.
const CLAIM_GAP: Duration = Duration::from_millis(50);
/// Outcomes written in one transaction at most.
const RECORD_BATCH: usize = 2_000;
/// How long the recorder gathers outcomes after the first before writing
/// them: a fast receiver answers every millisecond or so, and a
/// transaction per few outcomes would cost ingest the write lock as often.
/// A delivery's lease covers the wait.
const RECORD_LINGER: Duration = Duration::from_millis(50);
/// How much longer than a storage write (a batch of changes fanned out,
/// a batch of outcomes) the wait before the next of its kind is while
/// ingest is busy: each of the two kinds then holds the thread that runs
/// it at most a twentieth of the time. A delivery costs storage about as
/// much as the ingest that queued it (a row written, read and updated per
/// endpoint), so unpaced, three endpoints took half of ingest's rate on a
/// saturated machine.
const STORAGE_PAUSE: f64 = 19.0;
/// How often due retries (and other instances' rows) are looked for.
const POLL: Duration = Duration::from_secs(1);
/// How often the oldest pending delivery's age is measured.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// How long shutdown waits for the attempts in flight, and then for their
/// outcomes to be written: short enough for a container's stop grace
/// period; an attempt cut off is made again once its lease runs out.
const DRAIN: Duration = Duration::from_secs(5);
/// How often delivered rows past their keep are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The worker thread's nice value (Linux): under load the scheduler gives
/// it a small share beside ingest's threads, and all it wants otherwise.
const NICE: libc::c_int = 10;

/// Starts the worker on a thread of its own; the handle ends when the
/// worker has stopped: when the service begins shutting down, after the
/// attempts in flight were recorded (or, past `DRAIN`, left to their
/// lease), or when the runtime that started it is gone.
pub fn start(service: &Service) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let policy = AddressPolicy::new(service.settings.webhook_allow_nets.clone());
    let sender = Sender::new(policy, ATTEMPT_TIMEOUT)?;
    let main = Handle::current();
    let service = service.clone();
    let (stopped, on_stop) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("webhook-worker".into())
        .spawn(move || {
            lower_priority();
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(run(service, sender, main)),
                Err(e) => {
                    tracing::error!(error = %e, "webhook deliveries: cannot start the worker")
                }
            }
            let _ = stopped.send(());
        })?;
    Ok(tokio::spawn(async move {
        let _ = on_stop.await;
    }))
}

/// Lowers the calling thread's CPU priority (threads it starts inherit
/// it). Linux keeps a nice value per thread; elsewhere this does nothing.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: both calls take plain integers and act on the calling
        // thread only; a failure leaves the priority as it was.
        let rc = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, NICE)
        };
        if rc != 0 {
            tracing::debug!("webhook deliveries: cannot lower the worker's priority");
        }
    }
}

/// One endpoint's claimed work.
struct Lane {
    hook: WebhookRecord,
    queue: VecDeque<DeliveryRecord>,
    flying: usize,
    /// Ids queued, in flight, or attempted and not yet recorded: a claim
    /// round leaves them out (on SQLite nothing else marks them).
    held: HashSet<i64>,
    /// Its last attempt was delivered within `PROMPT`.
    prompt: bool,
    /// The last round filled its budget: more may be due.
    more: bool,
    /// Its webhook was on at the last round.
    enabled: bool,
}

impl Lane {
    fn new(hook: WebhookRecord) -> Self {
        Self {
            hook,
            queue: VecDeque::new(),
            flying: 0,
            held: HashSet::new(),
            prompt: false,
            more: false,
            enabled: true,
        }
    }

    /// How many deliveries the next round may claim for it.
    fn budget(&self) -> usize {
        let ahead = if self.prompt { AHEAD } else { PER_WEBHOOK };
        ahead.saturating_sub(self.queue.len() + self.flying)
    }

    /// Whether it is running low while more is due.
    fn hungry(&self) -> bool {
        self.more && self.queue.len() < AHEAD / 2
    }
}

/// An attempt's outcome on its way to the recorder.
struct Outcome {
    hook: i64,
    id: i64,
    attempt: Attempt,
    /// Refused by the address policy (counted apart in the metrics).
    refused: bool,
}

/// What the loop learns when an attempt ends.
struct Ended {
    hook: i64,
    prompt: bool,
}

/// The main runtime went away (the process, or a test, is ending).
struct Gone;

/// Runs `work` on the service's runtime and waits for it there.
async fn on_main<T: Send + 'static>(
    main: &Handle,
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T, Gone> {
    main.spawn(work).await.map_err(|e| {
        if e.is_panic() {
            tracing::error!(error = %e, "webhook deliveries: a storage call failed");
        }
        Gone
    })
}

async fn run(service: Service, sender: Sender, main: Handle) {
    let mut closed = service.shutdown.subscribe();
    let (outcomes, inbox) = mpsc::unbounded_channel::<Outcome>();
    let (done, mut recorded) = mpsc::unbounded_channel::<Vec<(i64, i64)>>();
    let recorder = main.spawn(record(service.clone(), inbox, done));
    let mut lanes: BTreeMap<i64, Lane> = BTreeMap::new();
    let mut flying: JoinSet<Ended> = JoinSet::new();
    // Each attempt's endpoint by task, so that a slot is freed however the
    // task ends (a panic included).
    let mut tasks: HashMap<tokio::task::Id, i64> = HashMap::new();
    let mut gauge = tokio::time::interval(GAUGE_EVERY);
    gauge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wanted = true;
    let mut last_round: Option<Instant> = None;
    // The fan-out (a write) is paced; the claim itself is a read on
    // SQLite and one short lease transaction on PostgreSQL.
    let mut fan_out_at = Instant::now();
    let mut fan_out_pacing = Pacing::new(STORAGE_PAUSE, service.writer.busy_nanos(), fan_out_at);
    let mut next_poll = Instant::now() + POLL;
    let mut turn = 0usize;
    while !*closed.borrow() {
        let now = Instant::now();
        if now >= next_poll {
            wanted = true;
            next_poll = now + POLL;
        }
        let may_claim = last_round.is_none_or(|at| now >= at + CLAIM_GAP);
        if wanted && may_claim {
            last_round = Some(now);
            wanted = false;
            if now >= fan_out_at {
                match on_main(&main, fan_out(service.clone())).await {
                    Ok(more_queued) => wanted = more_queued,
                    Err(Gone) => break,
                }
                let done = Instant::now();
                let pause = fan_out_pacing.pause(done - now, service.writer.busy_nanos(), done);
                fan_out_at = done + pause;
            }
            if claim(&service, &main, &mut lanes).await.is_err() {
                break;
            }
        }
        turn = turn.wrapping_add(1);
        dispatch(
            &service,
            &sender,
            &outcomes,
            &mut lanes,
            &mut flying,
            &mut tasks,
            turn,
        );
        let wake_at = match (wanted, last_round) {
            (true, Some(at)) => (at + CLAIM_GAP).min(next_poll),
            _ => next_poll,
        };
        tokio::select! {
            Some(done) = flying.join_next_with_id() => {
                ended(&mut lanes, &mut tasks, done);
                // Whatever else finished meanwhile.
                while let Some(done) = flying.try_join_next_with_id() {
                    ended(&mut lanes, &mut tasks, done);
                }
                if lanes.values().any(Lane::hungry) {
                    wanted = true;
                }
            }
            Some(ids) = recorded.recv() => {
                for (hook, id) in ids {
                    if let Some(lane) = lanes.get_mut(&hook) {
                        lane.held.remove(&id);
                    }
                }
                lanes.retain(|_, lane| lane.enabled || lane.flying > 0 || !lane.held.is_empty());
            }
            () = service.deliveries.notified() => wanted = true,
            () = tokio::time::sleep_until(wake_at.into()) => {}
            _ = gauge.tick() => {
                if on_main(&main, measure(service.clone())).await.is_err() {
                    break;
                }
            }
            _ = prune.tick() => {
                if on_main(&main, prune_old(service.clone())).await.is_err() {
                    break;
                }
            }
            changed = closed.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    // Let the attempts under way finish and their outcomes be written; one
    // cut off here is attempted again once its lease runs out.
    let drain = async { while flying.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        flying.abort_all();
    }
    drop(outcomes);
    let _ = tokio::time::timeout(DRAIN, recorder).await;
}

/// Notes an attempt's end: its slot is free, and how promptly its
/// endpoint answered decides how much is claimed for it next.
fn ended(
    lanes: &mut BTreeMap<i64, Lane>,
    tasks: &mut HashMap<tokio::task::Id, i64>,
    done: Result<(tokio::task::Id, Ended), tokio::task::JoinError>,
) {
    let (id, prompt) = match done {
        Ok((id, ended)) => (id, Some(ended)),
        Err(e) => {
            tracing::error!(error = %e, "webhook deliveries: an attempt failed");
            (e.id(), None)
        }
    };
    let Some(hook) = tasks.remove(&id) else {
        return;
    };
    if let Some(lane) = lanes.get_mut(&hook) {
        lane.flying = lane.flying.saturating_sub(1);
        lane.prompt = prompt.is_some_and(|e| e.hook == hook && e.prompt);
    }
}

/// One claim round: leases due work for every enabled endpoint up to its
/// lane's budget, refreshes each lane's webhook (a new URL or secret
/// applies from the next attempt), and empties the lanes of endpoints
/// turned off or deleted (their leases run out; nothing is lost).
async fn claim(
    service: &Service,
    main: &Handle,
    lanes: &mut BTreeMap<i64, Lane>,
) -> Result<(), Gone> {
    let budgets: HashMap<i64, i64> = lanes
        .iter()
        .map(|(id, lane)| (*id, i64::try_from(lane.budget()).unwrap_or(0)))
        .collect();
    let held: HashMap<i64, HashSet<i64>> = lanes
        .iter()
        .filter(|(_, lane)| !lane.held.is_empty())
        .map(|(id, lane)| (*id, lane.held.clone()))
        .collect();
    let round = {
        let service = service.clone();
        on_main(main, async move {
            service
                .claim_deliveries(budgets, i64::try_from(PER_WEBHOOK).unwrap_or(1), held)
                .await
        })
        .await?
    };
    let claimed = match round {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "webhook deliveries: cannot claim");
            return Ok(());
        }
    };
    let mut enabled = Vec::with_capacity(claimed.len());
    for (hook, rows) in claimed {
        enabled.push(hook.id);
        let lane = lanes
            .entry(hook.id)
            .or_insert_with(|| Lane::new(hook.clone()));
        lane.more = !rows.is_empty() && rows.len() >= lane.budget();
        lane.hook = hook;
        lane.enabled = true;
        lane.held.extend(rows.iter().map(|r| r.id));
        lane.queue.extend(rows);
    }
    lanes.retain(|id, lane| {
        if enabled.contains(id) {
            return true;
        }
        lane.enabled = false;
        for row in lane.queue.drain(..) {
            lane.held.remove(&row.id);
        }
        lane.flying > 0 || !lane.held.is_empty()
    });
    Ok(())
}

/// One batch of queued changes becomes deliveries; whether more are
/// queued.
async fn fan_out(service: Service) -> bool {
    match service.fan_out_deliveries().await {
        Ok(more_queued) => more_queued,
        Err(e) => {
            tracing::warn!(error = %e, "webhook deliveries: cannot fan out");
            false
        }
    }
}

/// Starts attempts from the lanes while slots are free, beginning at a
/// different lane each time so that no endpoint is always served last.
fn dispatch(
    service: &Service,
    sender: &Sender,
    outcomes: &mpsc::UnboundedSender<Outcome>,
    lanes: &mut BTreeMap<i64, Lane>,
    flying: &mut JoinSet<Ended>,
    tasks: &mut HashMap<tokio::task::Id, i64>,
    turn: usize,
) {
    let ids: Vec<i64> = lanes.keys().copied().collect();
    if ids.is_empty() {
        return;
    }
    let start = turn % ids.len();
    let fresh = chrono::TimeDelta::from_std(LEASE_MARGIN).unwrap_or(chrono::TimeDelta::MAX);
    for id in ids[start..].iter().chain(&ids[..start]) {
        let Some(lane) = lanes.get_mut(id) else {
            continue;
        };
        while lane.flying < PER_WEBHOOK && flying.len() < IN_FLIGHT {
            let Some(row) = lane.queue.pop_front() else {
                break;
            };
            // A lease (PostgreSQL) about to run out: another instance may
            // take the row meanwhile, so it is left to be claimed again.
            let now = crate::domain::now();
            if row.locked_until.is_some_and(|until| until - now < fresh) {
                lane.held.remove(&row.id);
                continue;
            }
            lane.flying += 1;
            let task = flying.spawn(attempt(
                service.clone(),
                sender.clone(),
                lane.hook.clone(),
                row,
                outcomes.clone(),
            ));
            tasks.insert(task.id(), *id);
        }
    }
}

/// Makes one attempt and hands its outcome to the recorder.
async fn attempt(
    service: Service,
    sender: Sender,
    hook: WebhookRecord,
    row: DeliveryRecord,
    outcomes: mpsc::UnboundedSender<Outcome>,
) -> Ended {
    let began = Instant::now();
    let now = crate::domain::now();
    let attempt = match service.signing_secrets(&hook, now) {
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
    let prompt = matches!(attempt, Attempt::Delivered { .. }) && began.elapsed() <= PROMPT;
    let refused =
        matches!(&attempt, Attempt::Failed { error, .. } if error.starts_with("refused address"));
    // Only fails once the recorder has stopped (shutdown): the lease runs
    // out and the delivery is attempted again.
    let _ = outcomes.send(Outcome {
        hook: hook.id,
        id: row.id,
        attempt,
        refused,
    });
    Ended {
        hook: hook.id,
        prompt,
    }
}

/// Writes outcomes in batches: those that arrive within `RECORD_LINGER`
/// of the first (and while the last batch commits, and during the pause
/// after it) go in one transaction, so there are at most a few
/// transactions a second however fast the receivers answer.
async fn record(
    service: Service,
    mut inbox: mpsc::UnboundedReceiver<Outcome>,
    done: mpsc::UnboundedSender<Vec<(i64, i64)>>,
) {
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    let mut paused_until = Instant::now();
    let mut pacing = Pacing::new(STORAGE_PAUSE, service.writer.busy_nanos(), paused_until);
    while inbox.recv_many(&mut batch, RECORD_BATCH).await > 0 {
        let mut resume = paused_until;
        if batch.len() < RECORD_BATCH {
            resume = resume.max(Instant::now() + RECORD_LINGER);
        }
        tokio::time::sleep_until(resume.into()).await;
        let room = RECORD_BATCH - batch.len();
        if room > 0 && !inbox.is_empty() {
            inbox.recv_many(&mut batch, room).await;
        }
        let began = Instant::now();
        let refused: Vec<bool> = batch.iter().map(|o| o.refused).collect();
        let ids: Vec<(i64, i64)> = batch.iter().map(|o| (o.hook, o.id)).collect();
        let attempts: Vec<(i64, Attempt)> = batch.drain(..).map(|o| (o.id, o.attempt)).collect();
        match service.record_delivery_attempts(attempts).await {
            Ok(recorded) => {
                for (recorded, refused) in recorded.into_iter().zip(refused) {
                    let result = match recorded {
                        Recorded::Delivered => "delivered",
                        _ if refused => "refused",
                        Recorded::Retry => "retry",
                        Recorded::Failed => "failed",
                        Recorded::Gone => continue,
                    };
                    crate::metrics::webhook_delivery(result);
                }
            }
            Err(e) => {
                // Their leases run out and they are attempted again.
                tracing::warn!(error = %e, "webhook deliveries: cannot record attempts");
            }
        }
        let now = Instant::now();
        paused_until = now + pacing.pause(now - began, service.writer.busy_nanos(), now);
        // Recorded, or left PENDING to be claimed and attempted again.
        let _ = done.send(ids);
    }
}

async fn measure(service: Service) {
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

async fn prune_old(service: Service) {
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

//! The ingest writer: group commit for concurrent `ingestEvent` calls.
//!
//! Every caller hands its events to one writer task and waits. The writer
//! takes whatever is queued, commits it in one transaction and answers each
//! caller only after that commit. On SQLite this turns many callers into one
//! fsync, and the writer's single connection is SQLite's single writer.
//! The writer is its own task, so a caller that goes away cannot cancel a
//! commit half-way. On SQLite it is a thread of its own with its own
//! connection, whose statements run inline: the writer is what every
//! ingesting caller waits on, so each hop to the blocking pool and back
//! was paid by all of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, WriterConn};
use crate::domain::event::{Ingest, Ingested};
use crate::error::{Error, Result};

/// Most events committed in one transaction: large enough to amortise the
/// commit, small enough that one batch does not hold the write lock long.
const MAX_BATCH_EVENTS: usize = 2_000;
/// Jobs that may wait for the writer before callers feel back-pressure.
const QUEUE_DEPTH: usize = 8_192;

struct Job {
    items: Vec<Ingest>,
    reply: oneshot::Sender<Result<Vec<Ingested>>>,
}

/// A handle for submitting events; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    busy: Arc<AtomicU64>,
}

/// Called with every committed batch (e.g. to publish new alerts); runs on
/// the writer task, so it must not block.
pub type OnCommit = Box<dyn Fn(&[Ingested]) + Send + Sync>;

impl Writer {
    /// Starts the writer; with `group` false each job commits alone.
    pub fn start(db: Db, group: bool, on_commit: OnCommit) -> anyhow::Result<(Self, WriterTask)> {
        let (queue, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stopped) = oneshot::channel();
        let (finished, done) = oneshot::channel();
        let max_batch = if group { MAX_BATCH_EVENTS } else { 0 };
        let conn = db.writer_conn()?;
        let own_thread = matches!(conn, WriterConn::Sqlite(_));
        let busy = Arc::new(AtomicU64::new(0));
        let clock = Busy {
            total: busy.clone(),
            // Its own thread runs each commit from start to end, so that
            // thread's CPU time is the work ingest did; a task's commit
            // may move between threads, so its wall time stands in.
            cpu: own_thread,
        };
        let work = async move {
            run(db, conn, rx, stopped, max_batch, on_commit, clock).await;
            let _ = finished.send(());
        };
        if own_thread {
            let runtime = tokio::runtime::Builder::new_current_thread().build()?;
            std::thread::Builder::new()
                .name("ingest-writer".into())
                .spawn(move || runtime.block_on(work))?;
        } else {
            tokio::spawn(work);
        }
        Ok((Self { queue, busy }, WriterTask { stop, done }))
    }

    /// Nanoseconds the writer has spent committing since it started (on
    /// SQLite, of its thread's processor time): how busy ingest is, for
    /// work that should yield to it (the delivery worker's writes).
    pub fn busy_nanos(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// Stores the events (all or none) and returns what each became.
    pub async fn submit(&self, items: Vec<Ingest>) -> Result<Vec<Ingested>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { items, reply })
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("ingest writer has stopped")))?;
        answer
            .await
            .map_err(|_| Error::internal(anyhow::anyhow!("ingest writer dropped a job")))?
    }
}

/// The running writer, for shutting it down.
pub struct WriterTask {
    stop: oneshot::Sender<()>,
    /// Fires when the writer has committed its last job; dropped unfired
    /// if it panicked.
    done: oneshot::Receiver<()>,
}

impl WriterTask {
    /// Refuses new jobs, commits every job already queued, then returns:
    /// nothing a caller was promised is lost on shutdown.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if self.done.await.is_err() {
            tracing::error!("ingest writer ended abnormally");
        }
    }
}

async fn run(
    db: Db,
    mut conn: WriterConn,
    mut rx: mpsc::Receiver<Job>,
    mut stop: oneshot::Receiver<()>,
    max_batch: usize,
    on_commit: OnCommit,
    busy: Busy,
) {
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            _ = &mut stop, if !rx.is_closed() => {
                // Queued jobs are still received after close.
                rx.close();
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut jobs = vec![first];
        let mut events = jobs[0].items.len();
        while events < max_batch {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.items.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        busy.count(commit(&db, &mut conn, jobs, &on_commit)).await;
    }
}

/// The writer's busy clock (`Writer::busy_nanos`).
struct Busy {
    total: Arc<AtomicU64>,
    /// Counts the calling thread's processor time rather than wall time.
    cpu: bool,
}

impl Busy {
    /// Runs a commit and adds what it took to the clock.
    async fn count(&self, commit: impl std::future::Future<Output = ()>) {
        let cpu = if self.cpu { thread_cpu_time() } else { None };
        let wall = std::time::Instant::now();
        commit.await;
        let spent = match cpu.zip(thread_cpu_time()) {
            Some((before, after)) => after.saturating_sub(before),
            None => wall.elapsed(),
        };
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.total.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The processor time the calling thread has used (None where the
/// platform does not say).
fn thread_cpu_time() -> Option<std::time::Duration> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: writes one timespec that lives across the call.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        if rc == 0 {
            let secs = u64::try_from(ts.tv_sec).ok()?;
            let nanos = u32::try_from(ts.tv_nsec).ok()?;
            return Some(std::time::Duration::new(secs, nanos));
        }
        None
    }
    #[cfg(not(unix))]
    None
}

/// The share of time the ingest writer spends committing at which a
/// background writer's pause is whole; below it the pause shrinks in
/// proportion, to none while ingest is idle.
const INGEST_BUSY: f64 = 0.5;

/// Spaces a background writer's storage calls (webhook fan-out and
/// outcomes, retention's deletes) by how busy ingest has been since the
/// last of them (`Writer::busy_nanos`): while ingest is at least half busy,
/// each call is followed by a pause `ratio` times as long as it took, so
/// that kind of work holds storage at most 1/(ratio + 1) of the time; an
/// idle ingest lets it run flat out.
#[derive(Debug)]
pub struct Pacing {
    ratio: f64,
    at: Instant,
    busy: u64,
}

impl Pacing {
    pub fn new(ratio: f64, busy: u64, now: Instant) -> Self {
        Self {
            ratio,
            at: now,
            busy,
        }
    }

    /// The pause after a call that took `took`, given the writer's busy
    /// clock (`Writer::busy_nanos`) now.
    pub fn pause(&mut self, took: Duration, busy: u64, now: Instant) -> Duration {
        let wall = now.saturating_duration_since(self.at).as_nanos() as f64;
        let spent = busy.saturating_sub(self.busy) as f64;
        self.at = now;
        self.busy = busy;
        let load = if wall > 0.0 { spent / wall } else { 0.0 };
        took.mul_f64(self.ratio * (load / INGEST_BUSY).clamp(0.0, 1.0))
    }
}

/// One ingest transaction, recorded in the batch metrics.
async fn timed_ingest(db: &Db, conn: &mut WriterConn, items: &[Ingest]) -> Result<Vec<Ingested>> {
    let started = std::time::Instant::now();
    let result = db.ingest(conn, items).await;
    crate::metrics::ingest_batch(items.len(), started.elapsed());
    result
}

/// Attempts at one job that lost a race on a unique index.
const CONFLICT_RETRIES: usize = 3;

/// Commits one job. Another instance may commit the same new dedupKey or
/// externalId between our read and our insert; the unique index refuses
/// ours, and the next attempt reads theirs and folds into it.
async fn commit_one(db: &Db, conn: &mut WriterConn, items: Vec<Ingest>) -> Result<Vec<Ingested>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match timed_ingest(db, conn, &items).await {
            Err(e) if attempt < CONFLICT_RETRIES && e.is_conflict() => {
                tracing::debug!(attempt, "ingest lost a race on a unique index; retrying");
            }
            result => return result,
        }
    }
}

/// The job of a group whose event conflicted, from the event's index in
/// the group's batch.
fn conflicting_job(e: &Error, sizes: &[usize]) -> Option<usize> {
    let Error::EventConflict { index, .. } = e else {
        return None;
    };
    let mut end = 0;
    sizes.iter().position(|size| {
        end += size;
        *index < end
    })
}

/// Commits the jobs together; if that fails, commits each on its own so
/// that one job's failure (say, a constraint another instance raced us to)
/// is reported to that caller alone and the others still land.
async fn commit(db: &Db, conn: &mut WriterConn, jobs: Vec<Job>, on_commit: &OnCommit) {
    if jobs.len() == 1 {
        for job in jobs {
            let result = commit_one(db, conn, job.items).await;
            if let Ok(done) = &result {
                on_commit(done);
            }
            let _ = job.reply.send(result);
        }
        return;
    }
    // The jobs' events, moved into one batch; `sizes` splits it back.
    let sizes: Vec<usize> = jobs.iter().map(|j| j.items.len()).collect();
    let mut all: Vec<Ingest> = Vec::with_capacity(sizes.iter().sum());
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        all.extend(job.items);
        replies.push(job.reply);
    }
    match timed_ingest(db, conn, &all).await {
        Ok(done) => {
            on_commit(&done);
            let mut done = done.into_iter();
            for (reply, size) in replies.into_iter().zip(sizes) {
                // A caller that went away is fine: its events are stored.
                let _ = reply.send(Ok(done.by_ref().take(size).collect()));
            }
        }
        Err(e) => {
            let mut all = all.into_iter();
            let mut jobs: Vec<Job> = replies
                .into_iter()
                .zip(&sizes)
                .map(|(reply, size)| Job {
                    items: all.by_ref().take(*size).collect(),
                    reply,
                })
                .collect();
            // A conflicting externalId is any caller's to cause at will:
            // only its job is set apart, and the others commit together
            // again, so one client cannot turn every group into a
            // transaction per job.
            if let Some(culprit) = conflicting_job(&e, &sizes) {
                let culprit = jobs.remove(culprit);
                Box::pin(commit(db, conn, jobs, on_commit)).await;
                Box::pin(commit(db, conn, vec![culprit], on_commit)).await;
                return;
            }
            tracing::warn!(error = %e, jobs = jobs.len(), "group commit failed; committing jobs one by one");
            for job in jobs {
                Box::pin(commit(db, conn, vec![job], on_commit)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORAGE_PAUSE: f64 = 19.0;

    /// The pause follows the writer's busy share since the last call: none
    /// while ingest is idle, in proportion below `INGEST_BUSY`, whole at
    /// or above it (however busy), and never from a clock that went back.
    #[test]
    fn storage_calls_pause_only_while_ingest_is_busy() {
        let start = Instant::now();
        let took = Duration::from_millis(10);
        let second = Duration::from_secs(1);
        let ns = |d: Duration| u64::try_from(d.as_nanos()).unwrap();
        let mut pacing = Pacing::new(STORAGE_PAUSE, 0, start);
        // Idle for a second.
        assert_eq!(pacing.pause(took, 0, start + second), Duration::ZERO);
        // Committing a quarter of the next second: half the pause.
        let busy = ns(second / 4);
        assert_eq!(
            pacing.pause(took, busy, start + 2 * second),
            took.mul_f64(STORAGE_PAUSE / 2.0)
        );
        // All of the next second (and more: clocks are read apart).
        let busy = busy + ns(second * 2);
        assert_eq!(
            pacing.pause(took, busy, start + 3 * second),
            took.mul_f64(STORAGE_PAUSE)
        );
        // A busy clock read lower than before counts as idle.
        assert_eq!(pacing.pause(took, 0, start + 4 * second), Duration::ZERO);
        // No time passed: no share to judge by.
        assert_eq!(pacing.pause(took, busy, start + 4 * second), Duration::ZERO);
    }

    #[test]
    fn a_conflict_is_charged_to_the_job_that_sent_it() {
        let conflict = |index| Error::EventConflict {
            index,
            rule: String::new(),
            detail: String::new(),
        };
        let sizes = [2, 1, 3];
        assert_eq!(conflicting_job(&conflict(0), &sizes), Some(0));
        assert_eq!(conflicting_job(&conflict(1), &sizes), Some(0));
        assert_eq!(conflicting_job(&conflict(2), &sizes), Some(1));
        assert_eq!(conflicting_job(&conflict(5), &sizes), Some(2));
        assert_eq!(conflicting_job(&conflict(6), &sizes), None);
        assert_eq!(conflicting_job(&Error::invalid("x", "y"), &sizes), None);
    }

    /// The SQLite writer's busy clock counts work, not waiting: a sleep
    /// adds (almost) nothing, and work moves it.
    #[cfg(unix)]
    #[test]
    fn a_threads_clock_counts_work_not_sleep() {
        use std::time::{Duration, Instant};
        let before = thread_cpu_time().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let slept = thread_cpu_time().unwrap() - before;
        assert!(slept < Duration::from_millis(100), "{slept:?}");
        let start = thread_cpu_time().unwrap();
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut x = 0u64;
        while thread_cpu_time().unwrap() - start < Duration::from_millis(5) {
            x = x.wrapping_mul(31).wrapping_add(7);
            assert!(Instant::now() < give_up, "the thread's clock did not move");
        }
        std::hint::black_box(x);
    }
}

//! The domain operations: what a login, an ingest or a status change does.
//! GraphQL resolvers (and any other front end) call these and nothing below
//! them; these call storage.

mod alerts;
mod audit_log;
mod auth;
mod deliveries;
mod events;
pub mod live;
pub mod retention;
pub mod silences;
mod storage;
mod users;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::auth::api_key::Usage;
use crate::auth::cache::TtlCache;
use crate::auth::password::Passwords;
use crate::auth::token::{random_secret, TokenKeys, VerifiedAccess};
use crate::auth::Principal;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::alert::AlertWithEvent;
use crate::domain::audit::NewAudit;
use crate::domain::auth::SessionState;
use crate::domain::event::Ingested;
use crate::domain::AuditAction;
use crate::ingest::{Pacing, Writer, WriterTask};
use crate::throttle::Throttle;

pub use alerts::{AlertNotice, NoticeKind};
pub use auth::API_KEY_AS_BEARER;
pub use storage::{backup, import_django, migrate, pending_migrations};
pub use users::Actor;

/// How long a checked token session or API key is trusted before it is
/// read again: the most a revocation can lag on another instance.
const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(5);
const CREDENTIAL_CACHE_SIZE: usize = 50_000;
/// How long a verified access token is remembered after it was first seen;
/// its own expiry is checked on every use besides.
const VERIFIED_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Verified tokens kept; only tokens that passed verification get in, so a
/// flood of forged ones cannot fill it.
const VERIFIED_TOKEN_CACHE_SIZE: usize = 10_000;

/// Throttles and credential caches, shared by every request.
pub struct Security {
    pub throttle: Throttle,
    pub sessions: TtlCache<(String, i64), Option<SessionState>>,
    pub verified: TtlCache<String, Arc<VerifiedAccess>>,
    pub keys: TtlCache<String, Option<Principal>>,
    pub key_usage: Usage,
}

/// How many alert notices a slow subscriber may fall behind by.
const ALERT_BUS_CAPACITY: usize = 4_096;

/// The service's shared state. A clone is one reference count: the HTTP
/// layer clones it for every request.
#[derive(Clone)]
pub struct Service(Arc<Parts>);

pub struct Parts {
    /// Storage: the service's alone (front ends call the service).
    db: Db,
    pub tokens: TokenKeys,
    pub passwords: Passwords,
    pub writer: Writer,
    pub alerts: broadcast::Sender<AlertNotice>,
    pub settings: Arc<Settings>,
    pub security: Security,
    /// Flips to true when the server begins shutting down, so long-lived
    /// connections (subscriptions) can close cleanly.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// The key webhook secrets are sealed under, and the address policy.
    webhook_keys: webhooks::WebhookKeys,
    /// Poked after deliveries are committed (`wake_deliveries`): the
    /// delivery worker sends them at once instead of at its next poll.
    pub deliveries: Arc<tokio::sync::Notify>,
    /// Whether any webhook is enabled, as the delivery worker last read
    /// it (and set at once when one is created or turned on here).
    pub webhooks_live: Arc<std::sync::atomic::AtomicBool>,
}

impl std::ops::Deref for Service {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// Where a request came from, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct ClientIp(pub Option<String>);

impl Service {
    /// Builds the service on a migrated database; returns it with the ingest
    /// writer's task, to be shut down after the last request.
    async fn start(settings: Settings, db: Db) -> anyhow::Result<(Self, WriterTask)> {
        let secret = match &settings.jwt_secret {
            Some(s) => s.clone(),
            // Kept with the data, so tokens survive restarts and every
            // instance over one PostgreSQL signs with the same key.
            None => {
                db.setting_or_insert("jwt_secret", random_secret(48))
                    .await?
            }
        };
        let tokens = TokenKeys::new(&secret, settings.access_ttl, settings.refresh_ttl);
        let passwords = Passwords::new(settings.bcrypt_cost).await?;
        let webhook_keys = webhooks::WebhookKeys::load(&settings, &db).await?;
        let (alerts, _) = broadcast::channel(ALERT_BUS_CAPACITY);
        let bus = alerts.clone();
        let deliveries = Arc::new(tokio::sync::Notify::new());
        let wake = deliveries.clone();
        // True until the worker has read otherwise: a wake costs the worker
        // a query, and a batch wakes it only while a webhook may want it.
        let webhooks_live = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let live = webhooks_live.clone();
        let (writer, writer_task) = Writer::start(
            db.clone(),
            settings.group_commit,
            Box::new(move |done| {
                let mut stored = 0;
                for item in done.iter().filter(|i| i.created) {
                    stored += 1;
                    let Some(alert) = item.alert.as_ref().filter(|_| item.raised) else {
                        continue;
                    };
                    crate::metrics::alert_raised(alert.alert.severity.as_str());
                    tracing::info!(
                        target: "audit",
                        action = "ALERT_CREATED",
                        alert = alert.alert.id,
                        event = item.event.id,
                        severity = alert.alert.severity.as_str(),
                        source = %item.event.source,
                        "audit"
                    );
                    // No subscribers is the common case, not an error.
                    let _ = bus.send(AlertNotice {
                        kind: NoticeKind::Created,
                        alert: alert.clone(),
                        remote: false,
                    });
                }
                crate::metrics::events_ingested(stored);
                // A batch that raised or folded may have queued deliveries
                // in its transaction: the worker sends them now.
                if live.load(std::sync::atomic::Ordering::Relaxed)
                    && done.iter().any(|i| i.created && i.alert.is_some())
                {
                    wake.notify_one();
                }
                for alert in folded_into_earlier(done) {
                    let _ = bus.send(AlertNotice {
                        kind: NoticeKind::Updated,
                        alert: alert.clone(),
                        remote: false,
                    });
                }
            }),
        )?;
        let security = Security {
            throttle: Throttle::new(settings.rate_anon, settings.rate_user, settings.rate_sensor),
            sessions: TtlCache::new(CREDENTIAL_CACHE_TTL, CREDENTIAL_CACHE_SIZE),
            keys: TtlCache::new(CREDENTIAL_CACHE_TTL, CREDENTIAL_CACHE_SIZE),
            verified: TtlCache::new(VERIFIED_TOKEN_TTL, VERIFIED_TOKEN_CACHE_SIZE),
            key_usage: Usage::default(),
        };
        let service = Self(Arc::new(Parts {
            db,
            tokens,
            passwords,
            writer,
            alerts,
            settings: Arc::new(settings),
            security,
            shutdown: tokio::sync::watch::channel(false).0,
            webhook_keys,
            deliveries,
            webhooks_live,
        }));
        tokio::spawn(housekeeping(service.clone()));
        tokio::spawn(index_words(service.db.clone(), service.writer.clone()));
        Ok((service, writer_task))
    }
}

/// Drops idle throttle keys and writes API key last-use times. Holds only
/// what it needs weakly in spirit: it ends with the runtime.
async fn housekeeping(service: Service) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        service.security.throttle.housekeeping();
        service.flush_key_usage().await;
    }
}

/// How much longer than a step of its own took the pause after it is
/// while ingest is busy (`ingest::Pacing`): those steps then take at most a
/// fifth of the time. Merge steps hold only the word file, which ingest
/// never waits for, but they share the CPU with it; steps forgetting
/// dropped words hold the service's file like any writer. Less patient
/// than retention's pacing because this work cannot wait: merging left
/// behind comes due at once (FTS5 merges a level that reaches 16 segments
/// inside whatever commit reaches it). With ingest idle there is no pause.
const MERGE_PAUSE: f64 = 4.0;

/// How often the word indexer fills the indexes; merging takes what is
/// left of each round, so a long merge backlog never holds the fill back.
const WORDS_ROUND: Duration = Duration::from_secs(1);

/// Keeps SQLite's word indexes (`db::words`) about a second behind
/// ingest, so that a search seldom has much to index before it answers,
/// drops the words of the rows retention deleted, and merges the indexes'
/// segments, which FTS5 is told not to do by itself. Failures are logged
/// by `db::words`, naming the index; the next round tries again.
async fn index_words(db: Db, writer: Writer) {
    let mut tick = tokio::time::interval(WORDS_ROUND);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pacing = Pacing::new(MERGE_PAUSE, writer.busy_nanos(), Instant::now());
    let mut forget_first = false;
    loop {
        let round = tick.tick().await.into_std() + WORDS_ROUND;
        let _ = db.keep_words().await;
        // At least one step a round, however long the fill took (a
        // rebuild, a large import), so neither backlog is ever left alone.
        loop {
            forget_first = !forget_first;
            let Some(held) = tidy_words(&db, forget_first).await else {
                break;
            };
            if Instant::now() >= round {
                break;
            }
            let pause = pacing.pause(held, writer.busy_nanos(), Instant::now());
            let resume = (Instant::now() + pause).min(round);
            tokio::time::sleep_until(resume.into()).await;
        }
    }
}

/// One step of merge work or of forgetting dropped words, taking turns so
/// that neither backlog starves the other: how long it took, or `None`
/// when neither had anything to do (or both failed; `db::words` logs
/// merges, this the queue).
async fn tidy_words(db: &Db, forget_first: bool) -> Option<Duration> {
    let forget = async {
        db.forget_dropped_words().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot forget the dropped words' queue");
            None
        })
    };
    let merge = async { db.merge_words().await.ok().flatten() };
    if forget_first {
        match forget.await {
            Some(held) => Some(held),
            None => merge.await,
        }
    } else {
        match merge.await {
            Some(held) => Some(held),
            None => forget.await,
        }
    }
}

/// An audit entry for `action` by `actor`; callers fill in the target.
pub fn audit(action: AuditAction, actor: impl Into<String>, ip: &ClientIp) -> NewAudit {
    NewAudit {
        at: crate::domain::now(),
        action: action.as_str().into(),
        actor: actor.into(),
        target_type: None,
        target_id: None,
        detail: None,
        ip: ip.0.clone(),
    }
}

/// The alerts stored before this batch that its repeats folded into, each
/// once, as the batch left them (occurrences and lastSeenAt moved). Alerts
/// the batch raised are announced as created, with their folds counted.
fn folded_into_earlier(done: &[Ingested]) -> impl Iterator<Item = &AlertWithEvent> {
    let raised: std::collections::HashSet<i64> = done
        .iter()
        .filter(|i| i.raised)
        .filter_map(|i| i.alert.as_ref().map(|a| a.alert.id))
        .collect();
    let mut seen = std::collections::HashSet::new();
    done.iter()
        .filter(|i| i.created && !i.raised)
        .filter_map(|i| i.alert.as_ref())
        .filter(move |a| !raised.contains(&a.alert.id) && seen.insert(a.alert.id))
}

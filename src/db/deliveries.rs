//! The delivery worker's side of the outbox: claiming due deliveries with
//! a lease, recording what an attempt came to, and pruning old rows.
//!
//! On PostgreSQL a claim sets `locked_until`; until then no other instance
//! (nor this one) claims the row again. A lease rather than a held
//! transaction: an attempt lasts up to 15 s, far too long to keep a row
//! lock open, and an instance that dies mid-attempt frees its rows when
//! the lease runs out (the delivery is then attempted again: at least
//! once, never lost). On SQLite there is one instance, and the worker
//! keeps what it holds in memory instead (see `claim_due`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::dsl;
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::query_builder::QueryFragment;
use diesel::sql_types::Bool;
use diesel::sqlite::Sqlite;
use serde_json::json;

use super::conn::Loadable;
use super::models::{columns, DeliveryRow, NewAudit, WebhookRow};
use super::schema::{webhook_deliveries as d, webhook_outbox, webhooks as w};
use super::{audit, Conn, Db, Pool};
use crate::domain::webhook::{next_attempt, DISABLE_AFTER_FAILING};
use crate::domain::{AuditAction, DeliveryStatus};
use crate::error::Result;

/// How long a claim holds a delivery: well beyond the 15 s an attempt may
/// take, so a row is never claimed twice while its attempt is running.
pub const LEASE: TimeDelta = TimeDelta::seconds(60);

/// Rows deleted per statement when pruning: small, so a prune never holds
/// SQLite's single writer for long.
const PRUNE_BATCH: i64 = 500;

/// What one attempt came to, as the worker tells storage.
#[derive(Clone, Debug)]
pub enum Attempt {
    Delivered {
        status: i32,
    },
    Failed {
        status: Option<i32>,
        error: String,
        retry_after: Option<Duration>,
        /// 410 Gone: the endpoint is disabled at once.
        gone: bool,
    },
}

/// What recording an attempt did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recorded {
    Delivered,
    /// Failed, to be tried again.
    Retry,
    /// Failed, retries spent.
    Failed,
    /// The row was no longer PENDING (deleted with its webhook).
    Gone,
}

/// How many rows one UPDATE names at most: far below SQLite's limit on
/// bound parameters.
const IDS_PER_STATEMENT: usize = 500;

/// One claim round's answer for one endpoint: the webhook as it is now and
/// the deliveries leased to this instance, soonest due first.
pub type Claimed = (WebhookRow, Vec<DeliveryRow>);

/// `scheme://host[:port]`: what the audit keeps of a URL (chat services
/// put their credential in the path).
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

/// Turns the webhook off, with the WEBHOOK_DISABLED entry, in the caller's
/// transaction.
async fn disable(
    conn: &mut Conn<'_>,
    hook: &WebhookRow,
    reason: String,
    now: NaiveDateTime,
) -> Result<NewAudit> {
    conn.execute(diesel::update(w::table.find(hook.id)).set((
        w::enabled.eq(false),
        w::disabled_reason.eq(Some(reason.clone())),
        w::updated_at.eq(now),
    )))
    .await?;
    let entry = NewAudit {
        at: now,
        action: AuditAction::WebhookDisabled.as_str().into(),
        actor: "system".into(),
        target_type: Some("Webhook".into()),
        target_id: Some(hook.id.to_string()),
        detail: Some(
            json!({ "name": hook.name, "url": origin(&hook.url), "reason": reason }).to_string(),
        ),
        ip: None,
    };
    audit::append(conn, &entry).await?;
    Ok(entry)
}

/// `status = 'PENDING'` (or another status) written as a literal: a partial
/// index on rows of one status (`webhook_deliveries_due`,
/// `webhook_deliveries_delivered`) serves a query only when the planner
/// sees the value, and neither planner looks at a bound one here (SQLite
/// plans without bound values, see `db::sqlite_plan_stability`;
/// PostgreSQL's generic plans neither).
fn status_is(status: DeliveryStatus) -> SqlLiteral<Bool> {
    dsl::sql::<Bool>(&format!(
        "webhook_deliveries.status = '{}'",
        status.as_str()
    ))
}

/// The ids of up to `limit` due deliveries of one webhook on SQLite,
/// soonest due first: from the partial index on due rows alone, which
/// holds every column asked (SQLite leases nothing, so no lease is
/// checked), so that a walk past the rows the worker holds costs no table
/// reads. The caller reads the bodies only of those it takes.
fn due_ids(
    hook: i64,
    now: NaiveDateTime,
    limit: i64,
) -> impl Loadable<'static, i64> + QueryFragment<Sqlite> {
    d::table
        .filter(d::webhook_id.eq(hook))
        .filter(status_is(DeliveryStatus::Pending))
        .filter(d::next_attempt_at.le(now))
        .order((d::next_attempt_at, d::id))
        .select(d::id)
        .limit(limit)
}

/// Up to `limit` due deliveries of one webhook, none of `held` (of which
/// there are `skip`), soonest due first; leased on PostgreSQL.
async fn claim_for(
    conn: &mut Conn<'_>,
    hook: i64,
    limit: i64,
    skip: i64,
    held: Option<&HashSet<i64>>,
    now: NaiveDateTime,
) -> Result<Vec<DeliveryRow>> {
    let mut rows: Vec<DeliveryRow> = match conn {
        Conn::Postgres(c) => {
            let pick = d::table
                .filter(d::webhook_id.eq(hook))
                .filter(status_is(DeliveryStatus::Pending))
                .filter(d::next_attempt_at.le(now))
                .filter(d::locked_until.is_null().or(d::locked_until.le(now)))
                .order((d::next_attempt_at, d::id))
                .select(d::id);
            let ids: Vec<i64> = diesel_async::RunQueryDsl::load(
                pick.limit(limit).for_update().skip_locked(),
                &mut **c,
            )
            .await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let claim = diesel::update(
                d::table
                    .filter(d::id.eq_any(ids))
                    .filter(d::status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(d::locked_until.is_null().or(d::locked_until.le(now))),
            )
            .set(d::locked_until.eq(Some(now + LEASE)))
            .returning(columns::<DeliveryRow>());
            conn.load(claim).await?
        }
        _ => {
            let pick = due_ids(hook, now, limit.saturating_add(skip));
            let ids: Vec<i64> = conn.load(pick).await?;
            let ids: Vec<i64> = ids
                .into_iter()
                .filter(|id| held.is_none_or(|h| !h.contains(id)))
                .take(usize::try_from(limit).unwrap_or(0))
                .collect();
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut rows: Vec<DeliveryRow> = conn
                .load(
                    d::table
                        .filter(d::id.eq_any(ids))
                        .select(columns::<DeliveryRow>()),
                )
                .await?;
            // Not leased here (a lease run out long ago may still be in
            // the row): the worker holds them in memory.
            for row in &mut rows {
                row.locked_until = None;
            }
            rows
        }
    };
    rows.sort_by_key(|r| (r.next_attempt_at, r.id));
    Ok(rows)
}

/// A webhook's failing streak as a batch of outcomes moves it: `since` is
/// the first failure after the last success (`None` after a success), and
/// `reason` why it must be turned off, if it must.
struct Streak {
    hook: WebhookRow,
    since: Option<NaiveDateTime>,
    reason: Option<String>,
}

impl Db {
    /// One claim round: for every enabled webhook, up to its budget of due
    /// deliveries (`budgets`, or `default_budget` for a webhook not named
    /// there), soonest due first, leaving out the ids in `held` (what this
    /// worker already has queued, in flight or waiting to be recorded).
    /// Every enabled webhook is in the answer, with nothing where nothing
    /// was due: the worker learns which are on.
    ///
    /// - PostgreSQL, where several instances share the outbox: one
    ///   transaction leases the rows (`locked_until`), picked `FOR UPDATE
    ///   SKIP LOCKED` so that instances claiming at once split the work;
    ///   the `UPDATE` checks the lease again, so no row is leased twice.
    /// - SQLite, an embedded database with one service process: a claim is
    ///   two reads and writes nothing, so delivering takes SQLite's single
    ///   writer only to record outcomes. What the worker holds it keeps in
    ///   memory (`held`); after a restart everything PENDING is due again.
    pub async fn claim_due(
        &self,
        budgets: HashMap<i64, i64>,
        default_budget: i64,
        held: HashMap<i64, HashSet<i64>>,
    ) -> Result<Vec<Claimed>> {
        let work = async move |mut conn: Conn<'_>| {
            let now = crate::domain::now();
            let hooks: Vec<WebhookRow> = conn
                .load(
                    w::table
                        .filter(w::enabled.eq(true))
                        .order(w::id)
                        .select(columns::<WebhookRow>()),
                )
                .await?;
            let mut out = Vec::new();
            for hook in hooks {
                let limit = budgets.get(&hook.id).copied().unwrap_or(default_budget);
                let mine = held.get(&hook.id);
                let skip = mine.map_or(0, |m| i64::try_from(m.len()).unwrap_or(i64::MAX));
                let rows = if limit <= 0 {
                    Vec::new()
                } else {
                    claim_for(&mut conn, hook.id, limit, skip, mine, now).await?
                };
                out.push((hook, rows));
            }
            Ok(out)
        };
        match self.pool() {
            Pool::Postgres(_) => self.transaction(work).await,
            Pool::Sqlite(_) => self.read(work).await,
        }
    }

    /// Records many attempts in one transaction, in the order given (the
    /// order they ended): each delivery's new state, each webhook's failing
    /// streak, and, when an endpoint is gone (410) or has failed for
    /// `DISABLE_AFTER_FAILING`, its disabling with a WEBHOOK_DISABLED audit
    /// entry. One transaction per batch keeps the worker from taking
    /// SQLite's single writer once per delivery. Deliveries answered 2xx
    /// are written with one statement per status code.
    pub async fn record_attempts(&self, attempts: Vec<(i64, Attempt)>) -> Result<Vec<Recorded>> {
        let (recorded, entries) = self
            .transaction(async move |mut conn| {
                let now = crate::domain::now();
                let ids: Vec<i64> = attempts.iter().map(|(id, _)| *id).collect();
                let mut rows: HashMap<i64, DeliveryRow> = HashMap::new();
                for chunk in ids.chunks(IDS_PER_STATEMENT) {
                    let found: Vec<DeliveryRow> = conn
                        .load(
                            d::table
                                .filter(d::id.eq_any(chunk.to_vec()))
                                .filter(d::status.eq(DeliveryStatus::Pending.as_str()))
                                .select(columns::<DeliveryRow>()),
                        )
                        .await?;
                    rows.extend(found.into_iter().map(|r| (r.id, r)));
                }
                let mut hook_ids: Vec<i64> = rows.values().map(|r| r.webhook_id).collect();
                hook_ids.sort_unstable();
                hook_ids.dedup();
                let mut hooks: HashMap<i64, Streak> = HashMap::new();
                for chunk in hook_ids.chunks(IDS_PER_STATEMENT) {
                    let found: Vec<WebhookRow> = conn
                        .load(
                            w::table
                                .filter(w::id.eq_any(chunk.to_vec()))
                                .select(columns::<WebhookRow>()),
                        )
                        .await?;
                    hooks.extend(found.into_iter().map(|h| {
                        let since = h.failing_since;
                        (
                            h.id,
                            Streak {
                                hook: h,
                                since,
                                reason: None,
                            },
                        )
                    }));
                }
                let mut delivered: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
                let mut recorded = Vec::with_capacity(attempts.len());
                for (id, attempt) in attempts {
                    let Some(row) = rows.get(&id) else {
                        recorded.push(Recorded::Gone);
                        continue;
                    };
                    let Some(streak) = hooks.get_mut(&row.webhook_id) else {
                        recorded.push(Recorded::Gone);
                        continue;
                    };
                    match attempt {
                        Attempt::Delivered { status } => {
                            delivered.entry(status).or_default().push(id);
                            streak.since = None;
                            recorded.push(Recorded::Delivered);
                        }
                        Attempt::Failed {
                            status,
                            error,
                            retry_after,
                            gone,
                        } => {
                            let attempts = row.attempts.saturating_add(1);
                            let next = next_attempt(
                                u32::try_from(attempts).unwrap_or(u32::MAX),
                                now,
                                retry_after,
                            );
                            let state = if next.is_some() {
                                DeliveryStatus::Pending
                            } else {
                                DeliveryStatus::Failed
                            };
                            // Still PENDING: on PostgreSQL the row is read
                            // again here, after any change committed since.
                            let still = d::table
                                .filter(d::id.eq(id))
                                .filter(d::status.eq(DeliveryStatus::Pending.as_str()));
                            conn.execute(diesel::update(still).set((
                                d::status.eq(state.as_str()),
                                d::attempts.eq(attempts),
                                d::last_attempt_at.eq(Some(now)),
                                d::next_attempt_at.eq(next),
                                d::last_status_code.eq(status),
                                d::last_error.eq(Some(error)),
                                d::locked_until.eq(None::<NaiveDateTime>),
                            )))
                            .await?;
                            let since = *streak.since.get_or_insert(now);
                            if streak.reason.is_none() {
                                streak.reason = if gone {
                                    Some("the receiver answered 410 Gone".to_string())
                                } else if now - since >= DISABLE_AFTER_FAILING {
                                    Some(format!(
                                        "every delivery failed for {} days",
                                        DISABLE_AFTER_FAILING.num_days()
                                    ))
                                } else {
                                    None
                                };
                            }
                            recorded.push(if next.is_some() {
                                Recorded::Retry
                            } else {
                                Recorded::Failed
                            });
                        }
                    }
                }
                for (status, ids) in delivered {
                    for chunk in ids.chunks(IDS_PER_STATEMENT) {
                        conn.execute(
                            diesel::update(
                                d::table
                                    .filter(d::id.eq_any(chunk.to_vec()))
                                    .filter(d::status.eq(DeliveryStatus::Pending.as_str())),
                            )
                            .set((
                                d::status.eq(DeliveryStatus::Delivered.as_str()),
                                d::attempts.eq(d::attempts + 1),
                                d::last_attempt_at.eq(Some(now)),
                                d::next_attempt_at.eq(None::<NaiveDateTime>),
                                d::delivered_at.eq(Some(now)),
                                d::last_status_code.eq(Some(status)),
                                d::last_error.eq(None::<String>),
                                d::locked_until.eq(None::<NaiveDateTime>),
                            )),
                        )
                        .await?;
                    }
                }
                let mut entries = Vec::new();
                for streak in hooks.into_values() {
                    if streak.since != streak.hook.failing_since {
                        conn.execute(
                            diesel::update(w::table.find(streak.hook.id))
                                .set(w::failing_since.eq(streak.since)),
                        )
                        .await?;
                    }
                    if let Some(reason) = streak.reason {
                        if streak.hook.enabled {
                            entries.push(disable(&mut conn, &streak.hook, reason, now).await?);
                        }
                    }
                }
                Ok((recorded, entries))
            })
            .await?;
        for entry in &entries {
            audit::log(entry);
        }
        Ok(recorded)
    }

    /// Deletes DELIVERED rows delivered before `before`, a batch per
    /// transaction; FAILED rows are kept (an admin may redeliver them).
    /// The number deleted.
    pub async fn prune_deliveries(&self, before: NaiveDateTime) -> Result<usize> {
        let mut total = 0;
        loop {
            let deleted = self
                .transaction(async move |mut conn| {
                    let batch = d::table
                        .filter(status_is(DeliveryStatus::Delivered))
                        .filter(d::delivered_at.lt(before))
                        .select(d::id)
                        .limit(PRUNE_BATCH);
                    let ids: Vec<i64> = conn.load(batch).await?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    Ok(conn
                        .execute(diesel::delete(d::table.filter(d::id.eq_any(ids))))
                        .await?)
                })
                .await?;
            total += deleted;
            if i64::try_from(deleted).unwrap_or(0) < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Whether any webhook is enabled: when none is, an ingest has queued
    /// nothing and the worker need not be woken.
    pub async fn any_enabled_webhook(&self) -> Result<bool> {
        self.read(async move |mut conn| {
            let query = super::schema::webhooks::table
                .filter(super::schema::webhooks::enabled.eq(true))
                .select(super::schema::webhooks::id)
                .limit(1);
            let found: Option<i64> = conn.first(query).await.optional()?;
            Ok(found.is_some())
        })
        .await
    }

    /// When the oldest PENDING delivery of an enabled webhook was queued,
    /// counting changes not yet made into deliveries: each endpoint's first
    /// pending row by id (ids grow with time), read from the index of its
    /// deliveries by status, and the outbox's first row, so a large backlog
    /// costs no more to measure than an empty one and no index is kept for
    /// it.
    pub async fn oldest_pending_delivery(&self) -> Result<Option<NaiveDateTime>> {
        self.read(async move |mut conn| {
            let queued: Option<NaiveDateTime> = conn
                .first(
                    webhook_outbox::table
                        .order(webhook_outbox::id)
                        .select(webhook_outbox::created_at)
                        .limit(1),
                )
                .await
                .optional()?;
            let hooks: Vec<i64> = conn
                .load(w::table.filter(w::enabled.eq(true)).select(w::id))
                .await?;
            let mut oldest: Option<NaiveDateTime> = queued;
            for hook in hooks {
                let first: Option<NaiveDateTime> = conn
                    .first(
                        d::table
                            .filter(d::webhook_id.eq(hook))
                            .filter(d::status.eq(DeliveryStatus::Pending.as_str()))
                            .order(d::id)
                            .select(d::created_at)
                            .limit(1),
                    )
                    .await
                    .optional()?;
                oldest = match (oldest, first) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            Ok(oldest)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::event_pages::sqlite_plan;

    /// Every claim round walks each endpoint's due rows past those the
    /// worker holds: from the partial index alone, never the table (with a
    /// backlog, a walk through the table cost most of the server's CPU).
    #[test]
    fn a_claim_walks_only_the_index_of_due_rows() {
        let now = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let plan = sqlite_plan(&super::due_ids(1, now, 300));
        assert!(
            plan.contains("COVERING INDEX webhook_deliveries_due"),
            "{plan}"
        );
    }
}

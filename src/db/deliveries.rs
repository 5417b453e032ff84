//! The delivery worker's side of the outbox: claiming due deliveries with
//! a lease, recording what an attempt came to, and pruning old rows.
//!
//! A claim sets `locked_until`; until then no other instance (nor this one)
//! claims the row again. A lease rather than a held transaction: an
//! attempt lasts up to 15 s, far too long to keep a row lock open, and an
//! instance that dies mid-attempt frees its rows when the lease runs out
//! (the delivery is then attempted again: at least once, never lost).

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use serde_json::json;

use super::models::{columns, DeliveryRow, NewAudit, WebhookRow};
use super::schema::{webhook_deliveries as d, webhooks as w};
use super::{audit, Conn, Db};
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

/// Deliveries due at `now`: PENDING, due, not leased, of an enabled webhook.
macro_rules! due {
    ($now:expr) => {
        d::table
            .filter(d::status.eq(DeliveryStatus::Pending.as_str()))
            .filter(d::next_attempt_at.le($now))
            .filter(d::locked_until.is_null().or(d::locked_until.le($now)))
            .filter(d::webhook_id.eq_any(w::table.filter(w::enabled.eq(true)).select(w::id)))
    };
}

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

impl Db {
    /// Webhooks with deliveries due now, each once.
    pub async fn webhooks_with_due_deliveries(&self) -> Result<Vec<i64>> {
        self.read(async move |mut conn| {
            let now = crate::domain::now();
            let query = due!(now).select(d::webhook_id).distinct();
            Ok(conn.load(query).await?)
        })
        .await
    }

    /// Leases up to `limit` due deliveries of one webhook, oldest first,
    /// and returns them with the webhook; `None` when there were none (or
    /// the webhook was turned off meanwhile). On PostgreSQL the rows are
    /// picked `FOR UPDATE SKIP LOCKED`, so instances claiming at once split
    /// the work instead of waiting on each other; the `UPDATE` checks the
    /// lease again, so a row is never leased twice on either database.
    pub async fn claim_deliveries(
        &self,
        webhook_id: i64,
        limit: i64,
    ) -> Result<Option<(WebhookRow, Vec<DeliveryRow>)>> {
        self.transaction(async move |mut conn| {
            let now = crate::domain::now();
            let pick = due!(now)
                .filter(d::webhook_id.eq(webhook_id))
                .order(d::id)
                .limit(limit)
                .select(d::id);
            let ids: Vec<i64> = match &mut conn {
                Conn::Postgres(c) => {
                    diesel_async::RunQueryDsl::load(pick.for_update().skip_locked(), &mut **c)
                        .await?
                }
                _ => conn.load(pick).await?,
            };
            if ids.is_empty() {
                return Ok(None);
            }
            let hook: Option<WebhookRow> = conn
                .first(w::table.find(webhook_id).select(columns::<WebhookRow>()))
                .await
                .optional()?;
            let Some(hook) = hook.filter(|h| h.enabled) else {
                return Ok(None);
            };
            let claim = diesel::update(
                d::table
                    .filter(d::id.eq_any(ids))
                    .filter(d::status.eq(DeliveryStatus::Pending.as_str()))
                    .filter(d::locked_until.is_null().or(d::locked_until.le(now))),
            )
            .set(d::locked_until.eq(Some(now + LEASE)))
            .returning(columns::<DeliveryRow>());
            let mut rows: Vec<DeliveryRow> = conn.load(claim).await?;
            rows.sort_by_key(|r| r.id);
            Ok(Some((hook, rows)))
        })
        .await
    }

    /// Records one attempt of delivery `id` in one transaction: the
    /// delivery's new state, the webhook's failing streak, and, when the
    /// endpoint is gone (410) or has failed for `DISABLE_AFTER_FAILING`,
    /// its disabling with a WEBHOOK_DISABLED audit entry.
    pub async fn record_attempt(&self, id: i64, attempt: Attempt) -> Result<Recorded> {
        self.transaction(async move |mut conn| {
            let now = crate::domain::now();
            let row: Option<DeliveryRow> = conn
                .first(d::table.find(id).select(columns::<DeliveryRow>()))
                .await
                .optional()?;
            let Some(row) = row.filter(|r| r.status == DeliveryStatus::Pending) else {
                return Ok((Recorded::Gone, None));
            };
            let hook: Option<WebhookRow> = conn
                .first(
                    w::table
                        .find(row.webhook_id)
                        .select(columns::<WebhookRow>()),
                )
                .await
                .optional()?;
            let Some(hook) = hook else {
                return Ok((Recorded::Gone, None));
            };
            let attempts = row.attempts.saturating_add(1);
            match attempt {
                Attempt::Delivered { status } => {
                    conn.execute(diesel::update(d::table.find(id)).set((
                        d::status.eq(DeliveryStatus::Delivered.as_str()),
                        d::attempts.eq(attempts),
                        d::last_attempt_at.eq(Some(now)),
                        d::next_attempt_at.eq(None::<NaiveDateTime>),
                        d::delivered_at.eq(Some(now)),
                        d::last_status_code.eq(Some(status)),
                        d::last_error.eq(None::<String>),
                        d::locked_until.eq(None::<NaiveDateTime>),
                    )))
                    .await?;
                    if hook.failing_since.is_some() {
                        conn.execute(
                            diesel::update(w::table.find(hook.id))
                                .set(w::failing_since.eq(None::<NaiveDateTime>)),
                        )
                        .await?;
                    }
                    Ok((Recorded::Delivered, None))
                }
                Attempt::Failed {
                    status,
                    error,
                    retry_after,
                    gone,
                } => {
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
                    conn.execute(diesel::update(d::table.find(id)).set((
                        d::status.eq(state.as_str()),
                        d::attempts.eq(attempts),
                        d::last_attempt_at.eq(Some(now)),
                        d::next_attempt_at.eq(next),
                        d::last_status_code.eq(status),
                        d::last_error.eq(Some(error)),
                        d::locked_until.eq(None::<NaiveDateTime>),
                    )))
                    .await?;
                    let since = hook.failing_since.unwrap_or(now);
                    if hook.failing_since.is_none() {
                        conn.execute(
                            diesel::update(w::table.find(hook.id))
                                .set(w::failing_since.eq(Some(now))),
                        )
                        .await?;
                    }
                    let reason = if gone {
                        Some("the receiver answered 410 Gone".to_string())
                    } else if now - since >= DISABLE_AFTER_FAILING {
                        Some(format!(
                            "every delivery failed for {} days",
                            DISABLE_AFTER_FAILING.num_days()
                        ))
                    } else {
                        None
                    };
                    let entry = match reason {
                        Some(reason) if hook.enabled => {
                            Some(disable(&mut conn, &hook, reason, now).await?)
                        }
                        _ => None,
                    };
                    let recorded = if next.is_some() {
                        Recorded::Retry
                    } else {
                        Recorded::Failed
                    };
                    Ok((recorded, entry))
                }
            }
        })
        .await
        .map(audit::logged_if)
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
                        .filter(d::status.eq(DeliveryStatus::Delivered.as_str()))
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

    /// When the oldest PENDING delivery of an enabled webhook was queued.
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

    pub async fn oldest_pending_delivery(&self) -> Result<Option<NaiveDateTime>> {
        self.read(async move |mut conn| {
            let query = d::table
                .filter(d::status.eq(DeliveryStatus::Pending.as_str()))
                .filter(d::webhook_id.eq_any(w::table.filter(w::enabled.eq(true)).select(w::id)))
                .select(diesel::dsl::min(d::created_at));
            Ok(conn.first(query).await?)
        })
        .await
    }
}

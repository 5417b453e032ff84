//! Webhooks and their outbox of deliveries.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{columns, DeliveryRow, NewAudit, SourceList, TriggerList, WebhookRow};
use super::schema::{webhook_deliveries, webhooks};
use super::sql::{keyset, Maybe};
use super::{audit, is_unique_violation, Conn, Db};
use crate::domain::page::Page;
use crate::domain::webhook::{
    message_id, ping_body, NewDelivery, Sealed, WebhookSpec, MAX_WEBHOOKS,
};
use crate::domain::DeliveryStatus;
use crate::error::{Error, Result};

/// One webhook, as stored.
async fn find(conn: &mut Conn<'_>, id: i64) -> Result<Option<WebhookRow>> {
    let query = webhooks::table.find(id).select(columns::<WebhookRow>());
    Ok(conn.first(query).await.optional()?)
}

async fn existing(conn: &mut Conn<'_>, id: i64) -> Result<WebhookRow> {
    find(conn, id)
        .await?
        .ok_or_else(|| Error::missing("id", format!("no webhook with id {id}")))
}

/// The input error for a name another webhook has (names are unique
/// whatever their case).
fn name_taken(err: diesel::result::Error, name: &str) -> Error {
    if is_unique_violation(&err) {
        Error::invalid(
            "input.name",
            format!("a webhook named {name:?} exists already (names are unique, ignoring case)"),
        )
    } else {
        err.into()
    }
}

/// Writes one PENDING delivery inside the caller's transaction: the outbox
/// row of a change, a ping, or a redelivery.
pub async fn insert_delivery(conn: &mut Conn<'_>, new: &NewDelivery) -> Result<DeliveryRow> {
    let insert = diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::webhook_id.eq(new.webhook_id),
            webhook_deliveries::trigger.eq(new.trigger.map(|t| t.as_str().to_owned())),
            webhook_deliveries::alert_id.eq(new.alert_id),
            webhook_deliveries::status.eq(DeliveryStatus::Pending.as_str()),
            webhook_deliveries::message_id.eq(new.message_id.clone()),
            webhook_deliveries::body.eq(new.body.clone()),
            webhook_deliveries::attempts.eq(0),
            webhook_deliveries::created_at.eq(new.at),
            webhook_deliveries::next_attempt_at.eq(Some(new.at)),
        ))
        .returning(columns::<DeliveryRow>());
    Ok(conn.first(insert).await?)
}

/// The PostgreSQL advisory lock webhook creations take turns on (the
/// migration lock is another number).
const CREATE_LOCK: i64 = 0x7477_6866; // "twhf"

impl Db {
    pub async fn create_webhook(
        &self,
        spec: WebhookSpec,
        secret: Sealed,
        created_by: String,
        entry: NewAudit,
    ) -> Result<WebhookRow> {
        self.transaction(async move |mut conn| {
            // Two creates at once on PostgreSQL would each count the other
            // out and overshoot the cap: they take turns here, until their
            // transactions end. SQLite's writer already takes turns.
            if let Conn::Postgres(c) = &mut conn {
                diesel_async::RunQueryDsl::execute(
                    diesel::sql_query(format!("SELECT pg_advisory_xact_lock({CREATE_LOCK})")),
                    &mut **c,
                )
                .await?;
            }
            let count: i64 = conn.first(webhooks::table.count()).await?;
            if count >= MAX_WEBHOOKS {
                return Err(Error::invalid_request(format!(
                    "at most {MAX_WEBHOOKS} webhooks; delete one first"
                )));
            }
            let now = crate::domain::now();
            let insert = diesel::insert_into(webhooks::table)
                .values((
                    webhooks::name.eq(spec.name.clone()),
                    webhooks::url.eq(spec.url),
                    webhooks::triggers.eq(TriggerList::text(&spec.triggers)),
                    webhooks::min_severity.eq(spec.min_severity.map(|s| s.as_str().to_owned())),
                    webhooks::sources.eq(SourceList::text(spec.sources.as_deref())),
                    webhooks::format.eq(spec.format.as_str()),
                    webhooks::enabled.eq(true),
                    webhooks::secret.eq(secret.0),
                    webhooks::created_by.eq(created_by),
                    webhooks::created_at.eq(now),
                    webhooks::updated_at.eq(now),
                ))
                .returning(columns::<WebhookRow>());
            let row: WebhookRow = conn
                .first(insert)
                .await
                .map_err(|e| name_taken(e, &spec.name))?;
            let entry = NewAudit {
                at: now,
                target_type: Some("Webhook".into()),
                target_id: Some(row.id.to_string()),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok((row, entry))
        })
        .await
        .map(audit::logged)
    }

    /// Every webhook, newest first.
    pub async fn webhooks(&self) -> Result<Vec<WebhookRow>> {
        self.read(async move |mut conn| {
            let query = webhooks::table
                .order(webhooks::id.desc())
                .select(columns::<WebhookRow>());
            Ok(conn.load(query).await?)
        })
        .await
    }

    pub async fn webhook(&self, id: i64) -> Result<Option<WebhookRow>> {
        self.read(async move |mut conn| find(&mut conn, id).await)
            .await
    }

    /// Replaces a webhook's settings. `enabled`: `Some(true)` turns it on
    /// and forgets why it was off and how long it had been failing (a
    /// fresh start: the 5 days count again); `Some(false)` turns it off
    /// with `off_reason`; `None` leaves that as it is.
    pub async fn update_webhook(
        &self,
        id: i64,
        spec: WebhookSpec,
        enabled: Option<bool>,
        off_reason: String,
        entry: NewAudit,
    ) -> Result<WebhookRow> {
        self.transaction(async move |mut conn| {
            let current = existing(&mut conn, id).await?;
            let (on, reason, failing_since) = match enabled {
                Some(true) => (true, None, None),
                Some(false) if current.enabled => (false, Some(off_reason), None),
                Some(false) | None => (
                    current.enabled,
                    current.disabled_reason,
                    current.failing_since,
                ),
            };
            let now = crate::domain::now();
            let update = diesel::update(webhooks::table.find(id))
                .set((
                    webhooks::name.eq(spec.name.clone()),
                    webhooks::url.eq(spec.url),
                    webhooks::triggers.eq(TriggerList::text(&spec.triggers)),
                    webhooks::min_severity.eq(spec.min_severity.map(|s| s.as_str().to_owned())),
                    webhooks::sources.eq(SourceList::text(spec.sources.as_deref())),
                    webhooks::format.eq(spec.format.as_str()),
                    webhooks::enabled.eq(on),
                    webhooks::disabled_reason.eq(reason),
                    webhooks::failing_since.eq(failing_since),
                    webhooks::updated_at.eq(now),
                ))
                .returning(columns::<WebhookRow>());
            let row: WebhookRow = conn
                .first(update)
                .await
                .map_err(|e| name_taken(e, &spec.name))?;
            let entry = NewAudit {
                at: now,
                target_type: Some("Webhook".into()),
                target_id: Some(id.to_string()),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok((row, entry))
        })
        .await
        .map(audit::logged)
    }

    /// Deletes a webhook and every delivery of it (pending ones are never
    /// sent). The audit entry gets `detail(name)`.
    pub async fn delete_webhook(
        &self,
        id: i64,
        detail: impl FnOnce(&WebhookRow) -> String + Send + 'static,
        entry: NewAudit,
    ) -> Result<()> {
        self.transaction(async move |mut conn| {
            let current = existing(&mut conn, id).await?;
            // Explicitly, not only by ON DELETE CASCADE: a SQLite connection
            // opened without foreign_keys = ON would keep them.
            conn.execute(diesel::delete(
                webhook_deliveries::table.filter(webhook_deliveries::webhook_id.eq(id)),
            ))
            .await?;
            conn.execute(diesel::delete(webhooks::table.find(id)))
                .await?;
            let entry = NewAudit {
                target_type: Some("Webhook".into()),
                target_id: Some(id.to_string()),
                detail: Some(detail(&current)),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok(((), entry))
        })
        .await
        .map(audit::logged)
    }

    /// Makes `secret` the webhook's secret; the one it replaces keeps
    /// signing until `previous_until`. A second rotation within that time
    /// retires the oldest at once: two secrets sign at most.
    pub async fn rotate_webhook_secret(
        &self,
        id: i64,
        secret: Sealed,
        previous_until: NaiveDateTime,
        entry: NewAudit,
    ) -> Result<WebhookRow> {
        self.transaction(async move |mut conn| {
            let current = existing(&mut conn, id).await?;
            let update = diesel::update(webhooks::table.find(id))
                .set((
                    webhooks::secret.eq(secret.0),
                    webhooks::previous_secret.eq(Some(current.secret.0)),
                    webhooks::previous_secret_until.eq(Some(previous_until)),
                    webhooks::updated_at.eq(crate::domain::now()),
                ))
                .returning(columns::<WebhookRow>());
            let row: WebhookRow = conn.first(update).await?;
            let entry = NewAudit {
                target_type: Some("Webhook".into()),
                target_id: Some(id.to_string()),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok((row, entry))
        })
        .await
        .map(audit::logged)
    }

    /// Queues a ping to the webhook, due now.
    pub async fn queue_ping(&self, id: i64) -> Result<DeliveryRow> {
        self.transaction(async move |mut conn| {
            let hook = existing(&mut conn, id).await?;
            let at = crate::domain::now();
            let new = NewDelivery {
                webhook_id: id,
                trigger: None,
                alert_id: None,
                message_id: message_id(),
                body: ping_body(hook.format, &hook.name, at),
                at,
            };
            insert_delivery(&mut conn, &new).await
        })
        .await
    }

    /// Queues the body of delivery `id` again, as a new delivery (a new
    /// `webhook-id`: a receiver that dropped it as a duplicate takes it).
    pub async fn queue_redelivery(&self, id: i64) -> Result<DeliveryRow> {
        self.transaction(async move |mut conn| {
            let query = webhook_deliveries::table
                .find(id)
                .select(columns::<DeliveryRow>());
            let original: DeliveryRow = conn.first(query).await.optional()?.ok_or_else(|| {
                Error::missing("deliveryId", format!("no webhook delivery with id {id}"))
            })?;
            let new = NewDelivery {
                webhook_id: original.webhook_id,
                trigger: original.trigger,
                alert_id: original.alert_id,
                message_id: message_id(),
                body: original.body,
                at: crate::domain::now(),
            };
            insert_delivery(&mut conn, &new).await
        })
        .await
    }

    /// A page of a webhook's deliveries, newest first, of one status or all,
    /// with every change committed so far made into deliveries first.
    pub async fn deliveries_page(
        &self,
        webhook_id: i64,
        status: Option<DeliveryStatus>,
        page: Page,
    ) -> Result<Vec<DeliveryRow>> {
        self.fan_out_before_reading().await?;
        self.read_page(async move |mut conn| {
            let k = keyset(&page, webhook_deliveries::id);
            let query = webhook_deliveries::table
                .filter(webhook_deliveries::webhook_id.eq(webhook_id))
                .filter(Maybe(
                    status.map(|s| webhook_deliveries::status.eq(s.as_str().to_owned())),
                ))
                .select(columns::<DeliveryRow>())
                .filter(k.range)
                .order(k.order)
                .limit(k.limit);
            Ok(conn.load(query).await?)
        })
        .await
    }

    pub async fn count_deliveries(
        &self,
        webhook_id: i64,
        status: Option<DeliveryStatus>,
    ) -> Result<i64> {
        self.fan_out_before_reading().await?;
        self.read(async move |mut conn| {
            let query = webhook_deliveries::table
                .filter(webhook_deliveries::webhook_id.eq(webhook_id))
                .filter(Maybe(
                    status.map(|s| webhook_deliveries::status.eq(s.as_str().to_owned())),
                ))
                .count();
            Ok(conn.first(query).await?)
        })
        .await
    }
}

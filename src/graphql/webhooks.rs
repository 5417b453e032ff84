//! Webhooks in the schema: the types, and the queries and mutations that
//! `Query` and `Mutation` merge in. ADMIN only, every field: a webhook's
//! URL may carry a chat service's own credential.

use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use super::guard::{principal, RoleGuard, ADMIN};
use super::limits;
use super::scalars::DateTime;
use super::types::{Alert, Connection, Count};
use crate::domain::page::Page;
use crate::domain::webhook::{DeliveryRecord, RawWebhook, WebhookRecord};
use crate::domain::{id, DeliveryStatus, Severity, WebhookFormat, WebhookTrigger};
use crate::service::webhooks::WithSecret;
use crate::service::{ClientIp, Service};

fn service<'a>(ctx: &'a Context<'_>) -> &'a Service {
    ctx.data_unchecked::<Service>()
}

fn ip<'a>(ctx: &'a Context<'_>) -> &'a ClientIp {
    static NONE: ClientIp = ClientIp(None);
    ctx.data_opt::<ClientIp>().unwrap_or(&NONE)
}

/// An endpoint that threatwatch calls when alerts change. Deliveries are
/// signed the Standard Webhooks way with the endpoint's secret.
#[derive(Clone)]
pub struct Webhook(pub WebhookRecord);

#[Object(serial)]
impl Webhook {
    async fn id(&self) -> ID {
        id::format(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn triggers(&self) -> &[WebhookTrigger] {
        &self.0.triggers
    }
    /// Only alerts at or above it; null: all.
    async fn min_severity(&self) -> Option<Severity> {
        self.0.min_severity
    }
    /// Only alerts from these sources; null: all.
    async fn sources(&self) -> Option<&[String]> {
        self.0.sources.as_deref()
    }
    async fn format(&self) -> WebhookFormat {
        self.0.format
    }
    async fn enabled(&self) -> bool {
        self.0.enabled
    }
    /// Why it is off (410 Gone, failing for days, or turned off by an
    /// admin); null while enabled.
    async fn disabled_reason(&self) -> Option<&str> {
        self.0.disabled_reason.as_deref()
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Its deliveries, newest first.
    #[graphql(
        guard = "RoleGuard::new(ADMIN)",
        complexity = "limits::list_cost(first, None, child_complexity)"
    )]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        status: Option<DeliveryStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<WebhookDeliveryConnection> {
        let page = Page::parse(first, after.as_deref(), None, None)?;
        let rows = Box::pin(service(ctx).webhook_deliveries(self.0.id, status, page)).await?;
        Ok(WebhookDeliveryConnection::new(
            rows,
            Count::Deliveries(self.0.id, status),
            WebhookDelivery::keyed,
        ))
    }
}

/// A webhook and its secret, which this answer alone shows: keep it now.
#[derive(SimpleObject)]
#[graphql(serial)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    /// `whsec_` and base64: the key receivers verify signatures with.
    pub secret: String,
}

impl From<WithSecret> for CreatedWebhook {
    fn from(w: WithSecret) -> Self {
        Self {
            webhook: Webhook(w.webhook),
            secret: w.secret,
        }
    }
}

/// One message to a webhook, with how its attempts went.
#[derive(Clone)]
pub struct WebhookDelivery(pub DeliveryRecord);

impl WebhookDelivery {
    pub fn keyed(row: DeliveryRecord) -> (i64, Self) {
        (row.id, Self(row))
    }
}

#[Object(serial)]
impl WebhookDelivery {
    async fn id(&self) -> ID {
        id::format(self.0.id)
    }
    /// Null for a ping (testWebhook).
    async fn trigger(&self) -> Option<WebhookTrigger> {
        self.0.trigger
    }
    /// The alert it reports; null for a ping, or once the alert is gone.
    async fn alert(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Alert>> {
        let Some(id) = self.0.alert_id else {
            return Ok(None);
        };
        Ok(Box::pin(service(ctx).alert(id)).await?.map(Alert))
    }
    async fn status(&self) -> DeliveryStatus {
        self.0.status
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    async fn last_attempt_at(&self) -> Option<DateTime> {
        self.0.last_attempt_at.map(Into::into)
    }
    /// When it is tried next; null once DELIVERED or FAILED.
    async fn next_attempt_at(&self) -> Option<DateTime> {
        self.0.next_attempt_at.map(Into::into)
    }
    async fn delivered_at(&self) -> Option<DateTime> {
        self.0.delivered_at.map(Into::into)
    }
    /// The receiver's HTTP status at the last attempt.
    async fn last_status_code(&self) -> Option<i32> {
        self.0.last_status_code
    }
    /// Why the last attempt failed: the receiver's status, or why there was
    /// none (timeout, refused address, TLS).
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
}

pub type WebhookDeliveryConnection = Connection<WebhookDelivery>;

#[derive(InputObject)]
pub struct WebhookInput {
    /// 1..100 characters, unique (ignoring case).
    pub name: String,
    /// https://, up to 2000 characters, no user or password. http:// and
    /// private, loopback or link-local addresses only where
    /// THREATWATCH_WEBHOOK_ALLOW_NETS lists them.
    pub url: String,
    /// At least one.
    pub triggers: Vec<WebhookTrigger>,
    /// Only alerts at or above it (null: all).
    pub min_severity: Option<Severity>,
    /// Only alerts from these sources, 1..100 names (null: all).
    pub sources: Option<Vec<String>>,
    /// Default STANDARD.
    pub format: Option<WebhookFormat>,
}

impl From<WebhookInput> for RawWebhook {
    fn from(i: WebhookInput) -> Self {
        RawWebhook {
            name: i.name,
            url: i.url,
            triggers: i.triggers,
            min_severity: i.min_severity,
            sources: i.sources,
            format: i.format,
        }
    }
}

#[derive(Default)]
pub struct WebhookQuery;

#[Object]
impl WebhookQuery {
    /// Every webhook, newest first.
    #[graphql(
        guard = "RoleGuard::new(ADMIN)",
        complexity = "limits::unpaged_cost(child_complexity)"
    )]
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        Ok(service(ctx)
            .webhooks()
            .await?
            .into_iter()
            .map(Webhook)
            .collect())
    }

    /// One webhook; null when the id names none.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Webhook>> {
        let id = id::parse("id", &id)?;
        Ok(service(ctx).webhook(id).await?.map(Webhook))
    }
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Registers an endpoint. Its secret is in this answer only.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn create_webhook(
        &self,
        ctx: &Context<'_>,
        input: WebhookInput,
    ) -> async_graphql::Result<CreatedWebhook> {
        let who = principal(ctx)?;
        Ok(service(ctx)
            .create_webhook(who, input.into(), ip(ctx))
            .await?
            .into())
    }

    /// Replaces an endpoint's settings. `enabled: true` turns one the
    /// service disabled back on; `false` turns it off.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: WebhookInput,
        enabled: Option<bool>,
    ) -> async_graphql::Result<Webhook> {
        let id = id::parse("id", &id)?;
        let who = principal(ctx)?;
        Ok(Webhook(
            service(ctx)
                .update_webhook(who, id, input.into(), enabled, ip(ctx))
                .await?,
        ))
    }

    /// Deletes an endpoint and its deliveries, pending ones included.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<bool> {
        let id = id::parse("id", &id)?;
        let who = principal(ctx)?;
        service(ctx).delete_webhook(who, id, ip(ctx)).await?;
        Ok(true)
    }

    /// A new secret, in this answer only. The old one keeps signing beside
    /// it for 24 h, so receivers can switch without losing a delivery.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<CreatedWebhook> {
        let id = id::parse("id", &id)?;
        let who = principal(ctx)?;
        Ok(service(ctx)
            .rotate_webhook_secret(who, id, ip(ctx))
            .await?
            .into())
    }

    /// Queues a ping to the endpoint, delivered and recorded like any
    /// other delivery.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn test_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WebhookDelivery> {
        let id = id::parse("id", &id)?;
        Ok(WebhookDelivery(service(ctx).test_webhook(id).await?))
    }

    /// Queues the same body again as a new delivery (a new webhook-id).
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: ID,
    ) -> async_graphql::Result<WebhookDelivery> {
        let id = id::parse("deliveryId", &delivery_id)?;
        Ok(WebhookDelivery(service(ctx).redeliver_webhook(id).await?))
    }
}

//! Webhooks: the admin's side (create, change, rotate, test, redeliver).
//! What is sent when, and the retry schedule, are `domain::webhook`'s; the
//! delivery worker reads the outbox this writes.

use std::net::IpAddr;

use serde_json::json;

use super::{audit, ClientIp, Service};
use crate::auth::Principal;
use crate::config::Settings;
use crate::db::Db;
use crate::domain::page::{Page, PageOf};
use crate::domain::webhook::{
    DeliveryRecord, RawWebhook, WebhookRecord, WebhookSpec, PREVIOUS_SECRET_FOR,
};
use crate::domain::{AuditAction, DeliveryStatus};
use crate::error::{Error, Result};
use crate::notify::address::AddressPolicy;
use crate::notify::seal::SealKey;
use crate::notify::sign::Secret;

/// Where the sealing key is kept when no setting gives one.
const SEAL_KEY_SETTING: &str = "webhook_seal_key";

/// What webhooks need from the service's settings: the key secrets are
/// sealed under, and which addresses may be called.
pub struct WebhookKeys {
    pub seal: SealKey,
    pub policy: AddressPolicy,
}

impl WebhookKeys {
    /// The sealing key: `THREATWATCH_SECRET_KEY`, else one derived from
    /// `THREATWATCH_JWT_SECRET`, else one generated once and kept with the
    /// data (so every instance over one database shares it).
    pub(super) async fn load(settings: &Settings, db: &Db) -> Result<Self> {
        let seal = match (&settings.secret_key, &settings.jwt_secret) {
            (Some(key), _) => SealKey::new(&key.0),
            (None, Some(jwt)) => SealKey::derived_from(jwt),
            (None, None) => SealKey::from_base64(
                &db.setting_or_insert(SEAL_KEY_SETTING, SealKey::generate_base64())
                    .await?,
            )?,
        };
        Ok(Self {
            seal,
            policy: AddressPolicy::new(settings.webhook_allow_nets.clone()),
        })
    }
}

/// A webhook the admin just made or rotated, with its secret's text,
/// which is never shown again.
pub struct WithSecret {
    pub webhook: WebhookRecord,
    pub secret: String,
}

impl Service {
    /// Validates a webhook's settings: the rules of `WebhookSpec`, and, for
    /// an address written as an IP literal, the address policy now rather
    /// than at the first delivery. Host names are checked on every
    /// connection, on the addresses they resolve to then.
    fn webhook_spec(&self, raw: RawWebhook) -> Result<WebhookSpec> {
        let spec = WebhookSpec::parse(raw)?;
        let url =
            url::Url::parse(&spec.url).map_err(|_| Error::invalid("input.url", "is not a URL"))?;
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) | None => None,
        };
        if let Some(ip) = ip {
            let plain_http = url.scheme() == "http";
            if let Some(why) = self.webhook_keys.policy.refusal(ip, plain_http) {
                return Err(Error::invalid("input.url", why));
            }
        }
        Ok(spec)
    }

    pub async fn create_webhook(
        &self,
        who: &Principal,
        raw: RawWebhook,
        ip: &ClientIp,
    ) -> Result<WithSecret> {
        let spec = self.webhook_spec(raw)?;
        let (_, secret) = Secret::generate();
        let sealed = self.webhook_keys.seal.seal(&secret)?;
        let mut entry = audit(AuditAction::WebhookCreated, who.actor(), ip);
        entry.detail = Some(spec_detail(&spec, None));
        let webhook = self
            .db
            .create_webhook(spec, sealed, who.actor(), entry)
            .await?;
        self.webhooks_live
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(WithSecret { webhook, secret })
    }

    pub async fn webhooks(&self) -> Result<Vec<WebhookRecord>> {
        self.db.webhooks().await
    }

    pub async fn webhook(&self, id: i64) -> Result<Option<WebhookRecord>> {
        self.db.webhook(id).await
    }

    pub async fn update_webhook(
        &self,
        who: &Principal,
        id: i64,
        raw: RawWebhook,
        enabled: Option<bool>,
        ip: &ClientIp,
    ) -> Result<WebhookRecord> {
        let spec = self.webhook_spec(raw)?;
        let mut entry = audit(AuditAction::WebhookUpdated, who.actor(), ip);
        entry.detail = Some(spec_detail(&spec, enabled));
        let off_reason = format!("turned off by {}", who.actor());
        let webhook = self
            .db
            .update_webhook(id, spec, enabled, off_reason, entry)
            .await?;
        if webhook.enabled {
            self.webhooks_live
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(webhook)
    }

    pub async fn delete_webhook(&self, who: &Principal, id: i64, ip: &ClientIp) -> Result<()> {
        let entry = audit(AuditAction::WebhookDeleted, who.actor(), ip);
        self.db
            .delete_webhook(
                id,
                |hook| json!({ "name": hook.name, "url": origin(&hook.url) }).to_string(),
                entry,
            )
            .await
    }

    /// A new secret for the webhook; the old one keeps signing beside it
    /// for `PREVIOUS_SECRET_FOR`.
    pub async fn rotate_webhook_secret(
        &self,
        who: &Principal,
        id: i64,
        ip: &ClientIp,
    ) -> Result<WithSecret> {
        let (_, secret) = Secret::generate();
        let sealed = self.webhook_keys.seal.seal(&secret)?;
        let until = crate::domain::now() + PREVIOUS_SECRET_FOR;
        let mut entry = audit(AuditAction::WebhookSecretRotated, who.actor(), ip);
        entry.detail =
            Some(json!({ "previousSecretUntil": until.and_utc().to_rfc3339() }).to_string());
        let webhook = self
            .db
            .rotate_webhook_secret(id, sealed, until, entry)
            .await?;
        Ok(WithSecret { webhook, secret })
    }

    /// The secrets a delivery to `hook` is signed with at `now`, newest
    /// first (two during a rotation), for the `webhook-signature` header.
    pub fn signing_secrets(
        &self,
        hook: &WebhookRecord,
        now: chrono::NaiveDateTime,
    ) -> Result<Vec<Secret>> {
        signing_secrets(&self.webhook_keys.seal, hook, now)
    }

    /// Queues a ping; the worker sends it like any delivery.
    pub async fn test_webhook(&self, id: i64) -> Result<DeliveryRecord> {
        let ping = self.db.queue_ping(id).await?;
        self.wake_deliveries();
        Ok(ping)
    }

    /// Queues a delivery's body again, under a new `webhook-id`.
    pub async fn redeliver_webhook(&self, delivery_id: i64) -> Result<DeliveryRecord> {
        let again = self.db.queue_redelivery(delivery_id).await?;
        self.wake_deliveries();
        Ok(again)
    }

    pub async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        status: Option<DeliveryStatus>,
        page: Page,
    ) -> Result<PageOf<DeliveryRecord>> {
        Ok(page.finish(self.db.deliveries_page(webhook_id, status, page).await?))
    }

    pub async fn count_webhook_deliveries(
        &self,
        webhook_id: i64,
        status: Option<DeliveryStatus>,
    ) -> Result<i64> {
        self.db.count_deliveries(webhook_id, status).await
    }
}

fn signing_secrets(
    seal: &SealKey,
    hook: &WebhookRecord,
    now: chrono::NaiveDateTime,
) -> Result<Vec<Secret>> {
    let mut secrets = vec![seal.open(&hook.secret)?];
    if let Some(previous) = hook.live_previous_secret(now) {
        secrets.push(seal.open(previous)?);
    }
    Ok(secrets)
}

/// What the audit log keeps of a webhook's settings. The URL only to its
/// origin: chat services put their own credential in the path
/// (`hooks.slack.com/services/T../B../<token>`), and audit entries are
/// shipped to log stores with wider readership than the admins.
fn spec_detail(spec: &WebhookSpec, enabled: Option<bool>) -> String {
    json!({
        "name": spec.name,
        "url": origin(&spec.url),
        "triggers": spec.triggers.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "minSeverity": spec.min_severity.map(|s| s.as_str()),
        "sources": spec.sources,
        "format": spec.format.as_str(),
        "enabled": enabled,
    })
    .to_string()
}

/// `scheme://host[:port]` of a URL, or nothing when it does not parse.
fn origin(url: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::webhook::Sealed;
    use crate::domain::WebhookFormat;

    #[test]
    fn a_rotated_out_secret_signs_for_its_overlap_only() {
        let seal = SealKey::new(&[3; 32]);
        let (new, new_text) = Secret::generate();
        let (old, old_text) = Secret::generate();
        let now = crate::domain::now();
        let mut hook = WebhookRecord {
            id: 1,
            name: "pager".into(),
            url: "https://hooks.example.com/x".into(),
            triggers: vec![crate::domain::WebhookTrigger::AlertRaised],
            min_severity: None,
            sources: None,
            format: WebhookFormat::Standard,
            enabled: true,
            disabled_reason: None,
            secret: seal.seal(&new_text).unwrap(),
            previous_secret: None,
            previous_secret_until: None,
            failing_since: None,
            created_by: "admin".into(),
            created_at: now,
            updated_at: now,
        };
        let bytes = |s: Vec<Secret>| s.iter().map(|s| s.bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(
            bytes(signing_secrets(&seal, &hook, now).unwrap()),
            [new.bytes()]
        );
        hook.previous_secret = Some(seal.seal(&old_text).unwrap());
        hook.previous_secret_until = Some(now + PREVIOUS_SECRET_FOR);
        assert_eq!(
            bytes(signing_secrets(&seal, &hook, now).unwrap()),
            [new.bytes(), old.bytes()]
        );
        let later = now + PREVIOUS_SECRET_FOR;
        assert_eq!(
            bytes(signing_secrets(&seal, &hook, later).unwrap()),
            [new.bytes()]
        );
        hook.secret = Sealed("v1.garbage".into());
        assert!(signing_secrets(&seal, &hook, now).is_err());
    }
}

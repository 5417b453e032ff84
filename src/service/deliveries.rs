//! The delivery worker's door to storage: what is due, leases, outcomes,
//! pruning. The worker itself (`notify::worker`) makes the calls.

use chrono::NaiveDateTime;

use super::Service;
use crate::db::deliveries::{Attempt, Recorded};
use crate::domain::webhook::{DeliveryRecord, WebhookRecord};
use crate::error::Result;

impl Service {
    /// Tells the delivery worker that deliveries were committed, so it
    /// sends them now rather than at its next poll.
    pub fn wake_deliveries(&self) {
        self.deliveries.notify_one();
    }

    /// Reads again whether any webhook is enabled (any instance may have
    /// changed one); the ingest writer wakes the worker only while one is.
    pub async fn refresh_webhooks_live(&self) -> Result<()> {
        let live = self.db.any_enabled_webhook().await?;
        self.webhooks_live
            .store(live, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    pub async fn webhooks_with_due_deliveries(&self) -> Result<Vec<i64>> {
        self.db.webhooks_with_due_deliveries().await
    }

    pub async fn claim_deliveries(
        &self,
        webhook_id: i64,
        limit: i64,
    ) -> Result<Option<(WebhookRecord, Vec<DeliveryRecord>)>> {
        self.db.claim_deliveries(webhook_id, limit).await
    }

    pub async fn record_delivery_attempt(&self, id: i64, attempt: Attempt) -> Result<Recorded> {
        self.db.record_attempt(id, attempt).await
    }

    pub async fn prune_deliveries(&self, before: NaiveDateTime) -> Result<usize> {
        self.db.prune_deliveries(before).await
    }

    pub async fn oldest_pending_delivery(&self) -> Result<Option<NaiveDateTime>> {
        self.db.oldest_pending_delivery().await
    }
}

//! The delivery worker's door to storage: what is due, leases, outcomes,
//! pruning. The worker itself (`notify::worker`) makes the calls.

use std::collections::{HashMap, HashSet};

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

    /// Turns a batch of queued changes into deliveries; whether more are
    /// queued. The worker paces these (they are writes).
    pub async fn fan_out_deliveries(&self) -> Result<bool> {
        self.db.fan_out().await
    }

    /// One claim round: what is due, by endpoint.
    pub async fn claim_deliveries(
        &self,
        budgets: HashMap<i64, i64>,
        default_budget: i64,
        held: HashMap<i64, HashSet<i64>>,
    ) -> Result<Vec<(WebhookRecord, Vec<DeliveryRecord>)>> {
        self.db.claim_due(budgets, default_budget, held).await
    }

    pub async fn record_delivery_attempts(
        &self,
        attempts: Vec<(i64, Attempt)>,
    ) -> Result<Vec<Recorded>> {
        self.db.record_attempts(attempts).await
    }

    pub async fn prune_deliveries(&self, before: NaiveDateTime) -> Result<usize> {
        self.db.prune_deliveries(before).await
    }

    pub async fn oldest_pending_delivery(&self) -> Result<Option<NaiveDateTime>> {
        self.db.oldest_pending_delivery().await
    }
}

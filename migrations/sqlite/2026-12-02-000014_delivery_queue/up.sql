-- The worker's queue, per endpoint: due rows of one webhook, soonest
-- first, without walking that endpoint's rows waiting for a later retry.
DROP INDEX webhook_deliveries_pending;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (webhook_id, next_attempt_at, id)
    WHERE status = 'PENDING';
-- Pruning walks only delivered rows past their keep.
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_at)
    WHERE status = 'DELIVERED';

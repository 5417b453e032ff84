-- Outbound webhooks and their outbox.
--
-- AUTOINCREMENT, unlike the other tables: webhooks and deliveries are
-- deleted, and a plain rowid would hand the id of the newest one deleted to
-- the next one made, so a stale id (an admin's bookmark, a receiver's log)
-- would name something else.

CREATE TABLE webhooks (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name                  TEXT NOT NULL,
    url                   TEXT NOT NULL,
    -- Comma-separated WebhookTrigger names, each once.
    triggers              TEXT NOT NULL,
    min_severity          TEXT CHECK (min_severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    -- A JSON array of source names; NULL: every source.
    sources               TEXT,
    format                TEXT NOT NULL CHECK (format IN ('STANDARD', 'SLACK')),
    enabled               BOOLEAN NOT NULL DEFAULT 1,
    disabled_reason       TEXT,
    -- Sealed (notify::seal), never the secret's text.
    secret                TEXT NOT NULL,
    previous_secret       TEXT,
    previous_secret_until TIMESTAMP,
    -- The first failure since the last success: 5 days of it disables.
    failing_since         TIMESTAMP,
    created_by            TEXT NOT NULL,
    created_at            TIMESTAMP NOT NULL,
    updated_at            TIMESTAMP NOT NULL
);
-- "Pager" and "pager" would be two endpoints a reader cannot tell apart.
CREATE UNIQUE INDEX webhooks_name_lower ON webhooks (lower(name));

-- alert_id has no foreign key: a delivery carries its body, rendered once,
-- and outlives the alert (retention may delete it); a key would also make
-- every alert deletion look for deliveries.
CREATE TABLE webhook_deliveries (
    id               INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    webhook_id       BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    -- NULL for a ping (testWebhook).
    "trigger"        TEXT CHECK ("trigger" IN ('ALERT_RAISED', 'ALERT_REPEATED', 'ALERT_STATUS_CHANGED', 'ALERT_ASSIGNED', 'ALERT_COMMENTED')),
    alert_id         BIGINT,
    status           TEXT NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    -- The webhook-id header: the same on every retry, new for a redelivery.
    message_id       TEXT NOT NULL,
    body             TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       TIMESTAMP NOT NULL,
    last_attempt_at  TIMESTAMP,
    next_attempt_at  TIMESTAMP,
    delivered_at     TIMESTAMP,
    last_status_code INTEGER,
    last_error       TEXT,
    -- The lease of the instance attempting it now.
    locked_until     TIMESTAMP
);
-- The worker's queue: only pending rows, soonest first.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (next_attempt_at)
    WHERE status = 'PENDING';
-- An endpoint's deliveries, newest first, all or by status.
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_webhook_status ON webhook_deliveries (webhook_id, status, id);
-- The last ALERT_REPEATED of an alert to an endpoint (one an hour at most).
CREATE INDEX webhook_deliveries_repeats ON webhook_deliveries (webhook_id, alert_id, id)
    WHERE "trigger" = 'ALERT_REPEATED';

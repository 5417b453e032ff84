-- The outbox proper: one row per change to report, written in the change's
-- transaction, instead of one delivery row per change and endpoint there.
-- The delivery worker turns each row into its deliveries (one per endpoint
-- it names) in transactions of its own and deletes it, so ingest writes
-- one narrow row with a single index however many endpoints listen.
--
-- A plain rowid: rows live a moment, nothing refers to them, and an id
-- handed out again after its row is gone names nothing stale.
CREATE TABLE webhook_outbox (
    id          INTEGER PRIMARY KEY NOT NULL,
    "trigger"   TEXT NOT NULL CHECK ("trigger" IN ('ALERT_RAISED', 'ALERT_REPEATED', 'ALERT_STATUS_CHANGED', 'ALERT_ASSIGNED', 'ALERT_COMMENTED')),
    alert_id    BIGINT NOT NULL,
    -- The endpoints that wanted the change when it committed: webhook ids,
    -- comma-separated.
    webhooks    TEXT NOT NULL,
    -- The body in each format one of those endpoints takes, rendered at
    -- the change (it reports the alert as the change left it).
    standard    TEXT,
    slack       TEXT,
    created_at  TIMESTAMP NOT NULL
);

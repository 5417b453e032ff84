-- Most events raise no alert, yet each held an entry in this index (under
-- a NULL alert_id), so every ingested event paid one more index insert
-- than it needed. Only linked events are ever looked up by alert
-- (`alert_id = ?`, which implies `alert_id IS NOT NULL`, so both planners
-- still use it).
DROP INDEX events_alert_id;
CREATE INDEX events_alert_id ON events (alert_id, id) WHERE alert_id IS NOT NULL;

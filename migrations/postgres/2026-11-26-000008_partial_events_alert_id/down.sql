DROP INDEX events_alert_id;
CREATE INDEX events_alert_id ON events (alert_id, id);

-- Triage: ownership, notes and lifecycle times.

ALTER TABLE alerts ADD COLUMN assignee_id BIGINT REFERENCES users (id);
-- The first time each status was reached, and how long it took (seconds,
-- computed when it happens, so averages need no date arithmetic in SQL).
ALTER TABLE alerts ADD COLUMN acknowledged_at TIMESTAMP;
ALTER TABLE alerts ADD COLUMN resolved_at TIMESTAMP;
ALTER TABLE alerts ADD COLUMN seconds_to_acknowledge DOUBLE PRECISION;
ALTER TABLE alerts ADD COLUMN seconds_to_resolve DOUBLE PRECISION;
-- Alerts moved before this migration: their last change is the best record.
UPDATE alerts SET acknowledged_at = updated_at WHERE status = 'ACKNOWLEDGED';
UPDATE alerts SET resolved_at = updated_at WHERE status = 'RESOLVED';

CREATE INDEX alerts_assignee_id ON alerts (assignee_id, id);
CREATE INDEX alerts_assignee_status_id ON alerts (assignee_id, status, id);
CREATE INDEX alerts_created_at ON alerts (created_at);

-- Every event that belongs to an alert points at it (the raising one now;
-- folded repeats later).
ALTER TABLE events ADD COLUMN alert_id BIGINT REFERENCES alerts (id);
UPDATE events SET alert_id = (SELECT a.id FROM alerts a WHERE a.event_id = events.id);
CREATE INDEX events_alert_id ON events (alert_id, id);

CREATE TABLE alert_comments (
    id         INTEGER PRIMARY KEY NOT NULL,
    alert_id   BIGINT NOT NULL REFERENCES alerts (id),
    author     TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX alert_comments_alert_id ON alert_comments (alert_id, id);
-- Notes are part of the record: never edited, never deleted.
CREATE TRIGGER alert_comments_no_update BEFORE UPDATE ON alert_comments
BEGIN SELECT RAISE(ABORT, 'alert_comments is append-only'); END;
CREATE TRIGGER alert_comments_no_delete BEFORE DELETE ON alert_comments
BEGIN SELECT RAISE(ABORT, 'alert_comments is append-only'); END;

-- All-time lifecycle sums, kept with each status change (one row).
CREATE TABLE alert_lifecycle (
    id                   INTEGER PRIMARY KEY NOT NULL,
    acknowledged         BIGINT NOT NULL,
    seconds_to_acknowledge DOUBLE PRECISION NOT NULL,
    resolved             BIGINT NOT NULL,
    seconds_to_resolve   DOUBLE PRECISION NOT NULL
);
INSERT INTO alert_lifecycle VALUES (1, 0, 0, 0, 0);

-- Retention (THREATWATCH_RETENTION): resolved alerts past the window go
-- with their events and comments, and old events that belong to no alert.

-- The purge's queue: resolved alerts, longest resolved first. Written only
-- when an alert is resolved, never by ingest.
CREATE INDEX alerts_resolved_at ON alerts (resolved_at, id) WHERE status = 'RESOLVED';

-- Comments stay append-only while their alert lives: only the purge of a
-- resolved alert deletes them.
DROP TRIGGER alert_comments_no_delete;
CREATE TRIGGER alert_comments_no_delete BEFORE DELETE ON alert_comments
WHEN (SELECT status FROM alerts WHERE id = OLD.alert_id) IS NOT 'RESOLVED'
BEGIN SELECT RAISE(ABORT, 'alert_comments is append-only until its alert is resolved and purged'); END;

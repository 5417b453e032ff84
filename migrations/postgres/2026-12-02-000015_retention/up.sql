-- Retention (THREATWATCH_RETENTION): resolved alerts past the window go
-- with their events and comments, and old events that belong to no alert.

-- The purge's queue: resolved alerts, longest resolved first. Written only
-- when an alert is resolved, never by ingest.
CREATE INDEX alerts_resolved_at ON alerts (resolved_at, id) WHERE status = 'RESOLVED';

-- Comments stay append-only while their alert lives: only the purge of a
-- resolved alert deletes them.
CREATE OR REPLACE FUNCTION alert_comments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND (SELECT status FROM alerts WHERE id = OLD.alert_id) = 'RESOLVED' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'alert_comments is append-only until its alert is resolved and purged';
END;
$$;

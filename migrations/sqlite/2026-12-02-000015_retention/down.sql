DROP TRIGGER alert_comments_no_delete;
CREATE TRIGGER alert_comments_no_delete BEFORE DELETE ON alert_comments
BEGIN SELECT RAISE(ABORT, 'alert_comments is append-only'); END;
DROP INDEX alerts_resolved_at;

CREATE OR REPLACE FUNCTION alert_comments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'alert_comments is append-only';
END;
$$;
DROP INDEX alerts_resolved_at;

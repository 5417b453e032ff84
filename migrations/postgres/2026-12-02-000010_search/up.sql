-- Triage narrows lists down by source, event type, time and words.
--
-- Every filter has an index that ends in id, so that a filtered page is one
-- range walk in the list's order (see db::alerts and db::event_pages).

-- An alert carries its event's type, as it carries its source and
-- severity, so that alerts filter on it without reading their events. A
-- trigger fills it, for the ingest writer and the importer alike. Rows
-- from before the column, and any alert whose source was never copied,
-- are filled here.
ALTER TABLE alerts ADD COLUMN event_type TEXT;
UPDATE alerts a SET event_type = e.event_type, source = coalesce(a.source, e.source)
FROM events e WHERE e.id = a.event_id;

CREATE FUNCTION alerts_copy_event_type() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_type IS NULL THEN
        SELECT e.event_type INTO NEW.event_type FROM events e WHERE e.id = NEW.event_id;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER alerts_copy_event_type BEFORE INSERT ON alerts
FOR EACH ROW EXECUTE FUNCTION alerts_copy_event_type();

CREATE INDEX alerts_source_id ON alerts (source, id);
CREATE INDEX alerts_event_type_id ON alerts (event_type, id);
-- Time-filtered pages are ordered by (created_at, id); see db::sql::Around.
DROP INDEX alerts_created_at;
CREATE INDEX alerts_created_at_id ON alerts (created_at, id);
CREATE INDEX alerts_source_created_at_id ON alerts (source, created_at, id);

CREATE INDEX events_source_id ON events (source, id);
CREATE INDEX events_event_type_id ON events (event_type, id);
CREATE INDEX events_created_at_id ON events (created_at, id);
CREATE INDEX events_source_created_at_id ON events (source, created_at, id);

-- Words: a GIN index on the event's words. The text's ASCII punctuation
-- becomes spaces first, so that words are runs of letters and digits as
-- on SQLite (the parser alone reads "HOST-7" as "host" and "-7", and keeps
-- "evil.example.com" whole); 'simple' lowercases and neither stems nor
-- drops stop words. An alert is found by the words of the event that
-- raised it.
--
-- A function of its own, so that the planner knows what reading a row's
-- words costs: to_tsvector's default cost made an id-ordered walk look
-- cheaper than the GIN index for a word in 1 alert of 1,000 (92 ms where
-- the index takes 12 ms on 1,000,000 alerts). plpgsql, because an SQL
-- function would be inlined and its cost forgotten. db::sql::pg_words
-- calls it exactly as the index is built (a unit test compares them).
CREATE FUNCTION threatwatch_words(source TEXT, event_type TEXT, description TEXT)
RETURNS tsvector LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE COST 10000 AS $$
BEGIN
    RETURN to_tsvector('simple', translate(source || ' ' || event_type || ' ' || description,
        '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                '));
END
$$;
CREATE INDEX events_words ON events USING gin (threatwatch_words(source, event_type, description));

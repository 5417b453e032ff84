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
UPDATE alerts SET event_type = (SELECT e.event_type FROM events e WHERE e.id = alerts.event_id),
                  source = coalesce(source, (SELECT e.source FROM events e WHERE e.id = alerts.event_id));

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

-- Words: one FTS5 index per list, each keyed by that list's id, so that a
-- search page walks the index in the list's order and stops at the page
-- size however common the words are. Contentless (the text stays in
-- events only); unicode61 folds case and diacritics. An alert is found by
-- the words of the event that raised it.
CREATE VIRTUAL TABLE events_fts USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61'
);
CREATE VIRTUAL TABLE alerts_fts USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61'
);
INSERT INTO events_fts (rowid, body)
SELECT id, source || ' ' || event_type || ' ' || description FROM events;
INSERT INTO alerts_fts (rowid, body)
SELECT a.id, e.source || ' ' || e.event_type || ' ' || e.description
FROM alerts a JOIN events e ON e.id = a.event_id;

CREATE TRIGGER events_search_insert AFTER INSERT ON events
BEGIN
    INSERT INTO events_fts (rowid, body)
    VALUES (NEW.id, NEW.source || ' ' || NEW.event_type || ' ' || NEW.description);
END;
-- Events are never edited; retention may delete them.
CREATE TRIGGER events_search_delete AFTER DELETE ON events
BEGIN
    DELETE FROM events_fts WHERE rowid = OLD.id;
END;

CREATE TRIGGER alerts_search_insert AFTER INSERT ON alerts
BEGIN
    UPDATE alerts SET event_type = (SELECT e.event_type FROM events e WHERE e.id = NEW.event_id)
    WHERE id = NEW.id AND NEW.event_type IS NULL;
    INSERT INTO alerts_fts (rowid, body)
    SELECT NEW.id, e.source || ' ' || e.event_type || ' ' || e.description
    FROM events e WHERE e.id = NEW.event_id;
END;
CREATE TRIGGER alerts_search_delete AFTER DELETE ON alerts
BEGIN
    DELETE FROM alerts_fts WHERE rowid = OLD.id;
END;

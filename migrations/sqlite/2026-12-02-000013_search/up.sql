-- Triage narrows lists down by source, event type, time and words.
--
-- Every B-tree index here is written by every ingest batch, so each earns its
-- place (bench/results-2026-12-02-filters.txt measures what they cost):
-- a filtered page is one index walk in the page's order, and a list cut to
-- a source or a time range is ordered by (created_at, id) (see
-- db::sql::Around), so one (source, created_at, id) index serves a source
-- alone and a source with a time range. An event type has no index of its
-- own: a page of one type walks the list in order and checks it (sensors
-- send few types, so matches are dense; each index measured about a tenth
-- of raw ingest).

-- An alert carries its event's type, as it carries its source and
-- severity, so that alerts filter on it without reading their events. The
-- writers (ingest, the importer) store it; rows from before the column,
-- and any alert whose source was never copied, are filled here.
ALTER TABLE alerts ADD COLUMN event_type TEXT;
UPDATE alerts SET event_type = (SELECT e.event_type FROM events e WHERE e.id = alerts.event_id),
                  source = coalesce(source, (SELECT e.source FROM events e WHERE e.id = alerts.event_id));

-- Replaces (created_at): the same walk, with the page's tie-breaker.
DROP INDEX alerts_created_at;
CREATE INDEX alerts_created_at_id ON alerts (created_at, id);
CREATE INDEX alerts_source_created_at_id ON alerts (source, created_at, id);

CREATE INDEX events_created_at_id ON events (created_at, id);
CREATE INDEX events_source_created_at_id ON events (source, created_at, id);

-- Words: one FTS5 index per list, each keyed by that list's id, so that
-- a search page walks it in the list's order and stops at the page size
-- however common the words are. An alert holds the words of the event
-- that raised it. Contentless (the text stays in events only); unicode61
-- folds case and diacritics.
--
-- Filled behind ingest, not inside it (db::words): FTS5 writes a segment
-- per transaction and merges segments as they pile up, so indexing each
-- small group-commit batch cost ingest far more than indexing the same
-- rows a second at a time. `words_indexed` is how far each index has got;
-- a search first indexes whatever is newer, so it never misses a row.
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

CREATE TABLE words_indexed (
    list    TEXT PRIMARY KEY NOT NULL CHECK (list IN ('events', 'alerts')),
    through BIGINT NOT NULL
);
INSERT INTO words_indexed (list, through) SELECT 'events', coalesce(max(id), 0) FROM events;
INSERT INTO words_indexed (list, through) SELECT 'alerts', coalesce(max(id), 0) FROM alerts;

-- Events are never edited; retention may delete them and their alerts.
CREATE TRIGGER events_search_delete AFTER DELETE ON events
BEGIN
    DELETE FROM events_fts WHERE rowid = OLD.id;
END;
CREATE TRIGGER alerts_search_delete AFTER DELETE ON alerts
BEGIN
    DELETE FROM alerts_fts WHERE rowid = OLD.id;
END;

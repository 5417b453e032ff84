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

-- Words: one FTS5 index of the events' words, keyed by event id, so that
-- a search page walks it in the list's order and stops at the page size
-- however common the words are. An alert is found by the words of the
-- event that raised it (alerts.event_id, unique), so alerts need no index
-- of their own. Contentless (the text stays in events only); unicode61
-- folds case and diacritics.
--
-- Filled behind ingest, not inside it (db::words): FTS5 writes a segment
-- per transaction and merges segments as they pile up, so indexing each
-- small group-commit batch cost ingest far more than indexing the same
-- rows a second at a time. `events_words_indexed` is how far it has got;
-- a search first indexes whatever is newer, so it never misses an event.
CREATE VIRTUAL TABLE events_fts USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61'
);
INSERT INTO events_fts (rowid, body)
SELECT id, source || ' ' || event_type || ' ' || description FROM events;

CREATE TABLE events_words_indexed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    through BIGINT NOT NULL
);
INSERT INTO events_words_indexed (id, through) SELECT 1, coalesce(max(id), 0) FROM events;

-- Events are never edited; retention may delete them.
CREATE TRIGGER events_search_delete AFTER DELETE ON events
BEGIN
    DELETE FROM events_fts WHERE rowid = OLD.id;
END;

-- Triage narrows lists down by source, event type, time and words.
--
-- Every index here is written by every ingest batch, so each one earns its
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
UPDATE alerts a SET event_type = e.event_type, source = coalesce(a.source, e.source)
FROM events e WHERE e.id = a.event_id;

-- Replaces (created_at): the same walk, with the page's tie-breaker.
DROP INDEX alerts_created_at;
CREATE INDEX alerts_created_at_id ON alerts (created_at, id);
CREATE INDEX alerts_source_created_at_id ON alerts (source, created_at, id);

CREATE INDEX events_created_at_id ON events (created_at, id);
CREATE INDEX events_source_created_at_id ON events (source, created_at, id);

-- Words: the event's words, stored once when it is (a generated column),
-- with a GIN index. The text's ASCII punctuation becomes spaces first, so
-- that words are runs of letters and digits as on SQLite (the parser alone
-- reads "HOST-7" as "host" and "-7", and keeps "evil.example.com" whole);
-- 'simple' lowercases and neither stems nor drops stop words. Stored
-- rather than an index on the expression: a page that walks events or
-- alerts in order and checks words reads them instead of parsing every
-- row it passes. An alert is found by the words of the event that raised
-- it (alerts.event_id is unique, so indexed).
ALTER TABLE events ADD COLUMN words tsvector GENERATED ALWAYS AS (
    to_tsvector('simple', translate(source || ' ' || event_type || ' ' || description,
        '!"#$%&''()*+,-./:;<=>?@[\]^_`{|}~', '                                '))
) STORED;
CREATE INDEX events_words ON events USING gin (words);

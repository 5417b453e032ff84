DROP TRIGGER events_search_delete;
DROP TABLE events_words_indexed;
DROP TABLE events_fts;
DROP INDEX events_source_created_at_id;
DROP INDEX events_created_at_id;
DROP INDEX alerts_source_created_at_id;
DROP INDEX alerts_created_at_id;
CREATE INDEX alerts_created_at ON alerts (created_at);
ALTER TABLE alerts DROP COLUMN event_type;

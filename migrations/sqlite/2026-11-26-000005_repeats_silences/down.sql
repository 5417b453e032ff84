DROP INDEX alerts_open_dedup;
ALTER TABLE alerts DROP COLUMN last_seen_at;
ALTER TABLE alerts DROP COLUMN occurrences;
ALTER TABLE alerts DROP COLUMN dedup_key;
ALTER TABLE alerts DROP COLUMN source;
ALTER TABLE events DROP COLUMN silenced_by;
ALTER TABLE events DROP COLUMN dedup_key;
DROP TABLE silences;

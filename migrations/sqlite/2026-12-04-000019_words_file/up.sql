-- The word indexes move to a database file of their own beside this one
-- (db::words), written under that file's lock by its own connection, so
-- that filling and merging them never holds the lock ingest writes under.
-- The new file starts empty and is filled in the background; a search
-- meanwhile fills what it needs first, as it always has.
DROP TRIGGER events_search_delete;
DROP TRIGGER alerts_search_delete;
DROP TABLE events_fts;
DROP TABLE alerts_fts;
DROP TABLE words_indexed;

-- A trigger here cannot write to another file, so a deleted row's id is
-- queued; the word indexer drops its words and then the queue entries.
-- AUTOINCREMENT: the indexer remembers how far it has read by `seq`, so a
-- seq is never handed out twice, even after the queue empties.
CREATE TABLE words_dropped (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    list   TEXT NOT NULL CHECK (list IN ('events', 'alerts')),
    row_id BIGINT NOT NULL
);
CREATE TRIGGER events_words_dropped AFTER DELETE ON events
BEGIN
    INSERT INTO words_dropped (list, row_id) VALUES ('events', OLD.id);
END;
CREATE TRIGGER alerts_words_dropped AFTER DELETE ON alerts
BEGIN
    INSERT INTO words_dropped (list, row_id) VALUES ('alerts', OLD.id);
END;

-- Which word file belongs to this database: the file keeps the key it was
-- built for and is rebuilt when they differ. A backup's copy gets a key
-- of its own (db::backup), so a restored backup never trusts a word file
-- that indexed rows it does not hold.
CREATE TABLE words_owner (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    key      TEXT NOT NULL
);
INSERT INTO words_owner (only_row, key) VALUES (1, lower(hex(randomblob(16))));

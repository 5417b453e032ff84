DROP TABLE words_owner;
DROP TRIGGER events_words_dropped;
DROP TRIGGER alerts_words_dropped;
DROP TABLE words_dropped;

CREATE VIRTUAL TABLE events_fts USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61'
);
CREATE VIRTUAL TABLE alerts_fts USING fts5(
    body, content = '', contentless_delete = 1, tokenize = 'unicode61'
);
INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 0);
INSERT INTO alerts_fts (alerts_fts, rank) VALUES ('automerge', 0);
INSERT INTO events_fts (events_fts, rank) VALUES ('deletemerge', 0);
INSERT INTO alerts_fts (alerts_fts, rank) VALUES ('deletemerge', 0);
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
CREATE TRIGGER events_search_delete AFTER DELETE ON events
BEGIN
    DELETE FROM events_fts WHERE rowid = OLD.id;
END;
CREATE TRIGGER alerts_search_delete AFTER DELETE ON alerts
BEGIN
    DELETE FROM alerts_fts WHERE rowid = OLD.id;
END;

-- The word indexes stop merging inside the commits that write them; the
-- background indexer merges them in steps of its own (db::words).
--
-- FTS5's automatic merge runs in the commit of whatever transaction wrote
-- to an index and sizes its work by what that transaction wrote, deletes
-- included, counting pages written but not pages read. Its merge on
-- delete rewrites a level once a tenth of its rows are deleted; retention
-- deletes the oldest rows first and could leave a whole level dead before
-- its turn, and one commit then read that level to write almost nothing,
-- while ingest waited for the write lock. Without it, the words of
-- deleted rows leave the file as their segments merge into the next
-- level, beside newer rows that bound each step's reading.
INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 0);
INSERT INTO alerts_fts (alerts_fts, rank) VALUES ('automerge', 0);
INSERT INTO events_fts (events_fts, rank) VALUES ('deletemerge', 0);
INSERT INTO alerts_fts (alerts_fts, rank) VALUES ('deletemerge', 0);

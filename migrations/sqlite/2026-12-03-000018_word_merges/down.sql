INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 4);
INSERT INTO alerts_fts (alerts_fts, rank) VALUES ('automerge', 4);
INSERT INTO events_fts (events_fts, rank) VALUES ('deletemerge', 10);
INSERT INTO alerts_fts (alerts_fts, rank) VALUES ('deletemerge', 10);

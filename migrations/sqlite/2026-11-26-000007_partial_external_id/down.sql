DROP INDEX events_source_external_id;
CREATE UNIQUE INDEX events_source_external_id ON events (source, external_id);

-- Most events carry no externalId. The unique index held an entry for
-- each of them anyway (NULLs never clash), at a position set by the
-- source, so a group commit of events from many sensors dirtied a page of
-- this index per sensor: a large share of what every commit wrote and
-- fsynced. Only events with an externalId need it. A lookup by
-- `external_id = ?` implies `external_id IS NOT NULL`, so both planners
-- still use it.
DROP INDEX events_source_external_id;
CREATE UNIQUE INDEX events_source_external_id ON events (source, external_id)
    WHERE external_id IS NOT NULL;

-- Triage: repeats folded into one alert, and silences.

CREATE TABLE silences (
    id         INTEGER PRIMARY KEY NOT NULL,
    source     TEXT,
    event_type TEXT,
    severity   TEXT CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    dedup_key  TEXT,
    comment    TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    ends_at    TIMESTAMP NOT NULL,
    expired_at TIMESTAMP,
    CHECK (source IS NOT NULL OR event_type IS NOT NULL OR severity IS NOT NULL OR dedup_key IS NOT NULL)
);
CREATE INDEX silences_live ON silences (expired_at, ends_at);

ALTER TABLE events ADD COLUMN dedup_key TEXT;
ALTER TABLE events ADD COLUMN silenced_by BIGINT REFERENCES silences (id);

ALTER TABLE alerts ADD COLUMN source TEXT;
ALTER TABLE alerts ADD COLUMN dedup_key TEXT;
ALTER TABLE alerts ADD COLUMN occurrences BIGINT NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN last_seen_at TIMESTAMP;
UPDATE alerts SET last_seen_at = created_at,
                  source = (SELECT e.source FROM events e WHERE e.id = alerts.event_id);
-- At most one alert that is not RESOLVED per (source, dedupKey): repeats
-- that arrive at the same moment, even through different instances, cannot
-- raise two.
CREATE UNIQUE INDEX alerts_open_dedup ON alerts (source, dedup_key)
    WHERE dedup_key IS NOT NULL AND status <> 'RESOLVED';

-- Where each row brought over from another system came from, so that an
-- import can be re-run (after the old system took more events, or after a
-- failed attempt) without storing anything twice.
CREATE TABLE imported_rows (
    -- Which source database: its fingerprint, e.g. 'django:<first migration time>'.
    origin      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('user', 'event', 'alert')),
    source_id   BIGINT NOT NULL,
    target_id   BIGINT NOT NULL,
    imported_at TIMESTAMP NOT NULL,
    PRIMARY KEY (origin, kind, source_id)
);

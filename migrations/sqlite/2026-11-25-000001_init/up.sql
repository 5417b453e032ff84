-- Timestamps are UTC, stored as TIMESTAMP text with microseconds.
-- Ids are rowids: they only grow (nothing is ever deleted), which keyset
-- pagination relies on.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('ADMIN', 'ANALYST', 'SENSOR')),
    is_active     BOOLEAN NOT NULL DEFAULT 1,
    created_at    TIMESTAMP NOT NULL
);
-- "Admin" and "admin" would be two accounts a reader cannot tell apart.
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

CREATE TABLE events (
    id          INTEGER PRIMARY KEY NOT NULL,
    source      TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    description TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    external_id TEXT
);
CREATE INDEX events_severity_id ON events (severity, id);
-- NULLs never collide, so events without an external id are unaffected.
CREATE UNIQUE INDEX events_source_external_id ON events (source, external_id);

CREATE TABLE alerts (
    id         INTEGER PRIMARY KEY NOT NULL,
    event_id   BIGINT NOT NULL UNIQUE REFERENCES events (id),
    severity   TEXT NOT NULL CHECK (severity IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    status     TEXT NOT NULL CHECK (status IN ('OPEN', 'ACKNOWLEDGED', 'RESOLVED')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- One index per filter combination, each ending in id so that a filtered
-- page is one range scan in the list's order.
CREATE INDEX alerts_severity_id ON alerts (severity, id);
CREATE INDEX alerts_status_id ON alerts (status, id);
CREATE INDEX alerts_severity_status_id ON alerts (severity, status, id);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY NOT NULL,
    at          TIMESTAMP NOT NULL,
    action      TEXT NOT NULL,
    actor       TEXT NOT NULL,
    target_type TEXT,
    target_id   TEXT,
    detail      TEXT,
    ip          TEXT
);
CREATE INDEX audit_log_action_id ON audit_log (action, id);

-- The audit log is append-only, also for anyone with a SQL shell who
-- reaches for UPDATE or DELETE by mistake.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

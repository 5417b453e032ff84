-- A session is one login: its refresh tokens form a chain, each used once.
-- Revoking the session (logout, reuse of a retired token, account disabled)
-- ends every token of it, across restarts and instances.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY NOT NULL,
    user_id        BIGINT NOT NULL REFERENCES users (id),
    created_at     TIMESTAMP NOT NULL,
    revoked_at     TIMESTAMP,
    revoked_reason TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

CREATE TABLE refresh_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    issued_at  TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- Only a SHA-256 of each key is kept; the key itself is shown once.
CREATE TABLE api_keys (
    id           INTEGER PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at   TIMESTAMP
);
CREATE UNIQUE INDEX api_keys_name_lower ON api_keys (lower(name));

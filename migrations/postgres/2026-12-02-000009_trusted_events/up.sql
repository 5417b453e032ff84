-- A key may be bound to the sources it ingests for: a JSON array of source
-- names, or NULL for any source (every key made before this).
ALTER TABLE api_keys ADD COLUMN sources TEXT;

-- Names identify live keys; a revoked key's name may be used again, so a
-- key can be replaced under the name its dashboards and alerts know.
DROP INDEX api_keys_name_lower;
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (lower(name)) WHERE revoked_at IS NULL;

-- The sensor's own time of the event, when it sent one; NULL means the
-- time it was stored (created_at), which is most events, so nothing is
-- written twice.
ALTER TABLE events ADD COLUMN occurred_at TIMESTAMP;

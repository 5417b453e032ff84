ALTER TABLE events DROP COLUMN occurred_at;
DROP INDEX api_keys_live_name;
CREATE UNIQUE INDEX api_keys_name_lower ON api_keys (lower(name));
ALTER TABLE api_keys DROP COLUMN sources;

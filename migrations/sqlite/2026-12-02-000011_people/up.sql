-- When each person last logged in, written by the login itself; null until
-- the first login after this migration.
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMP;

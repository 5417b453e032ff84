DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE alerts;
DROP TABLE events;
DROP TABLE users;
DROP TABLE settings;

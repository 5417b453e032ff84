DROP TABLE audit_log;
DROP TABLE alerts;
DROP TABLE events;
DROP TABLE users;
DROP TABLE settings;

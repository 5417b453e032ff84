//! Integration tests: the real server over real HTTP, each body run against
//! SQLite and PostgreSQL.

mod helpers;

mod alerts;
mod auth;
mod cli;
mod django;
mod hostile;
mod http;
mod ingest;
mod live;
mod pagination;
mod races;
mod rest;
mod security;
mod shutdown;
mod triage;
mod users;

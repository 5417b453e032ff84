//! Integration tests: the real server over real HTTP, each body run against
//! SQLite and PostgreSQL.

mod helpers;

mod alerts;
mod auth;
mod budgets;
mod cli;
mod django;
mod filters;
mod floods;
mod hostile;
mod http;
mod ingest;
mod live;
mod operations;
mod pagination;
mod races;
mod reach;
mod rest;
mod security;
mod shutdown;
mod socket;
mod triage;
mod users;

//! Integration tests: the real server over real HTTP, each body run against
//! SQLite and PostgreSQL.

mod binary;
mod browser;
mod helpers;

mod alerts;
mod auth;
mod budgets;
mod cli;
mod console;
mod deliveries;
mod django;
mod figures;
mod filters;
mod floods;
mod hostile;
mod http;
mod ingest;
mod live;
mod operations;
mod outbox;
mod pages;
mod pagination;
mod people;
mod races;
mod reach;
mod readme;
mod rest;
mod retention;
mod security;
mod shutdown;
mod socket;
mod startup;
mod teaching;
mod triage;
mod trust;
mod users;
mod webhooks;
mod words;

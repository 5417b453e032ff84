//! threatwatch: GraphQL threat monitoring and alert management.
//!
//! `cli` parses the command line; `app` starts the server; `http` and
//! `graphql` are the front ends; `service` holds the domain operations;
//! `domain` the validated types and rules; `db` the storage for SQLite and
//! PostgreSQL; `auth` passwords and tokens; `ingest` the group-commit writer.
//!
//! The service is the only door: front ends call service functions and
//! speak `domain` types; `db` is the service's alone (tests/layers.rs
//! holds them to that).

pub mod allocator;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub(crate) mod db;
pub mod django;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod ingest;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod rest;
pub mod service;
pub mod telemetry;
pub mod throttle;
pub mod web;
pub mod ws;

//! Outbound notifications: webhooks that call chat, paging and SOAR tools
//! when alerts change.
//!
//! What to send and when is decided in `domain::webhook`; this module
//! owns the edges that talk to the outside: the signature receivers check
//! (`sign`), which addresses may be called at all (`address`), the
//! attempt itself (`client`), and how the secrets are kept in the database
//! (`seal`), and the worker that sends the outbox's deliveries (`worker`).

pub mod address;
pub mod client;
pub mod seal;
pub mod sign;
pub mod worker;

//! Outbound notifications: webhooks that call chat, paging and SOAR tools
//! when alerts change.
//!
//! What to send and when is decided in `domain::webhook`; this module
//! owns the edges that talk to the outside: the signature receivers check
//! (`sign`) and which addresses may be called at all (`address`).

pub mod address;
pub mod seal;
pub mod sign;

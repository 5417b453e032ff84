//! Who is calling: passwords, tokens, API keys, and the principal a request
//! acts as.

pub mod api_key;
pub mod cache;
pub mod password;
pub mod principal;
pub mod token;

pub use principal::{Credentials, Principal};

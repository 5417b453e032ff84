//! Who is calling: passwords, tokens, and the principal a request acts as.

pub mod password;
pub mod principal;
pub mod token;

pub use principal::{Credentials, Principal};

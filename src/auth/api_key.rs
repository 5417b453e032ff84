//! Sensor API keys: generated here, shown once, stored only as a hash.
//!
//! Keys are 256 random bits, so a fast hash (SHA-256) is as safe as a slow
//! one would be and keeps the per-request check cheap.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};

use super::token::random_secret;

/// Marks threatwatch keys, so that secret scanners and people recognise one.
pub const PREFIX: &str = "tw_";

pub fn generate() -> String {
    format!("{PREFIX}{}", random_secret(32))
}

pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Last-use times waiting to be written. A key used 100 times a second is
/// written once per flush, not 100 times: `lastUsedAt` is for spotting dead
/// or stolen keys, and a few seconds of lag does not change that.
#[derive(Default)]
pub struct Usage {
    pending: Mutex<HashMap<i64, NaiveDateTime>>,
}

impl Usage {
    pub fn touch(&self, id: i64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.insert(id, crate::domain::now());
    }

    pub fn take(&self) -> Vec<(i64, NaiveDateTime)> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.drain().collect()
    }

    pub fn peek(&self, id: i64) -> Option<NaiveDateTime> {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.get(&id).copied()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_unique_and_hash_stably() {
        let a = super::generate();
        assert!(a.starts_with("tw_") && a.len() > 40);
        assert_ne!(a, super::generate());
        assert_eq!(super::hash(&a), super::hash(&a));
        assert_eq!(super::hash(&a).len(), 64);
    }
}

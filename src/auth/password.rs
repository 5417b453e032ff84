//! Password hashing. bcrypt is deliberately slow, so it runs on the blocking
//! pool, never on the async workers that serve other requests.

use crate::error::{Error, Result};

#[derive(Clone)]
pub struct Passwords {
    cost: u32,
    /// A hash of a random password at the same cost, checked when the user
    /// does not exist so that an unknown username takes as long to refuse as
    /// a wrong password (no account enumeration by timing).
    decoy: String,
}

impl Passwords {
    pub async fn new(cost: u32) -> Result<Self> {
        let decoy = hash_blocking(crate::auth::token::random_secret(16), cost).await?;
        Ok(Self { cost, decoy })
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        hash_blocking(password.to_string(), self.cost).await
    }

    /// Checks `password` against `hash`, or against the decoy when there is
    /// no account, and says whether it matched a real account.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let real = hash.is_some();
        let hash = hash.unwrap_or(&self.decoy).to_string();
        let password = password.to_string();
        let matched = tokio::task::spawn_blocking(move || {
            // A malformed stored hash counts as a mismatch, not a crash.
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .map_err(Error::internal)?;
        Ok(real && matched)
    }
}

async fn hash_blocking(password: String, cost: u32) -> Result<String> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password.as_bytes(), cost))
        .await
        .map_err(Error::internal)?
        .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_and_refuses() {
        let p = Passwords::new(4).await.unwrap();
        let h = p.hash("correct horse").await.unwrap();
        assert!(p.verify("correct horse", Some(&h)).await.unwrap());
        assert!(!p.verify("wrong horse", Some(&h)).await.unwrap());
        assert!(!p.verify("correct horse", None).await.unwrap());
        assert!(!p.verify("x", Some("not a hash")).await.unwrap());
    }
}

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
        let matched = tokio::task::spawn_blocking(move || check(&password, &hash))
            .await
            .map_err(Error::internal)?;
        Ok(real && matched)
    }

    /// Whether a stored hash should be replaced by a bcrypt hash at this
    /// work factor on the next successful login (hashes brought over from
    /// Django, or bcrypt at a lower cost).
    pub fn needs_rehash(&self, hash: &str) -> bool {
        match hash.strip_prefix("$2").and_then(|rest| rest.get(2..4)) {
            Some(cost) => cost.parse::<u32>().map_or(true, |c| c < self.cost),
            None => true,
        }
    }
}

/// Verifies bcrypt hashes (ours) and the password hashes of Django, so
/// that accounts brought over keep their passwords:
/// `pbkdf2_sha256$<iterations>$<salt>$<base64>` and
/// `bcrypt_sha256$<bcrypt of the hex SHA-256 of the password>` and
/// `argon2$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>`. A malformed or
/// unknown hash (Django's unusable `!...` among them) counts as a mismatch,
/// never as a crash.
fn check(password: &str, hash: &str) -> bool {
    if let Some(rest) = hash.strip_prefix("pbkdf2_sha256$") {
        return django_pbkdf2(password, rest).unwrap_or(false);
    }
    if let Some(phc) = hash.strip_prefix("argon2") {
        return django_argon2(password, phc).unwrap_or(false);
    }
    if let Some(inner) = hash.strip_prefix("bcrypt_sha256$") {
        use sha2::{Digest, Sha256};
        let hex: String = Sha256::digest(password.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return bcrypt::verify(hex.as_bytes(), inner).unwrap_or(false);
    }
    bcrypt::verify(password.as_bytes(), hash).unwrap_or(false)
}

fn django_pbkdf2(password: &str, rest: &str) -> Option<bool> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let mut parts = rest.splitn(3, '$');
    let iterations: u32 = parts.next()?.parse().ok()?;
    let salt = parts.next()?;
    let expected = STANDARD.decode(parts.next()?).ok()?;
    // Django's own counts stay far below this; a larger one is a trap.
    if expected.is_empty() || expected.len() > 64 || !(1..=10_000_000).contains(&iterations) {
        return None;
    }
    let mut got = vec![0u8; expected.len()];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt.as_bytes(), iterations, &mut got);
    // Compared in constant time.
    Some(
        got.iter()
            .zip(&expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0,
    )
}

/// Django stores argon2-cffi's PHC string behind an `argon2` prefix; the
/// parameters come from the hash itself, so they are bounded first: a hash
/// asking for gigabytes of memory would be a way to stall the server.
fn django_argon2(password: &str, phc: &str) -> Option<bool> {
    use argon2::{Argon2, PasswordHash, PasswordVerifier};
    let parsed = PasswordHash::new(phc).ok()?;
    let param = |name: &str| -> Option<u32> { parsed.params.get_decimal(name) };
    let (m, t, p) = (param("m")?, param("t")?, param("p")?);
    // Django's defaults are m=102400 (100 MiB), t=2, p=8.
    if m > 1_048_576 || t > 64 || p > 64 {
        return None;
    }
    Some(
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
    )
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
        assert!(!p.needs_rehash(&h) || h.contains("$04$"));
    }

    #[test]
    fn django_hashes() {
        // Made like Django's PBKDF2PasswordHasher: base64 of PBKDF2-HMAC-SHA256.
        use base64::Engine;
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"s3cret-pass", b"NaClNaCl", 1000, &mut out);
        let stored = format!(
            "pbkdf2_sha256$1000$NaClNaCl${}",
            base64::engine::general_purpose::STANDARD.encode(out)
        );
        assert!(check("s3cret-pass", &stored));
        assert!(!check("other-pass", &stored));
        assert!(!check("s3cret-pass", "pbkdf2_sha256$1000$NaClNaCl$!!!"));
        assert!(!check("s3cret-pass", "pbkdf2_sha256$999999999999$x$AAAA"));
        use sha2::{Digest, Sha256};
        let hex: String = Sha256::digest(b"s3cret-pass")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let inner = bcrypt::hash(hex.as_bytes(), 4).unwrap();
        assert!(check("s3cret-pass", &format!("bcrypt_sha256${inner}")));
        assert!(!check("nope", &format!("bcrypt_sha256${inner}")));
    }

    #[test]
    fn django_argon2_hashes() {
        // Written by Django's Argon2PasswordHasher (argon2-cffi, Django's
        // default parameters), as a Django project published it in its docs.
        let stored = "argon2$argon2id$v=19$m=102400,t=2,p=8$MW1Zdk1jUUxSN2FQMnJxMExBSFhhSg$C740Naw0dRGoWpnwTvWbbrvZ3Pkn8eS87rL+CR2o0v0";
        assert!(check("912459512jaSBDas", stored));
        assert!(!check("912459512jaSBDaS", stored));
        // Parameters beyond any sane hash are refused, not computed.
        assert!(!check(
            "x",
            "argon2$argon2id$v=19$m=4194304,t=2,p=8$MW1Zdk1jUUxSN2FQMnJxMExBSFhhSg$C740Naw0dRGoWpnwTvWbbrvZ3Pkn8eS87rL+CR2o0v0"
        ));
        assert!(!check("x", "argon2$garbage"));
        assert!(!check("x", "!unusable-django-password"));
    }
}

//! Webhook secrets at rest.
//!
//! A receiver checks our signatures with the secret it was shown once; we
//! must keep the secret to sign, so it cannot be hashed like an API key.
//! It is sealed instead (XChaCha20-Poly1305, a fresh random nonce each
//! time), under a key that lives outside the database when the operator
//! gives one: `THREATWATCH_SECRET_KEY`, or one derived from
//! `THREATWATCH_JWT_SECRET`. Then a copy of the database (a backup, a
//! read replica, a dump attached to a ticket) holds no usable secret. With
//! neither set the key is generated and kept in the `settings` table, which
//! protects only against leaks of the webhook tables alone; SECURITY.md
//! says so.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac;

use super::sign::Secret;
use crate::domain::webhook::Sealed;
use crate::error::{Error, Result};

/// Names the format of a sealed value, so that another scheme can come
/// later without old values being misread.
const PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 24;
/// Binds a sealed value to its use: a value sealed for something else
/// under the same key does not open as a webhook secret.
const CONTEXT: &[u8] = b"threatwatch webhook secret v1";

/// The sealing key. Its `Debug` shows nothing.
#[derive(Clone)]
pub struct SealKey(XChaCha20Poly1305);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    pub fn new(key: &[u8; 32]) -> Self {
        Self(XChaCha20Poly1305::new(key.into()))
    }

    /// A key derived from the JWT secret (HMAC-SHA256 with a fixed label),
    /// so that a deployment that keeps one secret outside the database gets
    /// sealed webhook secrets without a second setting. The label keeps
    /// the derived key unrelated to the token-signing key.
    pub fn derived_from(jwt_secret: &str) -> Self {
        let mut mac = match <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(
            jwt_secret.as_bytes(),
        ) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(b"threatwatch webhook secret sealing key v1");
        let bytes: [u8; 32] = mac.finalize().into_bytes().into();
        Self::new(&bytes)
    }

    /// Reads a key kept as base64 text (the `settings` table's form).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = BASE64
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!("the stored sealing key is malformed"))
            })?;
        Ok(Self::new(&bytes))
    }

    /// A new random key in base64, to be kept.
    pub fn generate_base64() -> String {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        BASE64.encode(key)
    }

    /// Seals a secret's text form (`whsec_…`).
    pub fn seal(&self, secret: &str) -> Result<Sealed> {
        use rand::RngCore;
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: CONTEXT,
                },
            )
            .map_err(|_| Error::internal(anyhow::anyhow!("sealing a webhook secret failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(Sealed(format!("{PREFIX}{}", BASE64.encode(out))))
    }

    /// Opens a sealed secret. Fails, saying nothing of the value, when it
    /// was sealed under another key (the key setting changed) or altered.
    pub fn open(&self, sealed: &Sealed) -> Result<Secret> {
        let refused = || {
            Error::internal(anyhow::anyhow!(
                "a stored webhook secret does not open with the current key \
                 (was THREATWATCH_SECRET_KEY or THREATWATCH_JWT_SECRET changed?); \
                 rotate the webhook's secret"
            ))
        };
        let bytes = sealed
            .0
            .strip_prefix(PREFIX)
            .and_then(|b| BASE64.decode(b).ok())
            .filter(|b| b.len() > NONCE_BYTES)
            .ok_or_else(refused)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let text = self
            .0
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: CONTEXT,
                },
            )
            .map_err(|_| refused())?;
        let text = String::from_utf8(text).map_err(|_| refused())?;
        Secret::parse(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let key = SealKey::new(&[7; 32]);
        let (secret, text) = Secret::generate();
        let sealed = key.seal(&text).unwrap();
        assert!(sealed.0.starts_with("v1."));
        let encoded = text.trim_start_matches("whsec_");
        assert!(!sealed.0.contains(encoded), "the secret shows through");
        assert_eq!(key.open(&sealed).unwrap().bytes(), secret.bytes());
        // A fresh nonce each time: the same secret seals differently.
        assert_ne!(key.seal(&text).unwrap(), sealed);

        let other = SealKey::new(&[8; 32]);
        let err = other.open(&sealed).unwrap_err();
        assert_eq!(err.code(), "INTERNAL_SERVER_ERROR");
        assert!(!format!("{err:?}").contains(encoded));

        let mut altered = sealed.0.clone().into_bytes();
        let last = altered.len() - 3;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = Sealed(String::from_utf8(altered).unwrap());
        assert!(key.open(&altered).is_err());
        assert!(key.open(&Sealed("v1.".into())).is_err());
        assert!(key.open(&Sealed(text.clone())).is_err());
        assert_eq!(format!("{key:?} {sealed:?}"), "SealKey(..) Sealed(..)");
    }

    #[test]
    fn keys_derive_and_round_trip_through_text() {
        let a = SealKey::derived_from("a jwt secret of at least thirty-two chars");
        let b = SealKey::derived_from("a jwt secret of at least thirty-two chars");
        let sealed = a.seal("whsec_AAAA").unwrap();
        assert!(b.open(&sealed).is_ok());
        assert!(
            SealKey::derived_from("another secret of thirty-two characters")
                .open(&sealed)
                .is_err()
        );
        let text = SealKey::generate_base64();
        assert!(SealKey::from_base64(&text).is_ok());
        assert!(SealKey::from_base64("c2hvcnQ=").is_err());
    }
}

//! Standard Webhooks signatures (standardwebhooks.com): what lets a
//! receiver prove a delivery came from us and was not replayed.
//!
//! The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the
//! signature is `v1,` and the base64 HMAC-SHA256 of it under the
//! endpoint's secret. During a rotation a delivery carries one signature
//! per live secret, space-separated, so receivers can switch keys at their
//! own pace.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{KeyInit, Mac};

use crate::error::{Error, Result};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// How a secret announces itself, so that secret scanners and people
/// recognise one (the specification's own prefix).
pub const SECRET_PREFIX: &str = "whsec_";

/// Bytes of randomness in a secret we make: the HMAC's own block of
/// strength, 256 bits.
const SECRET_BYTES: usize = 32;

/// A signing key, decoded from its `whsec_` text form. Never printed: its
/// `Debug` says only that it is a secret.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A new random secret and its text form, which is shown once.
    pub fn generate() -> (Self, String) {
        use rand::RngCore;
        let mut key = vec![0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let text = format!("{SECRET_PREFIX}{}", BASE64.encode(&key));
        (Self(key), text)
    }

    /// Reads a `whsec_…` secret.
    pub fn parse(text: &str) -> Result<Self> {
        let refused = || Error::internal(anyhow::anyhow!("a stored webhook secret is malformed"));
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(refused)?;
        let key = BASE64.decode(encoded).map_err(|_| refused())?;
        if key.is_empty() {
            return Err(refused());
        }
        Ok(Self(key))
    }

    /// The key's bytes, for storing it sealed.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn from_bytes(key: Vec<u8>) -> Self {
        Self(key)
    }

    /// `v1,<base64>`: this secret's signature of one delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // An HMAC takes a key of any length; `new_from_slice` cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: one signature per secret, the newest
/// first.
pub fn signature_header(secrets: &[Secret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The specification's own example.
    #[test]
    fn signs_the_specifications_example() {
        let secret = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            secret.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn rotation_signs_with_each_secret() {
        let (new, text) = Secret::generate();
        assert!(text.starts_with("whsec_") && text.len() > 40);
        assert_eq!(Secret::parse(&text).unwrap().bytes(), new.bytes());
        let old = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let header = signature_header(&[new.clone(), old.clone()], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [new.sign("msg_1", 1, b"{}"), old.sign("msg_1", 1, b"{}")]
        );
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        for bad in ["C2FVsBQI", "whsec_", "whsec_!!!"] {
            let err = Secret::parse(bad).unwrap_err();
            assert!(!err.to_string().contains(bad.trim_start_matches("whsec_")) || bad == "whsec_");
        }
        assert_eq!(format!("{:?}", Secret::generate().0), "Secret(..)");
    }
}

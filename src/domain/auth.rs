//! Login sessions, refresh tokens and sensors' API keys, as the service
//! records and reads them.

use chrono::NaiveDateTime;

use super::event::{label, MAX_LABEL_CHARS};
use super::user::UserRecord;
use super::Role;
use crate::error::{Error, Result};

/// A refresh token to record as issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub jti: String,
    pub expires_at: NaiveDateTime,
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub enum Rotation {
    /// The token was live; it is now used and `next` is recorded in its place.
    Rotated(UserRecord),
    /// The token is not on record (never issued here, or forged with the key).
    Unknown,
    /// The session was revoked earlier (logout, reuse, disabled account).
    Revoked,
    /// The token had been used before: someone holds a copy. The whole
    /// session has now been revoked.
    Reused,
    /// The account is gone or disabled.
    Inactive,
}

/// What the request-time check of an access token's session found.
#[derive(Clone, Debug)]
pub struct SessionState {
    pub live: bool,
    pub username: String,
    pub role: Role,
}

/// A sensor's API key as stored: only a hash of the key itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub name: String,
    pub key_hash: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    /// The only sources the key may ingest for; `None`: any source.
    pub sources: Option<Vec<String>>,
}

/// Most sources one key may be bound to: a key is one sensor, or one
/// collector in front of a few.
pub const MAX_KEY_SOURCES: usize = 100;

/// Validates the sources a key is bound to: each a source name as events
/// carry it, at least one (a key for no source could never ingest; leave
/// the list out for a key that may ingest for any), repeats dropped.
pub fn key_sources(raw: Vec<String>) -> Result<Vec<String>> {
    if raw.is_empty() || raw.len() > MAX_KEY_SOURCES {
        return Err(Error::invalid(
            "sources",
            format!(
                "must name 1 to {MAX_KEY_SOURCES} sources, got {}; leave it out for a key \
                 that may ingest for any source",
                raw.len()
            ),
        ));
    }
    let mut sources: Vec<String> = Vec::with_capacity(raw.len());
    for (i, s) in raw.iter().enumerate() {
        let s = label(format!("sources[{i}]"), s, MAX_LABEL_CHARS)?;
        if !sources.contains(&s) {
            sources.push(s);
        }
    }
    Ok(sources)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sources_are_labels_without_repeats() {
        let s = |v: &[&str]| key_sources(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(s(&[" fw-1", "fw-1", "ids"]).unwrap(), ["fw-1", "ids"]);
        assert!(s(&[])
            .unwrap_err()
            .to_string()
            .starts_with("sources: must name 1 to 100"));
        let msg = s(&["fw", " "]).unwrap_err().to_string();
        assert_eq!(msg, "sources[1]: must not be empty");
        assert!(s(&vec!["a"; 101]).is_err());
    }
}

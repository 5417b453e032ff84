//! Login sessions, refresh tokens and sensors' API keys, as the service
//! records and reads them.

use chrono::NaiveDateTime;

use super::user::UserRecord;
use super::Role;

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
}

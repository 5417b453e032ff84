//! JSON Web Tokens: short-lived access tokens and longer refresh tokens.
//!
//! HS256 only, pinned on both sides, with `exp`, `iss` and `aud` required;
//! the token type is a claim of its own so that a refresh token is never
//! accepted as an access token or the other way round.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::domain::Role;
use crate::error::{Error, Result};

const ISSUER: &str = "threatwatch";
const AUDIENCE: &str = "threatwatch";
/// Clock skew tolerated between instances.
const LEEWAY_SECS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    pub username: String,
    pub role: Role,
    pub typ: TokenType,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token, so that one refresh token can be retired.
    pub jti: String,
    /// The login session this token belongs to; revoking it ends them all.
    pub sid: String,
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A freshly issued access/refresh pair.
#[derive(Clone, Debug)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: Duration,
}

/// The id and expiry of a refresh token about to be issued, chosen first so
/// that it can be recorded in the same transaction that retires its
/// predecessor.
#[derive(Clone, Debug)]
pub struct RefreshId {
    pub jti: String,
    pub exp: i64,
}

impl RefreshId {
    pub fn expires_at(&self) -> chrono::NaiveDateTime {
        chrono::DateTime::from_timestamp(self.exp, 0)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
            .naive_utc()
    }
}

/// Whom a token is for.
pub struct TokenSubject<'a> {
    pub id: i64,
    pub username: &'a str,
    pub role: Role,
    pub session: &'a str,
}

#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

/// Random bytes as URL-safe text, for secrets, keys and token ids.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

impl TokenKeys {
    pub fn new(secret: &str, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    fn sign(
        &self,
        user: &TokenSubject<'_>,
        typ: TokenType,
        jti: String,
        exp: i64,
    ) -> Result<String> {
        let claims = Claims {
            sub: user.id.to_string(),
            username: user.username.to_string(),
            role: user.role,
            typ,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            iat: chrono::Utc::now().timestamp(),
            exp,
            jti,
            sid: user.session.to_string(),
        };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(Error::internal)
    }

    fn expiry(ttl: Duration) -> i64 {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        chrono::Utc::now().timestamp().saturating_add(ttl)
    }

    /// Picks the id and expiry of the next refresh token.
    pub fn next_refresh(&self) -> RefreshId {
        RefreshId {
            jti: random_secret(16),
            exp: Self::expiry(self.refresh_ttl),
        }
    }

    pub fn issue(&self, user: &TokenSubject<'_>, refresh: &RefreshId) -> Result<TokenPair> {
        let access_token = self.sign(
            user,
            TokenType::Access,
            random_secret(16),
            Self::expiry(self.access_ttl),
        )?;
        let refresh_token =
            self.sign(user, TokenType::Refresh, refresh.jti.clone(), refresh.exp)?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            expires_in: self.access_ttl,
        })
    }

    /// Checks signature, algorithm, expiry, issuer, audience and type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                let why = match e.kind() {
                    ErrorKind::ExpiredSignature => "token has expired",
                    ErrorKind::InvalidSignature => "token signature is invalid",
                    ErrorKind::InvalidAlgorithm => "token algorithm is not accepted",
                    _ => "token is malformed or invalid",
                };
                Error::unauthenticated(why)
            })?
            .claims;
        if claims.typ != expected {
            return Err(Error::unauthenticated(match expected {
                TokenType::Access => "a refresh token cannot be used as an access token",
                TokenType::Refresh => "an access token cannot be used as a refresh token",
            }));
        }
        Ok(claims)
    }
}

impl Claims {
    pub fn user_id(&self) -> Result<i64> {
        self.sub
            .parse()
            .map_err(|_| Error::unauthenticated("token is malformed or invalid"))
    }
}

/// What a verified access token grants, kept by the token's exact text so
/// that a client sending the same token with every request has its
/// signature checked once, not each time. It holds nothing that can change
/// while the token lives: whether the session is still live is looked up
/// separately, so caching this delays no revocation.
pub struct VerifiedAccess {
    /// The session's id and the user's id: the key of the session check.
    pub session: (String, i64),
    pub exp: i64,
}

impl VerifiedAccess {
    pub fn new(claims: Claims) -> Result<Self> {
        let id = claims.user_id()?;
        Ok(Self {
            session: (claims.sid, id),
            exp: claims.exp,
        })
    }

    /// Strictly before `exp`: the leeway `verify` allows is left to it, so
    /// a token near its end is checked in full again.
    pub fn is_current(&self, now: i64) -> bool {
        now < self.exp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(role: Role) -> TokenSubject<'static> {
        TokenSubject {
            id: 7,
            username: "alice",
            role,
            session: "s1",
        }
    }

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::new(secret, Duration::from_secs(300), Duration::from_secs(86400))
    }

    #[test]
    fn round_trip_and_type_separation() {
        let k = keys("a-secret-of-at-least-thirty-two-characters");
        let pair = k.issue(&subject(Role::Analyst), &k.next_refresh()).unwrap();
        let c = k.verify(&pair.access_token, TokenType::Access).unwrap();
        assert_eq!((c.user_id().unwrap(), c.role), (7, Role::Analyst));
        assert!(k.verify(&pair.refresh_token, TokenType::Access).is_err());
        assert!(k.verify(&pair.access_token, TokenType::Refresh).is_err());
    }

    #[test]
    fn refuses_other_secrets_and_none_algorithm() {
        let k = keys("a-secret-of-at-least-thirty-two-characters");
        let other = keys("another-secret-of-at-least-thirty-two-chars");
        let pair = other
            .issue(&subject(Role::Admin), &other.next_refresh())
            .unwrap();
        assert_eq!(
            k.verify(&pair.access_token, TokenType::Access)
                .unwrap_err()
                .to_string(),
            "token signature is invalid"
        );
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = pair.access_token.split('.').nth(1).unwrap();
        let forged = format!("{header}.{body}.");
        assert!(k.verify(&forged, TokenType::Access).is_err());
    }
}

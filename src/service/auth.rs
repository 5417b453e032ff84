//! Logging in and out, refreshing tokens, API keys, and turning credentials
//! into a principal.

use std::net::IpAddr;
use std::sync::Arc;

use super::{audit, ClientIp, Service};
use crate::auth::token::{
    random_secret, RefreshId, TokenPair, TokenSubject, TokenType, VerifiedAccess,
};
use crate::auth::{api_key, Credentials, Principal};
use crate::domain::auth::{ApiKeyRecord, Issued, Rotation, SessionState};
use crate::domain::user::UserRecord;
use crate::domain::{event, user, AuditAction};
use crate::error::{Error, Result};

/// The one answer to every failed login, so that it does not tell an
/// unknown user from a wrong password.
const LOGIN_REFUSED: &str = "invalid username or password";

/// An API key (recognised by its prefix) where a person's token belongs: a
/// common first mistake with a sensor, answered with where keys go. Short
/// enough for a WebSocket close reason (at most 123 bytes).
pub const API_KEY_AS_BEARER: &str = "an API key goes in the X-API-Key header, not Authorization: Bearer (WebSocket: \"X-API-Key\" in connection_init)";

fn issued(next: &RefreshId) -> Issued {
    Issued {
        jti: next.jti.clone(),
        expires_at: next.expires_at(),
    }
}

impl Service {
    pub async fn login(&self, username: &str, password: &str, ip: &ClientIp) -> Result<TokenPair> {
        let ip_addr = ip.0.as_deref().and_then(|i| i.parse::<IpAddr>().ok());
        if !user::could_be_username(username) {
            // No account can have this name: refused before any lookup or
            // password check, and before it could be kept anywhere.
            self.security.throttle.password_check_from(ip_addr)?;
            return Err(self.login_refused(username, ip).await);
        }
        let attempt = self.security.throttle.login_attempt(ip_addr, username)?;
        let user = match self.db.user_by_username(username).await? {
            Some(u) if u.is_active => Some(u),
            _ => None,
        };
        let matched = self
            .passwords
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        let user = match user {
            Some(u) if matched => u,
            _ => {
                attempt.failed();
                return Err(self.login_refused(username, ip).await);
            }
        };
        attempt.succeeded();
        let checked = self.upgrade_hash(&user, password).await;
        let session = random_secret(16);
        let next = self.tokens.next_refresh();
        let pair = self.tokens.issue(&subject(&user, &session), &next)?;
        let mut entry = audit(AuditAction::LoginSucceeded, &user.username, ip);
        entry.target_type = Some("User".into());
        entry.target_id = Some(user.id.to_string());
        let started = self
            .db
            .start_session(session, user.id, checked, issued(&next), entry)
            .await?;
        if !started {
            // Disabled or given a new password while this one was checked.
            return Err(self.login_refused(username, ip).await);
        }
        Ok(pair)
    }

    /// Replaces a hash brought over from Django (or made at a lower cost)
    /// now that the password is known, and returns the account's hash as it
    /// now stands. A failure costs nothing but the upgrade, so the login
    /// goes on with the old hash.
    async fn upgrade_hash(&self, user: &UserRecord, password: &str) -> String {
        if !self.passwords.needs_rehash(&user.password_hash) {
            return user.password_hash.clone();
        }
        let hash = match self.passwords.hash(password).await {
            Ok(hash) => hash,
            Err(e) => {
                tracing::warn!(error = ?e, "password rehash failed");
                return user.password_hash.clone();
            }
        };
        let old = user.password_hash.clone();
        match self
            .db
            .upgrade_password_hash(user.id, old, hash.clone())
            .await
        {
            Ok(true) => hash,
            // Replaced meanwhile: the login will find the hash it checked gone.
            Ok(false) => user.password_hash.clone(),
            Err(e) => {
                tracing::warn!(error = ?e, user = %user.username, "password rehash not stored");
                user.password_hash.clone()
            }
        }
    }

    /// Records a failed login and gives its one answer.
    async fn login_refused(&self, username: &str, ip: &ClientIp) -> Error {
        let mut entry = audit(AuditAction::LoginFailed, "anonymous", ip);
        entry.target_type = Some("User".into());
        // The name tried, cut short: it is attacker-chosen text.
        let tried: String = username.chars().take(user::MAX_USERNAME_CHARS).collect();
        entry.detail = Some(serde_json::json!({ "username": tried }).to_string());
        match self.db.append_audit(entry).await {
            Ok(_) => Error::unauthenticated(LOGIN_REFUSED),
            Err(e) => e,
        }
    }

    /// Exchanges a refresh token for a new pair and retires it. Presenting a
    /// retired token again means two parties hold it: the whole session is
    /// revoked, so the thief's copy dies with the victim's.
    pub async fn refresh(&self, refresh_token: &str, ip: &ClientIp) -> Result<TokenPair> {
        let throttle = &self.security.throttle;
        let claims = match self.tokens.verify(refresh_token, TokenType::Refresh) {
            Ok(claims) => claims,
            Err(e) => {
                let ip_addr = ip.0.as_deref().and_then(|i| i.parse::<IpAddr>().ok());
                throttle.forged_refresh_from(ip_addr)?;
                return Err(e);
            }
        };
        throttle.refresh_of(&claims.sid)?;
        // Sessions are cheap to make (a login each), so an account's
        // sessions also share the account's own quota: many sessions do not
        // buy many refreshes. Still nothing of the address's.
        if let Ok(user) = claims.sub.parse::<i64>() {
            throttle.request(crate::throttle::Subject::User(user), 1)?;
        }
        let next = self.tokens.next_refresh();
        let mut entry = audit(AuditAction::TokenRevoked, &claims.username, ip);
        entry.detail = Some(serde_json::json!({ "reason": "refresh token reused" }).to_string());
        match self
            .db
            .rotate_refresh(claims.jti.clone(), issued(&next), entry)
            .await?
        {
            // The new pair carries the user's current name and role.
            Rotation::Rotated(user) => self.tokens.issue(&subject(&user, &claims.sid), &next),
            Rotation::Reused => {
                self.security.sessions.clear();
                tracing::warn!(user = %claims.username, "refresh token reused; session revoked");
                Err(Error::unauthenticated(
                    "refresh token was already used; its session has been revoked",
                ))
            }
            Rotation::Revoked => Err(Error::unauthenticated("the session has been revoked")),
            Rotation::Unknown => Err(Error::unauthenticated("refresh token is not known")),
            Rotation::Inactive => Err(Error::unauthenticated(
                "the account no longer exists or is disabled",
            )),
        }
    }

    /// Ends the session the refresh token belongs to.
    pub async fn logout(&self, refresh_token: &str, ip: &ClientIp) -> Result<bool> {
        let claims = self.tokens.verify(refresh_token, TokenType::Refresh)?;
        let mut entry = audit(AuditAction::TokenRevoked, &claims.username, ip);
        entry.target_type = Some("Session".into());
        entry.target_id = Some(claims.sid.clone());
        entry.detail = Some(serde_json::json!({ "reason": "logout" }).to_string());
        self.db
            .revoke_session(claims.sid.clone(), "logout", entry)
            .await?;
        self.security.sessions.clear();
        Ok(true)
    }

    /// Resolves the request's credentials: `Authorization: Bearer` or
    /// `X-API-Key`. Each token's session and each key is checked against the
    /// database (cached for a few seconds), so logout, revocation and
    /// disabled accounts take effect on every instance.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Credentials {
        let result = match (authorization, api_key) {
            (Some(header), _) => self.bearer(header).await,
            (None, Some(key)) => self.api_key(key).await,
            (None, None) => return Credentials::None,
        };
        match result {
            Ok(p) => Credentials::Valid(p),
            Err(Error::Unauthenticated(why)) => Credentials::Invalid(why),
            Err(e) => {
                tracing::error!(error = ?e, "credential check failed");
                Credentials::Invalid("credentials could not be checked; try again".into())
            }
        }
    }

    async fn bearer(&self, header: &str) -> Result<Principal> {
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or(header)
            .trim();
        if token.starts_with(api_key::PREFIX) {
            return Err(Error::unauthenticated(API_KEY_AS_BEARER));
        }
        if token.len() == header.trim().len() {
            return Err(Error::unauthenticated(
                "Authorization must be \"Bearer <accessToken>\"",
            ));
        }
        let now = chrono::Utc::now().timestamp();
        let verified = match self.security.verified.get(token) {
            Some(v) if v.is_current(now) => v,
            _ => {
                let claims = self.tokens.verify(token, TokenType::Access)?;
                let v = Arc::new(VerifiedAccess::new(claims)?);
                self.security.verified.insert(token.to_owned(), v.clone());
                v
            }
        };
        let (sid, id) = (&verified.session.0, verified.session.1);
        let state = match self.security.sessions.get(&verified.session) {
            Some(s) => s,
            None => {
                let s = self.db.session_state(sid, id).await?;
                self.security
                    .sessions
                    .insert(verified.session.clone(), s.clone());
                s
            }
        };
        match state {
            Some(SessionState {
                live: true,
                username,
                role,
            }) => Ok(Principal::User {
                id,
                username,
                role,
                session: sid.clone(),
            }),
            Some(_) => Err(Error::unauthenticated(
                "the session has ended (logged out, revoked, or account disabled)",
            )),
            None => Err(Error::unauthenticated("token is malformed or invalid")),
        }
    }

    async fn api_key(&self, key: &str) -> Result<Principal> {
        let refused = || Error::unauthenticated("unknown or revoked API key");
        if !key.starts_with(api_key::PREFIX) || key.len() > 100 {
            return Err(refused());
        }
        let hash = api_key::hash(key);
        let found = match self.security.keys.get(&hash) {
            Some(f) => f,
            None => {
                let f = self
                    .db
                    .api_key_by_hash(&hash)
                    .await?
                    .map(|k| Principal::ApiKey {
                        id: k.id,
                        name: k.name,
                        sources: k.sources.map(Into::into),
                    });
                self.security.keys.insert(hash, f.clone());
                f
            }
        };
        let principal = found.ok_or_else(refused)?;
        if let Principal::ApiKey { id, .. } = principal {
            self.security.key_usage.touch(id);
        }
        Ok(principal)
    }

    /// Creates a sensor key; the key itself is returned once and never again.
    pub async fn create_api_key(
        &self,
        who: &Principal,
        name: &str,
        sources: Option<Vec<String>>,
        ip: &ClientIp,
    ) -> Result<(String, ApiKeyRecord)> {
        let name = event::label("name", name, 100)?;
        let sources = sources.map(crate::domain::auth::key_sources).transpose()?;
        let key = api_key::generate();
        let mut entry = audit(AuditAction::ApiKeyCreated, who.actor(), ip);
        entry.target_type = Some("ApiKey".into());
        entry.detail = Some(serde_json::json!({ "name": name, "sources": sources }).to_string());
        let row = self
            .db
            .create_api_key(name, sources, api_key::hash(&key), who.actor(), entry)
            .await?;
        Ok((key, row))
    }

    pub async fn revoke_api_key(
        &self,
        who: &Principal,
        id: i64,
        ip: &ClientIp,
    ) -> Result<ApiKeyRecord> {
        let mut entry = audit(AuditAction::ApiKeyRevoked, who.actor(), ip);
        entry.target_type = Some("ApiKey".into());
        entry.target_id = Some(id.to_string());
        let row = self.db.revoke_api_key(id, entry).await?;
        self.security.keys.remove(&row.key_hash);
        Ok(row)
    }

    /// Every key, newest first, with last-use times not yet written merged in.
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>> {
        let mut keys = self.db.api_keys().await?;
        for k in &mut keys {
            if let Some(at) = self.security.key_usage.peek(k.id) {
                k.last_used_at = Some(k.last_used_at.map_or(at, |db| db.max(at)));
            }
        }
        Ok(keys)
    }

    /// Writes coalesced key last-use times; run periodically and at shutdown.
    pub async fn flush_key_usage(&self) {
        let uses = self.security.key_usage.take();
        if let Err(e) = self.db.touch_api_keys(uses).await {
            tracing::warn!(error = ?e, "could not record API key use");
        }
    }
}

fn subject<'a>(user: &'a UserRecord, session: &'a str) -> TokenSubject<'a> {
    TokenSubject {
        id: user.id,
        username: &user.username,
        role: user.role,
        session,
    }
}

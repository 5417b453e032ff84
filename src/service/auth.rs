//! Logging in, refreshing tokens, and turning credentials into a principal.

use super::{audit, ClientIp, Service};
use crate::auth::token::{TokenPair, TokenType};
use crate::auth::{Credentials, Principal};
use crate::domain::AuditAction;
use crate::error::{Error, Result};

/// The one answer to every failed login, so that it does not tell an
/// unknown user from a wrong password.
const LOGIN_REFUSED: &str = "invalid username or password";

impl Service {
    pub async fn login(&self, username: &str, password: &str, ip: &ClientIp) -> Result<TokenPair> {
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
                let mut entry = audit(AuditAction::LoginFailed, "anonymous", ip);
                entry.target_type = Some("User".into());
                // The name tried, cut short: it is attacker-chosen text.
                entry.detail = Some(
                    serde_json::json!({ "username": username.chars().take(150).collect::<String>() })
                        .to_string(),
                );
                self.db.append_audit(entry).await?;
                return Err(Error::unauthenticated(LOGIN_REFUSED));
            }
        };
        let mut entry = audit(AuditAction::LoginSucceeded, &user.username, ip);
        entry.target_type = Some("User".into());
        entry.target_id = Some(user.id.to_string());
        self.db.append_audit(entry).await?;
        self.tokens.issue(user.id, &user.username, user.role)
    }

    /// Exchanges a refresh token for a new pair. The user is read again, so
    /// a deactivated account cannot refresh its way back in, and a changed
    /// role takes effect.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair> {
        let claims = self.tokens.verify(refresh_token, TokenType::Refresh)?;
        let user = self
            .db
            .user_by_id(claims.user_id()?)
            .await?
            .filter(|u| u.is_active)
            .ok_or_else(|| Error::unauthenticated("the account no longer exists or is disabled"))?;
        self.tokens.issue(user.id, &user.username, user.role)
    }

    /// Reads the `Authorization` header's value.
    pub fn authenticate_bearer(&self, header: &str) -> Credentials {
        let Some(token) = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
        else {
            return Credentials::Invalid("Authorization must be \"Bearer <accessToken>\"".into());
        };
        match self.tokens.verify(token.trim(), TokenType::Access) {
            Ok(claims) => match claims.user_id() {
                Ok(id) => Credentials::Valid(Principal::User {
                    id,
                    username: claims.username,
                    role: claims.role,
                }),
                Err(e) => Credentials::Invalid(e.to_string()),
            },
            Err(e) => Credentials::Invalid(e.to_string()),
        }
    }
}

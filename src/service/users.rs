//! People's accounts.

use super::{audit, ClientIp, Service};
use crate::auth::token::random_secret;
use crate::domain::page::{Page, PageOf};
use crate::domain::user::{NewUser, UserRecord};
use crate::domain::{user, AuditAction, Role};
use crate::error::{Error, Result};

impl Service {
    /// Validates and creates an account; `actor` is who asked (a username,
    /// or "system" for the bootstrap and the command line).
    pub async fn create_user(
        &self,
        actor: &str,
        username: &str,
        password: &str,
        role: Role,
        ip: &ClientIp,
    ) -> Result<UserRecord> {
        let username = user::username(username)?;
        let password = user::password(password)?;
        let password_hash = self.passwords.hash(&password).await?;
        let mut entry = audit(AuditAction::UserCreated, actor, ip);
        entry.target_type = Some("User".into());
        entry.detail =
            Some(serde_json::json!({ "username": username, "role": role.as_str() }).to_string());
        self.db
            .create_user(
                NewUser {
                    username,
                    password_hash,
                    role,
                },
                entry,
            )
            .await
    }

    pub async fn users(&self, page: Page) -> Result<PageOf<UserRecord>> {
        Ok(page.finish(self.db.users_page(page).await?))
    }

    /// The account with this id, if there is one.
    pub async fn find_user(&self, id: i64) -> Result<Option<UserRecord>> {
        self.db.user_by_id(id).await
    }

    /// Accounts by id, in no particular order; ids not found are left out.
    pub async fn users_by_ids(&self, ids: Vec<i64>) -> Result<Vec<UserRecord>> {
        self.db.users_by_ids(ids).await
    }

    pub async fn count_users(&self) -> Result<i64> {
        self.db.count_users().await
    }

    pub async fn user(&self, id: i64) -> Result<UserRecord> {
        self.db
            .user_by_id(id)
            .await?
            .ok_or_else(|| Error::missing("id", format!("no user with id {id}")))
    }

    /// On a start that finds no users, creates `admin`. Returns the password
    /// when it was generated, for the caller to show once.
    pub async fn bootstrap_admin(&self) -> Result<Option<String>> {
        if self.db.count_users().await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match &self.settings.admin_password {
            Some(p) => (p.clone(), false),
            None => (random_secret(18), true),
        };
        match self
            .create_user(
                "system",
                "admin",
                &password,
                Role::Admin,
                &ClientIp::default(),
            )
            .await
        {
            Ok(_) => Ok(generated.then_some(password)),
            // Another instance over the same PostgreSQL got there first.
            Err(Error::BadInput { field, rule })
                if field == "username" && rule.contains("already taken") =>
            {
                Ok(None)
            }
            // The setting is at fault: it is the field, and what the
            // password broke ("password: must be ...") is its rule.
            Err(e @ Error::BadInput { .. }) => {
                Err(Error::invalid("THREATWATCH_ADMIN_PASSWORD", e.to_string()))
            }
            Err(e) => Err(e),
        }
    }
}

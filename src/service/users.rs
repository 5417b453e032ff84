//! People's accounts.

use std::net::IpAddr;

use super::{audit, ClientIp, Service};
use crate::auth::token::random_secret;
use crate::auth::Principal;
use crate::domain::page::{Page, PageOf};
use crate::domain::user::{NewUser, Requester, UserChange, UserRecord};
use crate::domain::{user, AuditAction, Role};
use crate::error::{Error, Result};

/// Who manages accounts: the name the audit log gives them, and their own
/// account when a person does (the command line acts as no account).
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub account: Option<i64>,
}

impl Actor {
    /// The operator at the command line: the host's shell is their
    /// credential, so they are named, not authenticated.
    pub fn command_line() -> Self {
        Self {
            name: "cli".into(),
            account: None,
        }
    }

    fn requester(&self) -> Requester {
        Requester {
            user_id: self.account,
        }
    }
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        let account = match p {
            Principal::User { id, .. } => Some(*id),
            Principal::ApiKey { .. } => None,
        };
        Self {
            name: p.actor(),
            account,
        }
    }
}

/// The answer to a wrong current password, whichever way it was wrong.
const CURRENT_REFUSED: &str = "current: the password is not correct";

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
        let role = user::person_role(role)?;
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

    /// Changes an account's role or whether it may sign in. Disabling it or
    /// changing its role ends its sessions: at once on this instance, within
    /// the credential cache's few seconds on others.
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: i64,
        role: Option<Role>,
        active: Option<bool>,
        ip: &ClientIp,
    ) -> Result<UserRecord> {
        let change = UserChange::parse(role, active)?;
        let entry = audit(AuditAction::UserUpdated, actor.name.clone(), ip);
        let row = self
            .db
            .update_user(id, actor.requester(), change, entry)
            .await?;
        self.security.sessions.clear();
        Ok(row)
    }

    /// Gives an account a new password, ending all its sessions.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        id: i64,
        password: &str,
        ip: &ClientIp,
    ) -> Result<UserRecord> {
        let password = user::password(password)?;
        let hash = self.passwords.hash(&password).await?;
        let entry = audit(AuditAction::PasswordReset, actor.name.clone(), ip);
        let row = self.db.reset_password(id, hash, entry).await?;
        self.security.sessions.clear();
        Ok(row)
    }

    /// The signed-in person replaces their password, proving the current
    /// one. Their other sessions end; the one asking goes on. A wrong
    /// `current` is a failed login: it counts against the same throttle
    /// and is audited as one, so this cannot be used to guess passwords
    /// faster than `login` can.
    pub async fn change_password(
        &self,
        who: &Principal,
        current: &str,
        new: &str,
        ip: &ClientIp,
    ) -> Result<bool> {
        let Principal::User {
            id,
            username,
            session,
            ..
        } = who
        else {
            return Err(Error::forbidden(
                "an API key has no password; changePassword needs a person's token",
            ));
        };
        let new = user::password_in("new", new)?;
        let ip_addr = ip.0.as_deref().and_then(|i| i.parse::<IpAddr>().ok());
        let attempt = self.security.throttle.login_attempt(ip_addr, username)?;
        let account = self.db.user_by_id(*id).await?.filter(|u| u.is_active);
        let hash = account.as_ref().map(|u| u.password_hash.as_str());
        let matched = self.passwords.verify(current, hash).await?;
        let Some(account) = account.filter(|_| matched) else {
            attempt.failed();
            return Err(self.current_refused(username, ip).await);
        };
        attempt.succeeded();
        if new == current {
            return Err(Error::invalid(
                "new",
                "must differ from the current password",
            ));
        }
        let new_hash = self.passwords.hash(&new).await?;
        let mut entry = audit(AuditAction::PasswordChanged, username.clone(), ip);
        entry.target_type = Some("User".into());
        let changed = self
            .db
            .change_password(*id, account.password_hash, new_hash, session.clone(), entry)
            .await?;
        if !changed {
            // Reset or changed elsewhere since it was checked.
            return Err(Error::unauthenticated(CURRENT_REFUSED));
        }
        self.security.sessions.clear();
        Ok(true)
    }

    /// Records a wrong current password as the failed login it amounts to.
    async fn current_refused(&self, username: &str, ip: &ClientIp) -> Error {
        let mut entry = audit(AuditAction::LoginFailed, username, ip);
        entry.target_type = Some("User".into());
        entry.detail = Some(
            serde_json::json!({ "username": username, "during": "changePassword" }).to_string(),
        );
        match self.db.append_audit(entry).await {
            Ok(_) => Error::unauthenticated(CURRENT_REFUSED),
            Err(e) => e,
        }
    }

    /// The account with this username; `NotFound` naming `username`.
    pub async fn user_named(&self, username: &str) -> Result<UserRecord> {
        let missing = || Error::missing("username", format!("no user named {username:?}"));
        if !user::could_be_username(username) {
            return Err(missing());
        }
        self.db
            .user_by_username(username)
            .await?
            .ok_or_else(missing)
    }

    /// Every account, oldest first.
    pub async fn all_users(&self) -> Result<Vec<UserRecord>> {
        self.db.all_users().await
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

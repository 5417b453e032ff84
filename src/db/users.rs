//! People's accounts.

use diesel::prelude::*;

use super::models::{columns, NewAudit, UserRow};
use super::schema::users;
use super::sessions::revoke_all;
use super::sql::keyset;
use super::{audit, is_unique_violation, Conn, Db};
use crate::domain::page::Page;
use crate::domain::user::{self, NewUser, Requester, UserChange};
use crate::domain::Role;
use crate::error::{Error, Result};

/// Locks every active ADMIN account until the transaction ends, and counts
/// them. Rewriting a column with its own value takes the row locks that a
/// change of role or of `active` also needs: on PostgreSQL a second change
/// waits here for the first to commit, then counts what the first left
/// (its re-check skips a row the first demoted). On SQLite the transaction
/// already has the database to itself.
async fn lock_active_admins(conn: &mut Conn<'_>) -> Result<i64> {
    let admins = users::table
        .filter(users::role.eq(Role::Admin.as_str().to_owned()))
        .filter(users::is_active.eq(true));
    let locked = conn
        .execute(diesel::update(admins).set(users::role.eq(users::role)))
        .await?;
    Ok(i64::try_from(locked).unwrap_or(i64::MAX))
}

async fn user_in(conn: &mut Conn<'_>, id: i64) -> Result<UserRow> {
    let query = users::table.find(id).select(columns::<UserRow>());
    conn.first(query)
        .await
        .optional()?
        .ok_or_else(|| Error::missing("id", format!("no user with id {id}")))
}

/// `entry` with the user as its target and `detail` (plus how many sessions
/// ended) as its detail.
fn about(entry: NewAudit, id: i64, mut detail: serde_json::Value, ended: usize) -> NewAudit {
    if let Some(o) = detail.as_object_mut() {
        o.insert("sessionsEnded".into(), ended.into());
    }
    NewAudit {
        target_type: Some("User".into()),
        target_id: Some(id.to_string()),
        detail: Some(detail.to_string()),
        ..entry
    }
}

impl Db {
    pub async fn user_by_username(&self, name: &str) -> Result<Option<UserRow>> {
        let name = name.to_owned();
        self.read(async move |mut conn| {
            let query = users::table
                .filter(users::username.eq(name))
                .select(columns::<UserRow>())
                .limit(1);
            Ok(conn.first(query).await.optional()?)
        })
        .await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        self.read(async move |mut conn| {
            let query = users::table.find(id).select(columns::<UserRow>());
            Ok(conn.first(query).await.optional()?)
        })
        .await
    }

    pub async fn count_users(&self) -> Result<i64> {
        self.read(async move |mut conn| Ok(conn.first(users::table.count()).await?))
            .await
    }

    pub async fn users_page(&self, page: Page) -> Result<Vec<UserRow>> {
        self.read_page(async move |mut conn| {
            let k = keyset(&page, users::id);
            let query = users::table
                .select(columns::<UserRow>())
                .filter(k.range)
                .order(k.order)
                .limit(k.limit);
            Ok(conn.load(query).await?)
        })
        .await
    }

    /// Creates the user and its audit entry together; `entry` is completed
    /// with the new user's id.
    pub async fn create_user(&self, user: NewUser, entry: NewAudit) -> Result<UserRow> {
        self.transaction(async move |mut conn| {
            let insert = diesel::insert_into(users::table)
                .values((
                    users::username.eq(user.username.clone()),
                    users::password_hash.eq(user.password_hash),
                    users::role.eq(user.role.as_str().to_owned()),
                    users::is_active.eq(true),
                    users::created_at.eq(crate::domain::now()),
                ))
                .returning(columns::<UserRow>());
            let row: UserRow = conn.first(insert).await.map_err(|e| {
                if is_unique_violation(&e) {
                    Error::invalid("username", format!("{:?} is already taken", user.username))
                } else {
                    e.into()
                }
            })?;
            let entry = NewAudit {
                target_id: Some(row.id.to_string()),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok((row, entry))
        })
        .await
        .map(audit::logged)
    }

    /// Every account, oldest first (for the command line's list).
    pub async fn all_users(&self) -> Result<Vec<UserRow>> {
        self.read(async move |mut conn| {
            let query = users::table
                .select(columns::<UserRow>())
                .order(users::id.asc());
            Ok(conn.load(query).await?)
        })
        .await
    }

    /// Applies `change` to account `id` as `domain::user::plan_update`
    /// decides on the account as it stands, ending its sessions when the
    /// plan says so, with its audit entry; all in one transaction. A change
    /// that changes nothing writes nothing.
    pub async fn update_user(
        &self,
        id: i64,
        who: Requester,
        change: UserChange,
        entry: NewAudit,
    ) -> Result<UserRow> {
        self.transaction(async move |mut conn| {
            let admins = lock_active_admins(&mut conn).await?;
            let target = user_in(&mut conn, id).await?;
            let plan = user::plan_update(who, &target, change, admins)?;
            if !plan.changes {
                return Ok((target, None));
            }
            let update = diesel::update(users::table.find(id))
                .set((
                    users::role.eq(plan.role.as_str().to_owned()),
                    users::is_active.eq(plan.active),
                ))
                .returning(columns::<UserRow>());
            let row: UserRow = conn.first(update).await?;
            let ended = match plan.ends_sessions {
                Some(reason) => revoke_all(&mut conn, id, None, reason).await?,
                None => 0,
            };
            let entry = about(entry, id, plan.detail, ended);
            audit::append(&mut conn, &entry).await?;
            Ok((row, Some(entry)))
        })
        .await
        .map(audit::logged_if)
    }

    /// Sets account `id`'s password hash and ends all its sessions, with the
    /// audit entry.
    pub async fn reset_password(&self, id: i64, hash: String, entry: NewAudit) -> Result<UserRow> {
        self.transaction(async move |mut conn| {
            let update = diesel::update(users::table.find(id))
                .set(users::password_hash.eq(hash))
                .returning(columns::<UserRow>());
            let row: UserRow = conn
                .first(update)
                .await
                .optional()?
                .ok_or_else(|| Error::missing("id", format!("no user with id {id}")))?;
            let ended = revoke_all(&mut conn, id, None, "password reset").await?;
            let detail = serde_json::json!({ "username": row.username });
            let entry = about(entry, id, detail, ended);
            audit::append(&mut conn, &entry).await?;
            Ok((row, entry))
        })
        .await
        .map(audit::logged)
    }

    /// Replaces account `id`'s password hash `old` (the one the caller
    /// checked the current password against) with `new`, and ends every
    /// session of the account but `keep`. `Ok(false)` when the hash is no
    /// longer `old`: the password changed meanwhile, so what the caller
    /// checked is not the current password any more.
    pub async fn change_password(
        &self,
        id: i64,
        old: String,
        new: String,
        keep: String,
        entry: NewAudit,
    ) -> Result<bool> {
        self.transaction(async move |mut conn| {
            let update = diesel::update(
                users::table
                    .filter(users::id.eq(id))
                    .filter(users::password_hash.eq(old)),
            )
            .set(users::password_hash.eq(new));
            if conn.execute(update).await? == 0 {
                return Ok((false, None));
            }
            let ended = revoke_all(&mut conn, id, Some(&keep), "password changed").await?;
            let entry = about(entry, id, serde_json::json!({}), ended);
            audit::append(&mut conn, &entry).await?;
            Ok((true, Some(entry)))
        })
        .await
        .map(audit::logged_if)
    }

    /// Replaces password hash `old` of account `id` with `new` (one upgraded
    /// on login); `Ok(false)` when the hash is no longer `old`, so that an
    /// upgrade never undoes a password reset made meanwhile.
    pub async fn upgrade_password_hash(&self, id: i64, old: String, new: String) -> Result<bool> {
        self.transaction(async move |mut conn| {
            let account = users::table
                .filter(users::id.eq(id))
                .filter(users::password_hash.eq(old));
            let update = diesel::update(account).set(users::password_hash.eq(new));
            Ok(conn.execute(update).await? == 1)
        })
        .await
    }

    /// Users by id, in one query (for a page of alerts' assignees).
    pub async fn users_by_ids(&self, ids: Vec<i64>) -> Result<Vec<UserRow>> {
        self.read(async move |mut conn| {
            let query = users::table
                .filter(users::id.eq_any(ids))
                .select(columns::<UserRow>());
            Ok(conn.load(query).await?)
        })
        .await
    }
}

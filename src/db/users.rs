//! People's accounts.

use diesel::prelude::*;

use super::models::{columns, NewAudit, UserRow};
use super::schema::users;
use super::sql::keyset;
use super::{audit, is_unique_violation, Db};
use crate::domain::page::Page;
use crate::domain::user::NewUser;
use crate::error::{Error, Result};

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

    /// Replaces a password hash (e.g. one upgraded on login).
    pub async fn set_password_hash(&self, id: i64, hash: String) -> Result<()> {
        self.transaction(async move |mut conn| {
            let update = diesel::update(users::table.find(id)).set(users::password_hash.eq(hash));
            conn.execute(update).await?;
            Ok(())
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

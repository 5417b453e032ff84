//! People's accounts.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{NewAudit, UserRow};
use super::schema::users;
use super::{is_unique_violation, Db};
use crate::domain::page::Page;
use crate::domain::Role;
use crate::error::{Error, Result};

/// A user to create, with the password already hashed.
#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub password_hash: String,
    pub role: Role,
}

impl Db {
    pub async fn user_by_username(&self, name: &str) -> Result<Option<UserRow>> {
        run!(self, |conn| {
            Ok(users::table
                .filter(users::username.eq(name))
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        run!(self, |conn| {
            Ok(users::table
                .find(id)
                .select(UserRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    pub async fn count_users(&self) -> Result<i64> {
        run!(self, |conn| {
            Ok(users::table.count().get_result(conn).await?)
        })
    }

    pub async fn users_page(&self, page: Page) -> Result<Vec<UserRow>> {
        run!(self, |conn| {
            let query = users::table.select(UserRow::as_select()).into_boxed();
            Ok(paged!(query, &page, users::id).load(conn).await?)
        })
    }

    /// Creates the user and its audit entry together; `audit` is completed
    /// with the new user's id.
    pub async fn create_user(&self, user: NewUser, audit: NewAudit) -> Result<UserRow> {
        transaction!(self, |conn| {
            let row = diesel::insert_into(users::table)
                .values((
                    users::username.eq(&user.username),
                    users::password_hash.eq(&user.password_hash),
                    users::role.eq(user.role.as_str()),
                    users::is_active.eq(true),
                    users::created_at.eq(crate::domain::now()),
                ))
                .returning(UserRow::as_returning())
                .get_result(conn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::bad_input(format!("username: {:?} is already taken", user.username))
                    } else {
                        e.into()
                    }
                })?;
            let audit = NewAudit {
                target_id: Some(row.id.to_string()),
                ..audit.clone()
            };
            append_audit!(conn, &audit)?;
            Ok((row, audit))
        })
        .map(super::audit::logged)
    }

    /// Replaces a password hash (e.g. one upgraded on login).
    pub async fn set_password_hash(&self, id: i64, hash: String) -> Result<()> {
        transaction!(self, |conn| {
            diesel::update(users::table.find(id))
                .set(users::password_hash.eq(&hash))
                .execute(conn)
                .await?;
            Ok(())
        })
    }
}

impl Db {
    /// Users by id, in one query (for a page of alerts' assignees).
    pub async fn users_by_ids(&self, ids: Vec<i64>) -> Result<Vec<UserRow>> {
        run!(self, |conn| {
            Ok(users::table
                .filter(users::id.eq_any(&ids))
                .select(UserRow::as_select())
                .load(conn)
                .await?)
        })
    }
}

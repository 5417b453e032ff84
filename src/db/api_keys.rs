//! Sensor API keys. Only a hash of each key is stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{ApiKeyRow, NewAudit};
use super::schema::api_keys;
use super::{is_unique_violation, Db};
use crate::error::{Error, Result};

impl Db {
    pub async fn create_api_key(
        &self,
        name: String,
        key_hash: String,
        created_by: String,
        audit: NewAudit,
    ) -> Result<ApiKeyRow> {
        transaction!(self, |conn| {
            let row = diesel::insert_into(api_keys::table)
                .values((
                    api_keys::name.eq(&name),
                    api_keys::key_hash.eq(&key_hash),
                    api_keys::created_by.eq(&created_by),
                    api_keys::created_at.eq(crate::domain::now()),
                ))
                .returning(ApiKeyRow::as_returning())
                .get_result(conn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        Error::bad_input(format!("name: an API key named {name:?} exists already"))
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

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        run!(self, |conn| {
            Ok(api_keys::table
                .order(api_keys::id.desc())
                .select(ApiKeyRow::as_select())
                .load(conn)
                .await?)
        })
    }

    /// The live (not revoked) key with this hash.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>> {
        run!(self, |conn| {
            Ok(api_keys::table
                .filter(api_keys::key_hash.eq(key_hash))
                .filter(api_keys::revoked_at.is_null())
                .select(ApiKeyRow::as_select())
                .first(conn)
                .await
                .optional()?)
        })
    }

    /// Revokes a key; revoking a revoked key returns it unchanged and writes
    /// no second audit entry.
    pub async fn revoke_api_key(&self, id: i64, audit: NewAudit) -> Result<ApiKeyRow> {
        transaction!(self, |conn| {
            let now = crate::domain::now();
            let changed: Option<ApiKeyRow> = diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(id))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(now))
            .returning(ApiKeyRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            if let Some(row) = changed {
                append_audit!(conn, &audit)?;
                return Ok((row, Some(audit.clone())));
            }
            let row = api_keys::table
                .find(id)
                .select(ApiKeyRow::as_select())
                .first(conn)
                .await
                .optional()?
                .ok_or_else(|| Error::not_found(format!("id: no API key with id {id}")))?;
            Ok((row, None))
        })
        .map(super::audit::logged_if)
    }

    /// Writes the coalesced last-use times of keys (see `auth::api_key`).
    pub async fn touch_api_keys(&self, uses: Vec<(i64, NaiveDateTime)>) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        transaction!(self, |conn| {
            for (id, at) in &uses {
                diesel::update(api_keys::table.find(*id))
                    .set(api_keys::last_used_at.eq(*at))
                    .execute(conn)
                    .await?;
            }
            Ok(())
        })
    }
}

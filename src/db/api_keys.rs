//! Sensor API keys. Only a hash of each key is stored.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{columns, ApiKeyRow, NewAudit, SourceList};
use super::schema::api_keys;
use super::{audit, is_unique_violation, Db};
use crate::error::{Error, Result};

impl Db {
    pub async fn create_api_key(
        &self,
        name: String,
        sources: Option<Vec<String>>,
        key_hash: String,
        created_by: String,
        entry: NewAudit,
    ) -> Result<ApiKeyRow> {
        self.transaction(async move |mut conn| {
            let insert = diesel::insert_into(api_keys::table)
                .values((
                    api_keys::name.eq(name.clone()),
                    api_keys::key_hash.eq(key_hash),
                    api_keys::created_by.eq(created_by),
                    api_keys::created_at.eq(crate::domain::now()),
                    api_keys::sources.eq(SourceList::text(sources.as_deref())),
                ))
                .returning(columns::<ApiKeyRow>());
            let row: ApiKeyRow = conn.first(insert).await.map_err(|e| {
                if is_unique_violation(&e) {
                    Error::invalid(
                        "name",
                        format!(
                            "a live API key named {name:?} exists already; revoke it first \
                             or choose another name"
                        ),
                    )
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

    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>> {
        self.read(async move |mut conn| {
            let query = api_keys::table
                .order(api_keys::id.desc())
                .select(columns::<ApiKeyRow>());
            Ok(conn.load(query).await?)
        })
        .await
    }

    /// The live (not revoked) key with this hash.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKeyRow>> {
        let key_hash = key_hash.to_owned();
        self.read(async move |mut conn| {
            let query = api_keys::table
                .filter(api_keys::key_hash.eq(key_hash))
                .filter(api_keys::revoked_at.is_null())
                .select(columns::<ApiKeyRow>())
                .limit(1);
            Ok(conn.first(query).await.optional()?)
        })
        .await
    }

    /// Revokes a key; revoking a revoked key returns it unchanged and writes
    /// no second audit entry.
    pub async fn revoke_api_key(&self, id: i64, entry: NewAudit) -> Result<ApiKeyRow> {
        self.transaction(async move |mut conn| {
            let now = crate::domain::now();
            let update = diesel::update(
                api_keys::table
                    .filter(api_keys::id.eq(id))
                    .filter(api_keys::revoked_at.is_null()),
            )
            .set(api_keys::revoked_at.eq(now))
            .returning(columns::<ApiKeyRow>());
            let changed: Option<ApiKeyRow> = conn.first(update).await.optional()?;
            if let Some(row) = changed {
                audit::append(&mut conn, &entry).await?;
                return Ok((row, Some(entry)));
            }
            let query = api_keys::table.find(id).select(columns::<ApiKeyRow>());
            let row = conn
                .first(query)
                .await
                .optional()?
                .ok_or_else(|| Error::missing("id", format!("no API key with id {id}")))?;
            Ok((row, None))
        })
        .await
        .map(audit::logged_if)
    }

    /// Writes the coalesced last-use times of keys (see `auth::api_key`).
    pub async fn touch_api_keys(&self, uses: Vec<(i64, NaiveDateTime)>) -> Result<()> {
        if uses.is_empty() {
            return Ok(());
        }
        self.transaction(async move |mut conn| {
            for (id, at) in uses {
                let update =
                    diesel::update(api_keys::table.find(id)).set(api_keys::last_used_at.eq(at));
                conn.execute(update).await?;
            }
            Ok(())
        })
        .await
    }
}

//! Silences: while one matches, events are stored but raise no alert.

use diesel::prelude::*;

use super::models::{columns, NewAudit, SilenceRow};
use super::schema::silences;
use super::sql::Maybe;
use super::{audit, Conn, Db};
use crate::domain::silence::NewSilence;
use crate::error::{Error, Result};

/// One silence, as stored.
async fn find(conn: &mut Conn<'_>, id: i64) -> Result<Option<SilenceRow>> {
    let query = silences::table.find(id).select(columns::<SilenceRow>());
    Ok(conn.first(query).await.optional()?)
}

impl Db {
    pub async fn create_silence(&self, new: NewSilence, entry: NewAudit) -> Result<SilenceRow> {
        self.transaction(async move |mut conn| {
            let now = crate::domain::now();
            let insert = diesel::insert_into(silences::table)
                .values((
                    silences::source.eq(new.source),
                    silences::event_type.eq(new.event_type),
                    silences::severity.eq(new.severity.map(|s| s.as_str().to_owned())),
                    silences::dedup_key.eq(new.dedup_key),
                    silences::comment.eq(new.comment),
                    silences::created_by.eq(new.created_by),
                    silences::created_at.eq(now),
                    silences::ends_at.eq(new.ends_at),
                ))
                .returning(columns::<SilenceRow>());
            let row: SilenceRow = conn.first(insert).await?;
            let entry = NewAudit {
                at: now,
                target_type: Some("Silence".into()),
                target_id: Some(row.id.to_string()),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok((row, entry))
        })
        .await
        .map(audit::logged)
    }

    /// Silences, newest first: `Some(true)` only live ones, `Some(false)`
    /// only ended ones (expired or past `endsAt`).
    pub async fn silences(&self, active: Option<bool>) -> Result<Vec<SilenceRow>> {
        let now = crate::domain::now();
        self.read(async move |mut conn| {
            let live = (active == Some(true)).then(|| {
                silences::expired_at
                    .is_null()
                    .and(silences::ends_at.gt(now))
            });
            let ended = (active == Some(false)).then(|| {
                silences::expired_at
                    .is_not_null()
                    .or(silences::ends_at.le(now))
            });
            let query = silences::table
                .select(columns::<SilenceRow>())
                .filter(Maybe(live))
                .filter(Maybe(ended))
                .order(silences::id.desc());
            Ok(conn.load(query).await?)
        })
        .await
    }

    pub async fn silences_by_ids(&self, ids: Vec<i64>) -> Result<Vec<SilenceRow>> {
        self.read(async move |mut conn| {
            let query = silences::table
                .filter(silences::id.eq_any(ids))
                .select(columns::<SilenceRow>());
            Ok(conn.load(query).await?)
        })
        .await
    }

    /// Ends a silence now. Ending one that has already ended changes
    /// nothing and writes no second audit entry.
    pub async fn expire_silence(&self, id: i64, entry: NewAudit) -> Result<SilenceRow> {
        self.transaction(async move |mut conn| {
            let now = crate::domain::now();
            let current = find(&mut conn, id)
                .await?
                .ok_or_else(|| Error::missing("id", format!("no silence with id {id}")))?;
            if current.expired_at.is_some() || current.ends_at <= now {
                return Ok((current, None));
            }
            // Conditional on it still being live: of two concurrent calls
            // only one ends it and writes the entry; the other (on
            // PostgreSQL it waits here for the first) reports it as ended.
            let update = diesel::update(
                silences::table
                    .filter(silences::id.eq(id))
                    .filter(silences::expired_at.is_null()),
            )
            .set(silences::expired_at.eq(now))
            .returning(columns::<SilenceRow>());
            let row: Option<SilenceRow> = conn.first(update).await.optional()?;
            let Some(row) = row else {
                let ended = find(&mut conn, id)
                    .await?
                    .ok_or_else(|| Error::missing("id", format!("no silence with id {id}")))?;
                return Ok((ended, None));
            };
            let entry = NewAudit {
                at: now,
                target_type: Some("Silence".into()),
                target_id: Some(id.to_string()),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok((row, Some(entry)))
        })
        .await
        .map(audit::logged_if)
    }
}

//! Silences: while one matches, events are stored but raise no alert.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{NewAudit, SilenceRow};
use super::schema::silences;
use super::Db;
use crate::domain::Severity;
use crate::error::{Error, Result};

/// A validated silence to create.
#[derive(Clone, Debug)]
pub struct NewSilence {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub dedup_key: Option<String>,
    pub comment: String,
    pub created_by: String,
    pub ends_at: NaiveDateTime,
}

impl Db {
    pub async fn create_silence(&self, new: NewSilence, audit: NewAudit) -> Result<SilenceRow> {
        transaction!(self, |conn| {
            let now = crate::domain::now();
            let row: SilenceRow = diesel::insert_into(silences::table)
                .values((
                    silences::source.eq(&new.source),
                    silences::event_type.eq(&new.event_type),
                    silences::severity.eq(new.severity.map(|s| s.as_str())),
                    silences::dedup_key.eq(&new.dedup_key),
                    silences::comment.eq(&new.comment),
                    silences::created_by.eq(&new.created_by),
                    silences::created_at.eq(now),
                    silences::ends_at.eq(new.ends_at),
                ))
                .returning(SilenceRow::as_returning())
                .get_result(conn)
                .await?;
            let audit = NewAudit {
                at: now,
                target_type: Some("Silence".into()),
                target_id: Some(row.id.to_string()),
                ..audit.clone()
            };
            append_audit!(conn, &audit)?;
            Ok((row, audit))
        })
        .map(super::audit::logged)
    }

    /// Silences, newest first: `Some(true)` only live ones, `Some(false)`
    /// only ended ones (expired or past `endsAt`).
    pub async fn silences(&self, active: Option<bool>) -> Result<Vec<SilenceRow>> {
        let now = crate::domain::now();
        run!(self, |conn| {
            let mut query = silences::table
                .select(SilenceRow::as_select())
                .order(silences::id.desc())
                .into_boxed();
            match active {
                Some(true) => {
                    query = query
                        .filter(silences::expired_at.is_null())
                        .filter(silences::ends_at.gt(now));
                }
                Some(false) => {
                    query = query.filter(
                        silences::expired_at
                            .is_not_null()
                            .or(silences::ends_at.le(now)),
                    );
                }
                None => {}
            }
            Ok(query.load(conn).await?)
        })
    }

    pub async fn silences_by_ids(&self, ids: Vec<i64>) -> Result<Vec<SilenceRow>> {
        run!(self, |conn| {
            Ok(silences::table
                .filter(silences::id.eq_any(&ids))
                .select(SilenceRow::as_select())
                .load(conn)
                .await?)
        })
    }

    /// Ends a silence now. Ending one that has already ended changes
    /// nothing and writes no second audit entry.
    pub async fn expire_silence(&self, id: i64, audit: NewAudit) -> Result<SilenceRow> {
        transaction!(self, |conn| {
            let now = crate::domain::now();
            let current: SilenceRow = silences::table
                .find(id)
                .select(SilenceRow::as_select())
                .first(conn)
                .await
                .optional()?
                .ok_or_else(|| Error::not_found(format!("id: no silence with id {id}")))?;
            if current.expired_at.is_some() || current.ends_at <= now {
                return Ok((current, None));
            }
            // Conditional on it still being live: of two concurrent calls
            // only one ends it and writes the entry; the other (on
            // PostgreSQL it waits here for the first) reports it as ended.
            let row: Option<SilenceRow> = diesel::update(
                silences::table
                    .filter(silences::id.eq(id))
                    .filter(silences::expired_at.is_null()),
            )
            .set(silences::expired_at.eq(now))
            .returning(SilenceRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
            let Some(row) = row else {
                let ended: SilenceRow = silences::table
                    .find(id)
                    .select(SilenceRow::as_select())
                    .first(conn)
                    .await?;
                return Ok((ended, None));
            };
            let audit = NewAudit {
                at: now,
                target_type: Some("Silence".into()),
                target_id: Some(id.to_string()),
                ..audit.clone()
            };
            append_audit!(conn, &audit)?;
            Ok((row, Some(audit)))
        })
        .map(super::audit::logged_if)
    }
}

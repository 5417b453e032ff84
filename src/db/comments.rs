//! Analysts' notes on alerts. Append-only, like the audit log.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{CommentRow, NewAudit};
use super::schema::{alert_comments, alerts};
use super::Db;
use crate::domain::page::Page;
use crate::error::{Error, Result};

impl Db {
    /// Adds a note to an alert, with its ALERT_COMMENTED entry.
    pub async fn comment(
        &self,
        alert_id: i64,
        author: String,
        body: String,
        audit: NewAudit,
    ) -> Result<CommentRow> {
        transaction!(self, |conn| {
            let exists: Option<i64> = alerts::table
                .find(alert_id)
                .select(alerts::id)
                .first(conn)
                .await
                .optional()?;
            if exists.is_none() {
                return Err(Error::not_found(format!("id: no alert with id {alert_id}")));
            }
            let now = crate::domain::now();
            let row: CommentRow = diesel::insert_into(alert_comments::table)
                .values((
                    alert_comments::alert_id.eq(alert_id),
                    alert_comments::author.eq(&author),
                    alert_comments::body.eq(&body),
                    alert_comments::created_at.eq(now),
                ))
                .returning(CommentRow::as_returning())
                .get_result(conn)
                .await?;
            let audit = NewAudit {
                at: now,
                target_type: Some("Alert".into()),
                target_id: Some(alert_id.to_string()),
                detail: Some(serde_json::json!({ "commentId": row.id.to_string() }).to_string()),
                ..audit.clone()
            };
            append_audit!(conn, &audit)?;
            Ok((row, audit))
        })
        .map(super::audit::logged)
    }

    pub async fn comments_page(&self, alert_id: i64, page: Page) -> Result<Vec<CommentRow>> {
        run!(self, |conn| {
            let query = alert_comments::table
                .filter(alert_comments::alert_id.eq(alert_id))
                .select(CommentRow::as_select())
                .into_boxed();
            Ok(paged!(query, &page, alert_comments::id).load(conn).await?)
        })
    }

    pub async fn count_comments(&self, alert_id: i64) -> Result<i64> {
        run!(self, |conn| {
            Ok(alert_comments::table
                .filter(alert_comments::alert_id.eq(alert_id))
                .count()
                .get_result(conn)
                .await?)
        })
    }
}

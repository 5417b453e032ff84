//! Analysts' notes on alerts. Append-only, like the audit log.

use diesel::prelude::*;

use super::models::{columns, CommentRow, NewAudit};
use super::schema::{alert_comments, alerts};
use super::sql::keyset;
use super::{audit, Db};
use crate::domain::page::Page;
use crate::error::{Error, Result};

impl Db {
    /// Adds a note to an alert, with its ALERT_COMMENTED entry.
    pub async fn comment(
        &self,
        alert_id: i64,
        author: String,
        body: String,
        entry: NewAudit,
    ) -> Result<CommentRow> {
        self.transaction(async move |mut conn| {
            // A comment is a change to the alert, like a new owner: its
            // updatedAt moves, which also finds the alert or says it is not
            // there.
            let now = crate::domain::now();
            let touched: Option<i64> = conn
                .first(
                    diesel::update(alerts::table.find(alert_id))
                        .set(alerts::updated_at.eq(now))
                        .returning(alerts::id),
                )
                .await
                .optional()?;
            if touched.is_none() {
                return Err(Error::missing("id", format!("no alert with id {alert_id}")));
            }
            super::alerts::report_comment(&mut conn, alert_id, &author, &body).await?;
            let insert = diesel::insert_into(alert_comments::table)
                .values((
                    alert_comments::alert_id.eq(alert_id),
                    alert_comments::author.eq(author),
                    alert_comments::body.eq(body),
                    alert_comments::created_at.eq(now),
                ))
                .returning(columns::<CommentRow>());
            let row: CommentRow = conn.first(insert).await?;
            let entry = NewAudit {
                at: now,
                target_type: Some("Alert".into()),
                target_id: Some(alert_id.to_string()),
                detail: Some(serde_json::json!({ "commentId": row.id.to_string() }).to_string()),
                ..entry
            };
            audit::append(&mut conn, &entry).await?;
            Ok((row, entry))
        })
        .await
        .map(audit::logged)
    }

    pub async fn comments_page(&self, alert_id: i64, page: Page) -> Result<Vec<CommentRow>> {
        self.read_page(async move |mut conn| {
            let k = keyset(&page, alert_comments::id);
            let query = alert_comments::table
                .filter(alert_comments::alert_id.eq(alert_id))
                .select(columns::<CommentRow>())
                .filter(k.range)
                .order(k.order)
                .limit(k.limit);
            Ok(conn.load(query).await?)
        })
        .await
    }

    pub async fn count_comments(&self, alert_id: i64) -> Result<i64> {
        self.read(async move |mut conn| {
            let query = alert_comments::table
                .filter(alert_comments::alert_id.eq(alert_id))
                .count();
            Ok(conn.first(query).await?)
        })
        .await
    }
}

//! The append-only audit log. There is deliberately no update or delete
//! here; the tables' triggers refuse them too.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AuditRow, NewAudit};
use super::schema::audit_log;
use super::Db;
use crate::domain::page::Page;
use crate::domain::AuditAction;
use crate::error::Result;

impl Db {
    /// Appends one entry on its own (for events that change nothing else,
    /// such as a failed login).
    pub async fn append_audit(&self, entry: NewAudit) -> Result<()> {
        transaction!(self, |conn| {
            diesel::insert_into(audit_log::table)
                .values(&entry)
                .execute(conn)
                .await?;
            Ok(())
        })
    }

    pub async fn audit_page(
        &self,
        action: Option<AuditAction>,
        page: Page,
    ) -> Result<Vec<AuditRow>> {
        run!(self, |conn| {
            let mut query = audit_log::table.select(AuditRow::as_select()).into_boxed();
            if let Some(a) = action {
                query = query.filter(audit_log::action.eq(a.as_str()));
            }
            Ok(paged!(query, &page, audit_log::id).load(conn).await?)
        })
    }

    pub async fn count_audit(&self, action: Option<AuditAction>) -> Result<i64> {
        run!(self, |conn| {
            let mut query = audit_log::table.into_boxed();
            if let Some(a) = action {
                query = query.filter(audit_log::action.eq(a.as_str()));
            }
            Ok(query.count().get_result(conn).await?)
        })
    }
}

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

/// Audit entries also go to the log (target "audit"), for shipping to a
/// SIEM. Called with each entry once its transaction has committed.
pub fn log(entry: &NewAudit) {
    tracing::info!(
        target: "audit",
        action = %entry.action,
        actor = %entry.actor,
        target_type = entry.target_type.as_deref().unwrap_or(""),
        target_id = entry.target_id.as_deref().unwrap_or(""),
        detail = entry.detail.as_deref().unwrap_or(""),
        ip = entry.ip.as_deref().unwrap_or(""),
        "audit"
    );
}

/// Logs the entry a committed transaction wrote and hands back its value.
pub fn logged<T>((value, entry): (T, NewAudit)) -> T {
    log(&entry);
    value
}

/// Like `logged`, for transactions that may have written no entry.
pub fn logged_if<T>((value, entry): (T, Option<NewAudit>)) -> T {
    if let Some(entry) = &entry {
        log(entry);
    }
    value
}

impl Db {
    /// Appends one entry on its own (for events that change nothing else,
    /// such as a failed login).
    pub async fn append_audit(&self, entry: NewAudit) -> Result<()> {
        let logged = entry.clone();
        transaction!(self, |conn| {
            append_audit!(conn, &entry)?;
            Ok(())
        })?;
        log(&logged);
        Ok(())
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

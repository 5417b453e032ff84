//! The append-only audit log. There is deliberately no update or delete
//! here; the tables' triggers refuse them too.

use diesel::dsl;
use diesel::prelude::*;

use super::models::{columns, AuditInsert, AuditRow, NewAudit};
use super::schema::audit_log;
use super::sql::{keyset, Maybe};
use super::{Conn, Db};
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

/// Appends `entry` to the audit log inside the caller's transaction.
pub async fn append(conn: &mut Conn<'_>, entry: &NewAudit) -> Result<()> {
    conn.execute(diesel::insert_into(audit_log::table).values(AuditInsert::from(entry)))
        .await?;
    Ok(())
}

/// Entries with this action (all when `None`).
fn with_action(action: Option<AuditAction>) -> Maybe<dsl::Eq<audit_log::action, String>> {
    Maybe(action.map(|a| audit_log::action.eq(a.as_str().to_owned())))
}

impl Db {
    /// Appends one entry on its own (for events that change nothing else,
    /// such as a failed login).
    pub async fn append_audit(&self, entry: NewAudit) -> Result<()> {
        let logged = entry.clone();
        self.transaction(async move |mut conn| append(&mut conn, &entry).await)
            .await?;
        log(&logged);
        Ok(())
    }

    pub async fn audit_page(
        &self,
        action: Option<AuditAction>,
        page: Page,
    ) -> Result<Vec<AuditRow>> {
        self.read(async move |mut conn| {
            let k = keyset(&page, audit_log::id);
            let query = audit_log::table
                .select(columns::<AuditRow>())
                .filter(with_action(action))
                .filter(k.range)
                .order(k.order)
                .limit(k.limit);
            Ok(conn.load(query).await?)
        })
        .await
    }

    pub async fn count_audit(&self, action: Option<AuditAction>) -> Result<i64> {
        self.read(async move |mut conn| {
            let query = audit_log::table.filter(with_action(action)).count();
            Ok(conn.first(query).await?)
        })
        .await
    }
}

//! Reading the audit log (entries are appended by the operations they
//! record).

use super::Service;
use crate::domain::audit::AuditRecord;
use crate::domain::page::{Page, PageOf};
use crate::domain::AuditAction;
use crate::error::Result;

impl Service {
    /// Entries with this action (all when `None`), newest first.
    pub async fn audit_log(
        &self,
        action: Option<AuditAction>,
        page: Page,
    ) -> Result<PageOf<AuditRecord>> {
        Ok(page.finish(self.db.audit_page(action, page).await?))
    }

    pub async fn count_audit(&self, action: Option<AuditAction>) -> Result<i64> {
        self.db.count_audit(action).await
    }
}

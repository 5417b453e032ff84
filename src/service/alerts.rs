//! Reading alerts and moving them through their lifecycle.

use super::{audit, ClientIp, Service};
use crate::auth::Principal;
use crate::db::alerts::AlertFilter;
use crate::db::models::AlertWithEvent;
use crate::domain::page::{Page, PageOf};
use crate::domain::{AlertStatus, AuditAction};
use crate::error::Result;

/// What live subscribers are told, after the change is committed.
#[derive(Clone, Debug)]
pub struct AlertNotice {
    pub kind: NoticeKind,
    pub alert: AlertWithEvent,
    /// Raised through another instance and relayed here (see `live`); not
    /// to be relayed again.
    pub remote: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    Created,
    Updated,
}

impl Service {
    pub async fn alerts(&self, filter: AlertFilter, page: Page) -> Result<PageOf<AlertWithEvent>> {
        Ok(page.finish(self.db.alerts_page(filter, page).await?))
    }

    pub async fn alert(&self, id: i64) -> Result<Option<AlertWithEvent>> {
        self.db.alert(id).await
    }

    pub async fn update_alert_status(
        &self,
        principal: &Principal,
        id: i64,
        status: AlertStatus,
        ip: &ClientIp,
    ) -> Result<AlertWithEvent> {
        let entry = audit(AuditAction::AlertStatusChanged, principal.actor(), ip);
        let change = self.db.update_alert_status(id, status, entry).await?;

        if change.from.is_some() {
            let _ = self.alerts.send(AlertNotice {
                kind: NoticeKind::Updated,
                alert: change.alert.clone(),
                remote: false,
            });
        }
        Ok(change.alert)
    }
}

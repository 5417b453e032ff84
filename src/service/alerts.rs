//! Reading alerts and moving them through their lifecycle.

use super::{audit, ClientIp, Service};
use crate::auth::Principal;
use crate::domain::alert::{AlertFilter, AlertWithEvent, CommentRecord};
use crate::domain::event::EventWithAlert;
use crate::domain::page::{Page, PageOf};
use crate::domain::{AlertStatus, AuditAction, Role, Severity};
use crate::error::{Error, Result};

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

    /// A page by offset, for the old REST API's numbered pages.
    pub async fn alerts_by_offset(
        &self,
        filter: AlertFilter,
        newest_first: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AlertWithEvent>> {
        self.db
            .alerts_offset_page(filter, newest_first, offset, limit)
            .await
    }

    pub async fn count_alerts(&self, filter: AlertFilter) -> Result<i64> {
        self.db.count_alerts(filter).await
    }

    /// Alerts by id, in no particular order; ids not found are left out.
    pub async fn alerts_by_ids(&self, ids: Vec<i64>) -> Result<Vec<AlertWithEvent>> {
        self.db.alerts_by_ids(ids).await
    }

    /// The events that belong to an alert, newest first.
    pub async fn alert_events(&self, alert_id: i64, page: Page) -> Result<PageOf<EventWithAlert>> {
        Ok(page.finish(self.db.alert_events_page(alert_id, page).await?))
    }

    pub async fn count_alert_events(&self, alert_id: i64) -> Result<i64> {
        self.db.count_alert_events(alert_id).await
    }

    /// Analysts' notes on an alert, newest first.
    pub async fn comments(&self, alert_id: i64, page: Page) -> Result<PageOf<CommentRecord>> {
        Ok(page.finish(self.db.comments_page(alert_id, page).await?))
    }

    pub async fn count_comments(&self, alert_id: i64) -> Result<i64> {
        self.db.count_comments(alert_id).await
    }

    /// Mean seconds to acknowledge and to resolve, all time or for alerts
    /// created since `since`.
    pub async fn lifecycle_means(
        &self,
        since: Option<chrono::NaiveDateTime>,
    ) -> Result<(Option<f64>, Option<f64>)> {
        self.db.lifecycle_means(since).await
    }

    /// How many alerts there are of each status and severity.
    pub async fn alert_counts(
        &self,
        since: Option<chrono::NaiveDateTime>,
    ) -> Result<Vec<(AlertStatus, Severity, i64)>> {
        self.db.alert_counts(since).await
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
            self.updated(&change.alert);
        }
        Ok(change.alert)
    }
}

/// What an ANALYST is told when `assignAlert` asks for more than the role allows.
const ANALYST_ASSIGN_RULE: &str =
    "an ANALYST may only assign an unowned alert to themselves or unassign their own";

/// Most alerts one `updateAlertStatuses` call may move.
pub const MAX_BULK_IDS: usize = 500;

impl Service {
    /// Moves every alert, or none; one audit entry and one notice per alert
    /// that changed.
    pub async fn update_alert_statuses(
        &self,
        principal: &Principal,
        ids: Vec<i64>,
        status: AlertStatus,
        ip: &ClientIp,
    ) -> Result<Vec<AlertWithEvent>> {
        if ids.is_empty() || ids.len() > MAX_BULK_IDS {
            return Err(Error::invalid(
                "ids",
                format!("must hold 1 to {MAX_BULK_IDS} ids, got {}", ids.len()),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
            return Err(Error::invalid("ids", format!("{dup} is listed twice")));
        }
        let entry = audit(AuditAction::AlertStatusChanged, principal.actor(), ip);
        let changes = self.db.update_alert_statuses(ids, status, entry).await?;
        Ok(changes
            .into_iter()
            .map(|change| {
                if change.from.is_some() {
                    self.updated(&change.alert);
                }
                change.alert
            })
            .collect())
    }

    /// Gives an alert an owner, or takes it away. ADMINs may assign anyone
    /// who can work alerts (ADMIN or ANALYST); an ANALYST may only take an
    /// unowned alert (or one already theirs) and give up their own.
    pub async fn assign_alert(
        &self,
        principal: &Principal,
        id: i64,
        assignee: Option<i64>,
        ip: &ClientIp,
    ) -> Result<AlertWithEvent> {
        let (me, role) = match principal {
            Principal::User { id, role, .. } => (*id, *role),
            Principal::ApiKey { .. } => return Err(Error::forbidden("API keys cannot own alerts")),
        };
        // Refused before the assignee is read: otherwise whether the answer
        // is FORBIDDEN or NOT_FOUND would tell an ANALYST which ids are
        // active users, and of which role.
        if role != Role::Admin && assignee.is_some_and(|a| a != me) {
            return Err(Error::forbidden(ANALYST_ASSIGN_RULE));
        }
        if let Some(user) = assignee {
            let target = self
                .db
                .user_by_id(user)
                .await?
                .filter(|u| u.is_active)
                .ok_or_else(|| {
                    Error::missing("assignee", format!("no active user with id {user}"))
                })?;
            if !matches!(target.role, Role::Admin | Role::Analyst) {
                return Err(Error::invalid(
                    "assignee",
                    format!(
                        "a {} cannot own alerts; choose an ADMIN or ANALYST",
                        target.role
                    ),
                ));
            }
        }
        let allowed = move |current: Option<i64>| -> Result<()> {
            if role == Role::Admin {
                return Ok(());
            }
            let mine_or_free = current.is_none() || current == Some(me);
            match assignee {
                Some(a) if a == me && mine_or_free => Ok(()),
                None if current == Some(me) || current.is_none() => Ok(()),
                _ => Err(Error::forbidden(ANALYST_ASSIGN_RULE)),
            }
        };
        let entry = audit(AuditAction::AlertAssigned, principal.actor(), ip);
        let (alert, changed) = self.db.assign_alert(id, assignee, allowed, entry).await?;
        if changed {
            self.updated(&alert);
        }
        Ok(alert)
    }

    pub async fn comment_on_alert(
        &self,
        principal: &Principal,
        id: i64,
        body: &str,
        ip: &ClientIp,
    ) -> Result<CommentRecord> {
        let body =
            crate::domain::event::text("body", body, crate::domain::event::MAX_DESCRIPTION_CHARS)?;
        let entry = audit(AuditAction::AlertCommented, principal.actor(), ip);
        let comment = self.db.comment(id, principal.actor(), body, entry).await?;
        // The comment is committed; a failure to read the alert back only
        // costs live views this one notice.
        match self.db.alert(id).await {
            Ok(Some(alert)) => self.updated(&alert),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = ?e, alert = id, "no alertUpdated for a comment"),
        }
        Ok(comment)
    }

    /// Tells live subscribers (here and, through `live`, on other
    /// instances) that a committed change touched `alert`. Its outbox rows,
    /// if a webhook wanted the change, were committed with
    /// it: the delivery worker is woken to send them now.
    fn updated(&self, alert: &AlertWithEvent) {
        self.wake_deliveries();
        // No subscribers is the common case, not an error.
        let _ = self.alerts.send(AlertNotice {
            kind: NoticeKind::Updated,
            alert: alert.clone(),
            remote: false,
        });
    }
}

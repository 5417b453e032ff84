//! Live alerts. Notices are published only after their transaction commits.

use async_graphql::futures_util::stream::{self, Stream, StreamExt};
use async_graphql::{Context, Subscription};
use tokio::sync::broadcast::{self, error::RecvError};

use super::guard::{RoleGuard, READERS};
use super::types::Alert;
use crate::domain::Severity;
use crate::error::Error;
use crate::service::{AlertNotice, NoticeKind, Service};

pub struct Subscription;

/// The notices as a stream. A subscriber that falls further behind than the
/// bus holds is told so and its stream ends, rather than silently missing
/// alerts or slowing down everyone else.
fn notices(rx: broadcast::Receiver<AlertNotice>) -> impl Stream<Item = Result<AlertNotice, Error>> {
    stream::unfold(Some(rx), |state| async move {
        let mut rx = state?;
        match rx.recv().await {
            Ok(notice) => Some((Ok(notice), Some(rx))),
            Err(RecvError::Lagged(missed)) => Some((
                // No argument is at fault: the subscription as a whole.
                Err(Error::invalid_request(format!(
                    "subscription fell {missed} alerts behind and was closed; subscribe again and read the gap with alerts(after:)"
                ))),
                None,
            )),
            Err(RecvError::Closed) => None,
        }
    })
}

#[Subscription]
impl Subscription {
    /// Each new alert, optionally only of one severity.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn alert_created(
        &self,
        ctx: &Context<'_>,
        severity: Option<Severity>,
    ) -> impl Stream<Item = async_graphql::Result<Alert>> {
        let rx = ctx.data_unchecked::<Service>().alerts.subscribe();
        notices(rx).filter_map(move |notice| async move {
            match notice {
                Ok(AlertNotice {
                    kind: NoticeKind::Created,
                    alert,
                    ..
                }) if severity.is_none_or(|s| alert.alert.severity == s) => Some(Ok(Alert(alert))),
                Ok(_) => None,
                Err(e) => Some(Err(e.into())),
            }
        })
    }

    /// Each alert as it is after any change: status, owner, a repeat folded
    /// in, a comment.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn alert_updated(
        &self,
        ctx: &Context<'_>,
    ) -> impl Stream<Item = async_graphql::Result<Alert>> {
        let rx = ctx.data_unchecked::<Service>().alerts.subscribe();
        notices(rx).filter_map(|notice| async move {
            match notice {
                Ok(AlertNotice {
                    kind: NoticeKind::Updated,
                    alert,
                    ..
                }) => Some(Ok(Alert(alert))),
                Ok(_) => None,
                Err(e) => Some(Err(e.into())),
            }
        })
    }
}

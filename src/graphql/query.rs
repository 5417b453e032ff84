//! Read operations.

use async_graphql::{Context, Object, ID};

use super::guard::{principal, RoleGuard, ADMIN, ANYONE_SIGNED_IN, READERS};
use super::limits;
use super::scalars::DateTime;
use super::types::*;
use crate::auth::Principal;
use crate::domain::alert::{AlertFilter, EventFilter};
use crate::domain::filter::Narrowing;
use crate::domain::page::Page;
use crate::domain::{id, AlertStatus, AuditAction, Severity};
use crate::error::Error;
use crate::service::Service;

pub struct Query;

fn service<'a>(ctx: &'a Context<'_>) -> &'a Service {
    ctx.data_unchecked::<Service>()
}

// Named apart from the merged root (`graphql::Query`) it is part of.
#[Object(name = "CoreQuery")]
impl Query {
    /// The signed-in person.
    #[graphql(guard = "RoleGuard::new(ANYONE_SIGNED_IN)")]
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let Principal::User { id, .. } = principal(ctx)? else {
            return Err(
                Error::forbidden("an API key is not a person; me needs a user's token").into(),
            );
        };
        match service(ctx).find_user(*id).await? {
            Some(u) if u.is_active => Ok(User(u)),
            _ => Err(Error::unauthenticated("the account no longer exists or is disabled").into()),
        }
    }

    /// Alerts, newest first: by creation time when cut to a time range
    /// or a source (`since`, `until`, `source`, without `search`), by id
    /// otherwise. Every filter given must hold.
    #[graphql(
        guard = "RoleGuard::new(READERS)",
        complexity = "limits::list_cost(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        severity: Option<Severity>,
        status: Option<AlertStatus>,
        #[graphql(desc = "Only alerts owned by this user.")] assignee: Option<ID>,
        #[graphql(desc = "true: only alerts nobody owns.")] unassigned: Option<bool>,
        #[graphql(
            desc = "Only alerts raised by events from this source (exact, 1..100 characters)."
        )]
        source: Option<String>,
        #[graphql(desc = "Only alerts raised by events of this type (exact, 1..100 characters).")]
        event_type: Option<String>,
        #[graphql(desc = "Only alerts created at or after this instant.")] since: Option<DateTime>,
        #[graphql(desc = "Only alerts created at or before this instant.")] until: Option<DateTime>,
        #[graphql(
            desc = "Only alerts whose event's description, source and event type hold every word of this (any order, any case; 1..200 characters)."
        )]
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<AlertConnection> {
        let page = Page::parse(first, after.as_deref(), last, before.as_deref())?;
        let assignee = assignee.map(|a| id::parse("assignee", &a)).transpose()?;
        let unassigned = unassigned.unwrap_or(false);
        if assignee.is_some() && unassigned {
            return Err(
                Error::invalid("assignee, unassigned", "give one of them, not both").into(),
            );
        }
        let narrowing = Narrowing::parse(
            source.as_deref(),
            event_type.as_deref(),
            since.map(|t| t.0),
            until.map(|t| t.0),
            search.as_deref(),
        )?;
        let filter = AlertFilter {
            severity,
            status,
            assignee,
            unassigned,
            narrowing,
        };
        let rows = service(ctx).alerts(filter.clone(), page).await?;
        Ok(AlertConnection::new(
            rows,
            Count::Alerts(filter),
            Alert::keyed,
        ))
    }

    /// One alert; null when the id names none.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn alert(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Alert>> {
        let id = id::parse("id", &id)?;
        Ok(service(ctx).alert(id).await?.map(Alert))
    }

    /// Events, newest first: by `timestamp` when cut to a time range or a
    /// source (`since`, `until`, `source`, without `search`), by id
    /// otherwise. Every filter given must hold.
    #[graphql(
        guard = "RoleGuard::new(READERS)",
        complexity = "limits::list_cost(first, last, child_complexity)"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        ctx: &Context<'_>,
        severity: Option<Severity>,
        #[graphql(desc = "Only events from this source (exact, 1..100 characters).")]
        source: Option<String>,
        #[graphql(desc = "Only events of this type (exact, 1..100 characters).")]
        event_type: Option<String>,
        #[graphql(desc = "Only events recorded at or after this instant.")] since: Option<DateTime>,
        #[graphql(desc = "Only events recorded at or before this instant.")] until: Option<
            DateTime,
        >,
        #[graphql(
            desc = "Only events whose description, source and event type hold every word of this (any order, any case; 1..200 characters)."
        )]
        search: Option<String>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let page = Page::parse(first, after.as_deref(), last, before.as_deref())?;
        let narrowing = Narrowing::parse(
            source.as_deref(),
            event_type.as_deref(),
            since.map(|t| t.0),
            until.map(|t| t.0),
            search.as_deref(),
        )?;
        let filter = EventFilter {
            severity,
            narrowing,
        };
        let rows = service(ctx).events(filter.clone(), page).await?;
        Ok(EventConnection::new(
            rows,
            Count::Events(filter),
            Event::keyed,
        ))
    }

    /// One event; null when the id names none.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn event(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Event>> {
        let id = id::parse("id", &id)?;
        Ok(service(ctx).event(id).await?.map(Event))
    }

    /// Alert totals by status and by severity, and how fast alerts are
    /// acknowledged and resolved: all time, or every figure over the alerts
    /// created since `since`.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn alert_stats(
        &self,
        ctx: &Context<'_>,
        since: Option<DateTime>,
    ) -> async_graphql::Result<AlertStats> {
        let (mean_seconds_to_acknowledge, mean_seconds_to_resolve) =
            service(ctx).lifecycle_means(since.map(|s| s.0)).await?;
        let counts = service(ctx).alert_counts(since.map(|s| s.0)).await?;
        let sum = |keep: &dyn Fn(AlertStatus, Severity) -> bool| {
            let n: i64 = counts
                .iter()
                .filter(|(st, sv, _)| keep(*st, *sv))
                .map(|c| c.2)
                .sum();
            i32::try_from(n).unwrap_or(i32::MAX)
        };
        Ok(AlertStats {
            total: sum(&|_, _| true),
            by_status: AlertStatus::ALL
                .iter()
                .map(|s| StatusCount {
                    status: *s,
                    count: sum(&|st, _| st == *s),
                })
                .collect(),
            by_severity: Severity::ALL
                .iter()
                .map(|s| SeverityCount {
                    severity: *s,
                    count: sum(&|_, sv| sv == *s),
                })
                .collect(),
            mean_seconds_to_acknowledge,
            mean_seconds_to_resolve,
        })
    }

    /// People's accounts, newest first.
    #[graphql(
        guard = "RoleGuard::new(ADMIN)",
        complexity = "limits::list_cost(first, None, child_complexity)"
    )]
    async fn users(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let page = Page::parse(first, after.as_deref(), None, None)?;
        let rows = service(ctx).users(page).await?;
        Ok(UserConnection::new(rows, Count::Users, User::keyed))
    }

    /// Silences, newest first: `active: true` only those in force, `false`
    /// only those that have ended.
    #[graphql(
        guard = "RoleGuard::new(READERS)",
        complexity = "limits::unpaged_cost(child_complexity)"
    )]
    async fn silences(
        &self,
        ctx: &Context<'_>,
        active: Option<bool>,
    ) -> async_graphql::Result<Vec<Silence>> {
        Ok(service(ctx)
            .silences(active)
            .await?
            .into_iter()
            .map(Silence)
            .collect())
    }

    /// Sensor API keys, newest first, revoked ones included.
    #[graphql(
        guard = "RoleGuard::new(ADMIN)",
        complexity = "limits::unpaged_cost(child_complexity)"
    )]
    async fn api_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiKey>> {
        Ok(service(ctx)
            .api_keys()
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }

    /// The audit log, newest first.
    #[graphql(
        guard = "RoleGuard::new(ADMIN)",
        complexity = "limits::list_cost(first, last, child_complexity)"
    )]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        action: Option<AuditAction>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<AuditEntryConnection> {
        let page = Page::parse(first, after.as_deref(), last, before.as_deref())?;
        let rows = service(ctx).audit_log(action, page).await?;
        Ok(AuditEntryConnection::new(
            rows,
            Count::Audit(action),
            AuditEntry::keyed,
        ))
    }
}

//! Write operations.

use async_graphql::{Context, Object, ID};

use super::guard::{principal, RoleGuard, ADMIN, INGESTERS, READERS};
use super::limits;
use super::types::*;
use crate::domain::{id, AlertStatus};
use crate::service::silences::SilenceRequest;
use crate::service::{Actor, ClientIp, Service};

pub struct Mutation;

fn service<'a>(ctx: &'a Context<'_>) -> &'a Service {
    ctx.data_unchecked::<Service>()
}

fn ip<'a>(ctx: &'a Context<'_>) -> &'a ClientIp {
    static NONE: ClientIp = ClientIp(None);
    ctx.data_opt::<ClientIp>().unwrap_or(&NONE)
}

// Named apart from the merged root (`graphql::Mutation`) it is part of.
#[Object(name = "CoreMutation")]
impl Mutation {
    /// Exchanges a username and password for tokens.
    async fn login(
        &self,
        ctx: &Context<'_>,
        username: String,
        password: String,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(service(ctx)
            .login(&username, &password, ip(ctx))
            .await?
            .into())
    }

    /// Exchanges a refresh token for a new pair.
    async fn refresh_token(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        Ok(service(ctx).refresh(&refresh_token, ip(ctx)).await?.into())
    }

    /// Ends the session the refresh token belongs to: it and every token
    /// issued with it stop working.
    async fn logout(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<bool> {
        Ok(service(ctx).logout(&refresh_token, ip(ctx)).await?)
    }

    /// Creates a key for a sensor (role SENSOR). The key is in this answer
    /// only; store it now.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Unique among keys that are not revoked.")] name: String,
        #[graphql(
            desc = "The only sources the key may ingest for (1..100 names); leave it out \
                    for a key that may ingest for any source."
        )]
        sources: Option<Vec<String>>,
    ) -> async_graphql::Result<CreatedApiKey> {
        let who = principal(ctx)?;
        let (key, row) = service(ctx)
            .create_api_key(who, &name, sources, ip(ctx))
            .await?;
        Ok(CreatedApiKey {
            key,
            api_key: ApiKey(row),
        })
    }

    /// Revokes a key at once on this instance, within seconds on others.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ApiKey> {
        let id = id::parse("id", &id)?;
        let who = principal(ctx)?;
        Ok(ApiKey(service(ctx).revoke_api_key(who, id, ip(ctx)).await?))
    }

    /// Stores an event; HIGH and CRITICAL raise an alert in the same
    /// transaction.
    #[graphql(guard = "RoleGuard::new(INGESTERS)")]
    async fn ingest_event(
        &self,
        ctx: &Context<'_>,
        input: IngestEventInput,
    ) -> async_graphql::Result<IngestEventPayload> {
        let who = principal(ctx)?;
        let mut done = service(ctx)
            .ingest(who, vec![input.into()], "input", ip(ctx))
            .await?;
        Ok(done.remove(0).into())
    }

    /// Stores 1..1000 events in one transaction: all of them or none.
    #[graphql(
        guard = "RoleGuard::new(INGESTERS)",
        complexity = "limits::items_cost(inputs.len(), child_complexity)"
    )]
    async fn ingest_events(
        &self,
        ctx: &Context<'_>,
        inputs: Vec<IngestEventInput>,
    ) -> async_graphql::Result<Vec<IngestEventPayload>> {
        let who = principal(ctx)?;
        let raw = inputs.into_iter().map(Into::into).collect();
        let done = service(ctx).ingest(who, raw, "inputs", ip(ctx)).await?;
        Ok(done.into_iter().map(Into::into).collect())
    }

    /// Moves an alert forward: OPEN -> ACKNOWLEDGED -> RESOLVED.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn update_alert_status(
        &self,
        ctx: &Context<'_>,
        id: ID,
        status: AlertStatus,
    ) -> async_graphql::Result<Alert> {
        let id = id::parse("id", &id)?;
        let who = principal(ctx)?;
        let alert = service(ctx)
            .update_alert_status(who, id, status, ip(ctx))
            .await?;
        Ok(Alert(alert))
    }

    /// Moves 1..500 alerts at once: all of them or none.
    #[graphql(
        guard = "RoleGuard::new(ADMIN)",
        complexity = "limits::items_cost(ids.len(), child_complexity)"
    )]
    async fn update_alert_statuses(
        &self,
        ctx: &Context<'_>,
        ids: Vec<ID>,
        status: AlertStatus,
    ) -> async_graphql::Result<Vec<Alert>> {
        let ids = ids
            .iter()
            .enumerate()
            .map(|(i, raw)| id::parse(&format!("ids[{i}]"), raw))
            .collect::<Result<Vec<_>, _>>()?;
        let who = principal(ctx)?;
        let alerts = service(ctx)
            .update_alert_statuses(who, ids, status, ip(ctx))
            .await?;
        Ok(alerts.into_iter().map(Alert).collect())
    }

    /// Gives an alert an owner (null takes it away). ADMIN: anyone who works
    /// alerts; ANALYST: only themselves, to or from.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn assign_alert(
        &self,
        ctx: &Context<'_>,
        id: ID,
        assignee: Option<ID>,
    ) -> async_graphql::Result<Alert> {
        let id = id::parse("id", &id)?;
        let assignee = assignee.map(|a| id::parse("assignee", &a)).transpose()?;
        let who = principal(ctx)?;
        Ok(Alert(
            service(ctx)
                .assign_alert(who, id, assignee, ip(ctx))
                .await?,
        ))
    }

    /// Adds a note (1..10000 characters) to an alert.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn comment_on_alert(
        &self,
        ctx: &Context<'_>,
        id: ID,
        body: String,
    ) -> async_graphql::Result<AlertComment> {
        let id = id::parse("id", &id)?;
        let who = principal(ctx)?;
        Ok(AlertComment(
            service(ctx)
                .comment_on_alert(who, id, &body, ip(ctx))
                .await?,
        ))
    }

    /// Silences matching events until `endsAt`: they are stored but raise
    /// no alert.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn create_silence(
        &self,
        ctx: &Context<'_>,
        input: SilenceInput,
    ) -> async_graphql::Result<Silence> {
        let who = principal(ctx)?;
        let req = SilenceRequest {
            source: input.source,
            event_type: input.event_type,
            severity: input.severity,
            dedup_key: input.dedup_key,
            comment: input.comment,
            ends_at: input.ends_at.0,
        };
        Ok(Silence(
            service(ctx).create_silence(who, req, ip(ctx)).await?,
        ))
    }

    /// Ends a silence now.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn expire_silence(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Silence> {
        let id = id::parse("id", &id)?;
        let who = principal(ctx)?;
        Ok(Silence(
            service(ctx).expire_silence(who, id, ip(ctx)).await?,
        ))
    }

    /// Creates a person's account.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn create_user(
        &self,
        ctx: &Context<'_>,
        input: CreateUserInput,
    ) -> async_graphql::Result<User> {
        let who = principal(ctx)?;
        let row = service(ctx)
            .create_user(
                &who.actor(),
                &input.username,
                &input.password,
                input.role,
                ip(ctx),
            )
            .await?;
        Ok(User(row))
    }

    /// Changes a person's role, or disables or re-enables their account.
    /// Disabling or a change of role ends their sessions. Nobody disables
    /// or demotes themselves, and the last active ADMIN stays one.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn update_user(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateUserInput,
    ) -> async_graphql::Result<User> {
        let id = id::parse("id", &id)?;
        let who = Actor::from(principal(ctx)?);
        let row = service(ctx)
            .update_user(&who, id, input.role, input.active, ip(ctx))
            .await?;
        Ok(User(row))
    }

    /// Gives a person a new password (8..72 bytes) and ends their sessions.
    #[graphql(guard = "RoleGuard::new(ADMIN)")]
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        id: ID,
        password: String,
    ) -> async_graphql::Result<User> {
        let id = id::parse("id", &id)?;
        let who = Actor::from(principal(ctx)?);
        let row = service(ctx)
            .reset_password(&who, id, &password, ip(ctx))
            .await?;
        Ok(User(row))
    }

    /// Replaces the signed-in person's password (8..72 bytes); their other
    /// sessions end, this one goes on. A wrong `current` counts as a failed
    /// login.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current: String,
        new: String,
    ) -> async_graphql::Result<bool> {
        let who = principal(ctx)?;
        Ok(service(ctx)
            .change_password(who, &current, &new, ip(ctx))
            .await?)
    }
}

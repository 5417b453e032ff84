//! The GraphQL object types, as thin views over the records the service
//! returns.
//!
//! A page of alerts resolves a hundred or more fields, nearly all plain
//! reads of a row, so the per-field cost of async-graphql's executor is most
//! of a page's CPU. Two things keep it down (measured in
//! bench/PERFORMANCE.md):
//! - every type resolves its fields `serial`ly: concurrency inside one
//!   object buys nothing here (its fields are either plain reads or a
//!   dataloader, which still batches across the objects of a list, since
//!   lists resolve their items concurrently), while the parallel path sets up
//!   a `FuturesUnordered` per object;
//! - fields that wait on storage box what they await: async-graphql boxes
//!   one future per selected field, sized for the largest of the type's
//!   fields, so one field that holds a database call inline made every `id`
//!   and `status` allocate and copy its state.

use std::borrow::Cow;

use async_graphql::{Context, InputObject, Object, OutputType, SimpleObject, TypeName, ID};

use super::scalars::DateTime;
use crate::auth::token::TokenPair;
use async_graphql::dataloader::DataLoader;

use super::guard::{AdminOrSelf, RoleGuard, READERS};
use super::limits;
use super::loaders;
use crate::domain::alert::{AlertFilter, AlertWithEvent, CommentRecord, EventFilter};
use crate::domain::audit::AuditRecord;
use crate::domain::auth::ApiKeyRecord;
use crate::domain::event::RawEvent;
use crate::domain::event::{EventWithAlert, Ingested};
use crate::domain::page::Page;
use crate::domain::page::{encode_cursor, PageOf};
use crate::domain::silence::SilenceRecord;
use crate::domain::user::UserRecord;
use crate::domain::{id, AlertStatus, AuditAction, Role, Severity};
use crate::error::Error;
use crate::service::Service;

#[derive(Clone)]
pub struct User(pub UserRecord);

#[Object(serial)]
impl User {
    async fn id(&self) -> ID {
        id::format(self.0.id)
    }
    async fn username(&self) -> &str {
        &self.0.username
    }
    async fn role(&self) -> Role {
        self.0.role
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Whether the account may sign in; a disabled account keeps its
    /// history (alerts it owns, the audit log) but has no sessions.
    async fn active(&self) -> bool {
        self.0.is_active
    }
    /// When the person last logged in; null if never. ADMIN, or the person
    /// themselves.
    #[graphql(guard = "AdminOrSelf(self.0.id)")]
    async fn last_login_at(&self) -> Option<DateTime> {
        self.0.last_login_at.map(Into::into)
    }
}

/// A security event reported by a sensor.
#[derive(Clone)]
pub struct Event(pub EventWithAlert);

#[Object(serial)]
impl Event {
    async fn id(&self) -> ID {
        id::format(self.0.event.id)
    }
    /// The sensor that reported it, e.g. "Firewall-1".
    async fn source(&self) -> &str {
        &self.0.event.source
    }
    /// What kind of event, e.g. "Intrusion".
    async fn event_type(&self) -> &str {
        &self.0.event.event_type
    }
    async fn severity(&self) -> Severity {
        self.0.event.severity
    }
    async fn description(&self) -> &str {
        &self.0.event.description
    }
    /// When the service recorded it.
    async fn timestamp(&self) -> DateTime {
        self.0.event.created_at.into()
    }
    /// When it happened by the sensor's clock, or `timestamp` when the
    /// sensor sent no time.
    async fn occurred_at(&self) -> DateTime {
        self.0.event.occurred().into()
    }
    /// The sensor's own id for the event, when it sent one.
    async fn external_id(&self) -> Option<&str> {
        self.0.event.external_id.as_deref()
    }
    /// Repeats with the same (source, dedupKey) fold into one alert.
    async fn dedup_key(&self) -> Option<&str> {
        self.0.event.dedup_key.as_deref()
    }
    /// The alert it raised or was folded into; null for LOW and MEDIUM and
    /// for silenced events.
    async fn alert(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Alert>> {
        let Some(alert) = &self.0.alert else {
            return Ok(None);
        };
        if alert.event_id == self.0.event.id {
            return Ok(Some(Alert(AlertWithEvent {
                alert: alert.clone(),
                event: self.0.event.clone(),
            })));
        }
        // A folded repeat: the alert's event is the one that raised it.
        let service = ctx.data_unchecked::<Service>();
        Ok(Box::pin(service.alert(alert.id)).await?.map(Alert))
    }
    /// The silence that kept this event from raising an alert. Silences
    /// are analysts' notes: a sensor reads none.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn silenced_by(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Silence>> {
        let Some(id) = self.0.event.silenced_by else {
            return Ok(None);
        };
        let loader = ctx.data_unchecked::<DataLoader<loaders::Silences>>();
        let silence = Box::pin(loader.load_one(id))
            .await
            .map_err(|e| Error::internal(anyhow::anyhow!("loading the silence failed: {e}")))?;
        Ok(silence.map(Silence))
    }
}

/// An alert raised by a HIGH or CRITICAL event.
#[derive(Clone)]
pub struct Alert(pub AlertWithEvent);

#[Object(serial)]
impl Alert {
    async fn id(&self) -> ID {
        id::format(self.0.alert.id)
    }
    async fn status(&self) -> AlertStatus {
        self.0.alert.status
    }
    /// The raising event's severity.
    async fn severity(&self) -> Severity {
        self.0.alert.severity
    }
    async fn created_at(&self) -> DateTime {
        self.0.alert.created_at.into()
    }
    async fn updated_at(&self) -> DateTime {
        self.0.alert.updated_at.into()
    }
    /// The event that raised it. Once repeats fold in, that is an event a
    /// sensor did not send (perhaps another sensor's): people only.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn event(&self) -> Event {
        Event(EventWithAlert {
            event: self.0.event.clone(),
            alert: Some(self.0.alert.clone()),
        })
    }
    /// Who owns it, if anyone. People only.
    #[graphql(guard = "RoleGuard::new(READERS)")]
    async fn assignee(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = self.0.alert.assignee_id else {
            return Ok(None);
        };
        let loader = ctx.data_unchecked::<DataLoader<loaders::Users>>();
        let user = Box::pin(loader.load_one(id))
            .await
            .map_err(|e| Error::internal(anyhow::anyhow!("loading the assignee failed: {e}")))?;
        Ok(user.map(User))
    }
    /// Events folded into this alert, the first included.
    async fn occurrences(&self) -> i32 {
        i32::try_from(self.0.alert.occurrences).unwrap_or(i32::MAX)
    }
    /// When its latest event arrived.
    async fn last_seen_at(&self) -> DateTime {
        self.0
            .alert
            .last_seen_at
            .unwrap_or(self.0.alert.created_at)
            .into()
    }
    /// When it was first acknowledged; null if it never was.
    async fn acknowledged_at(&self) -> Option<DateTime> {
        self.0.alert.acknowledged_at.map(Into::into)
    }
    /// When it was resolved; null while it is not.
    async fn resolved_at(&self) -> Option<DateTime> {
        self.0.alert.resolved_at.map(Into::into)
    }
    /// The events that belong to it, newest first. People only: other
    /// events than the sensor's own.
    #[graphql(
        guard = "RoleGuard::new(READERS)",
        complexity = "limits::list_cost(first, None, child_complexity)"
    )]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let page = Page::parse(first, after.as_deref(), None, None)?;
        let service = ctx.data_unchecked::<Service>();
        let rows = Box::pin(service.alert_events(self.0.alert.id, page)).await?;
        Ok(EventConnection::new(
            rows,
            Count::AlertEvents(self.0.alert.id),
            Event::keyed,
        ))
    }
    /// Analysts' notes, newest first. People only.
    #[graphql(
        guard = "RoleGuard::new(READERS)",
        complexity = "limits::list_cost(first, None, child_complexity)"
    )]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<AlertCommentConnection> {
        let page = Page::parse(first, after.as_deref(), None, None)?;
        let service = ctx.data_unchecked::<Service>();
        let rows = Box::pin(service.comments(self.0.alert.id, page)).await?;
        Ok(AlertCommentConnection::new(
            rows,
            Count::Comments(self.0.alert.id),
            AlertComment::keyed,
        ))
    }
}

/// While a silence matches (every matcher it has agrees with the event),
/// events are stored but raise no alert.
#[derive(Clone)]
pub struct Silence(pub SilenceRecord);

#[Object(serial)]
impl Silence {
    async fn id(&self) -> ID {
        id::format(self.0.id)
    }
    async fn source(&self) -> Option<&str> {
        self.0.source.as_deref()
    }
    async fn event_type(&self) -> Option<&str> {
        self.0.event_type.as_deref()
    }
    async fn severity(&self) -> Option<Severity> {
        self.0.severity
    }
    async fn dedup_key(&self) -> Option<&str> {
        self.0.dedup_key.as_deref()
    }
    /// Why: required, so that the next analyst knows.
    async fn comment(&self) -> &str {
        &self.0.comment
    }
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    async fn ends_at(&self) -> DateTime {
        self.0.ends_at.into()
    }
    /// When it was ended early with expireSilence.
    async fn expired_at(&self) -> Option<DateTime> {
        self.0.expired_at.map(Into::into)
    }
}

#[derive(InputObject)]
pub struct SilenceInput {
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub dedup_key: Option<String>,
    /// Required: why this noise is known.
    pub comment: String,
    /// Must be in the future.
    pub ends_at: DateTime,
}

/// A note on an alert. Never edited or deleted.
#[derive(Clone)]
pub struct AlertComment(pub CommentRecord);

#[Object(serial)]
impl AlertComment {
    async fn id(&self) -> ID {
        id::format(self.0.id)
    }
    async fn author(&self) -> &str {
        &self.0.author
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

impl AlertComment {
    pub fn keyed(row: CommentRecord) -> (i64, Self) {
        (row.id, Self(row))
    }
}

/// One entry of the append-only audit log.
#[derive(Clone)]
pub struct AuditEntry(pub AuditRecord);

#[Object(serial)]
impl AuditEntry {
    async fn id(&self) -> ID {
        id::format(self.0.id)
    }
    async fn at(&self) -> DateTime {
        self.0.at.into()
    }
    async fn action(&self) -> AuditAction {
        self.0.action
    }
    /// A username, "apikey:<name>", or "system".
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn target_type(&self) -> Option<&str> {
        self.0.target_type.as_deref()
    }
    async fn target_id(&self) -> Option<ID> {
        self.0.target_id.clone().map(ID)
    }
    /// JSON text, e.g. {"from":"OPEN","to":"RESOLVED"}.
    async fn detail(&self) -> Option<&str> {
        self.0.detail.as_deref()
    }
    async fn ip(&self) -> Option<&str> {
        self.0.ip.as_deref()
    }
}

/// A sensor's API key (the key itself is shown only on creation).
#[derive(Clone)]
pub struct ApiKey(pub ApiKeyRecord);

#[Object(serial)]
impl ApiKey {
    async fn id(&self) -> ID {
        id::format(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// Updated at most every few seconds, not on every request.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(Into::into)
    }
    async fn revoked_at(&self) -> Option<DateTime> {
        self.0.revoked_at.map(Into::into)
    }
    /// The only sources this key may ingest for; null: any source.
    async fn sources(&self) -> Option<&[String]> {
        self.0.sources.as_deref()
    }
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct CreatedApiKey {
    /// Send as `X-API-Key`. Shown this once; only a hash is stored.
    pub key: String,
    pub api_key: ApiKey,
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct AuthPayload {
    pub access_token: String,
    pub refresh_token: String,
    /// Always "Bearer".
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i32,
}

impl From<TokenPair> for AuthPayload {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer".into(),
            expires_in: i32::try_from(pair.expires_in.as_secs()).unwrap_or(i32::MAX),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct IngestEventPayload {
    pub event: Event,
    /// The alert raised, for HIGH and CRITICAL events.
    pub alert: Option<Alert>,
}

impl From<Ingested> for IngestEventPayload {
    fn from(done: Ingested) -> Self {
        Self {
            event: Event(EventWithAlert {
                event: done.event,
                alert: done.alert.as_ref().map(|a| a.alert.clone()),
            }),
            alert: done.alert.map(Alert),
        }
    }
}

#[derive(InputObject)]
pub struct IngestEventInput {
    /// The reporting sensor: 1..100 characters.
    pub source: String,
    /// 1..100 characters.
    pub event_type: String,
    pub severity: Severity,
    /// 1..10000 characters.
    pub description: String,
    /// The sensor's own id. The same (source, externalId) again with the
    /// same eventType, severity and description returns the stored event;
    /// with any of them different it is refused.
    pub external_id: Option<String>,
    /// 1..200 characters. Repeats of (source, dedupKey) fold into the alert
    /// that is not RESOLVED instead of raising another.
    pub dedup_key: Option<String>,
    /// The sensor's own time of the event (default: when stored); at most 5
    /// minutes ahead of the service's clock.
    pub occurred_at: Option<DateTime>,
}

impl From<IngestEventInput> for RawEvent {
    fn from(i: IngestEventInput) -> Self {
        RawEvent {
            source: i.source,
            event_type: i.event_type,
            severity: Some(i.severity),
            description: i.description,
            external_id: i.external_id,
            dedup_key: i.dedup_key,
            occurred_at: i.occurred_at.map(|t| t.0),
        }
    }
}

/// What to change about an account: at least one of the two. Disabling
/// it or changing its role ends its sessions.
#[derive(InputObject)]
pub struct UpdateUserInput {
    /// ADMIN or ANALYST (sensors use API keys).
    pub role: Option<Role>,
    /// false: the person can no longer sign in.
    pub active: Option<bool>,
}

#[derive(InputObject)]
pub struct CreateUserInput {
    pub username: String,
    /// 8..72 bytes.
    pub password: String,
    pub role: Role,
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

/// What `totalCount` counts, kept so it is computed only when asked for.
#[derive(Clone)]
pub enum Count {
    Alerts(AlertFilter),
    Events(EventFilter),
    Users,
    Audit(Option<AuditAction>),
    AlertEvents(i64),
    Comments(i64),
    /// A webhook's deliveries, of one status or all.
    Deliveries(i64, Option<crate::domain::DeliveryStatus>),
}

impl Count {
    async fn get(self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let service = ctx.data_unchecked::<Service>();
        let n = match self {
            Count::Alerts(f) => service.count_alerts(f).await?,
            Count::Events(s) => service.count_events(s).await?,
            Count::Users => service.count_users().await?,
            Count::Audit(a) => service.count_audit(a).await?,
            Count::AlertEvents(id) => service.count_alert_events(id).await?,
            Count::Comments(id) => service.count_comments(id).await?,
            Count::Deliveries(id, status) => service.count_webhook_deliveries(id, status).await?,
        };
        Ok(i32::try_from(n).unwrap_or(i32::MAX))
    }
}

// An edge of a connection: a node and the cursor just after it. (A plain
// comment: a doc comment would become a description in the schema.)
#[derive(SimpleObject)]
#[graphql(name_type, serial)]
pub struct Edge<N: OutputType> {
    pub cursor: String,
    pub node: N,
}

/// `AlertEdge`, `EventEdge`, …: the node type's name and `Edge`.
impl<N: OutputType> TypeName for Edge<N> {
    fn type_name() -> Cow<'static, str> {
        format!("{}Edge", N::type_name()).into()
    }
}

/// A page of nodes in the Relay connection shape, for any node type.
pub struct Connection<N> {
    nodes: Vec<(i64, N)>,
    has_next_page: bool,
    has_previous_page: bool,
    count: Count,
}

/// `AlertConnection`, `EventConnection`, …
impl<N: OutputType> TypeName for Connection<N> {
    fn type_name() -> Cow<'static, str> {
        format!("{}Connection", N::type_name()).into()
    }
}

impl<N> Connection<N> {
    pub fn new<R>(page: PageOf<R>, count: Count, node: impl Fn(R) -> (i64, N)) -> Self {
        Self {
            nodes: page.rows.into_iter().map(node).collect(),
            has_next_page: page.has_next_page,
            has_previous_page: page.has_previous_page,
            count,
        }
    }
}

#[Object(name_type, serial)]
impl<N: OutputType + Clone> Connection<N> {
    async fn edges(&self) -> Vec<Edge<N>> {
        self.nodes
            .iter()
            .map(|(id, node)| Edge {
                cursor: encode_cursor(*id),
                node: node.clone(),
            })
            .collect()
    }

    async fn nodes(&self) -> Vec<N> {
        self.nodes.iter().map(|(_, n)| n.clone()).collect()
    }

    async fn page_info(&self) -> PageInfo {
        PageInfo {
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
            start_cursor: self.nodes.first().map(|(id, _)| encode_cursor(*id)),
            end_cursor: self.nodes.last().map(|(id, _)| encode_cursor(*id)),
        }
    }

    /// All items matching the filters, across every page. Counted
    /// only when asked for.
    async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Box::pin(self.count.clone().get(ctx)).await
    }
}

pub type AlertConnection = Connection<Alert>;
pub type EventConnection = Connection<Event>;
pub type UserConnection = Connection<User>;
pub type AuditEntryConnection = Connection<AuditEntry>;
pub type AlertCommentConnection = Connection<AlertComment>;

impl Alert {
    pub fn keyed(row: AlertWithEvent) -> (i64, Self) {
        (row.alert.id, Self(row))
    }
}
impl Event {
    pub fn keyed(row: EventWithAlert) -> (i64, Self) {
        (row.event.id, Self(row))
    }
}
impl User {
    pub fn keyed(row: UserRecord) -> (i64, Self) {
        (row.id, Self(row))
    }
}
impl AuditEntry {
    pub fn keyed(row: AuditRecord) -> (i64, Self) {
        (row.id, Self(row))
    }
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct StatusCount {
    pub status: AlertStatus,
    pub count: i32,
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct SeverityCount {
    pub severity: Severity,
    pub count: i32,
}

#[derive(SimpleObject)]
#[graphql(serial)]
pub struct AlertStats {
    pub total: i32,
    pub by_status: Vec<StatusCount>,
    pub by_severity: Vec<SeverityCount>,
    /// Mean seconds from creation to the first ACKNOWLEDGED, over the alerts
    /// that got there; null when none did.
    pub mean_seconds_to_acknowledge: Option<f64>,
    /// Mean seconds from creation to RESOLVED; null when none got there.
    pub mean_seconds_to_resolve: Option<f64>,
}

//! Rows as they come out of the database. Enum columns are parsed on the way
//! out, so a row that breaks the schema's rules is an error, not a guess.
//!
//! Storage reads and returns the domain's plain records (`domain::*::*Record`,
//! no Diesel in them). Each is read through a `*Cols` struct here, which
//! knows the table's columns and how its times are stored, and converts
//! into the record field by field. Storage code keeps calling the records
//! by their row names (`AlertRow` is `domain::alert::AlertRecord`).

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::schema::{alerts, audit_log, events, users};
use super::time::{DbTime, DbTimeOpt};
pub use crate::domain::alert::{
    AlertRecord as AlertRow, AlertWithEvent, CommentRecord as CommentRow,
};
pub use crate::domain::audit::{AuditRecord as AuditRow, NewAudit};
pub use crate::domain::auth::ApiKeyRecord as ApiKeyRow;
pub use crate::domain::event::{EventRecord as EventRow, EventWithAlert};
pub use crate::domain::silence::SilenceRecord as SilenceRow;
pub use crate::domain::user::UserRecord as UserRow;
use crate::domain::webhook::Sealed;
pub use crate::domain::webhook::{DeliveryRecord as DeliveryRow, WebhookRecord as WebhookRow};
use crate::domain::{
    AlertStatus, AuditAction, DeliveryStatus, Role, Severity, WebhookFormat, WebhookTrigger,
};

/// Enum columns are text; a value outside the enum is a read error.
macro_rules! text_column {
    ($($ty:ty),+) => {$(
        impl<DB> FromSql<Text, DB> for $ty
        where
            DB: Backend,
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                Ok(String::from_sql(bytes)?.parse()?)
            }
        }
    )+};
}
text_column!(
    Severity,
    AlertStatus,
    Role,
    AuditAction,
    WebhookTrigger,
    WebhookFormat,
    DeliveryStatus
);

/// The columns a row type reads, in its fields' order. Diesel's
/// `as_select()` ties a query to one backend; these columns serve both, and
/// the row's `Queryable` reads them back by position.
pub type Cols<T> = <T as Selectable<diesel::sqlite::Sqlite>>::SelectExpression;

pub fn columns<T: Selectable<diesel::sqlite::Sqlite>>() -> Cols<T> {
    T::construct_selection()
}

/// Reads `$record` through `$cols`: the same columns, the same order, then
/// a move of every field.
macro_rules! read_as {
    ($record:ty, $cols:ident { $($field:ident),+ $(,)? }) => {
        impl From<$cols> for $record {
            fn from(c: $cols) -> Self {
                Self { $($field: c.$field),+ }
            }
        }
        impl<DB: Backend> Selectable<DB> for $record where $cols: Selectable<DB> {
            type SelectExpression = <$cols as Selectable<DB>>::SelectExpression;
            fn construct_selection() -> Self::SelectExpression {
                <$cols as Selectable<DB>>::construct_selection()
            }
        }
        impl<ST, DB: Backend> Queryable<ST, DB> for $record where $cols: Queryable<ST, DB> {
            type Row = <$cols as Queryable<ST, DB>>::Row;
            fn build(row: Self::Row) -> deserialize::Result<Self> {
                <$cols as Queryable<ST, DB>>::build(row).map(Self::from)
            }
        }
    };
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct UserCols {
    id: i64,
    username: String,
    password_hash: String,
    role: Role,
    is_active: bool,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTimeOpt)]
    last_login_at: Option<NaiveDateTime>,
}
read_as!(
    UserRow,
    UserCols {
        id,
        username,
        password_hash,
        role,
        is_active,
        created_at,
        last_login_at,
    }
);

/// The id of a row an INSERT just wrote (`RETURNING id`): the rest of the
/// row is what was written, so it is not read back.
#[derive(QueryableByName)]
pub struct NewId {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub id: i64,
}

impl NewId {
    /// The ids one multi-row INSERT of `rows` `what` answered, in the order
    /// its rows were written: ids grow in that order, while RETURNING's own
    /// order is not promised.
    pub fn in_row_order(
        mut ids: Vec<NewId>,
        rows: usize,
        what: &str,
    ) -> crate::error::Result<Vec<i64>> {
        if ids.len() != rows {
            return Err(crate::error::Error::internal(anyhow::anyhow!(
                "stored {} {what} of {rows}",
                ids.len()
            )));
        }
        ids.sort_unstable_by_key(|r| r.id);
        Ok(ids.into_iter().map(|r| r.id).collect())
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventCols {
    id: i64,
    source: String,
    event_type: String,
    severity: Severity,
    description: String,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
    external_id: Option<String>,
    alert_id: Option<i64>,
    dedup_key: Option<String>,
    silenced_by: Option<i64>,
    #[diesel(deserialize_as = DbTimeOpt)]
    occurred_at: Option<NaiveDateTime>,
}
read_as!(
    EventRow,
    EventCols {
        id,
        source,
        event_type,
        severity,
        description,
        created_at,
        external_id,
        alert_id,
        dedup_key,
        silenced_by,
        occurred_at,
    }
);

#[derive(Queryable, Selectable)]
#[diesel(table_name = alerts)]
pub struct AlertCols {
    id: i64,
    event_id: i64,
    severity: Severity,
    status: AlertStatus,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTime)]
    updated_at: NaiveDateTime,
    assignee_id: Option<i64>,
    #[diesel(deserialize_as = DbTimeOpt)]
    acknowledged_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
    resolved_at: Option<NaiveDateTime>,
    occurrences: i64,
    #[diesel(deserialize_as = DbTimeOpt)]
    last_seen_at: Option<NaiveDateTime>,
}
read_as!(
    AlertRow,
    AlertCols {
        id,
        event_id,
        severity,
        status,
        created_at,
        updated_at,
        assignee_id,
        acknowledged_at,
        resolved_at,
        occurrences,
        last_seen_at,
    }
);

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditCols {
    id: i64,
    #[diesel(deserialize_as = DbTime)]
    at: NaiveDateTime,
    action: AuditAction,
    actor: String,
    target_type: Option<String>,
    target_id: Option<String>,
    detail: Option<String>,
    ip: Option<String>,
}
read_as!(
    AuditRow,
    AuditCols {
        id,
        at,
        action,
        actor,
        target_type,
        target_id,
        detail,
        ip
    }
);

/// An audit entry as written: `NewAudit`, borrowed.
#[derive(Insertable)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
pub struct AuditInsert<'a> {
    at: NaiveDateTime,
    action: &'a str,
    actor: &'a str,
    target_type: Option<&'a str>,
    target_id: Option<&'a str>,
    detail: Option<&'a str>,
    ip: Option<&'a str>,
}

impl<'a> From<&'a NewAudit> for AuditInsert<'a> {
    fn from(e: &'a NewAudit) -> Self {
        Self {
            at: e.at,
            action: &e.action,
            actor: &e.actor,
            target_type: e.target_type.as_deref(),
            target_id: e.target_id.as_deref(),
            detail: e.detail.as_deref(),
            ip: e.ip.as_deref(),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = super::schema::api_keys)]
pub struct ApiKeyCols {
    id: i64,
    name: String,
    key_hash: String,
    created_by: String,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTimeOpt)]
    last_used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
    revoked_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = SourceList)]
    sources: Option<Vec<String>>,
}
read_as!(
    ApiKeyRow,
    ApiKeyCols {
        id,
        name,
        key_hash,
        created_by,
        created_at,
        last_used_at,
        revoked_at,
        sources,
    }
);

/// A key's source list, kept as a JSON array of names (NULL: any source).
/// Text a list was not written as is a read error, not an empty list: an
/// empty list would lock the key out, a guess could widen it.
#[derive(diesel::deserialize::FromSqlRow)]
pub struct SourceList(Option<Vec<String>>);

impl From<SourceList> for Option<Vec<String>> {
    fn from(s: SourceList) -> Self {
        s.0
    }
}

impl SourceList {
    /// The column's text for `sources`.
    pub fn text(sources: Option<&[String]>) -> Option<String> {
        sources.map(|s| serde_json::Value::from(s.to_vec()).to_string())
    }
}

impl<DB> FromSql<diesel::sql_types::Nullable<Text>, DB> for SourceList
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        Ok(Self(Some(serde_json::from_str(&text)?)))
    }

    fn from_nullable_sql(bytes: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        match bytes {
            Some(b) => Self::from_sql(b),
            None => Ok(Self(None)),
        }
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = super::schema::alert_comments)]
pub struct CommentCols {
    id: i64,
    alert_id: i64,
    author: String,
    body: String,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
}
read_as!(
    CommentRow,
    CommentCols {
        id,
        alert_id,
        author,
        body,
        created_at
    }
);

#[derive(Queryable, Selectable)]
#[diesel(table_name = super::schema::silences)]
pub struct SilenceCols {
    id: i64,
    source: Option<String>,
    event_type: Option<String>,
    severity: Option<Severity>,
    dedup_key: Option<String>,
    comment: String,
    created_by: String,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTime)]
    ends_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTimeOpt)]
    expired_at: Option<NaiveDateTime>,
}
read_as!(
    SilenceRow,
    SilenceCols {
        id,
        source,
        event_type,
        severity,
        dedup_key,
        comment,
        created_by,
        created_at,
        ends_at,
        expired_at,
    }
);

#[derive(Queryable, Selectable)]
#[diesel(table_name = super::schema::webhooks)]
pub struct WebhookCols {
    id: i64,
    name: String,
    url: String,
    #[diesel(deserialize_as = TriggerList)]
    triggers: Vec<WebhookTrigger>,
    min_severity: Option<Severity>,
    #[diesel(deserialize_as = SourceList)]
    sources: Option<Vec<String>>,
    format: WebhookFormat,
    enabled: bool,
    disabled_reason: Option<String>,
    #[diesel(deserialize_as = String)]
    secret: Sealed,
    #[diesel(deserialize_as = SealedOpt)]
    previous_secret: Option<Sealed>,
    #[diesel(deserialize_as = DbTimeOpt)]
    previous_secret_until: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
    failing_since: Option<NaiveDateTime>,
    created_by: String,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTime)]
    updated_at: NaiveDateTime,
}
read_as!(
    WebhookRow,
    WebhookCols {
        id,
        name,
        url,
        triggers,
        min_severity,
        sources,
        format,
        enabled,
        disabled_reason,
        secret,
        previous_secret,
        previous_secret_until,
        failing_since,
        created_by,
        created_at,
        updated_at,
    }
);

impl From<String> for Sealed {
    fn from(text: String) -> Self {
        Sealed(text)
    }
}

/// A nullable sealed secret column.
#[derive(diesel::deserialize::FromSqlRow)]
pub struct SealedOpt(Option<String>);

impl From<SealedOpt> for Option<Sealed> {
    fn from(s: SealedOpt) -> Self {
        s.0.map(Sealed)
    }
}

impl<DB> FromSql<diesel::sql_types::Nullable<Text>, DB> for SealedOpt
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Self(Some(String::from_sql(bytes)?)))
    }

    fn from_nullable_sql(bytes: Option<DB::RawValue<'_>>) -> deserialize::Result<Self> {
        bytes.map(Self::from_sql).unwrap_or(Ok(Self(None)))
    }
}

/// A webhook's triggers, kept as comma-separated names. A name outside the
/// enum, or none at all, is a read error: a guess could send what an admin
/// never asked for.
#[derive(diesel::deserialize::FromSqlRow)]
pub struct TriggerList(Vec<WebhookTrigger>);

impl From<TriggerList> for Vec<WebhookTrigger> {
    fn from(t: TriggerList) -> Self {
        t.0
    }
}

impl TriggerList {
    /// The column's text for `triggers`.
    pub fn text(triggers: &[WebhookTrigger]) -> String {
        triggers
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl<DB> FromSql<Text, DB> for TriggerList
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = String::from_sql(bytes)?;
        let triggers = text
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<WebhookTrigger>, _>>()?;
        if triggers.is_empty() {
            return Err("a webhook without triggers".into());
        }
        Ok(Self(triggers))
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = super::schema::webhook_deliveries)]
pub struct DeliveryCols {
    id: i64,
    webhook_id: i64,
    trigger: Option<WebhookTrigger>,
    alert_id: Option<i64>,
    status: DeliveryStatus,
    message_id: String,
    body: String,
    attempts: i32,
    #[diesel(deserialize_as = DbTime)]
    created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTimeOpt)]
    last_attempt_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
    next_attempt_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
    delivered_at: Option<NaiveDateTime>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    #[diesel(deserialize_as = DbTimeOpt)]
    locked_until: Option<NaiveDateTime>,
}
read_as!(
    DeliveryRow,
    DeliveryCols {
        id,
        webhook_id,
        trigger,
        alert_id,
        status,
        message_id,
        body,
        attempts,
        created_at,
        last_attempt_at,
        next_attempt_at,
        delivered_at,
        last_status_code,
        last_error,
        locked_until,
    }
);

/// A change queued for the webhooks (`db::outbox`): storage's own row,
/// turned into deliveries before anything else sees it.
#[derive(Queryable, Selectable)]
#[diesel(table_name = super::schema::webhook_outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub trigger: String,
    pub alert_id: i64,
    pub webhooks: String,
    pub standard: Option<String>,
    pub slack: Option<String>,
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
}

//! Rows as they come out of the database. Enum columns are parsed on the way
//! out, so a row that breaks the schema's rules is an error, not a guess.

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::schema::{alerts, audit_log, events, users};
use super::time::{DbTime, DbTimeOpt};
use crate::domain::{AlertStatus, AuditAction, Role, Severity};

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
text_column!(Severity, AlertStatus, Role, AuditAction);

/// The columns a row type reads, in its fields' order. Diesel's
/// `as_select()` ties a query to one backend; these columns serve both, and
/// the row's `Queryable` reads them back by position.
pub type Cols<T> = <T as Selectable<diesel::sqlite::Sqlite>>::SelectExpression;

pub fn columns<T: Selectable<diesel::sqlite::Sqlite>>() -> Cols<T> {
    T::construct_selection()
}

#[derive(Queryable, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub is_active: bool,
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
}

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

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub source: String,
    pub event_type: String,
    pub severity: Severity,
    pub description: String,
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
    pub external_id: Option<String>,
    /// The alert the event raised or was folded into.
    pub alert_id: Option<i64>,
    pub dedup_key: Option<String>,
    /// The silence that kept it from raising an alert.
    pub silenced_by: Option<i64>,
}

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    pub id: i64,
    pub event_id: i64,
    pub severity: Severity,
    pub status: AlertStatus,
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTime)]
    pub updated_at: NaiveDateTime,
    pub assignee_id: Option<i64>,
    #[diesel(deserialize_as = DbTimeOpt)]
    pub acknowledged_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
    pub resolved_at: Option<NaiveDateTime>,
    pub occurrences: i64,
    #[diesel(deserialize_as = DbTimeOpt)]
    pub last_seen_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    pub id: i64,
    #[diesel(deserialize_as = DbTime)]
    pub at: NaiveDateTime,
    pub action: AuditAction,
    pub actor: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
}

/// An alert with the event that raised it: what every alert query returns,
/// loaded with one join so that `alert { event }` costs no extra query.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertWithEvent {
    pub alert: AlertRow,
    pub event: EventRow,
}

/// An event with the alert it raised, if any (one left join).
#[derive(Clone, Debug, PartialEq)]
pub struct EventWithAlert {
    pub event: EventRow,
    pub alert: Option<AlertRow>,
}

/// An audit entry to append.
#[derive(Insertable, Clone, Debug)]
#[diesel(table_name = audit_log)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewAudit {
    pub at: NaiveDateTime,
    pub action: String,
    pub actor: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
}

#[derive(Queryable, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = super::schema::api_keys)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub key_hash: String,
    pub created_by: String,
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTimeOpt)]
    pub last_used_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = DbTimeOpt)]
    pub revoked_at: Option<NaiveDateTime>,
}

#[derive(Queryable, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = super::schema::alert_comments)]
pub struct CommentRow {
    pub id: i64,
    pub alert_id: i64,
    pub author: String,
    pub body: String,
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
}

#[derive(Queryable, Selectable, Clone, Debug, PartialEq)]
#[diesel(table_name = super::schema::silences)]
pub struct SilenceRow {
    pub id: i64,
    pub source: Option<String>,
    pub event_type: Option<String>,
    pub severity: Option<Severity>,
    pub dedup_key: Option<String>,
    pub comment: String,
    pub created_by: String,
    #[diesel(deserialize_as = DbTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTime)]
    pub ends_at: NaiveDateTime,
    #[diesel(deserialize_as = DbTimeOpt)]
    pub expired_at: Option<NaiveDateTime>,
}

impl SilenceRow {
    /// What the ingest rule matches events against.
    pub fn matcher(&self) -> crate::domain::silence::Silence {
        crate::domain::silence::Silence {
            id: self.id,
            source: self.source.clone(),
            event_type: self.event_type.clone(),
            severity: self.severity,
            dedup_key: self.dedup_key.clone(),
        }
    }
}

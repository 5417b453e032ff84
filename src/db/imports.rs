//! Writing another system's rows into threatwatch, for an importer that
//! runs them all in one transaction it opened (`Db::long_transaction`): an
//! import that fails half-way leaves nothing behind, and one that ran
//! before is not repeated (each row's origin is kept in `imported_rows`).
//!
//! Only storage lives here, over plain values; which rows to take, and
//! why one is skipped, is the importer's business.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::models::NewId;
use super::schema::{events, imported_rows, users};
use super::sql::{Statement, ROWS_PER_STATEMENT};
use super::Conn;
use crate::domain::{AlertStatus, Role, Severity};
use crate::error::Result;

diesel::define_sql_function!(fn lower(x: Text) -> Text);

/// Readies PostgreSQL for a bulk import in the caller's transaction.
pub async fn prepare_for_bulk(conn: &mut Conn<'_>) -> Result<()> {
    if conn.is_postgres() {
        // The tables grow by the million inside this one
        // transaction, unseen by statistics: a plan cached while
        // they were empty would scan them whole for every chunk.
        conn.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")
            .await?;
    }
    Ok(())
}

/// Refreshes PostgreSQL's statistics in the middle of an import.
pub async fn analyze(conn: &mut Conn<'_>) -> Result<()> {
    if conn.is_postgres() {
        // Statistics that know about the events just written, for
        // the joins that look alerts' events up.
        conn.batch_execute("ANALYZE events, alerts, imported_rows")
            .await?;
    }
    Ok(())
}

/// The source rows of `kind` with ids in `ids` (sorted) that an earlier
/// run from `origin` imported, with the rows they became. Asked as an id
/// range, which is one scan of the primary key; PostgreSQL plans
/// `= ANY(...)` on its last column as a scan of every row of that kind.
/// Rows in the range but not in `ids` may be answered too.
pub async fn imported(
    conn: &mut Conn<'_>,
    origin: &str,
    kind: &str,
    ids: &[i64],
) -> Result<HashMap<i64, i64>> {
    let (lo, hi) = (ids.first().copied(), ids.last().copied());
    let query = imported_rows::table
        .filter(imported_rows::origin.eq(origin.to_owned()))
        .filter(imported_rows::kind.eq(kind.to_owned()))
        .filter(imported_rows::source_id.ge(lo.unwrap_or(0)))
        .filter(imported_rows::source_id.le(hi.unwrap_or(-1)))
        .select((imported_rows::source_id, imported_rows::target_id));
    let rows: Vec<(i64, i64)> = conn.load(query).await?;
    Ok(rows.into_iter().collect())
}

/// Remembers where the rows just written came from: each pair is (source
/// id, threatwatch id). In multi-row statements.
pub async fn remember(
    conn: &mut Conn<'_>,
    origin: &str,
    kind: &str,
    pairs: &[(i64, i64)],
    now: NaiveDateTime,
) -> Result<()> {
    for part in pairs.chunks(ROWS_PER_STATEMENT) {
        let insert = Statement::new(
            "INSERT INTO imported_rows (origin, kind, source_id, target_id, imported_at) \
             VALUES ",
        )
        .rows(part, |row, &(source_id, target_id)| {
            row.bind::<Text, _>(origin.to_owned())
                .bind::<Text, _>(kind.to_owned())
                .bind::<BigInt, _>(source_id)
                .bind::<BigInt, _>(target_id)
                .bind::<Timestamp, _>(now)
        });
        conn.execute(insert).await?;
    }
    Ok(())
}

/// The account (id, username) that already has `name`, compared without
/// regard to case as threatwatch's usernames are.
pub async fn username_taken(conn: &mut Conn<'_>, name: &str) -> Result<Option<(i64, String)>> {
    let query = users::table
        .filter(lower(users::username).eq(lower(name.to_owned())))
        .select((users::id, users::username))
        .limit(1);
    Ok(conn.first(query).await.optional()?)
}

/// An account to store as it was elsewhere.
pub struct ImportedUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
}

/// Stores one account; its id.
pub async fn insert_user(conn: &mut Conn<'_>, user: ImportedUser<'_>) -> Result<i64> {
    let insert = diesel::insert_into(users::table)
        .values((
            users::username.eq(user.username.to_owned()),
            users::password_hash.eq(user.password_hash.to_owned()),
            users::role.eq(user.role.as_str().to_owned()),
            users::is_active.eq(user.is_active),
            users::created_at.eq(user.created_at),
        ))
        .returning(users::id);
    Ok(conn.first(insert).await?)
}

/// An event to store as it was elsewhere.
pub struct ImportedEvent<'a> {
    pub source: &'a str,
    pub event_type: &'a str,
    pub severity: Severity,
    pub description: &'a str,
    pub created_at: NaiveDateTime,
}

/// Stores the events, in multi-row statements; their ids, in the order of
/// `rows`.
pub async fn insert_events(conn: &mut Conn<'_>, rows: &[ImportedEvent<'_>]) -> Result<Vec<i64>> {
    let mut stored = Vec::with_capacity(rows.len());
    for part in rows.chunks(ROWS_PER_STATEMENT) {
        let query = Statement::new(
            "INSERT INTO events (source, event_type, severity, description, \
             created_at) VALUES ",
        )
        .rows(part, |row, e| {
            row.bind::<Text, _>(e.source.to_owned())
                .bind::<Text, _>(e.event_type.to_owned())
                .bind::<Text, _>(e.severity.as_str())
                .bind::<Text, _>(e.description.to_owned())
                .bind::<Timestamp, _>(e.created_at)
        })
        .sql(" RETURNING id");
        let ids = NewId::in_row_order(conn.load(query).await?, part.len(), "events")?;
        stored.extend(ids);
    }
    Ok(stored)
}

/// For each of the events `ids` still stored: its id, its severity and
/// source (which an alert on it copies), and whether it has an alert
/// already.
pub async fn event_targets(
    conn: &mut Conn<'_>,
    ids: &[i64],
) -> Result<Vec<(i64, Severity, String, bool)>> {
    let query = events::table
        .filter(events::id.eq_any(ids.to_vec()))
        .select((
            events::id,
            events::severity,
            events::source,
            events::alert_id,
        ));
    let found: Vec<(i64, String, String, Option<i64>)> = conn.load(query).await?;
    Ok(found
        .into_iter()
        .filter_map(|(id, sev, src, alert)| Some((id, sev.parse().ok()?, src, alert.is_some())))
        .collect())
}

/// An alert to store as it was elsewhere, on an event that has none.
pub struct ImportedAlert {
    pub event_id: i64,
    /// Its event's severity and source, which every alert copies.
    pub severity: Severity,
    pub source: String,
    pub status: AlertStatus,
    pub created_at: NaiveDateTime,
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    event_id: i64,
}

/// Stores the alerts, in multi-row statements, points their events at
/// them and counts them in the alert counters; the alert stored on each
/// event, by event id.
pub async fn insert_alerts(
    conn: &mut Conn<'_>,
    rows: &[ImportedAlert],
) -> Result<HashMap<i64, i64>> {
    let mut alert_of = HashMap::with_capacity(rows.len());
    let mut counts: HashMap<(AlertStatus, Severity), i64> = HashMap::new();
    for part in rows.chunks(ROWS_PER_STATEMENT) {
        // The old system kept no time of acknowledging or
        // resolving, so none is made up: lifecycle averages
        // count only alerts moved in threatwatch.
        let query = Statement::new(
            "INSERT INTO alerts (event_id, severity, status, created_at, updated_at, \
             source, occurrences, last_seen_at, event_type) VALUES ",
        )
        .rows(part, |row, a| {
            row.bind::<BigInt, _>(a.event_id)
                .bind::<Text, _>(a.severity.as_str())
                .bind::<Text, _>(a.status.as_str())
                .bind::<Timestamp, _>(a.created_at)
                .bind::<Timestamp, _>(a.created_at)
                .bind::<Text, _>(a.source.clone())
                .bind::<BigInt, _>(1i64)
                .bind::<Timestamp, _>(a.created_at)
                // Every alert carries its event's type for the eventType
                // filter; an import is rare enough to look it up here.
                .sql(", (SELECT e.event_type FROM events e WHERE e.id = ")
                .bind::<BigInt, _>(a.event_id)
                .sql(")")
        })
        .sql(" RETURNING id, event_id");
        let stored: Vec<Stored> = conn.load(query).await?;
        // Each event has at most one alert, so event ids match
        // the rows up exactly.
        alert_of.extend(stored.into_iter().map(|r| (r.event_id, r.id)));
        let event_ids: Vec<i64> = part.iter().map(|a| a.event_id).collect();
        super::events::link_raising_events(conn, &event_ids).await?;
        for a in part {
            *counts.entry((a.status, a.severity)).or_default() += 1;
        }
    }
    for ((status, severity), n) in counts {
        super::alerts::count(conn, status, severity, n).await?;
    }
    Ok(alert_of)
}

//! Writing another system's rows into threatwatch, all in one transaction:
//! an import that fails half-way leaves nothing behind, and one that ran
//! before is not repeated (each row's origin is kept in `imported_rows`).

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::models::{NewAudit, NewId};
use super::schema::{events, imported_rows, users};
use super::sql::{Statement, ROWS_PER_STATEMENT};
use super::{Conn, Db};
use crate::django::{self, Kind, Report, Source, CHUNK};
use crate::domain::event::{MAX_DESCRIPTION_CHARS, MAX_LABEL_CHARS};
use crate::domain::{AlertStatus, AuditAction, Severity};
use crate::error::{Error, Result};

diesel::define_sql_function!(fn lower(x: Text) -> Text);

/// The source rows of `kind` with ids in `ids` (sorted) that an earlier
/// run imported, with the rows they became. Asked as an id range, which is
/// one scan of the primary key; PostgreSQL plans `= ANY(...)` on its last
/// column as a scan of every row of that kind.
async fn imported(
    conn: &mut Conn<'_>,
    origin: &str,
    kind: Kind,
    ids: &[i64],
) -> Result<HashMap<i64, i64>> {
    let (lo, hi) = (ids.first().copied(), ids.last().copied());
    let query = imported_rows::table
        .filter(imported_rows::origin.eq(origin.to_owned()))
        .filter(imported_rows::kind.eq(kind.as_str().to_owned()))
        .filter(imported_rows::source_id.ge(lo.unwrap_or(0)))
        .filter(imported_rows::source_id.le(hi.unwrap_or(-1)))
        .select((imported_rows::source_id, imported_rows::target_id));
    let rows: Vec<(i64, i64)> = conn.load(query).await?;
    Ok(rows.into_iter().collect())
}

/// Remembers where the rows just written came from, in multi-row
/// statements.
async fn remember(
    conn: &mut Conn<'_>,
    origin: &str,
    kind: Kind,
    pairs: &[(i64, i64)],
    now: chrono::NaiveDateTime,
) -> Result<()> {
    for part in pairs.chunks(ROWS_PER_STATEMENT) {
        let insert = Statement::new(
            "INSERT INTO imported_rows (origin, kind, source_id, target_id, imported_at) \
             VALUES ",
        )
        .rows(part, |row, &(source_id, target_id)| {
            row.bind::<Text, _>(origin.to_owned())
                .bind::<Text, _>(kind.as_str())
                .bind::<BigInt, _>(source_id)
                .bind::<BigInt, _>(target_id)
                .bind::<Timestamp, _>(now)
        });
        conn.execute(insert).await?;
    }
    Ok(())
}

#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    event_id: i64,
}

impl Db {
    /// Copies the Django system's users, events and alerts that are not
    /// here yet. Accounts get a USER_CREATED audit entry each, returned to
    /// be logged once the transaction has committed.
    pub async fn import_django(
        &self,
        mut source: Source,
        origin: String,
    ) -> Result<(Report, Vec<NewAudit>)> {
        self.long_transaction(async move |mut conn| {
            let conn = &mut conn;
            if conn.is_postgres() {
                // The tables grow by the million inside this one
                // transaction, unseen by statistics: a plan cached while
                // they were empty would scan them whole for every chunk.
                conn.batch_execute("SET LOCAL plan_cache_mode = force_custom_plan")
                    .await?;
            }
            let now = crate::domain::now();
            let origin = origin.as_str();
            let mut report = Report::default();
            let mut audits = Vec::new();

            let mut after = 0;
            loop {
                let chunk = source.users(after, CHUNK).await?;
                let Some(last) = chunk.last() else { break };
                after = last.id;
                let ids: Vec<i64> = chunk.iter().map(|u| u.id).collect();
                let known = imported(conn, origin, Kind::User, &ids).await?;
                let mut done = Vec::new();
                for u in &chunk {
                    if known.contains_key(&u.id) {
                        report.users.already += 1;
                        continue;
                    }
                    let checked = crate::domain::user::username(&u.username)
                        .map_err(|e| e.to_string())
                        .and_then(|name| {
                            django::storable("password", &u.password)?;
                            Ok((name, django::time("date_joined", &u.date_joined)?))
                        });
                    let (name, joined) = match checked {
                        Ok(ok) => ok,
                        Err(why) => {
                            report.skip(Kind::User, u.id, why);
                            continue;
                        }
                    };
                    // Django tells "Bob" from "bob"; threatwatch does not.
                    let query = users::table
                        .filter(lower(users::username).eq(lower(name.to_owned())))
                        .select((users::id, users::username))
                        .limit(1);
                    let taken: Option<(i64, String)> = conn.first(query).await.optional()?;
                    if let Some((id, other)) = taken {
                        report.skip(
                            Kind::User,
                            u.id,
                            format!("username {name:?} is taken by threatwatch user {other:?} (id {id})"),
                        );
                        continue;
                    }
                    // A hash whose parameters would stall a login is not
                    // kept: the account comes along, unable to log in until
                    // an admin gives it a password.
                    let hash = match crate::auth::password::importable(&u.password) {
                        Ok(()) => u.password.as_str(),
                        Err(why) => {
                            report.unusable_password(
                                u.id,
                                format!("its password hash was not kept: {why}"),
                            );
                            django::UNUSABLE_PASSWORD
                        }
                    };
                    let role = django::role(u);
                    let insert = diesel::insert_into(users::table)
                        .values((
                            users::username.eq(name.to_owned()),
                            users::password_hash.eq(hash.to_owned()),
                            users::role.eq(role.as_str().to_owned()),
                            users::is_active.eq(u.is_active),
                            users::created_at.eq(joined),
                        ))
                        .returning(users::id);
                    let id: i64 = conn.first(insert).await?;
                    let entry = NewAudit {
                        at: now,
                        action: AuditAction::UserCreated.as_str().into(),
                        actor: "system".into(),
                        target_type: Some("User".into()),
                        target_id: Some(id.to_string()),
                        detail: Some(
                            serde_json::json!({
                                "importedFrom": origin,
                                "sourceId": u.id,
                                "username": name,
                                "role": role.as_str(),
                                "active": u.is_active,
                            })
                            .to_string(),
                        ),
                        ip: None,
                    };
                    super::audit::append(conn, &entry).await?;
                    audits.push(entry);
                    report.users.imported += 1;
                    done.push((u.id, id));
                }
                remember(conn, origin, Kind::User, &done, now).await?;
            }

            // Events, with the severity and source each alert copies.
            let mut after = 0;
            loop {
                let chunk = source.events(after, CHUNK).await?;
                let Some(last) = chunk.last() else { break };
                after = last.id;
                let ids: Vec<i64> = chunk.iter().map(|e| e.id).collect();
                let known = imported(conn, origin, Kind::Event, &ids).await?;
                let mut fresh = Vec::with_capacity(chunk.len());
                for e in &chunk {
                    if known.contains_key(&e.id) {
                        report.events.already += 1;
                        continue;
                    }
                    let checked = django::severity(&e.severity).and_then(|severity| {
                        django::storable("source", &e.source)?;
                        django::storable("event_type", &e.event_type)?;
                        django::storable("description", &e.description)?;
                        django::fits("source", &e.source, MAX_LABEL_CHARS)?;
                        django::fits("event_type", &e.event_type, MAX_LABEL_CHARS)?;
                        django::fits("description", &e.description, MAX_DESCRIPTION_CHARS)?;
                        Ok((severity, django::time("timestamp", &e.timestamp)?))
                    });
                    match checked {
                        Ok((severity, at)) => fresh.push((e, severity, at)),
                        Err(why) => report.skip(Kind::Event, e.id, why),
                    }
                }
                let mut done = Vec::with_capacity(fresh.len());
                for part in fresh.chunks(ROWS_PER_STATEMENT) {
                    let query = Statement::new(
                        "INSERT INTO events (source, event_type, severity, description, \
                         created_at) VALUES ",
                    )
                    .rows(part, |row, (e, severity, at)| {
                        row.bind::<Text, _>(e.source.clone())
                            .bind::<Text, _>(e.event_type.clone())
                            .bind::<Text, _>(severity.as_str())
                            .bind::<Text, _>(e.description.clone())
                            .bind::<Timestamp, _>(*at)
                    })
                    .sql(" RETURNING id");
                    let ids = NewId::in_row_order(conn.load(query).await?, part.len(), "events")?;
                    done.extend(part.iter().zip(ids).map(|((e, _, _), id)| (e.id, id)));
                }
                report.events.imported += done.len() as u64;
                remember(conn, origin, Kind::Event, &done, now).await?;
            }

            if conn.is_postgres() {
                // Statistics that know about the events just written, for
                // the joins below.
                conn.batch_execute("ANALYZE events, alerts, imported_rows")
                    .await?;
            }

            // Alerts, each on its (imported) event, counted as they land.
            let mut counts: HashMap<(AlertStatus, Severity), i64> = HashMap::new();
            let mut after = 0;
            loop {
                let chunk = source.alerts(after, CHUNK).await?;
                let Some(last) = chunk.last() else { break };
                after = last.id;
                let ids: Vec<i64> = chunk.iter().map(|a| a.id).collect();
                let known = imported(conn, origin, Kind::Alert, &ids).await?;
                let mut event_ids: Vec<i64> = chunk.iter().map(|a| a.event_id).collect();
                event_ids.sort_unstable();
                let mut event_of = imported(conn, origin, Kind::Event, &event_ids).await?;
                event_of.retain(|id, _| event_ids.binary_search(id).is_ok());
                let targets: Vec<i64> = event_of.values().copied().collect();
                let query = events::table.filter(events::id.eq_any(targets)).select((
                    events::id,
                    events::severity,
                    events::source,
                    events::alert_id,
                ));
                let found: Vec<(i64, String, String, Option<i64>)> = conn.load(query).await?;
                // Each event's severity and source (which its alert copies),
                // and whether it has an alert already.
                let mut target_event: HashMap<i64, (Severity, String, bool)> = found
                    .into_iter()
                    .filter_map(|(id, sev, src, alert)| {
                        Some((id, (sev.parse().ok()?, src, alert.is_some())))
                    })
                    .collect();
                let mut fresh = Vec::with_capacity(chunk.len());
                for a in &chunk {
                    if known.contains_key(&a.id) {
                        report.alerts.already += 1;
                        continue;
                    }
                    let checked = django::status(&a.status).and_then(|status| {
                        Ok((status, django::time("created_at", &a.created_at)?))
                    });
                    let (status, at) = match checked {
                        Ok(ok) => ok,
                        Err(why) => {
                            report.skip(Kind::Alert, a.id, why);
                            continue;
                        }
                    };
                    let Some(&event_id) = event_of.get(&a.event_id) else {
                        report.skip(
                            Kind::Alert,
                            a.id,
                            format!("its event (core_event id {}) was not imported", a.event_id),
                        );
                        continue;
                    };
                    let Some(event) = target_event.get_mut(&event_id) else {
                        report.skip(
                            Kind::Alert,
                            a.id,
                            format!(
                                "its event (core_event id {}) is no longer in threatwatch",
                                a.event_id
                            ),
                        );
                        continue;
                    };
                    if event.2 {
                        report.skip(
                            Kind::Alert,
                            a.id,
                            format!(
                                "its event (core_event id {}) already has an alert",
                                a.event_id
                            ),
                        );
                        continue;
                    }
                    // Taken now, so a second alert on it in this chunk is
                    // caught above.
                    event.2 = true;
                    fresh.push((a.id, event_id, event.0, event.1.clone(), status, at));
                }
                let mut done = Vec::with_capacity(fresh.len());
                for part in fresh.chunks(ROWS_PER_STATEMENT) {
                    // The old system kept no time of acknowledging or
                    // resolving, so none is made up: lifecycle averages
                    // count only alerts moved in threatwatch.
                    let query = Statement::new(
                        "INSERT INTO alerts (event_id, severity, status, created_at, updated_at, \
                         source, occurrences, last_seen_at) VALUES ",
                    )
                    .rows(part, |row, (_, event_id, severity, source, status, at)| {
                        row.bind::<BigInt, _>(*event_id)
                            .bind::<Text, _>(severity.as_str())
                            .bind::<Text, _>(status.as_str())
                            .bind::<Timestamp, _>(*at)
                            .bind::<Timestamp, _>(*at)
                            .bind::<Text, _>(source.clone())
                            .bind::<BigInt, _>(1i64)
                            .bind::<Timestamp, _>(*at)
                    })
                    .sql(" RETURNING id, event_id");
                    let stored: Vec<Stored> = conn.load(query).await?;
                    // Each event has at most one alert, so event ids match
                    // the rows up exactly.
                    let alert_of: HashMap<i64, i64> =
                        stored.into_iter().map(|r| (r.event_id, r.id)).collect();
                    let event_ids: Vec<i64> = part.iter().map(|p| p.1).collect();
                    super::events::link_raising_events(conn, &event_ids).await?;
                    for (source_id, event_id, severity, _, status, _) in part {
                        let Some(&id) = alert_of.get(event_id) else {
                            return Err(Error::internal(anyhow::anyhow!(
                                "the alert on event {event_id} was not stored"
                            )));
                        };
                        *counts.entry((*status, *severity)).or_default() += 1;
                        done.push((*source_id, id));
                    }
                }
                report.alerts.imported += done.len() as u64;
                remember(conn, origin, Kind::Alert, &done, now).await?;
            }
            for ((status, severity), n) in counts {
                super::alerts::count(conn, status, severity, n).await?;
            }
            Ok((report, audits))
        })
        .await
    }
}

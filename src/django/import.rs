//! The import itself: the Django system's users, events and alerts, read a
//! chunk at a time, checked row by row and written through storage's
//! import functions (`crate::db::imports`), all in one transaction.

use std::collections::HashMap;

use super::{Kind, Report, Source, CHUNK};
use crate::db::imports::{self, ImportedAlert, ImportedEvent, ImportedUser};
use crate::db::models::NewAudit;
use crate::db::{Conn, Db};
use crate::domain::event::{MAX_DESCRIPTION_CHARS, MAX_LABEL_CHARS};
use crate::domain::{AuditAction, Severity};
use crate::error::{Error, Result};

/// Copies the Django system's users, events and alerts that are not here
/// yet, in one transaction: an import that fails half-way leaves nothing
/// behind. Accounts get a USER_CREATED audit entry each, returned to be
/// logged once the transaction has committed.
pub async fn run(db: &Db, mut source: Source, origin: String) -> Result<(Report, Vec<NewAudit>)> {
    db.long_transaction(async move |mut conn| copy(&mut conn, &mut source, &origin).await)
        .await
}

/// The import inside the caller's transaction (see `run`), which must be a
/// `Db::long_transaction`: the source is read between statements.
pub async fn copy(
    conn: &mut Conn<'_>,
    source: &mut Source,
    origin: &str,
) -> Result<(Report, Vec<NewAudit>)> {
    imports::prepare_for_bulk(conn).await?;
    let now = crate::domain::now();
    let mut report = Report::default();
    let audits = users(conn, source, origin, now, &mut report).await?;
    events(conn, source, origin, now, &mut report).await?;
    imports::analyze(conn).await?;
    alerts(conn, source, origin, now, &mut report).await?;
    Ok((report, audits))
}

/// Accounts, each with its USER_CREATED audit entry (returned).
async fn users(
    conn: &mut Conn<'_>,
    source: &mut Source,
    origin: &str,
    now: chrono::NaiveDateTime,
    report: &mut Report,
) -> Result<Vec<NewAudit>> {
    let mut audits = Vec::new();
    let mut after = 0;
    loop {
        let chunk = source.users(after, CHUNK).await?;
        let Some(last) = chunk.last() else { break };
        after = last.id;
        let ids: Vec<i64> = chunk.iter().map(|u| u.id).collect();
        let known = imports::imported(conn, origin, Kind::User.as_str(), &ids).await?;
        let mut done = Vec::new();
        for u in &chunk {
            if known.contains_key(&u.id) {
                report.users.already += 1;
                continue;
            }
            let checked = crate::domain::user::username(&u.username)
                .map_err(|e| e.to_string())
                .and_then(|name| {
                    super::storable("password", &u.password)?;
                    Ok((name, super::time("date_joined", &u.date_joined)?))
                });
            let (name, joined) = match checked {
                Ok(ok) => ok,
                Err(why) => {
                    report.skip(Kind::User, u.id, why);
                    continue;
                }
            };
            // Django tells "Bob" from "bob"; threatwatch does not.
            if let Some((id, other)) = imports::username_taken(conn, &name).await? {
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
                    report
                        .unusable_password(u.id, format!("its password hash was not kept: {why}"));
                    super::UNUSABLE_PASSWORD
                }
            };
            let role = super::role(u);
            let user = ImportedUser {
                username: &name,
                password_hash: hash,
                role,
                is_active: u.is_active,
                created_at: joined,
            };
            let id = imports::insert_user(conn, user).await?;
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
            crate::db::audit::append(conn, &entry).await?;
            audits.push(entry);
            report.users.imported += 1;
            done.push((u.id, id));
        }
        imports::remember(conn, origin, Kind::User.as_str(), &done, now).await?;
    }
    Ok(audits)
}

/// Events, with the severity and source each alert copies.
async fn events(
    conn: &mut Conn<'_>,
    source: &mut Source,
    origin: &str,
    now: chrono::NaiveDateTime,
    report: &mut Report,
) -> Result<()> {
    let mut after = 0;
    loop {
        let chunk = source.events(after, CHUNK).await?;
        let Some(last) = chunk.last() else { break };
        after = last.id;
        let ids: Vec<i64> = chunk.iter().map(|e| e.id).collect();
        let known = imports::imported(conn, origin, Kind::Event.as_str(), &ids).await?;
        let mut fresh = Vec::with_capacity(chunk.len());
        let mut rows = Vec::with_capacity(chunk.len());
        for e in &chunk {
            if known.contains_key(&e.id) {
                report.events.already += 1;
                continue;
            }
            let checked = super::severity(&e.severity).and_then(|severity| {
                super::storable("source", &e.source)?;
                super::storable("event_type", &e.event_type)?;
                super::storable("description", &e.description)?;
                super::fits("source", &e.source, MAX_LABEL_CHARS)?;
                super::fits("event_type", &e.event_type, MAX_LABEL_CHARS)?;
                super::fits("description", &e.description, MAX_DESCRIPTION_CHARS)?;
                Ok((severity, super::time("timestamp", &e.timestamp)?))
            });
            match checked {
                Ok((severity, at)) => {
                    fresh.push(e.id);
                    rows.push(ImportedEvent {
                        source: &e.source,
                        event_type: &e.event_type,
                        severity,
                        description: &e.description,
                        created_at: at,
                    });
                }
                Err(why) => report.skip(Kind::Event, e.id, why),
            }
        }
        let stored = imports::insert_events(conn, &rows).await?;
        let done: Vec<(i64, i64)> = fresh.into_iter().zip(stored).collect();
        report.events.imported += done.len() as u64;
        imports::remember(conn, origin, Kind::Event.as_str(), &done, now).await?;
    }
    Ok(())
}

/// Alerts, each on its (imported) event, counted as they land.
async fn alerts(
    conn: &mut Conn<'_>,
    source: &mut Source,
    origin: &str,
    now: chrono::NaiveDateTime,
    report: &mut Report,
) -> Result<()> {
    let mut after = 0;
    loop {
        let chunk = source.alerts(after, CHUNK).await?;
        let Some(last) = chunk.last() else { break };
        after = last.id;
        let ids: Vec<i64> = chunk.iter().map(|a| a.id).collect();
        let known = imports::imported(conn, origin, Kind::Alert.as_str(), &ids).await?;
        let mut event_ids: Vec<i64> = chunk.iter().map(|a| a.event_id).collect();
        event_ids.sort_unstable();
        let mut event_of =
            imports::imported(conn, origin, Kind::Event.as_str(), &event_ids).await?;
        event_of.retain(|id, _| event_ids.binary_search(id).is_ok());
        let targets: Vec<i64> = event_of.values().copied().collect();
        // Each event's severity and source (which its alert copies),
        // and whether it has an alert already.
        let mut target_event: HashMap<i64, (Severity, String, bool)> =
            imports::event_targets(conn, &targets)
                .await?
                .into_iter()
                .map(|(id, severity, source, taken)| (id, (severity, source, taken)))
                .collect();
        let mut fresh = Vec::with_capacity(chunk.len());
        let mut rows = Vec::with_capacity(chunk.len());
        for a in &chunk {
            if known.contains_key(&a.id) {
                report.alerts.already += 1;
                continue;
            }
            let checked = super::status(&a.status)
                .and_then(|status| Ok((status, super::time("created_at", &a.created_at)?)));
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
            fresh.push(a.id);
            rows.push(ImportedAlert {
                event_id,
                severity: event.0,
                source: event.1.clone(),
                status,
                created_at: at,
            });
        }
        let alert_of = imports::insert_alerts(conn, &rows).await?;
        let mut done = Vec::with_capacity(fresh.len());
        for (source_id, row) in fresh.into_iter().zip(&rows) {
            let Some(&id) = alert_of.get(&row.event_id) else {
                return Err(Error::internal(anyhow::anyhow!(
                    "the alert on event {} was not stored",
                    row.event_id
                )));
            };
            done.push((source_id, id));
        }
        report.alerts.imported += done.len() as u64;
        imports::remember(conn, origin, Kind::Alert.as_str(), &done, now).await?;
    }
    Ok(())
}

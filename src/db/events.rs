//! Events, and the ingest transaction that stores them with their alerts.

use std::collections::{BTreeMap, HashMap};

use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};

use super::conn::complete_now;
use super::models::{
    columns, AlertRow, AlertWithEvent, Cols, EventRow, EventWithAlert, NewId, SilenceRow,
};
use super::schema::{alerts, events, silences};
use super::sql::{keyset, shaped_chunks, Stamp, Statement, ROWS_PER_STATEMENT};
use super::{outbox, Conn, Db, WriterConn};
use crate::domain::event::NewEvent;
use crate::domain::ingest::{self, AlertPlan, Fate, Found, Plan, Target};
use crate::domain::page::Page;
use crate::domain::webhook::Change;
use crate::domain::{AlertStatus, AuditAction, Severity, WebhookTrigger};
use crate::error::{Error, Result};

/// What the ingest writer stores and hands back; defined with the other
/// domain types.
use crate::domain::event::{Ingest, Ingested};

/// Events with the alert each belongs to (raised or folded into).
pub(super) type WithAlert = dsl::Select<
    dsl::LeftJoinOn<
        events::table,
        alerts::table,
        dsl::Eq<dsl::Nullable<alerts::id>, events::alert_id>,
    >,
    (Cols<EventRow>, dsl::Nullable<Cols<AlertRow>>),
>;

pub(super) fn with_alert() -> WithAlert {
    events::table
        .left_join(alerts::table.on(alerts::id.nullable().eq(events::alert_id)))
        .select((columns::<EventRow>(), columns::<AlertRow>().nullable()))
}

pub(super) fn paired(rows: Vec<(EventRow, Option<AlertRow>)>) -> Vec<EventWithAlert> {
    rows.into_iter()
        .map(|(event, alert)| EventWithAlert { event, alert })
        .collect()
}

/// The event stored earlier under (`source`, `external_id`), with its
/// alert. Searches the partial unique index on (source, external_id).
fn by_external_id(
    source: &str,
    external_id: &str,
) -> dsl::Filter<
    dsl::Filter<WithAlert, dsl::Eq<events::source, String>>,
    dsl::Eq<events::external_id, String>,
> {
    with_alert()
        .filter(events::source.eq(source.to_owned()))
        .filter(events::external_id.eq(external_id.to_owned()))
}

/// The alerts not yet RESOLVED for any of `sources` x `keys`, with their
/// events: where repeats fold. Spelled to match the partial unique index's
/// own predicate, so both databases search that index. The status is a
/// literal, not a bound value: a planner that may not look at bound values
/// (SQLite with QPSG, PostgreSQL's generic plans) cannot prove the index
/// applies to `status <> ?`, and scans every alert instead.
fn open_by_key(sources: Vec<String>, keys: Vec<String>) -> OpenByKey {
    alerts::table
        .inner_join(events::table.on(events::id.eq(alerts::event_id)))
        .filter(alerts::source.eq_any(sources))
        .filter(alerts::dedup_key.eq_any(keys))
        .filter(alerts::dedup_key.is_not_null())
        .filter(dsl::sql::<Bool>("alerts.status <> 'RESOLVED'"))
        .select((columns::<AlertRow>(), columns::<EventRow>()))
}

type OpenByKey = dsl::Select<
    dsl::Filter<
        dsl::Filter<
            dsl::Filter<
                dsl::Filter<
                    dsl::InnerJoinOn<
                        alerts::table,
                        events::table,
                        dsl::Eq<events::id, alerts::event_id>,
                    >,
                    dsl::EqAny<alerts::source, Vec<String>>,
                >,
                dsl::EqAny<alerts::dedup_key, Vec<String>>,
            >,
            dsl::IsNotNull<alerts::dedup_key>,
        >,
        diesel::expression::SqlLiteral<Bool>,
    >,
    (Cols<AlertRow>, Cols<EventRow>),
>;

/// An alert with the event that raised it, read inside the caller's
/// transaction.
async fn with_raising_event(conn: &mut Conn<'_>, alert: AlertRow) -> Result<AlertWithEvent> {
    let event: EventRow = conn
        .first(
            events::table
                .find(alert.event_id)
                .select(columns::<EventRow>()),
        )
        .await?;
    Ok(AlertWithEvent { alert, event })
}

/// Points each event in `ids` at the alert it raised (the alert whose
/// `event_id` it is), inside the caller's transaction.
pub(super) async fn link_raising_events(conn: &mut Conn<'_>, ids: &[i64]) -> Result<()> {
    let query = Statement::new(
        "UPDATE events SET alert_id = \
         (SELECT alerts.id FROM alerts WHERE alerts.event_id = events.id) WHERE id IN (",
    )
    .list::<BigInt, i64>(ids)
    .sql(")");
    conn.execute(query).await?;
    Ok(())
}

/// What storage read for a batch before writing: what the plan needs, and
/// the rows the answers are made of.
struct Read {
    /// Earlier events by id, with their alerts.
    earlier: HashMap<i64, (EventRow, Option<AlertWithEvent>)>,
    /// Open alerts by id, with their raising events.
    open: HashMap<i64, AlertWithEvent>,
}

/// Reads what `domain::ingest::plan` needs for `events` and plans. Each
/// read is asked of a plan made on what was read before it (with no
/// silences the plan says whether silences matter, with no open alerts
/// which keys to look up), and a plan is made again only when a read found
/// something: the same plan `ingest::plan` makes on everything, in one pass
/// for most batches.
async fn read_and_plan(conn: &mut Conn<'_>, events: &[&NewEvent]) -> Result<(Plan, Read)> {
    let mut found = Found::default();
    let mut earlier = HashMap::new();
    // One lookup per externalId: each searches the partial unique index.
    for (source, external_id) in ingest::external_ids(events) {
        let row: Option<(EventRow, Option<AlertRow>)> = conn
            .first(by_external_id(source, external_id).limit(1))
            .await
            .optional()?;
        let Some((event, alert)) = row else { continue };
        let alert = match alert {
            Some(a) if a.event_id == event.id => Some(AlertWithEvent {
                alert: a,
                event: event.clone(),
            }),
            Some(a) => Some(with_raising_event(conn, a).await?),
            None => None,
        };
        found.earlier.insert(source, external_id, event.id);
        earlier.insert(event.id, (event, alert));
    }
    if !earlier.is_empty() || events.len() > 1 {
        let stored = |source: &str, external_id: &str| {
            let id = found.earlier.get(source, external_id)?;
            let (event, _) = earlier.get(id)?;
            Some((*id, ingest::Content::of_stored(event)))
        };
        if let Some(conflict) = ingest::conflict(events, stored) {
            return Err(conflict.into());
        }
    }
    let mut plan = ingest::plan(events, &found);
    // Live silences, read from the database so that they hold on every
    // instance the moment they are created or expired.
    if plan.stores_a_raising_event(events) {
        let now = crate::domain::now();
        let live: Vec<SilenceRow> = conn
            .load(
                silences::table
                    .filter(silences::expired_at.is_null())
                    .filter(silences::ends_at.gt(now))
                    .select(columns::<SilenceRow>()),
            )
            .await?;
        found.silences = live.iter().map(SilenceRow::matcher).collect();
        if !found.silences.is_empty() {
            plan = ingest::plan(events, &found);
        }
    }
    let pairs = plan.raised_keys(events);
    let (sources, keys) = ingest::sources_and_keys(&pairs);
    let mut open = HashMap::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<(AlertRow, EventRow)> = conn
            .load(open_by_key(owned(&sources), owned(chunk)))
            .await?;
        for (alert, event) in rows {
            if let Some(key) = &event.dedup_key {
                found
                    .open
                    .insert(event.source.as_str(), key.as_str(), alert.id);
            }
            open.insert(alert.id, AlertWithEvent { alert, event });
        }
    }
    if !found.open.is_empty() {
        plan = ingest::plan(events, &found);
    }
    Ok((plan, Read { earlier, open }))
}

/// Inserts the events the plan stores, one statement per chunk; each is
/// returned, at its index in the batch, with the id it was given. An event
/// folding into an alert stored before is inserted pointing at it.
async fn insert_events(
    conn: &mut Conn<'_>,
    events: &[&NewEvent],
    plan: &Plan,
    stamp: &Stamp,
    now: chrono::NaiveDateTime,
) -> Result<Vec<Option<EventRow>>> {
    let mut rows: Vec<(usize, EventRow)> = plan
        .stored()
        .map(|(i, stored)| {
            let e = events[i];
            let row = EventRow {
                id: 0,
                source: e.source.clone(),
                event_type: e.event_type.clone(),
                severity: e.severity,
                description: e.description.clone(),
                created_at: now,
                external_id: e.external_id.clone(),
                alert_id: match stored.alert {
                    AlertPlan::FoldInto(id) => Some(id),
                    _ => None,
                },
                dedup_key: e.dedup_key.clone(),
                silenced_by: stored.silenced_by,
                occurred_at: e.occurred_at,
            };
            (i, row)
        })
        .collect();
    for range in shaped_chunks(rows.len()) {
        let chunk = &mut rows[range];
        let query = Statement::new(
            "INSERT INTO events (source, event_type, severity, description, created_at, \
             external_id, dedup_key, silenced_by, alert_id, occurred_at) VALUES ",
        )
        .rows(chunk, |row, (_, e)| {
            row.bind::<Text, _>(&e.source)
                .bind::<Text, _>(&e.event_type)
                .bind::<Text, _>(e.severity.as_str())
                .bind::<Text, _>(&e.description)
                .bind::<Timestamp, _>(stamp)
                .bind::<Nullable<Text>, _>(e.external_id.as_deref())
                .bind::<Nullable<Text>, _>(e.dedup_key.as_deref())
                .bind::<Nullable<BigInt>, _>(e.silenced_by)
                .bind::<Nullable<BigInt>, _>(e.alert_id)
                .bind::<Nullable<Timestamp>, _>(e.occurred_at)
        })
        .sql(" RETURNING id");
        let ids = NewId::in_row_order(conn.load(query).await?, chunk.len(), "events")?;
        for ((_, event), id) in chunk.iter_mut().zip(ids) {
            event.id = id;
        }
    }
    let mut at: Vec<Option<EventRow>> = vec![None; events.len()];
    for (i, row) in rows {
        at[i] = Some(row);
    }
    Ok(at)
}

/// The stored event at batch index `i`, which the plan says exists.
fn stored_at(stored: &[Option<EventRow>], i: usize) -> Result<&EventRow> {
    stored
        .get(i)
        .and_then(Option::as_ref)
        .ok_or_else(|| Error::internal(anyhow::anyhow!("event {i} of the batch was not stored")))
}

/// Inserts the alerts the plan raises, one statement per chunk; each is
/// returned by the batch index of the event that raised it.
async fn insert_alerts(
    conn: &mut Conn<'_>,
    plan: &Plan,
    stored: &[Option<EventRow>],
    stamp: &Stamp,
    now: chrono::NaiveDateTime,
) -> Result<HashMap<usize, AlertRow>> {
    let raised: Vec<(usize, i64, &EventRow)> = plan
        .raised()
        .map(|(i, occurrences)| Ok((i, occurrences, stored_at(stored, i)?)))
        .collect::<Result<_>>()?;
    let mut alerts = HashMap::with_capacity(raised.len());
    for range in shaped_chunks(raised.len()) {
        let chunk = &raised[range];
        let query = Statement::new(
            "INSERT INTO alerts (event_id, severity, status, created_at, updated_at, source, \
             event_type, dedup_key, occurrences, last_seen_at) VALUES ",
        )
        .rows(chunk, |row, &(_, occurrences, e)| {
            row.bind::<BigInt, _>(e.id)
                .bind::<Text, _>(e.severity.as_str())
                .bind::<Text, _>(AlertStatus::Open.as_str())
                .bind::<Timestamp, _>(stamp)
                .bind::<Timestamp, _>(stamp)
                .bind::<Text, _>(&e.source)
                .bind::<Text, _>(&e.event_type)
                .bind::<Nullable<Text>, _>(e.dedup_key.as_deref())
                .bind::<BigInt, _>(occurrences)
                .bind::<Timestamp, _>(stamp)
        })
        .sql(" RETURNING id");
        let ids = NewId::in_row_order(conn.load(query).await?, chunk.len(), "alerts")?;
        for (&(i, occurrences, e), id) in chunk.iter().zip(ids) {
            let alert = AlertRow {
                id,
                event_id: e.id,
                severity: e.severity,
                status: AlertStatus::Open,
                created_at: now,
                updated_at: now,
                assignee_id: None,
                acknowledged_at: None,
                resolved_at: None,
                occurrences,
                last_seen_at: Some(now),
            };
            alerts.insert(i, alert);
        }
    }
    Ok(alerts)
}

/// Counts the repeats folded into alerts stored before and moves their
/// `lastSeenAt`: every alert of a chunk in one statement.
async fn fold(conn: &mut Conn<'_>, folds: &BTreeMap<i64, i64>, stamp: &Stamp) -> Result<()> {
    let counted: Vec<(i64, i64)> = folds.iter().map(|(a, n)| (*a, *n)).collect();
    for range in shaped_chunks(counted.len()) {
        let chunk = &counted[range];
        let ids: Vec<i64> = chunk.iter().map(|(id, _)| *id).collect();
        let mut query = Statement::new("UPDATE alerts SET occurrences = occurrences + CASE id");
        for (id, n) in chunk {
            query = query
                .sql(" WHEN ")
                .bind::<BigInt, _>(*id)
                .sql(" THEN ")
                .bind::<BigInt, _>(*n);
        }
        let query = query
            .sql(" ELSE 0 END, last_seen_at = ")
            .bind::<Timestamp, _>(stamp)
            .sql(" WHERE id IN (")
            .list::<BigInt, _>(&ids)
            .sql(")");
        conn.execute(query).await?;
    }
    Ok(())
}

/// Points every event that raised or folded into a new alert at it:
/// raisers through their alert's `event_id`, the others by id. (Events
/// folding into alerts stored before were inserted pointing at them.)
async fn link(
    conn: &mut Conn<'_>,
    plan: &Plan,
    stored: &[Option<EventRow>],
    raised: &HashMap<usize, AlertRow>,
) -> Result<()> {
    let raisers: Vec<i64> = raised.values().map(|a| a.event_id).collect();
    for range in shaped_chunks(raisers.len()) {
        link_raising_events(conn, &raisers[range]).await?;
    }
    let mut by_alert: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (i, s) in plan.stored() {
        if let AlertPlan::FoldIntoNew(r) = s.alert {
            let alert = raised.get(&r).ok_or_else(|| {
                Error::internal(anyhow::anyhow!("the alert of event {r} was not stored"))
            })?;
            by_alert
                .entry(alert.id)
                .or_default()
                .push(stored_at(stored, i)?.id);
        }
    }
    for (alert_id, ids) in &by_alert {
        for range in shaped_chunks(ids.len()) {
            let query = Statement::new("UPDATE events SET alert_id = ")
                .bind::<BigInt, _>(*alert_id)
                .sql(" WHERE id IN (")
                .list::<BigInt, _>(&ids[range])
                .sql(")");
            conn.execute(query).await?;
        }
    }
    Ok(())
}

/// The ALERT_CREATED entries of the alerts raised, and the counters: one
/// counter update per severity per batch, not per alert.
async fn record_raised(
    conn: &mut Conn<'_>,
    batch: &[Ingest],
    raised: &HashMap<usize, AlertRow>,
    stamp: &Stamp,
) -> Result<()> {
    let mut entries: Vec<(usize, &AlertRow)> = raised.iter().map(|(i, a)| (*i, a)).collect();
    entries.sort_unstable_by_key(|(i, _)| *i);
    for range in shaped_chunks(entries.len()) {
        let chunk = &entries[range];
        let query = Statement::new(
            "INSERT INTO audit_log (at, action, actor, target_type, target_id, detail, ip) \
             VALUES ",
        )
        .rows(chunk, |row, &(i, alert)| {
            let item = &batch[i];
            let detail = serde_json::json!({
                "eventId": alert.event_id.to_string(),
                "severity": alert.severity.as_str(),
                "source": item.event.source,
            });
            row.bind::<Timestamp, _>(stamp)
                .bind::<Text, _>(AuditAction::AlertCreated.as_str())
                .bind::<Text, _>(&item.actor)
                .bind::<Nullable<Text>, _>(Some("Alert"))
                .bind::<Nullable<Text>, _>(Some(alert.id.to_string()))
                .bind::<Nullable<Text>, _>(Some(detail.to_string()))
                .bind::<Nullable<Text>, _>(item.ip.as_deref())
        });
        conn.execute(query).await?;
    }
    for severity in Severity::ALL {
        let n = raised.values().filter(|a| a.severity == *severity).count();
        if n > 0 {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            super::alerts::count(conn, AlertStatus::Open, *severity, n).await?;
        }
    }
    Ok(())
}

/// What each event became, in the caller's order.
fn answers(
    plan: &Plan,
    read: Read,
    mut stored: Vec<Option<EventRow>>,
    raised: HashMap<usize, AlertRow>,
    now: chrono::NaiveDateTime,
) -> Result<Vec<Ingested>> {
    let Read { earlier, mut open } = read;
    for (id, n) in &plan.folds {
        if let Some(existing) = open.get_mut(id) {
            existing.alert.occurrences += n;
            existing.alert.last_seen_at = Some(now);
        }
    }
    // The new alerts with their raising events, made before the rows are
    // moved into the answers.
    let new_alerts: HashMap<usize, AlertWithEvent> = raised
        .into_iter()
        .map(|(r, alert)| {
            let event = stored_at(&stored, r)?.clone();
            Ok((r, AlertWithEvent { alert, event }))
        })
        .collect::<Result<_>>()?;
    let mut out: Vec<Ingested> = Vec::with_capacity(plan.fates.len());
    for (i, fate) in plan.fates.iter().enumerate() {
        let done = match fate {
            Fate::Earlier(id) => {
                let (event, alert) = earlier.get(id).cloned().ok_or_else(|| {
                    Error::internal(anyhow::anyhow!("earlier event {id} was not read"))
                })?;
                Ingested {
                    event,
                    alert,
                    created: false,
                    raised: false,
                }
            }
            Fate::SameAs(j) => {
                let first = out.get(*j).cloned().ok_or_else(|| {
                    Error::internal(anyhow::anyhow!("event {i} repeats {j}, not before it"))
                })?;
                Ingested {
                    created: false,
                    raised: false,
                    ..first
                }
            }
            Fate::Store(_) => {
                let mut event = stored.get_mut(i).and_then(Option::take).ok_or_else(|| {
                    Error::internal(anyhow::anyhow!("event {i} of the batch was not stored"))
                })?;
                let alert = match plan.alert_of(i) {
                    Some(Target::New(r)) => Some(new_alerts.get(&r).cloned().ok_or_else(|| {
                        Error::internal(anyhow::anyhow!("the alert of event {r} was not stored"))
                    })?),
                    Some(Target::Existing(id)) => open.get(&id).cloned(),
                    None => None,
                };
                event.alert_id = alert.as_ref().map(|a| a.alert.id);
                let raised = alert.as_ref().is_some_and(|a| a.alert.event_id == event.id);
                Ingested {
                    event,
                    alert,
                    created: true,
                    raised,
                }
            }
        };
        out.push(done);
    }
    Ok(out)
}

/// Stores a batch as `domain::ingest::plan` decides, inside the caller's
/// transaction: reads what the rule needs, plans, then writes the plan out
/// in a handful of statements whatever the batch's size.
async fn ingest(conn: &mut Conn<'_>, batch: &[Ingest]) -> Result<Vec<Ingested>> {
    let now = crate::domain::now();
    let stamp = Stamp::new(now);
    let events: Vec<&NewEvent> = batch.iter().map(|item| &item.event).collect();
    let (plan, read) = read_and_plan(conn, &events).await?;
    let stored = insert_events(conn, &events, &plan, &stamp, now).await?;
    let raised = insert_alerts(conn, &plan, &stored, &stamp, now).await?;
    fold(conn, &plan.folds, &stamp).await?;
    link(conn, &plan, &stored, &raised).await?;
    record_raised(conn, batch, &raised, &stamp).await?;
    let folded = folded_alerts(&plan, &read, now);
    let out = answers(&plan, read, stored, raised, now)?;
    queue_deliveries(conn, &out, &folded, now).await?;
    Ok(out)
}

/// The alerts stored before the batch that its repeats folded into, as the
/// batch leaves them: once each, with the final count.
fn folded_alerts(plan: &Plan, read: &Read, now: chrono::NaiveDateTime) -> Vec<AlertWithEvent> {
    plan.folds
        .iter()
        .filter_map(|(id, n)| {
            let mut alert = read.open.get(id)?.clone();
            alert.alert.occurrences += n;
            alert.alert.last_seen_at = Some(now);
            Some(alert)
        })
        .collect()
}

/// The outbox rows of a batch, in its transaction: ALERT_RAISED for each
/// alert raised, ALERT_REPEATED for each earlier alert folded into. A batch
/// that raised and folded nothing reads nothing; one that did reads the
/// enabled webhooks once, and stops there when there are none.
async fn queue_deliveries(
    conn: &mut Conn<'_>,
    out: &[Ingested],
    folded: &[AlertWithEvent],
    now: chrono::NaiveDateTime,
) -> Result<()> {
    let raised: Vec<&AlertWithEvent> = out
        .iter()
        .filter(|done| done.raised)
        .filter_map(|done| done.alert.as_ref())
        .collect();
    if raised.is_empty() && folded.is_empty() {
        return Ok(());
    }
    let hooks = outbox::enabled(conn).await?;
    if hooks.is_empty() {
        return Ok(());
    }
    let owners: Vec<i64> = folded.iter().filter_map(|a| a.alert.assignee_id).collect();
    let names = if owners.is_empty() || !hooks.any_wants(WebhookTrigger::AlertRepeated) {
        HashMap::new()
    } else {
        outbox::usernames(conn, &owners).await?
    };
    let items: Vec<outbox::Item<'_>> = raised
        .into_iter()
        .map(|alert| outbox::Item {
            change: Change::Raised,
            alert,
            assignee: None,
        })
        .chain(folded.iter().map(|alert| {
            outbox::Item {
                change: Change::Repeated,
                alert,
                assignee: alert
                    .alert
                    .assignee_id
                    .and_then(|id| names.get(&id))
                    .map(String::as_str),
            }
        }))
        .collect();
    outbox::enqueue_to(conn, &hooks, &items, now).await?;
    Ok(())
}

/// The given strings, owned, for a query's bound values.
fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Db {
    /// Stores every event in one transaction: all of them or none.
    ///
    /// A HIGH or CRITICAL event that no live silence matches raises an OPEN
    /// alert with its ALERT_CREATED audit entry, unless it carries a
    /// `dedupKey` whose (source, key) already has an alert that is not
    /// RESOLVED: then it is folded into that one (`occurrences` + 1,
    /// `lastSeenAt` moves). A unique index backs this: two instances raising
    /// the same key at once cannot both commit, and the writer retries the
    /// loser, which then folds.
    ///
    /// A batch costs a handful of statements whatever its size (one
    /// multi-row insert per table), which is what lets group commit scale.
    pub async fn ingest(&self, on: &mut WriterConn, batch: &[Ingest]) -> Result<Vec<Ingested>> {
        match on {
            WriterConn::Sqlite(sqlite) => {
                let _writer = self.write_lock().await;
                sqlite.immediate_transaction(|conn| {
                    complete_now(ingest(&mut Conn::Sqlite(conn), batch))
                })
            }
            WriterConn::Postgres(pool) => {
                use diesel_async::{AsyncConnection, TransactionManager};
                type Manager = <super::PgConn as AsyncConnection>::TransactionManager;
                let mut pooled = pool.get().await?;
                let conn = &mut *pooled;
                Manager::begin_transaction(conn).await?;
                match ingest(&mut Conn::Postgres(conn), batch).await {
                    Ok(done) => {
                        Manager::commit_transaction(conn).await?;
                        Ok(done)
                    }
                    Err(e) => {
                        Manager::rollback_transaction(conn).await?;
                        Err(e)
                    }
                }
            }
        }
    }

    /// The events that belong to an alert, newest first.
    pub async fn alert_events_page(
        &self,
        alert_id: i64,
        page: Page,
    ) -> Result<Vec<EventWithAlert>> {
        self.read_page(async move |mut conn| {
            let k = keyset(&page, events::id);
            let query = with_alert()
                .filter(events::alert_id.eq(alert_id))
                .filter(k.range)
                .order(k.order)
                .limit(k.limit);
            Ok(paired(conn.load(query).await?))
        })
        .await
    }

    pub async fn count_alert_events(&self, alert_id: i64) -> Result<i64> {
        self.read(async move |mut conn| {
            let query = events::table.filter(events::alert_id.eq(alert_id)).count();
            Ok(conn.first(query).await?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    use super::super::schema::events;
    use super::{by_external_id, open_by_key, owned};

    /// What SQLite's planner does with `query`, on a migrated database
    /// under the settings the service runs with.
    fn sqlite_plan<Q>(query: &Q) -> String
    where
        Q: diesel::query_builder::QueryFragment<diesel::sqlite::Sqlite>,
    {
        #[derive(QueryableByName, Debug)]
        struct Plan {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        super::super::sqlite_plan_stability();
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        super::super::migrate::apply_sqlite(&mut conn).unwrap();
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(query).to_string();
        let sql = sql.split(" -- binds").next().unwrap();
        let plan: Vec<Plan> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load(&mut conn)
            .unwrap();
        plan.into_iter()
            .map(|p| p.detail)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The repeat lookup must stay on the partial index under the settings
    /// the service runs with; a full scan of alerts per batch once made
    /// repeat ingest several times slower (see `open_by_key`).
    #[test]
    fn repeat_lookup_searches_the_partial_index() {
        let sources = vec!["fw-1", "fw-2"];
        let keys = vec!["k1".to_string(), "k2".to_string()];
        let plan = sqlite_plan(&open_by_key(owned(&sources), keys));
        assert!(plan.contains("alerts_open_dedup"), "{plan}");
    }

    /// The (source, externalId) index holds only events that have an
    /// externalId; the lookup must still be able to search it.
    #[test]
    fn external_id_lookup_searches_its_partial_index() {
        let plan = sqlite_plan(&by_external_id("ids-1", "x-1").limit(1));
        assert!(
            plan.contains("USING INDEX events_source_external_id"),
            "{plan}"
        );
    }

    /// Only linked events are in the alert_id index; an alert's events
    /// must still be found through it, in page order.
    #[test]
    fn alert_events_search_their_partial_index() {
        let query = events::table
            .filter(events::alert_id.eq(7))
            .order(events::id.desc())
            .select(events::id)
            .limit(10);
        let plan = sqlite_plan(&query);
        assert!(
            plan.contains("USING COVERING INDEX events_alert_id")
                || plan.contains("USING INDEX events_alert_id"),
            "{plan}"
        );
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
}

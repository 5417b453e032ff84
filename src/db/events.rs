//! Events, and the ingest transaction that stores them with their alerts.

use std::collections::HashMap;

use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};

use super::conn::complete_now;
use super::models::{
    columns, AlertRow, AlertWithEvent, Cols, EventRow, EventWithAlert, NewAudit, NewId, SilenceRow,
};
use super::schema::{alerts, events, silences};
use super::sql::{keyset, shaped_chunks, Maybe, Stamp, Statement, ROWS_PER_STATEMENT};
use super::{Conn, Db, WriterConn};
use crate::domain::page::Page;
use crate::domain::{AlertStatus, AuditAction, Severity};
use crate::error::{Error, Result};

/// What the ingest writer stores and hands back; defined with the other
/// domain types.
pub use crate::domain::event::{Ingest, Ingested};

/// Events with the alert each belongs to (raised or folded into).
type WithAlert = dsl::Select<
    dsl::LeftJoinOn<
        events::table,
        alerts::table,
        dsl::Eq<dsl::Nullable<alerts::id>, events::alert_id>,
    >,
    (Cols<EventRow>, dsl::Nullable<Cols<AlertRow>>),
>;

fn with_alert() -> WithAlert {
    events::table
        .left_join(alerts::table.on(alerts::id.nullable().eq(events::alert_id)))
        .select((columns::<EventRow>(), columns::<AlertRow>().nullable()))
}

fn paired(rows: Vec<(EventRow, Option<AlertRow>)>) -> Vec<EventWithAlert> {
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

/// Where a raising event's alert comes from.
#[derive(Clone, Copy)]
enum Target {
    /// A new alert, raised by the event at this index of `fresh`.
    New(usize),
    /// An alert stored before this batch, not yet RESOLVED.
    Existing(i64),
}

/// The ingest transaction's statements, for `Db::ingest`: spelled once,
/// compiled for the SQLite writer's plain connection (`blocking`) and for
/// PostgreSQL's async one (`awaited`), see `call!`. `$batch` is the
/// `&[Ingest]`; runs inside the caller's transaction.
async fn ingest(conn: &mut Conn<'_>, batch: &[Ingest]) -> Result<Vec<Ingested>> {
    {
        let now = crate::domain::now();
        let stamp = Stamp::new(now);
        let mut out: Vec<Option<Ingested>> = vec![None; batch.len()];

        // 1. Repeats of an external id return the earlier event.
        let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
        let mut repeats: Vec<(usize, usize)> = Vec::new();
        let mut fresh: Vec<usize> = Vec::with_capacity(batch.len());
        for (i, item) in batch.iter().enumerate() {
            let e = &item.event;
            if let Some(external_id) = e.external_id.as_deref() {
                if let Some(&first) = first_of.get(&(e.source.as_str(), external_id)) {
                    repeats.push((i, first));
                    continue;
                }
                let earlier: Option<(EventRow, Option<AlertRow>)> = conn
                    .first(by_external_id(&e.source, external_id).limit(1))
                    .await
                    .optional()?;
                if let Some((event, alert)) = earlier {
                    let alert = match alert {
                        Some(a) if a.event_id == event.id => Some(AlertWithEvent {
                            alert: a,
                            event: event.clone(),
                        }),
                        Some(a) => Some(with_raising_event(conn, a).await?),
                        None => None,
                    };
                    out[i] = Some(Ingested {
                        event,
                        alert,
                        created: false,
                        raised: false,
                    });
                    continue;
                }
                first_of.insert((e.source.as_str(), external_id), i);
            }
            fresh.push(i);
        }

        // 2. Live silences: read from the database, so they hold on every
        //    instance the moment they are created or expired.
        let live: Vec<SilenceRow> = if fresh
            .iter()
            .any(|&i| batch[i].event.severity.raises_alert())
        {
            conn.load(
                silences::table
                    .filter(silences::expired_at.is_null())
                    .filter(silences::ends_at.gt(now))
                    .select(columns::<SilenceRow>()),
            )
            .await?
        } else {
            Vec::new()
        };
        let silenced_by = |e: &crate::domain::event::NewEvent| -> Option<i64> {
            if !e.severity.raises_alert() {
                return None;
            }
            live.iter().find(|s| s.matches(e)).map(|s| s.id)
        };

        // 4. Which alert each raising event belongs to.
        //    Decided before the events are stored, so that repeats of
        //    alerts stored earlier are inserted already pointing at them.
        let silenced: Vec<Option<i64>> = fresh
            .iter()
            .map(|&i| silenced_by(&batch[i].event))
            .collect();
        let raising: Vec<usize> = (0..fresh.len())
            .filter(|&k| batch[fresh[k]].event.severity.raises_alert() && silenced[k].is_none())
            .collect();
        let mut keys: Vec<&str> = raising
            .iter()
            .filter_map(|&k| batch[fresh[k]].event.dedup_key.as_deref())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut sources: Vec<&str> = raising
            .iter()
            .filter(|&&k| batch[fresh[k]].event.dedup_key.is_some())
            .map(|&k| batch[fresh[k]].event.source.as_str())
            .collect();
        sources.sort_unstable();
        sources.dedup();
        let mut open: HashMap<(String, String), AlertWithEvent> = HashMap::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let found: Vec<(AlertRow, EventRow)> = conn
                .load(open_by_key(owned(&sources), owned(chunk)))
                .await?;
            for (alert, event) in found {
                if let Some(key) = event.dedup_key.clone() {
                    open.insert((event.source.clone(), key), AlertWithEvent { alert, event });
                }
            }
        }
        let mut target: HashMap<usize, Target> = HashMap::with_capacity(raising.len());
        let mut new_for_key: HashMap<(String, String), usize> = HashMap::new();
        let mut folded_into_new: HashMap<usize, i64> = HashMap::new();
        for &k in &raising {
            let e = &batch[fresh[k]].event;
            let Some(key) = e.dedup_key.clone() else {
                target.insert(k, Target::New(k));
                continue;
            };
            let key = (e.source.clone(), key);
            if let Some(existing) = open.get(&key) {
                target.insert(k, Target::Existing(existing.alert.id));
            } else if let Some(&raiser) = new_for_key.get(&key) {
                target.insert(k, Target::New(raiser));
                *folded_into_new.entry(raiser).or_default() += 1;
            } else {
                new_for_key.insert(key, k);
                target.insert(k, Target::New(k));
            }
        }

        // 3. The events, one statement per chunk. Each row is built first,
        //    bound from, and given the id the database assigned.
        let mut stored: Vec<EventRow> = fresh
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let e = &batch[i].event;
                EventRow {
                    id: 0,
                    source: e.source.clone(),
                    event_type: e.event_type.clone(),
                    severity: e.severity,
                    description: e.description.clone(),
                    created_at: now,
                    external_id: e.external_id.clone(),
                    alert_id: match target.get(&k) {
                        Some(Target::Existing(id)) => Some(*id),
                        _ => None,
                    },
                    dedup_key: e.dedup_key.clone(),
                    silenced_by: silenced[k],
                }
            })
            .collect();
        for range in shaped_chunks(stored.len()) {
            let chunk = &mut stored[range];
            let query = Statement::new(
                "INSERT INTO events (source, event_type, severity, description, created_at, \
                 external_id, dedup_key, silenced_by, alert_id) VALUES ",
            )
            .rows(&*chunk, |row, e| {
                row.bind::<Text, _>(e.source.clone())
                    .bind::<Text, _>(e.event_type.clone())
                    .bind::<Text, _>(e.severity.as_str())
                    .bind::<Text, _>(e.description.clone())
                    .bind::<Timestamp, _>(stamp.clone())
                    .bind::<Nullable<Text>, _>(e.external_id.clone())
                    .bind::<Nullable<Text>, _>(e.dedup_key.clone())
                    .bind::<Nullable<BigInt>, _>(e.silenced_by)
                    .bind::<Nullable<BigInt>, _>(e.alert_id)
            })
            .sql(" RETURNING id");
            let ids = NewId::in_row_order(conn.load(query).await?, chunk.len(), "events")?;
            for (event, id) in chunk.iter_mut().zip(ids) {
                event.id = id;
            }
        }

        // 5. New alerts, one statement per chunk.
        let raisers: Vec<usize> = raising
            .iter()
            .copied()
            .filter(|k| matches!(target.get(k), Some(Target::New(r)) if r == k))
            .collect();
        let occurrences = |k: usize| 1 + folded_into_new.get(&k).copied().unwrap_or(0);
        let mut alert_of: HashMap<i64, AlertRow> = HashMap::with_capacity(raisers.len());
        for range in shaped_chunks(raisers.len()) {
            let chunk = &raisers[range];
            let query = Statement::new(
                "INSERT INTO alerts (event_id, severity, status, created_at, updated_at, source, \
                 dedup_key, occurrences, last_seen_at) VALUES ",
            )
            .rows(chunk, |row, &k| {
                let e = &stored[k];
                row.bind::<BigInt, _>(e.id)
                    .bind::<Text, _>(e.severity.as_str())
                    .bind::<Text, _>(AlertStatus::Open.as_str())
                    .bind::<Timestamp, _>(stamp.clone())
                    .bind::<Timestamp, _>(stamp.clone())
                    .bind::<Text, _>(e.source.clone())
                    .bind::<Nullable<Text>, _>(e.dedup_key.clone())
                    .bind::<BigInt, _>(occurrences(k))
                    .bind::<Timestamp, _>(stamp.clone())
            })
            .sql(" RETURNING id");
            let ids = NewId::in_row_order(conn.load(query).await?, chunk.len(), "alerts")?;
            for (&k, id) in chunk.iter().zip(ids) {
                let e = &stored[k];
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
                    occurrences: occurrences(k),
                    last_seen_at: Some(now),
                };
                alert_of.insert(e.id, alert);
            }
        }
        if alert_of.len() != raisers.len() {
            return Err(Error::internal(anyhow::anyhow!("an alert was not stored")));
        }

        // 6. Repeats of alerts stored before: count them, move lastSeenAt.
        let mut folds: HashMap<i64, i64> = HashMap::new();
        for t in target.values() {
            if let Target::Existing(id) = t {
                *folds.entry(*id).or_default() += 1;
            }
        }
        // Every fold of a chunk of alerts in one statement.
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
                .bind::<Timestamp, _>(stamp.clone())
                .sql(" WHERE id IN (")
                .list::<BigInt, _>(&ids)
                .sql(")");
            conn.execute(query).await?;
        }
        for existing in open.values_mut() {
            if let Some(n) = folds.get(&existing.alert.id) {
                existing.alert.occurrences += n;
                existing.alert.last_seen_at = Some(now);
            }
        }

        // 7. Every linked event points at its alert: raisers through their
        //    alert's event_id, folded ones by id.
        let raiser_ids: Vec<i64> = raisers.iter().map(|&k| stored[k].id).collect();
        for range in shaped_chunks(raiser_ids.len()) {
            link_raising_events(conn, &raiser_ids[range]).await?;
        }
        let is_raiser: std::collections::HashSet<usize> = raisers.iter().copied().collect();
        let mut by_alert: HashMap<i64, Vec<i64>> = HashMap::new();
        let alert_id_of = |k: usize| -> Option<i64> {
            match target.get(&k)? {
                Target::New(r) => alert_of.get(&stored[*r].id).map(|a| a.id),
                Target::Existing(id) => Some(*id),
            }
        };
        for &k in &raising {
            // Repeats of earlier alerts were inserted pointing at them.
            if is_raiser.contains(&k) || matches!(target.get(&k), Some(Target::Existing(_))) {
                continue;
            }
            if let Some(a) = alert_id_of(k) {
                by_alert.entry(a).or_default().push(stored[k].id);
            }
        }
        for (alert_id, ids) in &by_alert {
            for range in shaped_chunks(ids.len()) {
                let chunk = &ids[range];
                let query = Statement::new("UPDATE events SET alert_id = ")
                    .bind::<BigInt, _>(*alert_id)
                    .sql(" WHERE id IN (")
                    .list::<BigInt, _>(chunk)
                    .sql(")");
                conn.execute(query).await?;
            }
        }

        // 8. Audit entries and counters for the alerts raised.
        let audits: Vec<NewAudit> = raisers
            .iter()
            .filter_map(|&k| {
                let e = &stored[k];
                let alert = alert_of.get(&e.id)?;
                let item = &batch[fresh[k]];
                Some(NewAudit {
                    at: now,
                    action: AuditAction::AlertCreated.as_str().into(),
                    actor: item.actor.clone(),
                    target_type: Some("Alert".into()),
                    target_id: Some(alert.id.to_string()),
                    detail: Some(
                        serde_json::json!({
                            "eventId": e.id.to_string(),
                            "severity": e.severity.as_str(),
                            "source": e.source,
                        })
                        .to_string(),
                    ),
                    ip: item.ip.clone(),
                })
            })
            .collect();
        for range in shaped_chunks(audits.len()) {
            let chunk = &audits[range];
            let query = Statement::new(
                "INSERT INTO audit_log (at, action, actor, target_type, target_id, detail, ip) \
                 VALUES ",
            )
            .rows(chunk, |row, a| {
                // `a.at` is `now`, formatted once in `stamp`.
                row.bind::<Timestamp, _>(stamp.clone())
                    .bind::<Text, _>(a.action.clone())
                    .bind::<Text, _>(a.actor.clone())
                    .bind::<Nullable<Text>, _>(a.target_type.clone())
                    .bind::<Nullable<Text>, _>(a.target_id.clone())
                    .bind::<Nullable<Text>, _>(a.detail.clone())
                    .bind::<Nullable<Text>, _>(a.ip.clone())
            });
            conn.execute(query).await?;
        }
        // One counter update per severity per batch, not per alert.
        for severity in Severity::ALL {
            let raised = alert_of
                .values()
                .filter(|a| a.severity == *severity)
                .count();
            if raised > 0 {
                let raised = i64::try_from(raised).unwrap_or(i64::MAX);
                super::alerts::count(conn, AlertStatus::Open, *severity, raised).await?;
            }
        }

        // 9. What each event became.
        let raised_alerts: HashMap<i64, AlertWithEvent> = raisers
            .iter()
            .filter_map(|&k| {
                let event = stored[k].clone();
                let alert = alert_of.get(&event.id)?.clone();
                Some((alert.id, AlertWithEvent { alert, event }))
            })
            .collect();
        let existing_by_id: HashMap<i64, AlertWithEvent> =
            open.into_values().map(|a| (a.alert.id, a)).collect();
        let alert_ids: Vec<Option<i64>> = (0..stored.len()).map(alert_id_of).collect();
        for (k, mut event) in stored.into_iter().enumerate() {
            let alert_id = alert_ids[k];
            event.alert_id = alert_id;
            let alert = alert_id.and_then(|id| {
                raised_alerts
                    .get(&id)
                    .or_else(|| existing_by_id.get(&id))
                    .cloned()
            });
            let raised = alert.as_ref().is_some_and(|a| a.alert.event_id == event.id);
            out[fresh[k]] = Some(Ingested {
                event,
                alert,
                created: true,
                raised,
            });
        }
        for (i, first) in repeats {
            out[i] = out[first].clone().map(|done| Ingested {
                created: false,
                raised: false,
                ..done
            });
        }
        out.into_iter()
            .map(|done| {
                done.ok_or_else(|| Error::internal(anyhow::anyhow!("an event was not stored")))
            })
            .collect()
    }
}

/// The given strings, owned, for a query's bound values.
fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl Db {
    pub async fn events_page(
        &self,
        severity: Option<Severity>,
        page: Page,
    ) -> Result<Vec<EventWithAlert>> {
        self.read_page(async move |mut conn| {
            let k = keyset(&page, events::id);
            let query = with_alert()
                .filter(Maybe(
                    severity.map(|s| events::severity.eq(s.as_str().to_owned())),
                ))
                .filter(k.below)
                .filter(k.above)
                .order(k.order)
                .limit(k.limit);
            Ok(paired(conn.load(query).await?))
        })
        .await
    }

    pub async fn count_events(&self, severity: Option<Severity>) -> Result<i64> {
        self.read(async move |mut conn| {
            let query = events::table
                .filter(Maybe(
                    severity.map(|s| events::severity.eq(s.as_str().to_owned())),
                ))
                .count();
            Ok(conn.first(query).await?)
        })
        .await
    }

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
                .filter(k.below)
                .filter(k.above)
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
    /// the service runs with; a full scan of alerts per batch cut repeat
    /// ingest to a quarter once (see `open_by_key`).
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

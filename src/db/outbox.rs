//! The outbox: the deliveries a change to an alert owes the webhooks,
//! written inside the transaction that makes the change. A crash either
//! loses both or keeps both; an acknowledged change always has its rows,
//! and the worker sends them whenever it next runs.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};

use super::models::{columns, AlertWithEvent, WebhookRow};
use super::schema::{users, webhook_deliveries, webhooks};
use super::sql::{shaped_chunks, Statement, ROWS_PER_STATEMENT};
use super::Conn;
use crate::domain::webhook::{body, message_id, Change, WebhookSpec, REPEAT_INTERVAL};
use crate::domain::{DeliveryStatus, WebhookFormat, WebhookTrigger};
use crate::error::Result;

/// The webhooks that are on, with their settings parsed once.
pub struct Hooks(Vec<(i64, WebhookSpec)>);

impl Hooks {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether any endpoint takes changes of this kind at all: lets a
    /// caller skip reading what a body needs (usernames) when none does.
    pub fn any_wants(&self, trigger: WebhookTrigger) -> bool {
        self.0.iter().any(|(_, s)| s.triggers.contains(&trigger))
    }
}

/// The enabled webhooks, in one query. With none registered this is the
/// whole cost of the outbox to a change: an empty table read.
pub async fn enabled(conn: &mut Conn<'_>) -> Result<Hooks> {
    let rows: Vec<WebhookRow> = conn
        .load(
            webhooks::table
                .filter(webhooks::enabled.eq(true))
                .order(webhooks::id)
                .select(columns::<WebhookRow>()),
        )
        .await?;
    Ok(Hooks(rows.iter().map(|r| (r.id, r.spec())).collect()))
}

/// Usernames by user id, read in the caller's transaction so that a body
/// names the owner the change committed with.
pub async fn usernames(conn: &mut Conn<'_>, ids: &[i64]) -> Result<HashMap<i64, String>> {
    let mut out = HashMap::new();
    let mut wanted: Vec<i64> = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    for chunk in wanted.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<(i64, String)> = conn
            .load(
                users::table
                    .filter(users::id.eq_any(chunk.to_vec()))
                    .select((users::id, users::username)),
            )
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// One change to report: what happened, to which alert (as committed),
/// and the username of its owner.
pub struct Item<'a> {
    pub change: Change,
    pub alert: &'a AlertWithEvent,
    pub assignee: Option<&'a str>,
}

/// Queues the deliveries of many changes to `hooks` (read once by the
/// caller): a lookup of recent repeats when there are repeats to send, and
/// one multi-row insert per chunk.
///
/// ALERT_REPEATED goes to an endpoint at once for an alert's first repeat,
/// then at most once per `REPEAT_INTERVAL`: the latest one sent is looked
/// up on the partial index of repeats. Two instances folding into one alert
/// in the same instant may each send one; at least once is the contract.
pub async fn enqueue_to(
    conn: &mut Conn<'_>,
    hooks: &Hooks,
    items: &[Item<'_>],
    now: NaiveDateTime,
) -> Result<usize> {
    if hooks.is_empty() || items.is_empty() {
        return Ok(0);
    }
    let mut due: Vec<(i64, &Item<'_>)> = Vec::new();
    for item in items {
        let trigger = item.change.trigger();
        for (id, spec) in &hooks.0 {
            if spec.wants(trigger, item.alert) {
                due.push((*id, item));
            }
        }
    }
    let repeats: Vec<(i64, i64)> = due
        .iter()
        .filter(|(_, item)| item.change == Change::Repeated)
        .map(|(hook, item)| (*hook, item.alert.alert.id))
        .collect();
    if !repeats.is_empty() {
        let recent = recent_repeats(conn, &repeats, now).await?;
        due.retain(|(hook, item)| {
            item.change != Change::Repeated || !recent.contains(&(*hook, item.alert.alert.id))
        });
    }
    let rows: Vec<(i64, Option<i64>, &'static str, String, String)> = due
        .iter()
        .map(|(hook, item)| {
            let format = hooks
                .0
                .iter()
                .find(|(id, _)| id == hook)
                .map(|(_, s)| s.format)
                .unwrap_or(WebhookFormat::Standard);
            (
                *hook,
                Some(item.alert.alert.id),
                item.change.trigger().as_str(),
                message_id(),
                body(format, &item.change, item.alert, item.assignee, now),
            )
        })
        .collect();
    for range in shaped_chunks(rows.len()) {
        let chunk = &rows[range];
        let query = Statement::new(
            "INSERT INTO webhook_deliveries (webhook_id, \"trigger\", alert_id, status, \
             message_id, body, attempts, created_at, next_attempt_at) VALUES ",
        )
        .rows(chunk, |row, (hook, alert, trigger, id, text)| {
            row.bind::<BigInt, _>(*hook)
                .bind::<Nullable<Text>, _>(Some(*trigger))
                .bind::<Nullable<BigInt>, _>(*alert)
                .bind::<Text, _>(DeliveryStatus::Pending.as_str())
                .bind::<Text, _>(id.as_str())
                .bind::<Text, _>(text.as_str())
                .bind::<BigInt, _>(0_i64)
                .bind::<Timestamp, _>(now)
                .bind::<Nullable<Timestamp>, _>(Some(now))
        });
        conn.execute(query).await?;
    }
    Ok(rows.len())
}

/// The (webhook, alert) pairs among `pairs` that had an ALERT_REPEATED
/// delivery less than `REPEAT_INTERVAL` before `now`. The trigger is a
/// literal so that both planners can use the partial index on repeats.
async fn recent_repeats(
    conn: &mut Conn<'_>,
    pairs: &[(i64, i64)],
    now: NaiveDateTime,
) -> Result<HashSet<(i64, i64)>> {
    let since = now - REPEAT_INTERVAL;
    let hooks: Vec<i64> = {
        let mut h: Vec<i64> = pairs.iter().map(|(h, _)| *h).collect();
        h.sort_unstable();
        h.dedup();
        h
    };
    let mut alerts: Vec<i64> = pairs.iter().map(|(_, a)| *a).collect();
    alerts.sort_unstable();
    alerts.dedup();
    let mut recent = HashSet::new();
    for chunk in alerts.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<(i64, Option<i64>)> = conn
            .load(repeats_since(hooks.clone(), chunk.to_vec(), since))
            .await?;
        recent.extend(rows.into_iter().filter_map(|(h, a)| Some((h, a?))));
    }
    Ok(recent)
}

type RepeatsSince = dsl::Distinct<
    dsl::Select<
        dsl::Filter<
            dsl::Filter<
                dsl::Filter<
                    dsl::Filter<webhook_deliveries::table, diesel::expression::SqlLiteral<Bool>>,
                    dsl::EqAny<webhook_deliveries::webhook_id, Vec<i64>>,
                >,
                dsl::EqAny<webhook_deliveries::alert_id, Vec<i64>>,
            >,
            dsl::Gt<webhook_deliveries::created_at, NaiveDateTime>,
        >,
        (webhook_deliveries::webhook_id, webhook_deliveries::alert_id),
    >,
>;

/// The recent repeats of `alerts` to `hooks`: spelled so that both
/// planners search the partial index on repeats (the trigger a literal).
fn repeats_since(hooks: Vec<i64>, alerts: Vec<i64>, since: NaiveDateTime) -> RepeatsSince {
    webhook_deliveries::table
        .filter(dsl::sql::<Bool>(
            "webhook_deliveries.\"trigger\" = 'ALERT_REPEATED'",
        ))
        .filter(webhook_deliveries::webhook_id.eq_any(hooks))
        .filter(webhook_deliveries::alert_id.eq_any(alerts))
        .filter(webhook_deliveries::created_at.gt(since))
        .select((webhook_deliveries::webhook_id, webhook_deliveries::alert_id))
        .distinct()
}

#[cfg(test)]
mod tests {
    use diesel::prelude::*;

    /// A storm of repeats looks up the last one sent per batch: it must
    /// search the partial index, not every delivery ever made.
    #[test]
    fn repeat_lookup_searches_its_partial_index() {
        #[derive(QueryableByName)]
        struct Plan {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        super::super::sqlite_plan_stability();
        let mut conn = diesel::SqliteConnection::establish(":memory:").unwrap();
        super::super::migrate::apply_sqlite(&mut conn).unwrap();
        let since = chrono::DateTime::UNIX_EPOCH.naive_utc();
        let query = super::repeats_since(vec![1, 2], vec![7, 8], since);
        let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&query).to_string();
        let sql = sql.split(" -- binds").next().unwrap();
        let plan: Vec<Plan> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load(&mut conn)
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|p| p.detail).collect();
        let plan = plan.join("\n");
        assert!(plan.contains("webhook_deliveries_repeats"), "{plan}");
    }
}

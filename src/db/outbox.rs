//! The outbox: what a change to an alert owes the webhooks, written inside
//! the transaction that makes the change. A crash either loses both or
//! keeps both; an acknowledged change always has its row, which the
//! delivery worker turns into deliveries (`Db::fan_out`) and sends
//! whenever it next runs.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::dsl;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamp};

use super::models::{columns, AlertWithEvent, OutboxRow, WebhookRow};
use super::schema::{users, webhook_deliveries, webhook_outbox, webhooks};
use super::sql::{shaped_chunks, Statement, ROWS_PER_STATEMENT};
use super::{Conn, Db};
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

/// Queues many changes for the endpoints of `hooks` (read once by the
/// caller) that want each: one `webhook_outbox` row per change that any
/// endpoint wants, naming those endpoints, with its body rendered once in
/// each format they take. Deliveries, one per endpoint, are made from it
/// behind the change by `Db::fan_out`, so a change costs its transaction
/// one narrow row however many endpoints listen.
pub async fn enqueue_to(
    conn: &mut Conn<'_>,
    hooks: &Hooks,
    items: &[Item<'_>],
    now: NaiveDateTime,
) -> Result<usize> {
    if hooks.is_empty() || items.is_empty() {
        return Ok(0);
    }
    let mut rows: Vec<Queued> = Vec::new();
    for item in items {
        let trigger = item.change.trigger();
        let due: Vec<&(i64, WebhookSpec)> = hooks
            .0
            .iter()
            .filter(|(_, spec)| spec.wants(trigger, item.alert))
            .collect();
        if due.is_empty() {
            continue;
        }
        let render = |format: WebhookFormat| {
            due.iter()
                .any(|(_, spec)| spec.format == format)
                .then(|| body(format, &item.change, item.alert, item.assignee, now))
        };
        rows.push(Queued {
            trigger: trigger.as_str(),
            alert: item.alert.alert.id,
            webhooks: due
                .iter()
                .map(|(id, _)| id.to_string())
                .collect::<Vec<_>>()
                .join(","),
            standard: render(WebhookFormat::Standard),
            slack: render(WebhookFormat::Slack),
        });
    }
    for range in shaped_chunks(rows.len()) {
        let chunk = &rows[range];
        let query = Statement::new(
            "INSERT INTO webhook_outbox (\"trigger\", alert_id, webhooks, standard, slack, \
             created_at) VALUES ",
        )
        .rows(chunk, |row, queued| {
            row.bind::<Text, _>(queued.trigger)
                .bind::<BigInt, _>(queued.alert)
                .bind::<Text, _>(queued.webhooks.as_str())
                .bind::<Nullable<Text>, _>(queued.standard.as_deref())
                .bind::<Nullable<Text>, _>(queued.slack.as_deref())
                .bind::<Timestamp, _>(now)
        });
        conn.execute(query).await?;
    }
    Ok(rows.len())
}

/// One change as `enqueue_to` queues it.
struct Queued {
    trigger: &'static str,
    alert: i64,
    webhooks: String,
    standard: Option<String>,
    slack: Option<String>,
}

/// How a fan-out on PostgreSQL treats changes another transaction holds.
#[derive(Clone, Copy)]
enum Turn {
    /// Pass over them (the worker: instances share the work).
    Skip,
    /// Wait for them (a reader: it must see them as deliveries).
    Wait,
}

/// Changes fanned out in one transaction at most: a few thousand delivery
/// rows, a short hold of SQLite's writer.
const FAN_OUT_BATCH: i64 = 500;

impl Db {
    /// Turns up to `FAN_OUT_BATCH` queued changes, oldest first, into
    /// their deliveries in one transaction, and answers whether it took a
    /// whole batch (more may be queued). The delivery worker runs it one
    /// batch at a time, so that its share of storage stays what its
    /// pacing allows however large the backlog.
    ///
    /// On PostgreSQL each batch is claimed `FOR UPDATE SKIP LOCKED`:
    /// instances fanning out at once take different changes, and a change
    /// becomes deliveries exactly once (its row goes in the same
    /// transaction).
    pub async fn fan_out(&self) -> Result<bool> {
        let (changes, _) = self.fan_out_batch(Turn::Skip).await?;
        Ok(is_whole(changes))
    }

    /// Turns every queued change into its deliveries, for a reader of
    /// deliveries, so that a change is visible as PENDING deliveries to
    /// anyone who looks once it has committed. On PostgreSQL it waits for
    /// changes another transaction is fanning out (the worker's, on any
    /// instance) instead of passing over them, so that what it then reads
    /// holds every change committed before it asked.
    pub async fn fan_out_before_reading(&self) -> Result<usize> {
        let mut made = 0;
        loop {
            let (changes, deliveries) = self.fan_out_batch(Turn::Wait).await?;
            made += deliveries;
            if !is_whole(changes) {
                return Ok(made);
            }
        }
    }

    /// One batch of up to `FAN_OUT_BATCH` changes in one transaction: the
    /// changes taken and the deliveries made.
    async fn fan_out_batch(&self, turn: Turn) -> Result<(usize, usize)> {
        // A read first: most rounds find nothing, and a write transaction
        // would take SQLite's writer from ingest for nothing.
        let queued: Option<i64> = self
            .read(async move |mut conn| {
                let first = webhook_outbox::table.select(webhook_outbox::id).limit(1);
                Ok(conn.first(first).await.optional()?)
            })
            .await?;
        if queued.is_none() {
            return Ok((0, 0));
        }
        self.transaction(async move |mut conn| fan_out_step(&mut conn, FAN_OUT_BATCH, turn).await)
            .await
    }
}

/// Whether a batch took all it could: more may be queued.
fn is_whole(changes: usize) -> bool {
    i64::try_from(changes).unwrap_or(i64::MAX) >= FAN_OUT_BATCH
}

/// One batch of `Db::fan_out`: the number of changes taken and of
/// deliveries made.
///
/// - An endpoint deleted since the change gets nothing; one whose format
///   changed gets the body in its new format when the change rendered it,
///   else the other one.
/// - ALERT_REPEATED goes to an endpoint at once for an alert's first
///   repeat, then at most once per `REPEAT_INTERVAL` (by the changes'
///   times): the latest one made is looked up on the partial index of
///   repeats, and those made in this batch are remembered. Two instances
///   fanning out repeats of one alert at once may each make one; at least
///   once is the contract.
async fn fan_out_step(conn: &mut Conn<'_>, limit: i64, turn: Turn) -> Result<(usize, usize)> {
    let pick = webhook_outbox::table
        .order(webhook_outbox::id)
        .limit(limit)
        .select(columns::<OutboxRow>());
    let rows: Vec<OutboxRow> = match conn {
        Conn::Postgres(c) => match turn {
            Turn::Skip => {
                diesel_async::RunQueryDsl::load(pick.for_update().skip_locked(), &mut **c).await?
            }
            Turn::Wait => diesel_async::RunQueryDsl::load(pick.for_update(), &mut **c).await?,
        },
        _ => conn.load(pick).await?,
    };
    let Some(oldest) = rows.iter().map(|r| r.created_at).min() else {
        return Ok((0, 0));
    };
    let named: Vec<Vec<i64>> = rows
        .iter()
        .map(|r| {
            r.webhooks
                .split(',')
                .filter_map(|id| id.parse().ok())
                .collect()
        })
        .collect();
    let mut hooks: Vec<i64> = named.iter().flatten().copied().collect();
    hooks.sort_unstable();
    hooks.dedup();
    let formats: HashMap<i64, WebhookFormat> = {
        let found: Vec<(i64, String)> = conn
            .load(
                webhooks::table
                    .filter(webhooks::id.eq_any(hooks.clone()))
                    .select((webhooks::id, webhooks::format)),
            )
            .await?;
        found
            .into_iter()
            .map(|(id, format)| (id, format.parse().unwrap_or(WebhookFormat::Standard)))
            .collect()
    };
    let repeated = WebhookTrigger::AlertRepeated.as_str();
    let repeats: Vec<(i64, i64)> = rows
        .iter()
        .zip(&named)
        .filter(|(row, _)| row.trigger == repeated)
        .flat_map(|(row, hooks)| hooks.iter().map(|hook| (*hook, row.alert_id)))
        .collect();
    let mut last_sent = if repeats.is_empty() {
        HashMap::new()
    } else {
        recent_repeats(conn, &repeats, oldest).await?
    };
    let mut made: Vec<(i64, &OutboxRow, String, &str)> = Vec::new();
    for (row, hooks) in rows.iter().zip(&named) {
        for hook in hooks {
            let Some(format) = formats.get(hook) else {
                continue;
            };
            if row.trigger == repeated {
                let key = (*hook, row.alert_id);
                if last_sent
                    .get(&key)
                    .is_some_and(|at| row.created_at - *at < REPEAT_INTERVAL)
                {
                    continue;
                }
                last_sent.insert(key, row.created_at);
            }
            let (first, second) = match format {
                WebhookFormat::Standard => (&row.standard, &row.slack),
                WebhookFormat::Slack => (&row.slack, &row.standard),
            };
            let Some(text) = first.as_deref().or(second.as_deref()) else {
                continue;
            };
            made.push((*hook, row, message_id(), text));
        }
    }
    for range in shaped_chunks(made.len()) {
        let chunk = &made[range];
        let query = Statement::new(
            "INSERT INTO webhook_deliveries (webhook_id, \"trigger\", alert_id, status, \
             message_id, body, attempts, created_at, next_attempt_at) VALUES ",
        )
        .rows(chunk, |out, (hook, row, id, text)| {
            out.bind::<BigInt, _>(*hook)
                .bind::<Nullable<Text>, _>(Some(row.trigger.as_str()))
                .bind::<Nullable<BigInt>, _>(Some(row.alert_id))
                .bind::<Text, _>(DeliveryStatus::Pending.as_str())
                .bind::<Text, _>(id.as_str())
                .bind::<Text, _>(*text)
                .bind::<BigInt, _>(0_i64)
                .bind::<Timestamp, _>(row.created_at)
                .bind::<Nullable<Timestamp>, _>(Some(row.created_at))
        });
        conn.execute(query).await?;
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        conn.execute(diesel::delete(
            webhook_outbox::table.filter(webhook_outbox::id.eq_any(chunk.to_vec())),
        ))
        .await?;
    }
    Ok((rows.len(), made.len()))
}

/// The latest ALERT_REPEATED delivery made to each (webhook, alert) among
/// `pairs` less than `REPEAT_INTERVAL` before `since`.
async fn recent_repeats(
    conn: &mut Conn<'_>,
    pairs: &[(i64, i64)],
    since: NaiveDateTime,
) -> Result<HashMap<(i64, i64), NaiveDateTime>> {
    let since = since - REPEAT_INTERVAL;
    let hooks: Vec<i64> = {
        let mut h: Vec<i64> = pairs.iter().map(|(h, _)| *h).collect();
        h.sort_unstable();
        h.dedup();
        h
    };
    let mut alerts: Vec<i64> = pairs.iter().map(|(_, a)| *a).collect();
    alerts.sort_unstable();
    alerts.dedup();
    let mut recent: HashMap<(i64, i64), NaiveDateTime> = HashMap::new();
    for chunk in alerts.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<(i64, Option<i64>, NaiveDateTime)> = conn
            .load(repeats_since(hooks.clone(), chunk.to_vec(), since))
            .await?;
        for (hook, alert, at) in rows {
            let Some(alert) = alert else { continue };
            let latest = recent.entry((hook, alert)).or_insert(at);
            *latest = (*latest).max(at);
        }
    }
    Ok(recent)
}

type RepeatsSince = dsl::Select<
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
    (
        webhook_deliveries::webhook_id,
        webhook_deliveries::alert_id,
        webhook_deliveries::created_at,
    ),
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
        .select((
            webhook_deliveries::webhook_id,
            webhook_deliveries::alert_id,
            webhook_deliveries::created_at,
        ))
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

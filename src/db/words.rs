//! SQLite's word indexes (`events_fts`, `alerts_fts`), filled behind ingest
//! rather than inside it.
//!
//! FTS5 writes a new segment for every transaction that touches it and
//! merges segments as they pile up. Group commit makes ingest transactions
//! small and frequent, so indexing each one's words cost ingest about a
//! fifth of its rate; the same rows indexed a second at a time, in
//! transactions of their own, cost a small fraction of that. A search
//! first indexes whatever is newer than the index (`Db::index_words`), so
//! it never misses a row however far behind the index is.
//!
//! Alerts have an index of their own, keyed by alert id, holding the words
//! of the event that raised each: most events raise no alert, so an alert
//! search driven by the events' index would pass over every matching event
//! that raised none.
//!
//! PostgreSQL needs none of this: its words are a stored column of
//! `events` with a GIN index, written with the row.

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;

use super::sql::Statement;
use super::{Conn, Db};
use crate::error::Result;

/// Ids indexed per transaction: ingest waits while one runs, so a step is
/// a budget of time, not of rows. Each index's step halves after a step
/// that took longer than `STEP_SLOW` and doubles after one quicker than
/// `STEP_QUICK`, within these bounds, so long descriptions (up to 10,000
/// characters each) make for short steps and a large backlog (the first
/// start after a big import) is worked off a few milliseconds at a time.
const STEP_MIN: i64 = 100;
const STEP_MAX: i64 = 5_000;
const STEP_SLOW: std::time::Duration = std::time::Duration::from_millis(20);
const STEP_QUICK: std::time::Duration = std::time::Duration::from_millis(5);

/// The current step of each index (`Index as usize`).
static STEPS: [std::sync::atomic::AtomicI64; 2] = [
    std::sync::atomic::AtomicI64::new(1_000),
    std::sync::atomic::AtomicI64::new(1_000),
];

/// One word index and the rows it holds the words of.
#[derive(Clone, Copy, Debug)]
enum Index {
    Events,
    Alerts,
}

impl Index {
    const ALL: [Index; 2] = [Index::Events, Index::Alerts];

    /// Its row in `words_indexed`.
    fn name(self) -> &'static str {
        match self {
            Index::Events => "events",
            Index::Alerts => "alerts",
        }
    }

    /// The rows it indexes: (rowid, text), from which the fill selects.
    fn rows(self) -> &'static str {
        match self {
            Index::Events => {
                "SELECT id AS id, source || ' ' || event_type || ' ' || description AS body \
                 FROM events"
            }
            Index::Alerts => {
                "SELECT a.id AS id, e.source || ' ' || e.event_type || ' ' || e.description AS body \
                 FROM alerts a JOIN events e ON e.id = a.event_id"
            }
        }
    }

    fn id_column(self) -> &'static str {
        match self {
            Index::Events => "id",
            Index::Alerts => "a.id",
        }
    }
}

#[derive(QueryableByName)]
struct Mark {
    #[diesel(sql_type = BigInt)]
    through: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    newest: Option<i64>,
}

/// The newest id the index holds, and the newest id stored.
async fn marks(conn: &mut Conn<'_>, index: Index) -> Result<(i64, Option<i64>)> {
    let table = index.name();
    let query = Statement::new(format!(
        "SELECT through, (SELECT max(id) FROM {table}) AS newest FROM words_indexed WHERE list = "
    ))
    .bind::<Text, _>(table);
    let mark: Vec<Mark> = conn.load(query).await?;
    Ok(mark
        .first()
        .map(|m| (m.through, m.newest))
        .unwrap_or((0, None)))
}

/// Indexes the rows after the index's mark, up to `target` and `step` ids
/// on, inside the caller's write transaction; true when more remain.
/// Ids only grow (retention never deletes the newest row) and the write
/// lock is held, so every id up to the newest is committed or never will be.
async fn index_chunk(conn: &mut Conn<'_>, index: Index, target: i64, step: i64) -> Result<bool> {
    let (through, newest) = marks(conn, index).await?;
    let Some(newest) = newest.map(|n| n.min(target)).filter(|&n| n > through) else {
        return Ok(false);
    };
    let id = index.id_column();
    let upto = newest.min(through.saturating_add(step));
    let fill = Statement::new(format!(
        "INSERT INTO {}_fts (rowid, body) {} WHERE {id} > ",
        index.name(),
        index.rows()
    ))
    .bind::<BigInt, _>(through)
    .sql(format!(" AND {id} <= "))
    .bind::<BigInt, _>(upto);
    conn.execute(fill).await?;
    let mark = Statement::new("UPDATE words_indexed SET through = ")
        .bind::<BigInt, _>(upto)
        .sql(" WHERE list = ")
        .bind::<Text, _>(index.name());
    conn.execute(mark).await?;
    Ok(upto < newest)
}

impl Db {
    /// Brings SQLite's word indexes up to the newest stored event and
    /// alert; a no-op on PostgreSQL and when nothing is new (a read, no
    /// write lock).
    ///
    /// Each index goes up to the newest row when it starts, no further:
    /// ingest that outpaces the indexer cannot keep a search waiting.
    pub async fn index_words(&self) -> Result<()> {
        if self.backend_name() == "postgres" {
            return Ok(());
        }
        for index in Index::ALL {
            let (through, newest) = self
                .read_page(async move |mut conn| marks(&mut conn, index).await)
                .await?;
            let Some(target) = newest.filter(|&n| n > through) else {
                continue;
            };
            let step = &STEPS[index as usize];
            loop {
                let size = step.load(std::sync::atomic::Ordering::Relaxed);
                // Timed inside the transaction: the wait for the write
                // lock is ingest's time, not the step's.
                let (more, took) = self
                    .transaction(async move |mut conn| {
                        let began = std::time::Instant::now();
                        let more = index_chunk(&mut conn, index, target, size).await?;
                        Ok((more, began.elapsed()))
                    })
                    .await?;
                let next = if took > STEP_SLOW {
                    (size / 2).max(STEP_MIN)
                } else if took < STEP_QUICK {
                    (size * 2).min(STEP_MAX)
                } else {
                    size
                };
                step.store(next, std::sync::atomic::Ordering::Relaxed);
                if !more {
                    break;
                }
            }
        }
        Ok(())
    }
}

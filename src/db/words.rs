//! SQLite's word indexes (`events_fts`, `alerts_fts`), filled and merged
//! behind ingest rather than inside it.
//!
//! FTS5 writes a new segment for every transaction that touches it and
//! merges segments as they pile up. Group commit makes ingest transactions
//! small and frequent, so indexing each one's words cost ingest about a
//! fifth of its rate; the same rows indexed a second at a time, in
//! transactions of their own, cost a small fraction of that. A search
//! first indexes whatever is newer than the index (`Db::index_words`), so
//! it never misses a row however far behind the index is.
//!
//! Merging is ours too. FTS5's automatic merge runs in the commit of
//! whatever transaction wrote to the index and sizes its work by what that
//! transaction wrote, deletes included, while ingest waits for the write
//! lock. Its budget counts pages written, not pages read, and a merge
//! drops deleted rows without writing them: FTS5's merge-on-delete
//! (`deletemerge`) picks a level once a tenth of its rows are deleted,
//! and retention, which deletes the oldest rows first, left whole levels
//! dead before their turn, so one commit read a level of index to write
//! next to nothing. The indexes therefore have `automerge` and
//! `deletemerge` off, and the background indexer (`Db::keep_words`) merges
//! with FTS5's `merge` command, a few hundred pages at a time: inside each
//! fill step's transaction (as automerge did, one commit per step) and
//! then in steps of its own (`Db::merge_words`, paced by the caller) until
//! nothing is left, each kind of step timed and sized on its own. A level
//! is merged when `usermerge` (4) segments pile up on it, as before; the
//! words of purged rows leave the file only when their segment is merged
//! into the next level.
//!
//! Alerts have an index of their own, keyed by alert id, holding the words
//! of the event that raised each: most events raise no alert, so an alert
//! search driven by the events' index would pass over every matching event
//! that raised none.
//!
//! PostgreSQL needs none of this: its words are a stored column of
//! `events` with a GIN index, written with the row.

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use diesel::sql_types::{BigInt, Text};
use diesel::QueryableByName;

use super::sql::Statement;
use super::{Conn, Db, Held};
use crate::error::Result;

/// A step's size is a budget of time, not of rows or pages: ingest waits
/// while one runs. Each kind of step, for each index, halves after a step
/// that held the database longer than `STEP_SLOW` and doubles after one
/// quicker than `STEP_QUICK`, within its bounds, so long descriptions (up
/// to 10,000 characters each) make for short steps and a large backlog
/// (the first start after a big import) is worked off a few milliseconds
/// at a time.
const STEP_SLOW: Duration = Duration::from_millis(20);
const STEP_QUICK: Duration = Duration::from_millis(5);

/// Ids indexed per fill step.
const FILL: Bounds = Bounds {
    min: 100,
    max: 5_000,
};

/// Leaf pages written per merge step (FTS5's `merge` argument; a page is
/// about 4 KiB). A merge also reads the pages it drops, so a level whose
/// rows are mostly deleted takes longer per page written: the timing
/// finds that.
const MERGE: Bounds = Bounds { min: 8, max: 256 };

struct Bounds {
    min: i64,
    max: i64,
}

impl Bounds {
    /// The next step's size after one of `size` that held the database
    /// for `took`.
    fn next(&self, size: i64, took: Duration) -> i64 {
        if took > STEP_SLOW {
            (size / 2).max(self.min)
        } else if took < STEP_QUICK {
            (size * 2).min(self.max)
        } else {
            size
        }
    }
}

/// The current size of each index's steps (`Index as usize`).
static FILL_SIZE: [AtomicI64; 2] = [AtomicI64::new(1_000), AtomicI64::new(1_000)];
static MERGE_SIZE: [AtomicI64; 2] = [AtomicI64::new(64), AtomicI64::new(64)];

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

#[derive(QueryableByName)]
struct Changes {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows changed on this connection so far (SQLite's `total_changes()`).
async fn total_changes(conn: &mut Conn<'_>) -> Result<i64> {
    let rows: Vec<Changes> = conn
        .load(Statement::new("SELECT total_changes() AS n"))
        .await?;
    Ok(rows.first().map_or(0, |c| c.n))
}

/// One step of FTS5's merge work on `index`, writing at most `pages` leaf
/// pages; whether there was any to do. The command itself counts as one
/// change, so FTS5 wrote nothing unless the count moved by two or more.
async fn merge_chunk(conn: &mut Conn<'_>, index: Index, pages: i64) -> Result<bool> {
    let table = format!("{}_fts", index.name());
    let before = total_changes(conn).await?;
    let merge = Statement::new(format!(
        "INSERT INTO {table} ({table}, rank) VALUES ('merge', "
    ))
    .bind::<BigInt, _>(pages)
    .sql(")");
    conn.execute(merge).await?;
    Ok(total_changes(conn).await? - before >= 2)
}

/// A merge step taken inside another step's transaction.
struct Merge {
    merged: bool,
    took: Duration,
}

/// One step of merge work on `index` inside a fill step's transaction,
/// timed on its own so that each kind of step is sized by its own time.
///
/// It runs inside a savepoint. Opening one makes FTS5 write out the rows
/// the fill just gave it (work that belongs to the fill's time, and that
/// would otherwise count as a merge that did something), and a merge that
/// fails half-way is undone to it: the merge statement has no statement
/// journal of its own, and index pages it wrote before failing would
/// commit with the fill and break every later write to the index. The
/// fill itself still commits; the merge is retried by a later step.
async fn merge_beside(conn: &mut Conn<'_>, index: Index, pages: i64) -> Result<Option<Merge>> {
    conn.batch_execute("SAVEPOINT word_merge").await?;
    let began = std::time::Instant::now();
    match merge_chunk(conn, index, pages).await {
        Ok(merged) => {
            conn.batch_execute("RELEASE word_merge").await?;
            Ok(Some(Merge {
                merged,
                took: began.elapsed(),
            }))
        }
        Err(e) => {
            tracing::warn!(index = index.name(), error = %e, "cannot merge the word index");
            conn.batch_execute("ROLLBACK TO word_merge; RELEASE word_merge")
                .await?;
            Ok(None)
        }
    }
}

/// Which index `Db::merge_words` tries first: they take turns, so one with
/// a long backlog does not starve the other of steps of their own.
static MERGE_TURN: AtomicUsize = AtomicUsize::new(0);

impl Db {
    /// Brings SQLite's events word index up to the newest stored event;
    /// a no-op on PostgreSQL and when nothing is new (a read, no write
    /// lock). For a search, which must not miss a row: it leaves the
    /// merging to the background indexer.
    ///
    /// The index goes up to the newest row when it starts, no further:
    /// ingest that outpaces the indexer cannot keep a search waiting.
    pub async fn index_event_words(&self) -> Result<()> {
        self.index_for_search(Index::Events).await
    }

    /// `index_event_words` for the alerts' word index.
    pub async fn index_alert_words(&self) -> Result<()> {
        self.index_for_search(Index::Alerts).await
    }

    async fn index_for_search(&self, index: Index) -> Result<()> {
        if self.backend_name() == "postgres" {
            return Ok(());
        }
        self.fill(index, false).await
    }

    /// Both word indexes brought up to date for the background indexer:
    /// each fill step also takes a step of merge work in its transaction,
    /// as FTS5's automerge did (a commit, and its fsync, less per step;
    /// ingest handed the lock once instead of twice). An index that fails
    /// is logged and does not keep the other from its turn; the call fails
    /// if any did.
    pub async fn keep_words(&self) -> Result<()> {
        if self.backend_name() == "postgres" {
            return Ok(());
        }
        let mut failed = None;
        for index in Index::ALL {
            if let Err(e) = self.fill(index, true).await {
                tracing::warn!(index = index.name(), error = %e, "cannot fill the word index");
                failed.get_or_insert(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// One step of merge work, in a transaction of its own, on an index
    /// that has any: how long it held the database, or `None` when neither
    /// had anything to merge. A step of the fill leaves a segment behind
    /// and a retention step leaves deleted rows; FTS5 merges neither by
    /// itself (see the module's comment), and left unmerged, 16 segments on
    /// one level make FTS5 merge that whole level in one commit. The caller
    /// paces these steps. An index that fails is logged and the other still
    /// gets its step; the call fails only when neither merged and one
    /// failed.
    pub async fn merge_words(&self) -> Result<Option<Duration>> {
        if self.backend_name() == "postgres" {
            return Ok(None);
        }
        let first = MERGE_TURN.fetch_add(1, Ordering::Relaxed) % Index::ALL.len();
        let mut failed = None;
        for turn in 0..Index::ALL.len() {
            let index = Index::ALL[(first + turn) % Index::ALL.len()];
            let size = &MERGE_SIZE[index as usize];
            let pages = size.load(Ordering::Relaxed);
            let step = self
                .held(async move |mut conn| merge_chunk(&mut conn, index, pages).await)
                .await;
            match step {
                Ok(Held { value: true, held }) => {
                    size.store(MERGE.next(pages, held), Ordering::Relaxed);
                    return Ok(Some(held));
                }
                // A step with nothing to merge is quick whatever the
                // size: it says nothing about the next one's.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(index = index.name(), error = %e, "cannot merge the word index");
                    failed.get_or_insert(e);
                }
            }
        }
        failed.map_or(Ok(None), Err)
    }

    /// Fills `index` up to the newest row stored when it starts, in steps
    /// sized by `FILL_SIZE`; with `merging`, each step merges too.
    async fn fill(&self, index: Index, merging: bool) -> Result<()> {
        let (through, newest) = self
            .read_page(async move |mut conn| marks(&mut conn, index).await)
            .await?;
        let Some(target) = newest.filter(|&n| n > through) else {
            return Ok(());
        };
        let size = &FILL_SIZE[index as usize];
        let merge_size = &MERGE_SIZE[index as usize];
        loop {
            let step = size.load(Ordering::Relaxed);
            let pages = merging.then(|| merge_size.load(Ordering::Relaxed));
            let Held {
                value: (more, merge),
                held,
            } = self
                .held(async move |mut conn| {
                    let more = index_chunk(&mut conn, index, target, step).await?;
                    let merge = match pages {
                        Some(pages) => merge_beside(&mut conn, index, pages).await?,
                        None => None,
                    };
                    Ok((more, merge))
                })
                .await?;
            let merge_took = merge.as_ref().map_or(Duration::ZERO, |m| m.took);
            size.store(
                FILL.next(step, held.saturating_sub(merge_took)),
                Ordering::Relaxed,
            );
            if let (Some(pages), Some(Merge { merged: true, took })) = (pages, merge) {
                merge_size.store(MERGE.next(pages, took), Ordering::Relaxed);
            }
            if !more {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, RunQueryDsl, SqliteConnection};

    use super::{index_chunk, merge_beside, Conn, Index};

    fn exec(conn: &mut SqliteConnection, sql: &str) {
        conn.batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn count(conn: &mut SqliteConnection, sql: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let rows: Vec<N> = diesel::sql_query(sql).load(conn).unwrap();
        rows[0].n
    }

    /// A LOW event with id `id` and description `text`.
    fn event(conn: &mut SqliteConnection, id: i64, text: &str) {
        exec(
            conn,
            &format!(
                "INSERT INTO events (id, source, event_type, severity, description, created_at) \
                 VALUES ({id}, 'fw', 'Scan', 'LOW', '{text}', '2026-12-01 00:00:00')"
            ),
        );
    }

    /// Events with `word` in them, indexed in a transaction of their own:
    /// one more segment.
    async fn segment(conn: &mut SqliteConnection, from: i64, word: &str) {
        for id in from..from + 300 {
            event(conn, id, &format!("{word} x{id} y{} z{}", id * 7, id * 13));
        }
        exec(conn, "BEGIN");
        index_chunk(&mut Conn::Sqlite(conn), Index::Events, from + 299, 1_000)
            .await
            .unwrap();
        exec(conn, "COMMIT");
    }

    /// A merge that fails half-way through a fill step (here: the file
    /// may not grow) leaves nothing half-stored: the index stays whole,
    /// its mark agrees with what it holds, and the work is done later.
    #[test]
    fn a_merge_failing_half_way_leaves_the_index_whole() {
        futures_util::FutureExt::now_or_never(merge_failing_half_way())
            .expect("SQLite work completes in place");
    }

    async fn merge_failing_half_way() {
        super::super::sqlite_plan_stability();
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        super::super::migrate::apply_sqlite(&mut conn).unwrap();
        for (n, word) in ["alpha", "bravo", "charlie", "delta", "echo"]
            .iter()
            .enumerate()
        {
            segment(&mut conn, 1 + 300 * n as i64, word).await;
        }
        for id in 1501..=1550 {
            event(&mut conn, id, &format!("foxtrot {id}"));
        }
        let pages = count(&mut conn, "SELECT page_count AS n FROM pragma_page_count()");
        exec(&mut conn, &format!("PRAGMA max_page_count = {}", pages + 1));
        exec(&mut conn, "BEGIN IMMEDIATE");
        let step = async {
            let c = &mut Conn::Sqlite(&mut conn);
            index_chunk(c, Index::Events, 1550, 1_000).await?;
            merge_beside(c, Index::Events, 1_000).await
        }
        .await;
        // Either the merge alone was undone and the fill commits, or
        // SQLite ended the whole transaction and the fill is redone.
        let committed = match step {
            Ok(merge) => {
                assert!(merge.is_none(), "the merge cannot have finished");
                exec(&mut conn, "COMMIT");
                true
            }
            Err(_) => {
                let _ = conn.batch_execute("ROLLBACK");
                false
            }
        };
        exec(&mut conn, "PRAGMA max_page_count = 1000000");
        exec(
            &mut conn,
            "INSERT INTO events_fts (events_fts) VALUES ('integrity-check')",
        );
        let through = count(
            &mut conn,
            "SELECT through AS n FROM words_indexed WHERE list = 'events'",
        );
        let foxtrot = count(
            &mut conn,
            "SELECT count(*) AS n FROM events_fts WHERE events_fts MATCH 'foxtrot'",
        );
        assert_eq!(
            (through, foxtrot),
            if committed { (1550, 50) } else { (1500, 0) }
        );
        exec(&mut conn, "BEGIN IMMEDIATE");
        let c = &mut Conn::Sqlite(&mut conn);
        index_chunk(c, Index::Events, 1550, 1_000).await.unwrap();
        let merge = merge_beside(c, Index::Events, 1_000).await.unwrap();
        exec(&mut conn, "COMMIT");
        assert!(merge.is_some_and(|m| m.merged), "the merge is done later");
        exec(
            &mut conn,
            "INSERT INTO events_fts (events_fts) VALUES ('integrity-check')",
        );
        for word in ["alpha", "echo", "foxtrot"] {
            let found = count(
                &mut conn,
                &format!("SELECT count(*) AS n FROM events_fts WHERE events_fts MATCH '{word}'"),
            );
            assert_eq!(found, if word == "foxtrot" { 50 } else { 300 }, "{word}");
        }
    }
}

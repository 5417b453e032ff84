//! SQLite's word indexes (`events_fts`, `alerts_fts`), kept in a database
//! file of their own beside the service's (`<database>-words`), filled and
//! merged behind ingest rather than inside it.
//!
//! FTS5 writes a new segment for every transaction that touches it and
//! merges segments as they pile up. Group commit makes ingest transactions
//! small and frequent, so indexing each one's words cost ingest about a
//! fifth of its rate; the same rows indexed a second at a time, in
//! transactions of their own, cost a small fraction of that. A search
//! first indexes whatever is newer than the index (`Db::index_event_words`),
//! so it never misses a row however far behind the index is.
//!
//! The file of their own is for SQLite's one write lock per file: with
//! the indexes beside the events, every fill and merge step held the lock
//! ingest commits under, and ingest's slowest requests were the ones that
//! waited for a step. The word file has one writer, the connection here:
//! the word file is its main database and the service's is attached
//! read-only as `tw`, so its `BEGIN IMMEDIATE` takes the word file's write
//! lock and only a read snapshot of the service's. The pool's connections
//! attach the word file read-only (as `words`) for searches, so their own
//! `BEGIN IMMEDIATE`, which SQLite takes on every attached file it may
//! write, never waits for the indexer either. The ingest writer does not
//! attach it at all. Names are not qualified: each table lives in one file.
//!
//! A trigger cannot write to another file, so retention's deletes queue
//! the ids they drop (`words_dropped`, in the service's file); the indexer
//! drops their words (`Db::keep_words`) and then the queue entries
//! (`Db::forget_dropped_words`). Until then a search's match on a purged row
//! finds no row to join and is passed over.
//!
//! The file is a cache of what the service's file holds and can always be
//! rebuilt from it: it is not in backups, and it is emptied and filled
//! again when it does not match the database beside it (another schema
//! version, another owner key: a restored backup gets a key of its own, or
//! a mark past the newest row).
//!
//! Merging is ours too. FTS5's automatic merge runs in the commit of
//! whatever transaction wrote to the index and sizes its work by what that
//! transaction wrote, deletes included. Its budget counts pages written,
//! not pages read, and a merge drops deleted rows without writing them:
//! FTS5's merge-on-delete (`deletemerge`) picks a level once a tenth of its
//! rows are deleted, and retention, which deletes the oldest rows first,
//! left whole levels dead before their turn, so one commit read a level of
//! index to write next to nothing. The indexes therefore have `automerge`
//! and `deletemerge` off, and the background indexer merges with FTS5's
//! `merge` command, a few hundred pages at a time: inside each fill step's
//! transaction (as automerge did, one commit per step) and then in steps of
//! its own (`Db::merge_words`, paced by the caller) until nothing is left,
//! each kind of step timed and sized on its own. A level is merged when
//! `usermerge` (4) segments pile up on it; the words of purged rows leave
//! the file when their segment is merged into the next level.
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

use diesel::connection::SimpleConnection;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryResult, QueryableByName, RunQueryDsl};

use super::sql::Statement;
use super::{Conn, Db, Held, Work};
use crate::error::{Error, Result};

/// A step's size is a budget of time, not of rows or pages: a search that
/// fills its index waits while one runs, and a step forgetting queue
/// entries holds the lock ingest commits under. Each kind of step, for each
/// index, halves after a step that held its file longer than `STEP_SLOW`
/// and doubles after one
/// quicker than `STEP_QUICK`, within its bounds, so long descriptions (up
/// to 10,000 characters each) make for short steps and a large backlog
/// (the first start after a big import) is worked off a few milliseconds
/// at a time.
const STEP_SLOW: Duration = Duration::from_millis(20);
const STEP_QUICK: Duration = Duration::from_millis(5);

/// Queue entries (rows retention deleted) whose words are dropped per
/// step, and forgotten per step once dropped.
const DRAIN: Bounds = Bounds {
    min: 100,
    max: 5_000,
};

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
static DRAIN_SIZE: AtomicI64 = AtomicI64::new(1_000);
static FORGET_SIZE: AtomicI64 = AtomicI64::new(1_000);

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

/// The word file's layout (`PRAGMA user_version`); a file of any other
/// layout is emptied and rebuilt.
const LAYOUT: i64 = 1;

/// The word file beside the database at `db_path`.
pub(super) fn path_of(db_path: &str) -> String {
    format!("{db_path}-words")
}

/// `path` as a read-only SQLite URI in an SQL string literal, for `ATTACH`.
/// An absolute path goes after an empty authority (`file://` then the
/// path): after `file:` alone, a path starting `//` would be read as an
/// authority.
fn read_only_uri(path: &str) -> String {
    let mut uri = String::from(if path.starts_with('/') {
        "'file://"
    } else {
        "'file:"
    });
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            '\'' => uri.push_str("''"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro'");
    uri
}

/// Attaches the word file of the database at `db_path` read-only, as
/// `words`, to one of the pool's connections (see the module's comment).
///
/// The word file is made when the service starts; it must not be deleted
/// while the service runs (a new connection could not attach it).
pub(super) fn attach_read_only(conn: &mut SqliteConnection, db_path: &str) -> anyhow::Result<()> {
    let path = path_of(db_path);
    conn.batch_execute(&format!("ATTACH {} AS words", read_only_uri(&path)))
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the word index file {path:?} ({e}); it is made at start: \
                 restart threatwatch if it was deleted"
            )
        })
}

/// The word file's tables, made in `schema`. Its queue mark starts past
/// every id already queued: those rows are gone and will not be indexed.
fn create_sql(schema: &str) -> String {
    let fts = "fts5(body, content = '', contentless_delete = 1, tokenize = 'unicode61')";
    format!(
        "CREATE VIRTUAL TABLE {schema}.events_fts USING {fts};
CREATE VIRTUAL TABLE {schema}.alerts_fts USING {fts};
INSERT INTO {schema}.events_fts (events_fts, rank) VALUES ('automerge', 0);
INSERT INTO {schema}.alerts_fts (alerts_fts, rank) VALUES ('automerge', 0);
INSERT INTO {schema}.events_fts (events_fts, rank) VALUES ('deletemerge', 0);
INSERT INTO {schema}.alerts_fts (alerts_fts, rank) VALUES ('deletemerge', 0);
CREATE TABLE {schema}.words_indexed (
    list    TEXT PRIMARY KEY NOT NULL CHECK (list IN ('events', 'alerts')),
    through BIGINT NOT NULL
);
INSERT INTO {schema}.words_indexed (list, through) VALUES ('events', 0), ('alerts', 0);
CREATE TABLE {schema}.words_state (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    owner    TEXT NOT NULL,
    drained  BIGINT NOT NULL
);
INSERT INTO {schema}.words_state (only_row, owner, drained)
SELECT 1, key, (SELECT coalesce(max(seq), 0) FROM words_dropped) FROM words_owner;
PRAGMA {schema}.user_version = {LAYOUT};"
    )
}

fn drop_sql(schema: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {schema}.events_fts;
DROP TABLE IF EXISTS {schema}.alerts_fts;
DROP TABLE IF EXISTS {schema}.words_indexed;
DROP TABLE IF EXISTS {schema}.words_state;"
    )
}

#[derive(QueryableByName)]
struct Layout {
    #[diesel(sql_type = BigInt)]
    user_version: i64,
}

#[derive(QueryableByName)]
struct Fits {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    fits: bool,
}

/// Whether the word tables in `schema`, of the current layout, are for the
/// database beside them: all there, built for this database's owner key,
/// and no mark past what
/// the database holds: not past the newest row (ids only grow: retention
/// never deletes the newest row), nor past the newest queued delete (the
/// database was rolled back under the same key, by a copy of its file or
/// a lost commit, and rows whose words were dropped may be back).
fn fits(conn: &mut SqliteConnection, schema: &str) -> QueryResult<bool> {
    let fits: Fits = diesel::sql_query(format!(
        "SELECT coalesce((SELECT count(*) FROM {schema}.sqlite_master WHERE name IN \
             ('events_fts', 'alerts_fts', 'words_indexed', 'words_state')) = 4 \
           AND (SELECT owner FROM {schema}.words_state) = (SELECT key FROM words_owner) \
           AND (SELECT through FROM {schema}.words_indexed WHERE list = 'events') \
               <= (SELECT coalesce(max(id), 0) FROM events) \
           AND (SELECT through FROM {schema}.words_indexed WHERE list = 'alerts') \
               <= (SELECT coalesce(max(id), 0) FROM alerts) \
           AND (SELECT drained FROM {schema}.words_state) <= coalesce((SELECT seq FROM \
               sqlite_sequence WHERE name = 'words_dropped'), 0), 0) AS fits"
    ))
    .get_result(conn)?;
    Ok(fits.fits)
}

/// Makes the word tables in `schema` fit the database beside them:
/// created in a new file, emptied and made again in one that does not
/// fit (the background indexer then fills them from the start).
pub(super) fn prepare(conn: &mut SqliteConnection, schema: &str) -> QueryResult<()> {
    conn.immediate_transaction(|c| {
        let layout: Layout =
            diesel::sql_query(format!("PRAGMA {schema}.user_version")).get_result(c)?;
        // A file missing a table fails the check too: it is rebuilt.
        if layout.user_version == LAYOUT && fits(c, schema).unwrap_or(false) {
            return Ok(());
        }
        if layout.user_version != 0 {
            tracing::warn!(
                "the word index file does not match the database beside it; rebuilding it"
            );
        }
        remake(c, schema)
    })
}

/// Drops the word tables in `schema` and makes them again, empty, inside
/// the caller's transaction.
fn remake(conn: &mut SqliteConnection, schema: &str) -> QueryResult<()> {
    conn.batch_execute(&drop_sql(schema))?;
    conn.batch_execute(&create_sql(schema))
}

/// Whether a step or the opening of the word file failed on the file's
/// contents (not a database, malformed, a table gone) rather than on its
/// surroundings (a lock, a permission, the disk), which a later try may
/// find fixed.
fn damaged(e: &anyhow::Error) -> bool {
    use diesel::result::Error as E;
    e.chain().any(|cause| match cause.downcast_ref::<E>() {
        Some(E::DatabaseError(_, info)) => {
            let message = info.message();
            message.contains("not a database")
                || message.contains("malformed")
                || message.contains("no such table")
        }
        _ => false,
    })
}

/// A migrated database in memory with a word file (in memory too)
/// attached as `words`, under the settings the service runs with: every
/// table the service's queries name, for tests of plans and steps.
#[cfg(test)]
pub(super) fn migrated_with_words() -> SqliteConnection {
    super::sqlite_plan_stability();
    let mut conn = SqliteConnection::establish(":memory:").expect("an in-memory database");
    super::migrate::apply_sqlite(&mut conn).expect("migrations apply");
    conn.batch_execute("ATTACH ':memory:' AS words")
        .expect("an in-memory word file");
    prepare(&mut conn, "words").expect("the word tables");
    conn
}

/// The word file's one writer: the file is its main database and the
/// service's is attached read-only as `tw` (see the module's comment).
pub(super) struct WordFile {
    conn: SqliteConnection,
    db_path: String,
}

/// The word file's settings. `synchronous = FULL`, as a cache might not
/// need: queue entries are forgotten on the strength of its mark of what
/// was dropped, which a lost commit would take back, leaving words of
/// purged rows in the index for good. It commits about once a second.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA temp_store = MEMORY;
PRAGMA mmap_size = 0;
PRAGMA busy_timeout = 10000;";

impl WordFile {
    /// Opens (creating it if need be) the word file of the database at
    /// `db_path`, which must be migrated, and makes it fit that database.
    ///
    /// A damaged word file (not a database, or malformed) is deleted and
    /// made again: it holds nothing the database does not. Any other
    /// failure is the caller's: the file may be in use by a running
    /// service.
    pub(super) fn open(db_path: &str) -> anyhow::Result<Self> {
        let conn = match Self::connect(db_path) {
            Err(e) if damaged(&e) => {
                let path = path_of(db_path);
                tracing::warn!(error = %e, file = %path, "the word index file is damaged; rebuilding it");
                for file in [path.clone(), format!("{path}-wal"), format!("{path}-shm")] {
                    match std::fs::remove_file(&file) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            anyhow::bail!("cannot delete the damaged word index file {file:?}: {e}")
                        }
                        _ => {}
                    }
                }
                Self::connect(db_path)?
            }
            opened => opened?,
        };
        Ok(Self {
            conn,
            db_path: db_path.to_string(),
        })
    }

    fn connect(db_path: &str) -> anyhow::Result<SqliteConnection> {
        let path = path_of(db_path);
        let mut conn = SqliteConnection::establish(&path)
            .map_err(|e| anyhow::anyhow!("cannot open the word index file {path:?}: {e}"))?;
        conn.batch_execute(PRAGMAS)?;
        conn.batch_execute(&format!("ATTACH {} AS tw", read_only_uri(db_path)))?;
        prepare(&mut conn, "main")?;
        Ok(conn)
    }

    /// Empties the word tables and makes them again, to be filled from
    /// the start, after a step found them damaged.
    fn rebuild(&mut self) -> Result<()> {
        tracing::warn!("the word index file is damaged; rebuilding it");
        self.conn.immediate_transaction(|c| remake(c, "main"))?;
        Ok(())
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction on the word file: its
    /// write lock, and a read snapshot of the service's file. A connection
    /// that a failed ROLLBACK left broken is replaced first. A step that
    /// finds the file damaged fails, and leaves the tables rebuilt for the
    /// next: every search fills what it needs first, so none misses a row
    /// meanwhile.
    pub(super) fn step<R>(
        &mut self,
        work: impl FnOnce(&mut SqliteConnection) -> Result<R>,
    ) -> Result<R> {
        let result = self.transaction(work);
        if let Err(Error::Internal(e)) = &result {
            if damaged(e) {
                if let Err(again) = self.rebuild() {
                    tracing::warn!(error = %again, "cannot rebuild the word index file");
                }
            }
        }
        result
    }

    fn transaction<R>(
        &mut self,
        work: impl FnOnce(&mut SqliteConnection) -> Result<R>,
    ) -> Result<R> {
        let db_path = &self.db_path;
        super::immediate_transaction(&mut self.conn, "the word index file's", work, || {
            Self::connect(db_path)
        })
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
/// on, inside the caller's write transaction on the word file; true when
/// more remain. Ids only grow (retention never deletes the newest row), so
/// every id up to the newest in the transaction's snapshot of the
/// service's file is in that snapshot or never will be stored.
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

#[derive(QueryableByName)]
struct Queue {
    #[diesel(sql_type = BigInt)]
    drained: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<BigInt>)]
    newest: Option<i64>,
}

/// Drops the words of up to `step` queued rows (`words_dropped`) inside
/// the caller's transaction on the word file; true when more remain. A
/// row past its index's mark was deleted before the fill reached it: it
/// has no words to drop, and the fill will not find it.
async fn drain_chunk(conn: &mut Conn<'_>, step: i64) -> Result<bool> {
    let queue: Vec<Queue> = conn
        .load(Statement::new(
            "SELECT drained, (SELECT max(seq) FROM words_dropped) AS newest FROM words_state",
        ))
        .await?;
    let Some(&Queue { drained, newest }) = queue.first() else {
        return Ok(false);
    };
    let Some(newest) = newest.filter(|&n| n > drained) else {
        return Ok(false);
    };
    let upto = newest.min(drained.saturating_add(step));
    for index in Index::ALL {
        let list = index.name();
        let drop = Statement::new(format!(
            "DELETE FROM {list}_fts WHERE rowid IN (SELECT row_id FROM words_dropped WHERE seq > "
        ))
        .bind::<BigInt, _>(drained)
        .sql(" AND seq <= ")
        .bind::<BigInt, _>(upto)
        .sql(" AND list = ")
        .bind::<Text, _>(list)
        .sql(" AND row_id <= (SELECT through FROM words_indexed WHERE list = ")
        .bind::<Text, _>(list)
        .sql("))");
        conn.execute(drop).await?;
    }
    let mark = Statement::new("UPDATE words_state SET drained = ").bind::<BigInt, _>(upto);
    conn.execute(mark).await?;
    Ok(upto < newest)
}

/// Deletes up to `step` queue entries whose words are dropped, inside the
/// caller's write transaction on the service's file (which sees the word
/// file's mark through its read-only attachment); how many it deleted.
async fn forget_chunk(conn: &mut Conn<'_>, step: i64) -> Result<usize> {
    let forget = Statement::new(
        "DELETE FROM words_dropped WHERE seq <= (SELECT drained FROM words_state) \
         AND seq < (SELECT min(seq) FROM words_dropped) + ",
    )
    .bind::<BigInt, _>(step);
    Ok(conn.execute(forget).await?)
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

    /// Both word indexes brought up to date for the background indexer,
    /// and the words of the rows retention deleted dropped: each fill step
    /// also takes a step of merge work in its transaction, as FTS5's
    /// automerge did (a commit less per step). An index that fails is
    /// logged and does not keep the other from its turn; the call fails if
    /// any part did.
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
        if let Err(e) = self.drain().await {
            tracing::warn!(error = %e, "cannot drop the words of deleted rows");
            failed.get_or_insert(e);
        }
        failed.map_or(Ok(()), Err)
    }

    /// Drops the words of every row queued as deleted, in steps sized by
    /// `DRAIN_SIZE`.
    async fn drain(&self) -> Result<()> {
        loop {
            let step = DRAIN_SIZE.load(Ordering::Relaxed);
            let Held { value: more, held } = self
                .words_step(async move |mut conn| drain_chunk(&mut conn, step).await)
                .await?;
            DRAIN_SIZE.store(DRAIN.next(step, held), Ordering::Relaxed);
            if !more {
                return Ok(());
            }
        }
    }

    /// One step forgetting queue entries whose words are dropped, in a
    /// write transaction on the service's file: how long it held the
    /// database, or `None` when there were none. The caller paces these
    /// steps, which hold the lock ingest writes under.
    pub async fn forget_dropped_words(&self) -> Result<Option<Duration>> {
        if self.backend_name() == "postgres" {
            return Ok(None);
        }
        let step = FORGET_SIZE.load(Ordering::Relaxed);
        let Held {
            value: forgot,
            held,
        } = self
            .held(async move |mut conn| forget_chunk(&mut conn, step).await)
            .await?;
        if forgot == 0 {
            return Ok(None);
        }
        FORGET_SIZE.store(DRAIN.next(step, held), Ordering::Relaxed);
        Ok(Some(held))
    }

    /// `work` in one write transaction on the word file (`WordFile`), with
    /// how long it held that file. Ingest never waits for it.
    async fn words_step<R, F>(&self, work: F) -> Result<Held<R>>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let Some(file) = &self.0.words else {
            return Err(Error::internal(anyhow::anyhow!(
                "a word index step on a database without a word file"
            )));
        };
        let mut file = file.lock().await;
        super::blocking(async move {
            let began = std::time::Instant::now();
            let value = file.step(|c| super::conn::complete_now(work(Conn::Sqlite(c))))?;
            Ok(Held {
                value,
                held: began.elapsed(),
            })
        })
        .await
    }

    /// One step of merge work, in a transaction of its own, on an index
    /// that has any: how long it held the word file, or `None` when neither
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
                .words_step(async move |mut conn| merge_chunk(&mut conn, index, pages).await)
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
                .words_step(async move |mut conn| {
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

    use super::{drain_chunk, forget_chunk, index_chunk, merge_beside, prepare, Conn, Index};

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
        let mut conn = super::migrated_with_words();
        for (n, word) in ["alpha", "bravo", "charlie", "delta", "echo"]
            .iter()
            .enumerate()
        {
            segment(&mut conn, 1 + 300 * n as i64, word).await;
        }
        for id in 1501..=1550 {
            event(&mut conn, id, &format!("foxtrot {id}"));
        }
        let pages = count(
            &mut conn,
            "SELECT page_count AS n FROM pragma_page_count('words')",
        );
        exec(
            &mut conn,
            &format!("PRAGMA words.max_page_count = {}", pages + 1),
        );
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
        exec(&mut conn, "PRAGMA words.max_page_count = 1000000");
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

    /// How many events the events' index finds `word` in.
    fn matches(conn: &mut SqliteConnection, word: &str) -> i64 {
        count(
            conn,
            &format!("SELECT count(*) AS n FROM events_fts WHERE events_fts MATCH '{word}'"),
        )
    }

    fn run<T>(work: impl std::future::Future<Output = T>) -> T {
        futures_util::FutureExt::now_or_never(work).expect("SQLite work completes in place")
    }

    /// Retention's deletes reach the word file through the queue: the
    /// words of an indexed row are dropped, a row deleted before the fill
    /// reached it is passed over (and never indexed), and the queue is
    /// emptied only of what was dropped.
    #[test]
    fn deleted_rows_lose_their_words_through_the_queue() {
        let mut conn = super::migrated_with_words();
        for id in 1..=10 {
            event(&mut conn, id, &format!("kilo row{id}"));
        }
        run(index_chunk(
            &mut Conn::Sqlite(&mut conn),
            Index::Events,
            8,
            1_000,
        ))
        .unwrap();
        exec(&mut conn, "DELETE FROM events WHERE id IN (2, 9)");
        assert_eq!(
            count(&mut conn, "SELECT count(*) AS n FROM words_dropped"),
            2
        );
        // Nothing is forgotten before it is dropped.
        let forgot = run(forget_chunk(&mut Conn::Sqlite(&mut conn), 1_000)).unwrap();
        assert_eq!(forgot, 0);
        // Steps of one entry each: two steps, then nothing left.
        let c = &mut Conn::Sqlite(&mut conn);
        assert!(run(drain_chunk(c, 1)).unwrap(), "one more entry");
        assert!(!run(drain_chunk(c, 1)).unwrap(), "done");
        assert!(!run(drain_chunk(c, 1)).unwrap(), "nothing new");
        assert_eq!(matches(&mut conn, "row2"), 0);
        assert_eq!(matches(&mut conn, "kilo"), 7);
        let forgot = run(forget_chunk(&mut Conn::Sqlite(&mut conn), 1_000)).unwrap();
        assert_eq!(forgot, 2);
        assert_eq!(
            count(&mut conn, "SELECT count(*) AS n FROM words_dropped"),
            0
        );
        run(index_chunk(
            &mut Conn::Sqlite(&mut conn),
            Index::Events,
            10,
            1_000,
        ))
        .unwrap();
        assert_eq!(matches(&mut conn, "kilo"), 8, "row 10 indexed, row 9 gone");
        assert_eq!(matches(&mut conn, "row9"), 0);
        exec(
            &mut conn,
            "INSERT INTO events_fts (events_fts) VALUES ('integrity-check')",
        );
        // A queue entry whose words are not yet dropped stays.
        exec(&mut conn, "DELETE FROM events WHERE id = 3");
        let forgot = run(forget_chunk(&mut Conn::Sqlite(&mut conn), 1_000)).unwrap();
        assert_eq!(forgot, 0);
    }

    /// Dropping a step's words looks each row up in the index; a scan of
    /// the index per step would cost its whole size.
    #[test]
    fn dropping_words_looks_rows_up() {
        let mut conn = super::migrated_with_words();
        #[derive(diesel::QueryableByName)]
        struct Plan {
            #[diesel(sql_type = diesel::sql_types::Text)]
            detail: String,
        }
        let plan: Vec<Plan> = diesel::sql_query(
            "EXPLAIN QUERY PLAN DELETE FROM events_fts WHERE rowid IN (SELECT row_id FROM \
             words_dropped WHERE seq > 1 AND seq <= 2 AND list = 'events' AND row_id <= \
             (SELECT through FROM words_indexed WHERE list = 'events'))",
        )
        .load(&mut conn)
        .unwrap();
        let plan: Vec<&str> = plan.iter().map(|p| p.detail.as_str()).collect();
        assert!(
            plan.iter().any(|d| d.contains("VIRTUAL TABLE INDEX 0:=")),
            "{plan:?}"
        );
        assert!(
            plan.iter()
                .any(|d| d.starts_with("SEARCH words_dropped USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
    }

    /// A word file that fits the database beside it is kept; one built for
    /// another database (another owner key: a restored backup), with a
    /// mark past the newest row, or missing a table, is emptied and made
    /// again from the start.
    #[test]
    fn a_word_file_that_does_not_fit_is_rebuilt() {
        let mut conn = super::migrated_with_words();
        for id in 1..=5 {
            event(&mut conn, id, &format!("lima row{id}"));
        }
        let fill = |conn: &mut SqliteConnection| {
            run(index_chunk(
                &mut Conn::Sqlite(conn),
                Index::Events,
                5,
                1_000,
            ))
            .unwrap();
        };
        let through = |conn: &mut SqliteConnection| {
            count(
                conn,
                "SELECT through AS n FROM words_indexed WHERE list = 'events'",
            )
        };
        fill(&mut conn);
        prepare(&mut conn, "words").unwrap();
        assert_eq!(
            (through(&mut conn), matches(&mut conn, "lima")),
            (5, 5),
            "kept"
        );

        exec(&mut conn, "UPDATE words_owner SET key = 'another'");
        prepare(&mut conn, "words").unwrap();
        assert_eq!(
            (through(&mut conn), matches(&mut conn, "lima")),
            (0, 0),
            "another owner"
        );
        let owner = count(
            &mut conn,
            "SELECT count(*) AS n FROM words_state, words_owner WHERE owner = key",
        );
        assert_eq!(owner, 1, "built for this database now");

        fill(&mut conn);
        exec(
            &mut conn,
            "UPDATE words_indexed SET through = 6 WHERE list = 'events'",
        );
        prepare(&mut conn, "words").unwrap();
        assert_eq!(through(&mut conn), 0, "a mark past the newest row");

        fill(&mut conn);
        exec(&mut conn, "DROP TABLE words.alerts_fts");
        prepare(&mut conn, "words").unwrap();
        assert_eq!(through(&mut conn), 0, "a table missing");
        let tables = count(
            &mut conn,
            "SELECT count(*) AS n FROM words.sqlite_master WHERE name IN ('events_fts', 'alerts_fts')",
        );
        assert_eq!(tables, 2);

        // A fresh file's queue mark starts past what is already queued.
        exec(&mut conn, "DELETE FROM events WHERE id = 1");
        exec(&mut conn, "UPDATE words_owner SET key = 'yet another'");
        prepare(&mut conn, "words").unwrap();
        assert!(!run(drain_chunk(&mut Conn::Sqlite(&mut conn), 1_000)).unwrap());
    }

    /// The URIs a path becomes: escaped where SQLite's URIs give a
    /// character a meaning, quoted for SQL, and an absolute path after an
    /// empty authority (a path starting `//` is not an authority).
    #[test]
    fn paths_become_read_only_uris() {
        assert_eq!(
            super::read_only_uri("/var/lib/tw.db-words"),
            "'file:///var/lib/tw.db-words?mode=ro'"
        );
        assert_eq!(
            super::read_only_uri("//var/lib/tw.db"),
            "'file:////var/lib/tw.db?mode=ro'"
        );
        assert_eq!(
            super::read_only_uri("data/it's 100%?#.db"),
            "'file:data/it''s 100%25%3f%23.db?mode=ro'"
        );
    }

    /// The word file's own connection, on files whose path holds every
    /// character a URI or SQL gives a meaning: it attaches the database
    /// read-only, fills the index, and a pooled connection (the database
    /// with the word file attached read-only) finds the words; neither can
    /// write to the file it only reads.
    #[test]
    fn the_word_file_works_beside_a_database_at_any_path() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("it's 100% ?#here");
        std::fs::create_dir(&folder).unwrap();
        let path = folder.join("tw.db");
        let path = path.to_str().unwrap();
        super::super::sqlite_plan_stability();
        let mut pooled = SqliteConnection::establish(path).unwrap();
        super::super::migrate::apply_sqlite(&mut pooled).unwrap();
        exec(&mut pooled, "PRAGMA journal_mode = WAL");
        event(&mut pooled, 1, "quebec one");
        let mut file = super::WordFile::open(path).unwrap();
        let filled = file.step(|c| {
            super::super::conn::complete_now(index_chunk(
                &mut Conn::Sqlite(c),
                Index::Events,
                1,
                10,
            ))
        });
        assert!(!filled.unwrap(), "all indexed");
        let refused = file.step(|c| {
            c.batch_execute("DELETE FROM tw.events")?;
            Ok(())
        });
        let refused = match refused {
            Err(crate::error::Error::Internal(e)) => format!("{e:#}"),
            other => panic!("{:?}", other.map_err(|e| e.to_string())),
        };
        assert!(refused.contains("readonly"), "{refused}");
        super::attach_read_only(&mut pooled, path).unwrap();
        assert_eq!(matches(&mut pooled, "quebec"), 1);
        let refused = pooled
            .batch_execute("DELETE FROM words.events_fts")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("readonly"), "{refused}");
    }
}

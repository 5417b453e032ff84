//! Storage: the only code that knows SQL and which database it talks to.
//!
//! One `Db` serves SQLite and PostgreSQL from the same Diesel code. Every
//! query is written once, as an async function over a `Conn` (see `conn`),
//! and `Db::read`, `Db::read_page` and `Db::transaction` hand it a
//! connection of whichever backend is live. (Diesel's own
//! `MultiConnection` derive does not support async connections in the
//! released diesel-async, diesel_async issue #107.) The modules below hold
//! every query the service makes.

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod backup;
pub mod comments;
mod conn;
pub mod deliveries;
pub mod event_pages;
pub mod events;
pub mod imports;
mod migrate;
pub mod models;
pub mod notify;
pub mod outbox;
pub mod retention;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod silences;
mod sql;
mod time;
pub mod users;
pub mod webhooks;
mod words;

use std::sync::Arc;
use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::bb8;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::AsyncPgConnection;
use futures_util::FutureExt;

use crate::config::{DatabaseUrl, SqliteSync};
use crate::error::{Error, Result};

pub use conn::{Conn, Work};
pub use migrate::{migrate, pending_migrations};

/// A SQLite connection whose statements run on the calling thread (see
/// `Inline`).
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, Inline>;
pub type PgConn = AsyncPgConnection;

pub enum Pool {
    Sqlite(bb8::Pool<SqliteConn>),
    Postgres(bb8::Pool<PgConn>),
}

/// A handle on the database; cheap to clone.
#[derive(Clone)]
pub struct Db(Arc<Inner>);

struct Inner {
    pool: Pool,
    /// SQLite has one writer at a time. Taking this lock before `BEGIN
    /// IMMEDIATE` queues this process's writers here instead of letting them
    /// spin on SQLITE_BUSY; other processes (the CLI) still wait on the
    /// busy timeout.
    write_lock: tokio::sync::Mutex<()>,
    /// How to open another SQLite connection like the pool's: the path and
    /// the per-connection pragmas.
    sqlite: Option<(String, String)>,
    /// SQLite's word index file, written only through this (`words`).
    words: Option<tokio::sync::Mutex<words::WordFile>>,
}

/// Runs a SQLite connection's work right where it is asked for, instead
/// of hopping to tokio's blocking pool and back for every statement (what
/// diesel-async does by default). Each hop is two thread switches and cost
/// more than most statements. So the pool's work runs inline: on the
/// worker for a bounded page read (`Db::read_page`), under `blocking` for
/// anything else. (The ingest writer has a plain connection on its own
/// thread.)
pub struct Inline;

/// Runs `work`, which may block (inline SQLite statements, a COMMIT's
/// fsync), without stalling the tasks queued behind it: on the
/// multi-threaded runtime the worker hands its queue to another thread
/// first. Elsewhere (a single-threaded runtime, the CLI) it just runs.
pub async fn blocking<F: std::future::Future>(work: F) -> F::Output {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(work))
        }
        _ => work.await,
    }
}

impl diesel_async::sync_connection_wrapper::SpawnBlocking for Inline {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<
        'a,
        std::result::Result<R, Box<dyn std::error::Error + Send + Sync + 'static>>,
    >
    where
        R: Send + 'static,
    {
        Box::pin(std::future::ready(Ok(task())))
    }

    fn get_runtime() -> Self {
        Inline
    }
}

/// The connection the ingest writer commits on (see `crate::ingest`).
pub enum WriterConn {
    /// SQLite: a plain connection of the writer's own, used only on the
    /// writer's thread.
    Sqlite(WriterSqlite),
    /// PostgreSQL: a pooled connection per batch; the driver is async
    /// already, so there is no hop to save.
    Postgres(bb8::Pool<PgConn>),
}

/// The SQLite ingest writer's connection, which reopens itself if a failed
/// ROLLBACK leaves it broken.
pub struct WriterSqlite {
    /// A plain, synchronous connection: the writer's thread may block, and
    /// Diesel's own statement path skips what diesel-async's wrapper does
    /// to make values `Send` (a copy of every bound value and every
    /// returned one).
    conn: SqliteConnection,
    path: String,
    pragmas: String,
    /// Dropped with the writer, which stops the checkpointer.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

/// What a write did, and how long its transaction held the database:
/// from its first statement to its commit, not counting the wait for the
/// write lock before it. On SQLite that is the time ingest could not
/// write, which the background writers (retention, forgetting the words of
/// purged rows) size and pace their steps by. The word indexer's own steps
/// report how long they held the word file (`words`), where FTS5 does much
/// of its work in the commit.
#[derive(Clone, Copy, Debug)]
pub struct Held<T> {
    pub value: T,
    pub held: Duration,
}

/// How often the checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Every connection's WAL limit, in pages: only a safety net for a
/// checkpointer that cannot keep up. Left at SQLite's 1,000, a commit
/// checkpointed in the middle of the caller's write whenever the WAL had
/// grown past it: the ingest writer twenty times a second under a flood,
/// and every other writer (retention, webhook outcomes) on
/// most of its commits, each copy and fsync holding the write lock that
/// ingest waits on.
const AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Copies the WAL into the database file every `CHECKPOINT_EVERY`, on a
/// thread and connection of its own, beside the writer instead of inside
/// its commits. PASSIVE never waits for the writer or for readers; the
/// next run picks up what one could not copy. Stops when `stop` is dropped.
fn start_checkpointer(path: &str, pragmas: &str) -> anyhow::Result<std::sync::mpsc::Sender<()>> {
    use diesel::connection::SimpleConnection;
    use std::sync::mpsc::RecvTimeoutError;

    let mut conn = open_sqlite(path, pragmas)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                if let Err(e) =
                    SimpleConnection::batch_execute(&mut conn, "PRAGMA wal_checkpoint(PASSIVE)")
                {
                    tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
                }
            }
        })?;
    Ok(stop)
}

fn open_sqlite(path: &str, pragmas: &str) -> diesel::ConnectionResult<SqliteConnection> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut conn = SqliteConnection::establish(path)?;
    SimpleConnection::batch_execute(&mut conn, pragmas)
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl WriterSqlite {
    /// Runs `work` in a `BEGIN IMMEDIATE` transaction; the caller holds
    /// `Db::write_lock`. A connection that a failed ROLLBACK left broken is
    /// replaced first.
    pub fn immediate_transaction<R>(
        &mut self,
        work: impl FnOnce(&mut SqliteConnection) -> Result<R>,
    ) -> Result<R> {
        let (path, pragmas) = (&self.path, &self.pragmas);
        immediate_transaction(&mut self.conn, "the ingest writer's", work, || {
            Ok(open_sqlite(path, pragmas)?)
        })
    }
}

/// Runs `work` in a `BEGIN IMMEDIATE` transaction on a connection of its
/// owner's own (`whose`, for the log), replacing it with `reopen()` first
/// when a failed ROLLBACK left it broken: Diesel's transaction manager
/// then refuses every later transaction on it.
fn immediate_transaction<R>(
    conn: &mut SqliteConnection,
    whose: &str,
    work: impl FnOnce(&mut SqliteConnection) -> Result<R>,
    reopen: impl FnOnce() -> anyhow::Result<SqliteConnection>,
) -> Result<R> {
    use diesel::connection::{
        AnsiTransactionManager, TransactionManager, TransactionManagerStatus,
    };
    let status = AnsiTransactionManager::transaction_manager_status_mut(conn);
    if matches!(status, TransactionManagerStatus::InError) {
        tracing::warn!("{whose} connection is broken; reopening it");
        *conn = reopen().map_err(Error::internal)?;
    }
    conn.immediate_transaction(work)
}

/// Per-connection SQLite settings. WAL lets readers run beside the writer;
/// `synchronous=FULL` makes every commit survive a power cut, which an audit
/// trail needs. No memory mapping: each of the ten or so connections mapped
/// the file on its own, so the pages they touched counted against the
/// process once per connection; reads through SQLite's page cache serve
/// pages just as fast here (see bench/PERFORMANCE.md).
fn sqlite_pragmas(sync: SqliteSync) -> String {
    format!(
        "PRAGMA journal_mode = WAL;
PRAGMA synchronous = {};
PRAGMA foreign_keys = ON;
PRAGMA temp_store = MEMORY;
PRAGMA mmap_size = 0;
PRAGMA busy_timeout = 10000;
PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};",
        sync.pragma()
    )
}

/// SQLite plans a statement anew whenever a bound value its planner looked
/// at changes, and the bundled 3.51 looks at a bound `LIMIT`. Diesel binds the
/// LIMIT of every page and every `.first()`, so each execution re-parsed
/// and re-planned its SQL, a large share of the CPU serving alert pages.
/// The query planner stability guarantee (QPSG) makes plans independent of
/// bound values, which they never usefully were here (no ANALYZE statistics
/// are kept). Diesel does not hand out its raw handle, so the setting is
/// applied by an auto-extension, which SQLite runs on every new connection.
fn sqlite_plan_stability() {
    use libsqlite3_sys as ffi;
    use std::ffi::{c_char, c_int};

    unsafe extern "C" fn enable_qpsg(
        db: *mut ffi::sqlite3,
        _err: *mut *mut c_char,
        _api: *const ffi::sqlite3_api_routines,
    ) -> c_int {
        // SAFETY: SQLite calls this with a valid connection handle while
        // opening it; the setting takes an int and an optional out-pointer.
        unsafe {
            ffi::sqlite3_db_config(
                db,
                ffi::SQLITE_DBCONFIG_ENABLE_QPSG,
                1 as c_int,
                std::ptr::null_mut::<c_int>(),
            )
        }
    }

    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        sqlite_process_settings();
        // SAFETY: registers a function with the signature SQLite expects;
        // registering is idempotent and thread-safe.
        unsafe {
            ffi::sqlite3_auto_extension(Some(enable_qpsg));
        }
    });
}

/// Process-wide SQLite settings, which SQLite accepts only before it
/// initialises (so `sqlite_plan_stability` runs first thing, before the
/// first connection, migrations included; too late, SQLite refuses them
/// and keeps its safe defaults). Multi-thread mode: each connection is used
/// by one thread at a time (Diesel's are not `Sync`; the pool and the
/// writer hand each to one user), so serialized mode's mutex around every
/// call on a connection is pure cost. No memory statistics: keeping them
/// takes a process-wide mutex on every allocation SQLite makes.
fn sqlite_process_settings() {
    use libsqlite3_sys as ffi;
    // SAFETY: both options take the arguments given (none; one int), and
    // SQLite checks that it is not yet initialised before applying them.
    let (threads, memstatus) = unsafe {
        (
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MULTITHREAD),
            ffi::sqlite3_config(ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int),
        )
    };
    if threads != ffi::SQLITE_OK || memstatus != ffi::SQLITE_OK {
        tracing::debug!(
            threads,
            memstatus,
            "SQLite was initialised first; keeping its defaults"
        );
    }
}

/// How long a request waits for a connection before it fails cleanly, e.g.
/// while PostgreSQL restarts.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

impl Db {
    /// Opens the pool. Run `migrate` first: this does not touch the schema.
    pub async fn connect(
        url: &DatabaseUrl,
        pool_size: u32,
        sync: SqliteSync,
    ) -> anyhow::Result<Self> {
        let mut words_file = None;
        let pool = match url {
            DatabaseUrl::Sqlite(path) => {
                sqlite_plan_stability();
                // First: the pool's connections attach it.
                words_file = Some(words::WordFile::open(path)?);
                let mut config = ManagerConfig::<SqliteConn>::default();
                let pragmas = sqlite_pragmas(sync);
                config.custom_setup = Box::new(move |path| {
                    let path = path.to_string();
                    let pragmas = pragmas.clone();
                    async move {
                        let mut conn = open_sqlite(&path, &pragmas)?;
                        words::attach_read_only(&mut conn, &path)
                            .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                        Ok(SyncConnectionWrapper::with_runtime(conn, Inline))
                    }
                    .boxed()
                });
                let manager = AsyncDieselConnectionManager::new_with_config(path, config);
                Pool::Sqlite(
                    bb8::Pool::builder()
                        .max_size(pool_size)
                        .connection_timeout(CONNECTION_TIMEOUT)
                        .build(manager)
                        .await?,
                )
            }
            DatabaseUrl::Postgres(url) => {
                let manager = AsyncDieselConnectionManager::<PgConn>::new(url);
                Pool::Postgres(
                    bb8::Pool::builder()
                        .max_size(pool_size)
                        .connection_timeout(CONNECTION_TIMEOUT)
                        .build(manager)
                        .await?,
                )
            }
        };
        let sqlite = match url {
            DatabaseUrl::Sqlite(path) => Some((path.clone(), sqlite_pragmas(sync))),
            DatabaseUrl::Postgres(_) => None,
        };
        Ok(Self(Arc::new(Inner {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
            sqlite,
            words: words_file.map(tokio::sync::Mutex::new),
        })))
    }

    /// The connection for the ingest writer: on SQLite a new one of its
    /// own, which must then be used from a thread that may block.
    pub fn writer_conn(&self) -> anyhow::Result<WriterConn> {
        match (self.pool(), &self.0.sqlite) {
            (Pool::Postgres(pool), _) => Ok(WriterConn::Postgres(pool.clone())),
            (Pool::Sqlite(_), Some((path, pragmas))) => Ok(WriterConn::Sqlite(WriterSqlite {
                conn: open_sqlite(path, pragmas)?,
                _checkpointer: start_checkpointer(path, pragmas)?,
                path: path.clone(),
                pragmas: pragmas.clone(),
            })),
            (Pool::Sqlite(_), None) => anyhow::bail!("SQLite pool without its path"),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.0.pool
    }

    pub async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.0.write_lock.lock().await
    }

    pub fn backend_name(&self) -> &'static str {
        match self.pool() {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    /// Connections open and idle in the pool, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        match self.pool() {
            Pool::Sqlite(p) => {
                let s = p.state();
                (s.connections, s.idle_connections)
            }
            Pool::Postgres(p) => {
                let s = p.state();
                (s.connections, s.idle_connections)
            }
        }
    }

    /// Whether the database answers; for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        self.read(async |mut conn| {
            conn.batch_execute("SELECT 1").await?;
            Ok(())
        })
        .await
    }

    /// Runs storage `work` that may take a while (a count over a table):
    /// on SQLite under `blocking`, so the tasks queued behind it move to
    /// another worker.
    pub async fn read<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.run_read(work, false).await
    }

    /// Runs a bounded read (one keyset page: an index walk of a few dozen
    /// rows). On SQLite it runs right on the worker, where one page takes
    /// less time than the two thread switches of handing it to another
    /// thread would.
    pub async fn read_page<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.run_read(work, true).await
    }

    /// `read` and `read_page`: on SQLite in place when `in_place`, else
    /// under `blocking`.
    async fn run_read<R, F>(&self, work: F, in_place: bool) -> Result<R>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        match self.pool() {
            Pool::Sqlite(pool) => {
                let mut pooled = pool.get().await?;
                if in_place {
                    on_sqlite(&mut pooled, work).await
                } else {
                    blocking(async move { on_sqlite(&mut pooled, work).await }).await
                }
            }
            Pool::Postgres(pool) => {
                let mut pooled = pool.get().await?;
                work(Conn::Postgres(&mut pooled)).await
            }
        }
    }

    /// `work` in one write transaction, with how long it held the
    /// database (`Held`).
    pub async fn held<R, F>(&self, work: F) -> Result<Held<R>>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let (value, began) = self
            .transaction(async move |conn| {
                let began = std::time::Instant::now();
                Ok((work(conn).await?, began))
            })
            .await?;
        Ok(Held {
            value,
            held: began.elapsed(),
        })
    }

    /// Runs `work` in one write transaction; an `Err` rolls everything back.
    ///
    /// The work runs on its own task, moving what it captures: a client
    /// that disconnects mid-request cannot cancel it between statements and
    /// leave a half-open transaction on a pooled connection. On SQLite it
    /// starts with `BEGIN IMMEDIATE` under the in-process write lock, so it
    /// never has to upgrade a read lock (which SQLite refuses without
    /// waiting), and runs under `blocking` (its COMMIT waits for the disk).
    pub async fn transaction<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.write(work, false).await
    }

    /// Runs `work` in one write transaction, like `transaction`, for work
    /// that awaits more than its connection between statements (the
    /// import reads its source a chunk at a time). On SQLite it goes
    /// through diesel-async's wrapper, which lets it wait.
    pub async fn long_transaction<R, F>(&self, work: F) -> Result<R>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        self.write(work, true).await
    }

    /// `transaction` and `long_transaction`.
    async fn write<R, F>(&self, work: F, waits: bool) -> Result<R>
    where
        F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
        R: Send + 'static,
    {
        let db = self.clone();
        let task = async move {
            match db.pool() {
                Pool::Sqlite(pool) => {
                    let _writer = db.write_lock().await;
                    let mut pooled = pool.get().await?;
                    blocking(async move {
                        if waits {
                            begin_immediate(&mut pooled).await?;
                            let result = work(Conn::SqliteAsync(&mut pooled)).await;
                            end_transaction(&mut pooled, result).await
                        } else {
                            pooled
                                .spawn_blocking(move |c| {
                                    Ok(c.immediate_transaction(|c| {
                                        conn::complete_now(work(Conn::Sqlite(c)))
                                    }))
                                })
                                .await?
                        }
                    })
                    .await
                }
                Pool::Postgres(pool) => pg_transaction(pool, work).await,
            }
        };
        match tokio::spawn(task).await {
            Ok(result) => result,
            Err(join) => Err(Error::internal(join)),
        }
    }
}

/// A PostgreSQL transaction around `work` on a pooled connection.
async fn pg_transaction<R, F>(pool: &bb8::Pool<PgConn>, work: F) -> Result<R>
where
    F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
    R: Send + 'static,
{
    let mut pooled = pool.get().await?;
    diesel_async::AsyncConnection::transaction::<_, Error, _>(&mut *pooled, async |c| {
        work(Conn::Postgres(c)).await
    })
    .await
}

/// `BEGIN IMMEDIATE` through Diesel's transaction manager, so that a
/// connection a failed ROLLBACK leaves unusable is known to be broken (the
/// pool then drops it). diesel-async offers this only on its default,
/// hopping runtime.
async fn begin_immediate(conn: &mut SqliteConn) -> diesel::QueryResult<()> {
    use diesel::connection::AnsiTransactionManager;
    conn.spawn_blocking(|c| AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"))
        .await
}

/// Commits after `result` is `Ok`, rolls back otherwise; the
/// transaction's outcome is this call's.
async fn end_transaction<R>(conn: &mut SqliteConn, result: Result<R>) -> Result<R> {
    use diesel::connection::AnsiTransactionManager;
    use diesel_async::sync_connection_wrapper::SyncTransactionManagerWrapper;
    use diesel_async::TransactionManager;
    type Manager = SyncTransactionManagerWrapper<AnsiTransactionManager>;
    match result {
        Ok(value) => {
            Manager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = Manager::rollback_transaction(conn).await {
                tracing::warn!(error = %rollback, "ROLLBACK failed");
            }
            Err(e)
        }
    }
}

/// Runs `work` on a pooled SQLite connection, in place (see `Inline`).
async fn on_sqlite<R, F>(pooled: &mut SqliteConn, work: F) -> Result<R>
where
    F: for<'c> Work<Conn<'c>, Result<R>> + Send + 'static,
    R: Send + 'static,
{
    pooled
        .spawn_blocking(move |c| Ok(conn::complete_now(work(Conn::Sqlite(c)))))
        .await?
}

/// Whether a failed statement broke a unique index, for the callers that
/// turn that into a clear input error.
pub fn is_unique_violation(err: &diesel::result::Error) -> bool {
    matches!(
        err,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

#[cfg(test)]
mod tests {
    /// Every connection opened after the first pool comes up has plans that
    /// do not depend on bound values (asked of SQLite itself).
    #[test]
    fn sqlite_connections_get_plan_stability() {
        use libsqlite3_sys as ffi;
        super::sqlite_plan_stability();
        let mut db: *mut ffi::sqlite3 = std::ptr::null_mut();
        let mut on: std::ffi::c_int = -1;
        // SAFETY: an in-memory database opened and closed here; -1 asks for
        // the current value without changing it.
        let rc = unsafe {
            let rc = ffi::sqlite3_open(c":memory:".as_ptr(), &mut db);
            assert_eq!(rc, ffi::SQLITE_OK);
            let rc = ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_ENABLE_QPSG, -1, &mut on);
            ffi::sqlite3_close(db);
            rc
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        assert_eq!(on, 1);
    }
}

//! Storage: the only code that knows SQL and which database it talks to.
//!
//! One `Db` serves SQLite and PostgreSQL from the same Diesel code: the
//! `run!` and `transaction!` macros expand a query body once per backend
//! (diesel-async's `MultiConnection` does not support async connections, see
//! CRATES.md), and the modules below hold every query the service makes.

/// Runs `$body` with `$conn` bound to a pooled connection of whichever
/// backend is live. The body is compiled once per backend.
macro_rules! run {
    ($db:expr, |$conn:ident| $body:block) => {{
        match $db.pool() {
            $crate::db::Pool::Sqlite(pool) => {
                let mut pooled = pool.get().await?;
                let $conn = &mut *pooled;
                $body
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut pooled = pool.get().await?;
                let $conn = &mut *pooled;
                $body
            }
        }
    }};
}

/// Loads the rows of the query `$query` builds, as `Vec<$row>`, on
/// whichever backend is live. On SQLite the query is built, run and decoded
/// on the blocking thread that owns the connection: diesel-async's wrapper
/// would otherwise copy every value of every row (`sqlite3_value_dup`) to
/// carry it across threads, a tenth of the CPU of serving a page. `$query`
/// may capture only owned, `'static` values (it runs on that thread).
macro_rules! load {
    ($db:expr, $row:ty, || $query:expr) => {{
        match $db.pool() {
            $crate::db::Pool::Sqlite(pool) => {
                let mut pooled = pool.get().await?;
                pooled
                    .spawn_blocking(move |conn| -> diesel::QueryResult<Vec<$row>> {
                        diesel::RunQueryDsl::load($query, conn)
                    })
                    .await?
            }
            $crate::db::Pool::Postgres(pool) => {
                let mut pooled = pool.get().await?;
                let rows: Vec<$row> = diesel_async::RunQueryDsl::load($query, &mut *pooled).await?;
                rows
            }
        }
    }};
}

/// Runs `$body` in one write transaction; an `Err` rolls everything back.
///
/// The work runs on its own task, moving what it captures: a client that
/// disconnects mid-request cannot cancel it between statements and leave a
/// half-open transaction on a pooled connection. On SQLite it starts with
/// `BEGIN IMMEDIATE` under the in-process write lock, so it never has to
/// upgrade a read lock (which SQLite refuses without waiting).
macro_rules! transaction {
    ($db:expr, |$conn:ident| $body:block) => {{
        let db: $crate::db::Db = ::std::clone::Clone::clone(&$db);
        let work = async move {
            match db.pool() {
                $crate::db::Pool::Sqlite(pool) => {
                    let _writer = db.write_lock().await;
                    let mut pooled = pool.get().await?;
                    pooled
                        .immediate_transaction::<_, $crate::error::Error, _>(async |$conn| $body)
                        .await
                }
                $crate::db::Pool::Postgres(pool) => {
                    let mut pooled = pool.get().await?;
                    ::diesel_async::AsyncConnection::transaction::<_, $crate::error::Error, _>(
                        &mut *pooled,
                        async |$conn| $body,
                    )
                    .await
                }
            }
        };
        match ::tokio::spawn(work).await {
            Ok(result) => result,
            Err(join) => Err($crate::error::Error::internal(join)),
        }
    }};
}

/// Applies a keyset page (see `domain::page`) to a boxed query ordered by
/// `$id`: the bounds, the order for the page's direction, and the limit.
macro_rules! paged {
    ($query:expr, $page:expr, $id:expr) => {{
        let page: &$crate::domain::page::Page = $page;
        let mut query = $query;
        if let Some(below) = page.below {
            query = query.filter($id.lt(below));
        }
        if let Some(above) = page.above {
            query = query.filter($id.gt(above));
        }
        match page.direction {
            $crate::domain::page::Direction::Forward => query.order($id.desc()),
            $crate::domain::page::Direction::Backward => query.order($id.asc()),
        }
        .limit(page.fetch_limit())
    }};
}

/// Adds `$delta` to the alert counter of (`$status`, `$severity`) inside
/// the caller's transaction.
macro_rules! count {
    ($conn:expr, $status:expr, $severity:expr, $delta:expr) => {{
        use $crate::db::schema::alert_counts;
        diesel::update(
            alert_counts::table
                .filter(alert_counts::status.eq($status.as_str()))
                .filter(alert_counts::severity.eq($severity.as_str())),
        )
        .set(alert_counts::count.eq(alert_counts::count + i64::from($delta)))
        .execute($conn)
        .await
    }};
}

/// Points each event in `$ids` at the alert it raised (the alert whose
/// `event_id` it is), inside the caller's transaction.
macro_rules! link_raising_events {
    ($conn:expr, $ids:expr) => {{
        use $crate::db::schema::{alerts, events};
        diesel::update(events::table.filter(events::id.eq_any($ids)))
            .set(
                events::alert_id.eq(alerts::table
                    .filter(alerts::event_id.eq(events::id))
                    .select(alerts::id)
                    .single_value()),
            )
            .execute($conn)
            .await
    }};
}

/// Appends `$entry` to the audit log inside the caller's transaction.
macro_rules! append_audit {
    ($conn:expr, $entry:expr) => {
        diesel::insert_into($crate::db::schema::audit_log::table)
            .values($entry)
            .execute($conn)
            .await
    };
}

pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod comments;
pub mod events;
pub mod imports;
mod migrate;
pub mod models;
pub mod notify;
pub mod schema;
pub mod sessions;
pub mod settings;
pub mod silences;
mod sql;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use diesel::sqlite::SqliteConnection;
use diesel_async::pooled_connection::bb8;
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::FutureExt;

use crate::config::{DatabaseUrl, SqliteSync};
use crate::error::Result;

pub use migrate::migrate;

pub type SqliteConn = SyncConnectionWrapper<SqliteConnection>;
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
}

/// Per-connection SQLite settings. WAL lets readers run beside the writer;
/// `synchronous=FULL` makes every commit survive a power cut, which an audit
/// trail needs.
fn sqlite_pragmas(sync: SqliteSync) -> String {
    format!(
        "PRAGMA journal_mode = WAL;
PRAGMA synchronous = {};
PRAGMA foreign_keys = ON;
PRAGMA temp_store = MEMORY;
PRAGMA mmap_size = 268435456;
PRAGMA busy_timeout = 10000;",
        sync.pragma()
    )
}

/// SQLite plans a statement anew whenever a bound value its planner looked
/// at changes, and the bundled 3.51 looks at a bound `LIMIT`. Diesel binds the
/// LIMIT of every page and every `.first()`, so each execution re-parsed
/// and re-planned its SQL: a quarter of the CPU spent serving alert pages.
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
        // SAFETY: registers a function with the signature SQLite expects;
        // registering is idempotent and thread-safe.
        unsafe {
            ffi::sqlite3_auto_extension(Some(enable_qpsg));
        }
    });
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
        let pool = match url {
            DatabaseUrl::Sqlite(path) => {
                sqlite_plan_stability();
                let mut config = ManagerConfig::<SqliteConn>::default();
                let pragmas = sqlite_pragmas(sync);
                config.custom_setup = Box::new(move |path| {
                    let path = path.to_string();
                    let pragmas = pragmas.clone();
                    async move {
                        let mut conn = SqliteConn::establish(&path).await?;
                        conn.batch_execute(&pragmas)
                            .await
                            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
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
        Ok(Self(Arc::new(Inner {
            pool,
            write_lock: tokio::sync::Mutex::new(()),
        })))
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
        run!(self, |conn| {
            conn.batch_execute("SELECT 1").await?;
            Ok(())
        })
    }
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

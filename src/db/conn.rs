//! One connection type for both databases, so that every query is written
//! once.
//!
//! Diesel's query builder types do not depend on the backend, only running
//! them does; `Conn` runs a query on whichever backend it holds. SQLite
//! connections are plain synchronous Diesel connections: their statements
//! run right where they are called (see `Db::read` for where that is), and
//! the async functions written over `Conn` complete in a single poll on
//! SQLite. PostgreSQL runs on diesel-async's pure-Rust connection.

use std::future::Future;

use diesel::sqlite::SqliteConnection;
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use futures_util::future::{ready, BoxFuture};
use futures_util::FutureExt;

use crate::error::{Error, Result};

/// A borrowed connection to the live database.
pub enum Conn<'c> {
    /// A plain SQLite connection: its statements run synchronously.
    Sqlite(&'c mut SqliteConnection),
    /// A pooled SQLite connection through diesel-async's wrapper, for work
    /// that awaits other things between its statements (see
    /// `Db::long_transaction`). Its statements still run in place.
    SqliteAsync(&'c mut super::SqliteConn),
    Postgres(&'c mut AsyncPgConnection),
}

/// A query whose rows (of type `U`) either backend can load.
pub trait Loadable<'q, U>:
    diesel::RunQueryDsl<SqliteConnection>
    + diesel::query_dsl::LoadQuery<'q, SqliteConnection, U>
    + diesel_async::methods::LoadQuery<'q, super::SqliteConn, U>
    + diesel_async::methods::LoadQuery<'q, AsyncPgConnection, U>
    + Send
    + 'q
{
}

impl<'q, U, Q> Loadable<'q, U> for Q where
    Q: diesel::RunQueryDsl<SqliteConnection>
        + diesel::query_dsl::LoadQuery<'q, SqliteConnection, U>
        + diesel_async::methods::LoadQuery<'q, super::SqliteConn, U>
        + diesel_async::methods::LoadQuery<'q, AsyncPgConnection, U>
        + Send
        + 'q
{
}

impl Conn<'_> {
    /// Every row the query returns.
    ///
    /// The three query methods return boxed futures: a future that holds a
    /// query borrowing its values would otherwise make every async function
    /// that awaits it unprovably `Send` (rust-lang/rust#110338), and the
    /// ingest writer's statements borrow the batch instead of copying it.
    pub fn load<'a, 'q: 'a, Q, U>(&'a mut self, query: Q) -> BoxFuture<'a, QueryResult<Vec<U>>>
    where
        Q: Loadable<'q, U>,
        U: Send + 'q,
    {
        match self {
            Conn::Sqlite(c) => ready(diesel::RunQueryDsl::load(query, &mut **c)).boxed(),
            Conn::SqliteAsync(c) => diesel_async::RunQueryDsl::load(query, &mut **c).boxed(),
            Conn::Postgres(c) => diesel_async::RunQueryDsl::load(query, &mut **c).boxed(),
        }
    }

    /// The first row the query returns; `NotFound` when there is none
    /// (use `diesel::OptionalExtension::optional` for `Option`). The query
    /// asks for one row only if it says `.limit(1)` itself.
    pub fn first<'a, 'q: 'a, Q, U>(&'a mut self, query: Q) -> BoxFuture<'a, QueryResult<U>>
    where
        Q: Loadable<'q, U>,
        U: Send + 'q,
    {
        match self {
            Conn::Sqlite(c) => ready(diesel::RunQueryDsl::get_result(query, &mut **c)).boxed(),
            Conn::SqliteAsync(c) => diesel_async::RunQueryDsl::get_result(query, &mut **c).boxed(),
            Conn::Postgres(c) => diesel_async::RunQueryDsl::get_result(query, &mut **c).boxed(),
        }
    }

    /// Runs a statement; the number of rows it touched.
    pub fn execute<'a, Q>(&'a mut self, query: Q) -> BoxFuture<'a, QueryResult<usize>>
    where
        Q: diesel::RunQueryDsl<SqliteConnection>
            + diesel::query_dsl::methods::ExecuteDsl<SqliteConnection>
            + diesel_async::methods::ExecuteDsl<super::SqliteConn>
            + diesel_async::methods::ExecuteDsl<AsyncPgConnection>
            + Send
            + 'a,
    {
        match self {
            Conn::Sqlite(c) => ready(diesel::RunQueryDsl::execute(query, &mut **c)).boxed(),
            Conn::SqliteAsync(c) => diesel_async::RunQueryDsl::execute(query, &mut **c).boxed(),
            Conn::Postgres(c) => diesel_async::RunQueryDsl::execute(query, &mut **c).boxed(),
        }
    }

    /// Runs SQL text with no bound values (`SELECT 1`, a pragma).
    pub async fn batch_execute(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => diesel::connection::SimpleConnection::batch_execute(&mut **c, sql),
            Conn::SqliteAsync(c) => {
                diesel_async::SimpleAsyncConnection::batch_execute(&mut **c, sql).await
            }
            Conn::Postgres(c) => {
                diesel_async::SimpleAsyncConnection::batch_execute(&mut **c, sql).await
            }
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Postgres(_))
    }
}

/// Storage work: an async closure over a connection, whose future may be
/// sent to another task (PostgreSQL) or completed in place (SQLite).
///
/// Spelled as its own trait, as diesel-async spells its transaction
/// callbacks, because the compiler cannot yet name an async closure's
/// future in a bound (`AsyncFnOnce(T) -> R` with a `Send` future).
pub trait Work<T, R>: AsyncFnOnce(T) -> R + FnOnce(T) -> <Self as Work<T, R>>::Fut {
    type Fut: Future<Output = R> + Send;
}

impl<F, T, Fut, R> Work<T, R> for F
where
    F: AsyncFnOnce(T) -> R + FnOnce(T) -> Fut,
    Fut: Future<Output = R> + Send,
{
    type Fut = Fut;
}

/// Completes storage work written over a `Conn::Sqlite`, whose statements
/// never wait, in a single poll. Work that awaited anything else (a lock, a
/// timer) would be a bug in the storage code; it is refused, not blocked on.
pub(super) fn complete_now<R>(work: impl Future<Output = Result<R>>) -> Result<R> {
    work.now_or_never().unwrap_or_else(|| {
        Err(Error::internal(anyhow::anyhow!(
            "SQLite storage work waited on something other than its connection"
        )))
    })
}

//! Schema migrations, embedded in the binary and run at start.

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::{sqlite_pragmas, PgConn};
use crate::config::DatabaseUrl;
use crate::config::SqliteSync;

const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Several instances may start at once over one PostgreSQL; this advisory
/// lock makes the others wait while one migrates.
const PG_MIGRATION_LOCK: i64 = 0x7477_6d69_6772_6174; // "twmigrat"

/// Applies the SQLite migrations to an open connection (for tests that
/// look at plans on a real schema).
#[cfg(test)]
pub fn apply_sqlite(conn: &mut SqliteConnection) -> anyhow::Result<Vec<String>> {
    apply(conn, SQLITE)
}

/// Brings the database to the latest schema; returns the versions applied.
pub async fn migrate(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    let url = url.clone();
    // Migrations are synchronous Diesel code (the PostgreSQL one through
    // AsyncConnectionWrapper, which blocks on the runtime), so they run on
    // a blocking thread.
    tokio::task::spawn_blocking(move || match url {
        DatabaseUrl::Sqlite(path) => {
            super::sqlite_plan_stability();
            let mut conn = open_sqlite(&path)?;
            apply(&mut conn, SQLITE)
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = open_postgres(&url)?;
            conn.batch_execute(&format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})"))?;
            let applied = apply(&mut conn, POSTGRES);
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})"))?;
            applied
        }
    })
    .await?
}

/// The migrations a start would apply, oldest first, without applying any
/// (for deploy pipelines: `threatwatch migrate --check`). A SQLite file that
/// does not exist yet is not created: every migration is pending for it.
pub async fn pending_migrations(url: &DatabaseUrl) -> anyhow::Result<Vec<String>> {
    let url = url.clone();
    tokio::task::spawn_blocking(move || match url {
        DatabaseUrl::Sqlite(path) => {
            // An empty database in memory has applied nothing either.
            let path = if std::path::Path::new(&path).exists() {
                path
            } else {
                ":memory:".to_string()
            };
            let mut conn = open_sqlite(&path)?;
            names(&mut conn, SQLITE)
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn = open_postgres(&url)?;
            names(&mut conn, POSTGRES)
        }
    })
    .await?
}

fn open_sqlite(path: &str) -> anyhow::Result<SqliteConnection> {
    let mut conn = SqliteConnection::establish(path)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: cannot open SQLite file {path:?}: {e}"))?;
    conn.batch_execute(&sqlite_pragmas(SqliteSync::Full))?;
    Ok(conn)
}

fn open_postgres(url: &str) -> anyhow::Result<AsyncConnectionWrapper<PgConn>> {
    AsyncConnectionWrapper::<PgConn>::establish(url).map_err(|e| {
        anyhow::anyhow!(
            "DATABASE_URL: cannot connect to {}: {e}",
            crate::config::redact_url(url)
        )
    })
}

fn names<H, DB>(conn: &mut H, migrations: EmbeddedMigrations) -> anyhow::Result<Vec<String>>
where
    DB: diesel::backend::Backend,
    H: MigrationHarness<DB>,
{
    let pending = conn
        .pending_migrations(migrations)
        .map_err(|e| anyhow::anyhow!("cannot read the applied migrations: {e}"))?;
    Ok(pending.iter().map(|m| m.name().to_string()).collect())
}

fn apply<C>(conn: &mut C, migrations: EmbeddedMigrations) -> anyhow::Result<Vec<String>>
where
    C: MigrationHarness<C::Backend> + Connection,
{
    let applied = conn
        .run_pending_migrations(migrations)
        .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    Ok(applied.iter().map(|v| v.to_string()).collect())
}

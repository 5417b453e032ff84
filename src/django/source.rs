//! Reading the Django system's database, SQLite or PostgreSQL, read-only,
//! in id order and a chunk at a time, so that years of events never sit in
//! memory at once.
//!
//! The tables are the ones its migrations create (`core/migrations/0001` and
//! `0002`, plus Django's `auth_user`). Every value is read as text or a
//! 64-bit integer so that one row type serves both databases: PostgreSQL's
//! `auth_user.id` is a 32-bit `serial`, and its timestamps are `timestamptz`
//! where SQLite keeps Django's text.

use diesel::sql_types::{BigInt, Bool, Text};
use diesel::{sql_query, QueryableByName};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::config::{redact_url, DatabaseUrl};
use crate::error::Result;

/// The old database is read in large scans by a one-off command, so its
/// statements go to tokio's blocking pool (diesel-async's default) rather
/// than inline like the service's own connections.
type SqliteConn =
    diesel_async::sync_connection_wrapper::SyncConnectionWrapper<diesel::sqlite::SqliteConnection>;

/// An open connection to the old system's database.
pub enum Source {
    Sqlite(SqliteConn),
    Postgres(Box<AsyncPgConnection>),
}

#[derive(QueryableByName, Clone, Debug)]
pub struct DjangoUser {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub username: String,
    #[diesel(sql_type = Text)]
    pub password: String,
    #[diesel(sql_type = Bool)]
    pub is_superuser: bool,
    #[diesel(sql_type = Bool)]
    pub is_staff: bool,
    #[diesel(sql_type = Bool)]
    pub is_active: bool,
    #[diesel(sql_type = Text)]
    pub date_joined: String,
}

#[derive(QueryableByName, Clone, Debug)]
pub struct DjangoEvent {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub source: String,
    #[diesel(sql_type = Text)]
    pub event_type: String,
    #[diesel(sql_type = Text)]
    pub severity: String,
    #[diesel(sql_type = Text)]
    pub description: String,
    #[diesel(sql_type = Text)]
    pub timestamp: String,
}

#[derive(QueryableByName, Clone, Debug)]
pub struct DjangoAlert {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub event_id: i64,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Text)]
    pub created_at: String,
}

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    value: String,
}

/// One statement per backend: placeholders, casts and time formatting
/// differ, the columns do not.
struct Sql {
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! pg_time {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        )
    };
}

const USERS: Sql = Sql {
    sqlite: "SELECT id, CAST(username AS TEXT) AS username, CAST(password AS TEXT) AS password, \
             is_superuser, is_staff, is_active, CAST(date_joined AS TEXT) AS date_joined \
             FROM auth_user WHERE id > ? ORDER BY id LIMIT ?",
    postgres: concat!(
        "SELECT id::bigint AS id, username::text AS username, password::text AS password, \
         is_superuser, is_staff, is_active, ",
        pg_time!("date_joined"),
        " AS date_joined FROM auth_user WHERE id > $1 ORDER BY id LIMIT $2"
    ),
};

const EVENTS: Sql = Sql {
    sqlite: "SELECT id, CAST(source AS TEXT) AS source, CAST(event_type AS TEXT) AS event_type, \
             CAST(severity AS TEXT) AS severity, CAST(description AS TEXT) AS description, \
             CAST(\"timestamp\" AS TEXT) AS \"timestamp\" \
             FROM core_event WHERE id > ? ORDER BY id LIMIT ?",
    postgres: concat!(
        "SELECT id::bigint AS id, source::text AS source, event_type::text AS event_type, \
         severity::text AS severity, description::text AS description, ",
        pg_time!("\"timestamp\""),
        " AS \"timestamp\" FROM core_event WHERE id > $1 ORDER BY id LIMIT $2"
    ),
};

const ALERTS: Sql = Sql {
    sqlite: "SELECT id, event_id, CAST(status AS TEXT) AS status, \
             CAST(created_at AS TEXT) AS created_at \
             FROM core_alert WHERE id > ? ORDER BY id LIMIT ?",
    postgres: concat!(
        "SELECT id::bigint AS id, event_id::bigint AS event_id, status::text AS status, ",
        pg_time!("created_at"),
        " AS created_at FROM core_alert WHERE id > $1 ORDER BY id LIMIT $2"
    ),
};

/// When the database's first Django migration ran: stable for the life of
/// that database (also in a copy of it), different for any other.
const FINGERPRINT: Sql = Sql {
    sqlite: "SELECT CAST(applied AS TEXT) AS value FROM django_migrations ORDER BY id LIMIT 1",
    postgres: concat!(
        "SELECT ",
        pg_time!("applied"),
        " AS value FROM django_migrations ORDER BY id LIMIT 1"
    ),
};

/// The two migrations of the system's `core` app that create its tables.
const CORE_MIGRATIONS: &str = "SELECT CAST(name AS TEXT) AS value FROM django_migrations \
     WHERE app = 'core' AND name IN ('0001_initial', '0002_alert')";

macro_rules! on_source {
    ($source:expr, |$conn:ident, $sql:ident| $body:expr) => {
        match $source {
            Source::Sqlite($conn) => {
                let $sql = |s: &Sql| s.sqlite;
                $body
            }
            Source::Postgres($conn) => {
                let $sql = |s: &Sql| s.postgres;
                $body
            }
        }
    };
}

macro_rules! chunk {
    ($self:expr, $stmt:expr, $after:expr, $limit:expr) => {
        on_source!($self, |conn, sql| Ok(sql_query(sql(&$stmt))
            .bind::<BigInt, _>($after)
            .bind::<BigInt, _>($limit)
            .load(conn)
            .await?))
    };
}

impl Source {
    /// Opens the database at `url` (`sqlite:///path` or `postgres://...`)
    /// and checks that it is the Django Threat Alert System's, so that a
    /// wrong URL fails here with a message instead of importing nothing.
    pub async fn open(url: &str) -> anyhow::Result<(Self, String)> {
        let shown = redact_url(url);
        let parsed = DatabaseUrl::parse(url)
            .map_err(|e| anyhow::anyhow!(e.replace("DATABASE_URL", "--from")))?;
        let mut source = match parsed {
            DatabaseUrl::Sqlite(path) => {
                if !std::path::Path::new(&path).is_file() {
                    anyhow::bail!("--from: there is no SQLite database file at {path}");
                }
                // Read-only: the old system's data is never touched.
                let uri = format!(
                    "file:{}?mode=ro",
                    path.replace('%', "%25")
                        .replace('?', "%3f")
                        .replace('#', "%23")
                );
                Source::Sqlite(
                    SqliteConn::establish(&uri)
                        .await
                        .map_err(|e| anyhow::anyhow!("cannot open {shown}: {e}"))?,
                )
            }
            DatabaseUrl::Postgres(url) => Source::Postgres(Box::new(
                AsyncPgConnection::establish(&url)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot connect to {shown}: {e}"))?,
            )),
        };
        let origin = source.identify(&shown).await?;
        Ok((source, origin))
    }

    /// Refuses anything that is not that system's database and returns the
    /// origin key its rows are remembered under.
    async fn identify(&mut self, shown: &str) -> anyhow::Result<String> {
        let not_it = |why: String| {
            anyhow::anyhow!("{shown} is not a database of the Django Threat Alert System: {why}")
        };
        let first: Vec<Line> = on_source!(self, |conn, sql| sql_query(sql(&FINGERPRINT))
            .load(conn)
            .await)
        .map_err(|e| not_it(format!("it has no readable django_migrations table ({e})")))?;
        let Some(first) = first.into_iter().next() else {
            return Err(not_it("its django_migrations table is empty".into()));
        };
        let core: Vec<Line> = on_source!(self, |conn, _sql| sql_query(CORE_MIGRATIONS)
            .load(conn)
            .await)
        .map_err(|e| not_it(format!("its django_migrations table cannot be read ({e})")))?;
        for name in ["0001_initial", "0002_alert"] {
            if !core.iter().any(|l| l.value == name) {
                return Err(not_it(format!(
                    "its `core` app migration {name} has not been applied"
                )));
            }
        }
        // The columns the import reads, each table on its own so that the
        // message names the one that differs.
        let probes = [
            ("auth_user", self.users(i64::MAX, 0).await.err()),
            ("core_event", self.events(i64::MAX, 0).await.err()),
            ("core_alert", self.alerts(i64::MAX, 0).await.err()),
        ];
        if let Some((table, Some(e))) = probes.into_iter().find(|(_, e)| e.is_some()) {
            return Err(not_it(format!("table {table} is missing or differs ({e})")));
        }
        Ok(format!("django:{}", first.value))
    }

    pub async fn users(&mut self, after: i64, limit: i64) -> Result<Vec<DjangoUser>> {
        chunk!(self, USERS, after, limit)
    }

    pub async fn events(&mut self, after: i64, limit: i64) -> Result<Vec<DjangoEvent>> {
        chunk!(self, EVENTS, after, limit)
    }

    pub async fn alerts(&mut self, after: i64, limit: i64) -> Result<Vec<DjangoAlert>> {
        chunk!(self, ALERTS, after, limit)
    }
}

//! Starts the real server on a free port over a fresh database, and speaks
//! HTTP to it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use serde_json::{json, Value};
use threatwatch::app::Server;
use threatwatch::config::{DatabaseUrl, Settings};

pub const ADMIN_PASSWORD: &str = "admin-password-1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The server for PostgreSQL tests; each test gets its own database there.
pub fn pg_server() -> String {
    std::env::var("THREATWATCH_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh database for one test, removed when dropped.
pub enum TestDb {
    /// The directory holds the file and goes with it.
    Sqlite {
        _dir: tempfile::TempDir,
        url: String,
    },
    Postgres {
        name: String,
        url: String,
    },
}

/// A connection to the SQLite file at `path`, with its word index file
/// (`<path>-words`) attached when there is one, so that a test's SQL names
/// tables in either as the service does.
fn sqlite_with_words(path: &str) -> Result<diesel::SqliteConnection, String> {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let mut c = diesel::SqliteConnection::establish(path).map_err(|e| e.to_string())?;
    // The service writes in the background too (the delivery worker, the
    // word indexer): wait for its locks like it does.
    c.batch_execute("PRAGMA busy_timeout = 5000")
        .map_err(|e| e.to_string())?;
    let words = format!("{path}-words");
    if std::path::Path::new(&words).exists() {
        c.batch_execute(&format!("ATTACH '{}' AS words", words.replace('\'', "''")))
            .map_err(|e| e.to_string())?;
    }
    Ok(c)
}

impl TestDb {
    /// `None` when PostgreSQL is not there and this is not CI (where it must be).
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let path = dir.path().join("threatwatch.db");
                let url = format!("sqlite://{}", path.display());
                Some(TestDb::Sqlite { _dir: dir, url })
            }
            Backend::Postgres => {
                static N: AtomicU32 = AtomicU32::new(0);
                let name = format!(
                    "tw_test_{}_{}_{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst),
                    rand_suffix()
                );
                let admin_url = format!("{}/postgres", pg_server());
                let mut conn = match AsyncPgConnection::establish(&admin_url).await {
                    Ok(c) => c,
                    Err(e) => {
                        if std::env::var("CI").is_ok_and(|v| v == "true") {
                            panic!("CI=true but PostgreSQL at {admin_url} is not reachable: {e}");
                        }
                        eprintln!(
                            "\n!!! SKIPPING a PostgreSQL test: {admin_url} is not reachable ({e}).\n!!! Set THREATWATCH_TEST_PG or start PostgreSQL to run it.\n"
                        );
                        return None;
                    }
                };
                conn.batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let url = format!("{}/{name}", pg_server());
                Some(TestDb::Postgres { name, url })
            }
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } => url,
            TestDb::Postgres { url, .. } => url,
        }
    }
}

impl TestDb {
    /// The text in column `value` of the first row `sql` returns.
    pub async fn text(&self, sql: &str) -> String {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        match self {
            TestDb::Sqlite { url, .. } => {
                use diesel::RunQueryDsl;
                let path = url.trim_start_matches("sqlite://").to_string();
                let sql = sql.to_string();
                tokio::task::spawn_blocking(move || {
                    let mut c = sqlite_with_words(&path).unwrap();
                    diesel::sql_query(sql)
                        .get_result::<Row>(&mut c)
                        .unwrap()
                        .value
                })
                .await
                .unwrap()
            }
            TestDb::Postgres { url, .. } => {
                use diesel_async::RunQueryDsl;
                let mut c = AsyncPgConnection::establish(url).await.unwrap();
                diesel::sql_query(sql)
                    .get_result::<Row>(&mut c)
                    .await
                    .unwrap()
                    .value
            }
        }
    }

    pub async fn exec(&self, sql: &str) -> Result<(), String> {
        match self {
            TestDb::Sqlite { url, .. } => {
                use diesel::connection::SimpleConnection;
                let path = url.trim_start_matches("sqlite://").to_string();
                let sql = sql.to_string();
                tokio::task::spawn_blocking(move || {
                    let mut c = sqlite_with_words(&path)?;
                    c.batch_execute(&sql).map_err(|e| e.to_string())
                })
                .await
                .unwrap()
            }
            TestDb::Postgres { url, .. } => {
                let mut c = AsyncPgConnection::establish(url)
                    .await
                    .map_err(|e| e.to_string())?;
                c.batch_execute(sql).await.map_err(|e| e.to_string())
            }
        }
    }
}

fn rand_suffix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as u64,
    );
    h.finish() as u32
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { name, .. } = self {
            let name = name.clone();
            // Drop runs outside any runtime guarantee; use a small one.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(mut c) =
                        AsyncPgConnection::establish(&format!("{}/postgres", pg_server())).await
                    {
                        let _ = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub fn test_settings(url: &str) -> Settings {
    Settings {
        database_url: DatabaseUrl::parse(url).expect("test url"),
        bind: "127.0.0.1:0".parse().unwrap(),
        metrics_bind: None,
        jwt_secret: None,
        admin_password: Some(ADMIN_PASSWORD.into()),
        access_ttl: Duration::from_secs(300),
        refresh_ttl: Duration::from_secs(86400),
        rate_anon: None,
        rate_user: None,
        rate_sensor: None,
        trusted_proxies: vec![],
        cors_origins: vec![],
        introspection: true,
        rest_compat: true,
        log_json: false,
        bcrypt_cost: 4,
        db_pool_size: 4,
        group_commit: true,
        sqlite_synchronous: threatwatch::config::SqliteSync::Full,
        warnings: vec![],
        secret_key: None,
        webhook_allow_nets: vec![],
        webhook_keep: Duration::from_secs(30 * 86400),
        retention: None,
        retention_every: Duration::from_secs(300),
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    // Dropped last: the server must be gone before its database is.
    _db: TestDb,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Option<Self> {
        Self::spawn_tweaked(backend, |_| {}).await
    }

    pub async fn spawn_tweaked(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
    ) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        Some(Self::spawn_with(db, tweak).await)
    }

    /// Another instance over the same database, as behind a load balancer.
    pub async fn peer(&self) -> PeerApp {
        self.peer_with(|_| {}).await
    }

    pub async fn peer_with(&self, tweak: impl FnOnce(&mut Settings)) -> PeerApp {
        let mut settings = test_settings(self._db.url());
        tweak(&mut settings);
        let server = Server::build(settings).await.expect("peer starts");
        let addr = server.local_addr().expect("bound");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = server
                .run(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        PeerApp { addr, _stop: stop }
    }

    /// Runs SQL on the test database behind the service's back.
    pub async fn exec_sql(&self, sql: &str) {
        if let Err(e) = self.try_exec_sql(sql).await {
            panic!("{sql}: {e}");
        }
    }

    /// The text in column `value` of the first row `sql` returns.
    pub async fn text_sql(&self, sql: &str) -> String {
        self._db.text(sql).await
    }

    pub async fn try_exec_sql(&self, sql: &str) -> Result<(), String> {
        self._db.exec(sql).await
    }

    pub async fn spawn_with(db: TestDb, tweak: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings(db.url());
        tweak(&mut settings);
        let server = Server::build(settings).await.expect("server starts");
        let addr = server.local_addr().expect("bound");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            server
                .run(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
        });
        Self {
            addr,
            client: reqwest::Client::new(),
            stop: Some(stop),
            server: Some(handle),
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn db(&self) -> &TestDb {
        &self._db
    }

    pub fn db_is_postgres(&self) -> bool {
        matches!(self._db, TestDb::Postgres { .. })
    }

    /// Stops the server the way SIGTERM does, and waits for it.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.server.take() {
            let _ = h.await;
        }
    }

    /// Posts a GraphQL request and returns the JSON body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self
            .client
            .post(self.url("/graphql"))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let text = resp.text().await.expect("a body");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("HTTP {status}, not a JSON body ({e}): {text:?}"))
    }

    /// Like `gql`, but fails the test on any GraphQL error.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = self.gql(token, query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Every node of a top-level connection (`events`, `alerts`), paged
    /// through 100 at a time; `fields` is the node selection.
    pub async fn all_nodes(&self, token: &str, connection: &str, fields: &str) -> Vec<Value> {
        let query = format!(
            "query($after: String) {{ {connection}(first: 100, after: $after) {{ \
             nodes {{ {fields} }} pageInfo {{ hasNextPage endCursor }} }} }}"
        );
        let mut nodes = Vec::new();
        let mut after = Value::Null;
        loop {
            let page = self
                .ok(Some(token), &query, json!({ "after": after }))
                .await;
            let page = &page[connection];
            nodes.extend(page["nodes"].as_array().expect("nodes").iter().cloned());
            if page["pageInfo"]["hasNextPage"] != true {
                return nodes;
            }
            after = page["pageInfo"]["endCursor"].clone();
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> Value {
        self.gql(
            None,
            "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken refreshToken tokenType expiresIn } }",
            json!({ "u": username, "p": password }),
        )
        .await
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        let body = self.login(username, password).await;
        body["data"]["login"]["accessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("login as {username} failed: {body}"))
            .to_string()
    }

    pub async fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }

    /// Creates a user with `role` and returns its access token. `createUser`
    /// refuses SENSOR, which databases from before that rule may still hold:
    /// such an account is made an ANALYST and turned SENSOR behind the
    /// service's back.
    pub async fn user_with_role(&self, username: &str, role: &str) -> String {
        let admin = self.admin().await;
        let created = if role == "SENSOR" { "ANALYST" } else { role };
        self.ok(
            Some(&admin),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            json!({ "i": { "username": username, "password": "password-123", "role": created } }),
        )
        .await;
        if role == "SENSOR" {
            self.exec_sql(&format!(
                "UPDATE users SET role = 'SENSOR' WHERE username = '{username}'"
            ))
            .await;
        }
        self.token(username, "password-123").await
    }

    pub async fn ingest(&self, token: &str, severity: &str, source: &str) -> Value {
        self.ok(
            Some(token),
            "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id severity } alert { id status severity } } }",
            json!({ "i": { "source": source, "eventType": "Intrusion", "severity": severity, "description": "test event" } }),
        )
        .await["ingestEvent"]
            .clone()
    }
}

/// Runs SQL on the PostgreSQL server's maintenance database.
pub async fn admin_sql(sql: &str) {
    let mut c = AsyncPgConnection::establish(&format!("{}/postgres", pg_server()))
        .await
        .expect("maintenance connection");
    c.batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A second server over a test app's database; stops when dropped.
pub struct PeerApp {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl PeerApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(h) = self.server.take() {
            h.abort();
        }
    }
}

/// Each fragment spreads the next `fan` times: fan^levels selections.
pub fn fan_out(levels: usize, fan: usize) -> String {
    let mut q = String::from("{ ...F0 }");
    for i in 0..levels {
        q.push_str(&format!(" fragment F{i} on Query {{"));
        for _ in 0..fan {
            q.push_str(&format!(" ...F{}", i + 1));
        }
        q.push_str(" }");
    }
    q.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
    q
}

/// The error code of the first error in a response.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

/// Runs one async test body against SQLite and against PostgreSQL, on a
/// server whose settings `$tweak` adjusts.
#[macro_export]
macro_rules! both_with {
    ($($name:ident => $tweak:expr),+ $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, TestApp};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = TestApp::spawn_tweaked(Backend::Sqlite, $tweak).await {
                    super::$name(app).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::spawn_tweaked(Backend::Postgres, $tweak).await {
                    super::$name(app).await;
                }
            }
        }
    )+};
}

/// Runs one async test body against SQLite and against PostgreSQL.
#[macro_export]
macro_rules! both {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, TestApp};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(app) = TestApp::spawn(Backend::Sqlite).await {
                    super::$name(app).await;
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(app) = TestApp::spawn(Backend::Postgres).await {
                    super::$name(app).await;
                }
            }
        }
    )+};
}

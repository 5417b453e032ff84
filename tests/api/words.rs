//! SQLite's word index file (`<database>-words`): ingest and triage never
//! wait for it, and a file that is damaged or belongs to another copy of
//! the database is rebuilt rather than trusted.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::Connection;
use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDb};

const INGEST: &str =
    "mutation($e: IngestEventInput!) { ingestEvent(input: $e) { event { id } alert { id } } }";
const STATUS: &str =
    "mutation($id: ID!, $s: AlertStatus!) { updateAlertStatus(id: $id, status: $s) { status } }";
const SEARCH: &str =
    "query($w: String) { events(search: $w) { totalCount } alerts(search: $w) { totalCount } }";

fn sqlite_path(app: &TestApp) -> String {
    app.db().url().trim_start_matches("sqlite://").to_string()
}

fn event(severity: &str, description: &str) -> Value {
    json!({ "e": { "source": "fw-words", "eventType": "Scan", "severity": severity, "description": description } })
}

/// How long a request may take here: far under the 10 s a writer waits
/// for a lock, so a request stuck behind the word file's lock fails.
const PROMPT: Duration = Duration::from_secs(5);

/// With another connection holding the word file's write lock, ingest (the
/// writer's own connection) and an alert's change of status (a pooled
/// connection, which has the word file attached) still commit: neither
/// takes that lock. Once it is let go, a search finds what came in
/// meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_triage_never_wait_for_the_word_file() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let admin = app.admin().await;
    let first = app
        .ok(Some(&admin), INGEST, event("HIGH", "november before"))
        .await;
    let alert = first["ingestEvent"]["alert"]["id"]
        .as_str()
        .expect("a HIGH event raises an alert")
        .to_string();
    let words = format!("{}-words", sqlite_path(&app));
    let holder = tokio::task::spawn_blocking(move || {
        let mut c = diesel::SqliteConnection::establish(&words).expect("the word file opens");
        c.batch_execute("PRAGMA busy_timeout = 5000; BEGIN IMMEDIATE")
            .expect("the word file's write lock");
        c
    })
    .await
    .unwrap();
    for i in 0..5 {
        let sent = tokio::time::timeout(
            PROMPT,
            app.ok(
                Some(&admin),
                INGEST,
                event("HIGH", &format!("november during {i}")),
            ),
        )
        .await;
        assert!(sent.is_ok(), "ingest waited for the word file");
    }
    let changed = tokio::time::timeout(
        PROMPT,
        app.ok(
            Some(&admin),
            STATUS,
            json!({ "id": alert, "s": "ACKNOWLEDGED" }),
        ),
    )
    .await
    .expect("a change of status waited for the word file");
    assert_eq!(changed["updateAlertStatus"]["status"], "ACKNOWLEDGED");
    drop(holder);
    let found = app
        .ok(Some(&admin), SEARCH, json!({ "w": "november" }))
        .await;
    assert_eq!(found["events"]["totalCount"], 6, "{found}");
    assert_eq!(found["alerts"]["totalCount"], 6, "{found}");
}

/// A word file that is not a database (a torn copy, a disk error) does
/// not stop the service: it is deleted and built again from the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_word_file_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threatwatch.db");
    std::fs::write(
        format!("{}-words", path.display()),
        vec![0x5a_u8; 64 * 1024],
    )
    .unwrap();
    let url = format!("sqlite://{}", path.display());
    let app = TestApp::spawn_with(TestDb::Sqlite { _dir: dir, url }, |_| {}).await;
    let admin = app.admin().await;
    for i in 0..3 {
        app.ok(Some(&admin), INGEST, event("LOW", &format!("oscar {i}")))
            .await;
    }
    let found = app.ok(Some(&admin), SEARCH, json!({ "w": "oscar" })).await;
    assert_eq!(found["events"]["totalCount"], 3, "{found}");
}

/// A database from before the word file (its indexes inside it) is
/// upgraded: the old indexes go, and the new file is filled from the
/// events already stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_database_moves_its_words_to_their_own_file() {
    use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
    const SQLITE: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threatwatch.db");
    let file = path.to_str().unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        let mut c = diesel::SqliteConnection::establish(&file).unwrap();
        for migration in c.pending_migrations(SQLITE).unwrap() {
            if migration
                .name()
                .to_string()
                .starts_with("2026-12-04-000019")
            {
                break;
            }
            c.run_migration(&*migration).unwrap();
        }
        c.batch_execute(
            "INSERT INTO events (source, event_type, severity, description, created_at) VALUES \
             ('fw', 'Scan', 'LOW', 'papa one', '2026-12-01 00:00:00'), \
             ('fw', 'Scan', 'LOW', 'papa two', '2026-12-01 00:00:01'); \
             INSERT INTO events_fts (rowid, body) SELECT id, description FROM events; \
             UPDATE words_indexed SET through = 2 WHERE list = 'events';",
        )
        .unwrap();
    })
    .await
    .unwrap();
    let url = format!("sqlite://{}", path.display());
    let app = TestApp::spawn_with(TestDb::Sqlite { _dir: dir, url }, |_| {}).await;
    let admin = app.admin().await;
    let found = app.ok(Some(&admin), SEARCH, json!({ "w": "papa" })).await;
    assert_eq!(found["events"]["totalCount"], 2, "{found}");
    let left = app
        .text_sql(
            "SELECT CAST(count(*) AS TEXT) AS value FROM main.sqlite_master \
             WHERE name IN ('events_fts', 'alerts_fts', 'words_indexed')",
        )
        .await;
    assert_eq!(left, "0", "the old indexes are gone from the database");
}

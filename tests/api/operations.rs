//! The operator's commands: `migrate --check`, `healthcheck`, `backup`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::threatwatch;
use crate::helpers::{Backend, TestApp, TestDb};

async fn run(url: &str, args: &[&str]) -> std::process::Output {
    let (url, args): (String, Vec<String>) = (
        url.to_string(),
        args.iter().map(|a| a.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        threatwatch(&url, &args, "")
    })
    .await
    .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn migrate_check_lists_what_is_pending(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let url = db.url().to_string();
    let out = run(&url, &["migrate", "--check"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listed.contains("pending migration(s)"), "{listed}");
    assert!(listed.lines().count() > 2, "{listed}");
    // The check applied nothing (and created no SQLite file).
    if let TestDb::Sqlite { url, .. } = &db {
        assert!(!std::path::Path::new(url.trim_start_matches("sqlite://")).exists());
    }
    let again = run(&url, &["migrate", "--check"]).await;
    assert_eq!(again.status.code(), Some(1));

    let out = run(&url, &["migrate"]).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&url, &["migrate", "--check"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("up to date"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_check_sqlite() {
    migrate_check_lists_what_is_pending(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_check_postgres() {
    migrate_check_lists_what_is_pending(Backend::Postgres).await;
}

/// A listener that answers every request with `answer` (an instance whose
/// database is gone answers /readyz with 503).
async fn fake_server(answer: &'static str) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock.write_all(answer.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthcheck_follows_readyz() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let addr = app.addr.to_string();
    let out = run("sqlite://unused.db", &["healthcheck", "--addr", &addr]).await;
    assert!(out.status.success(), "{}", text(&out));

    let unready = fake_server(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 20\r\n\r\ndatabase unavailable",
    )
    .await
    .to_string();
    let out = run("sqlite://unused.db", &["healthcheck", "--addr", &unready]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("503"), "{}", text(&out));
    assert!(
        text(&out).contains("database unavailable"),
        "{}",
        text(&out)
    );

    // Something that is not HTTP at all, and nothing listening.
    let garbage = fake_server("SSH-2.0-OpenSSH\r\n").await.to_string();
    let out = run("sqlite://unused.db", &["healthcheck", "--addr", &garbage]).await;
    assert_eq!(out.status.code(), Some(1));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = run("sqlite://unused.db", &["healthcheck", "--addr", &closed]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("/readyz"), "{}", text(&out));
    let out = run(
        "sqlite://unused.db",
        &["healthcheck", "--addr", "not-an-address"],
    )
    .await;
    assert!(text(&out).contains("--addr"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_ingesting_is_consistent() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let url = app.db().url().to_string();
    let admin = app.admin().await;
    // Sensors keep sending, alerts keep being raised, while the copy is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU32::new(0));
    let app = Arc::new(app);
    let ingest = {
        let (app, admin, stop, sent) = (app.clone(), admin.clone(), stop.clone(), sent.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let inputs: Vec<_> = (0..50)
                    .map(|i| json!({ "source": "fw", "eventType": "Scan", "severity": if i % 2 == 0 { "HIGH" } else { "LOW" }, "description": "during backup" }))
                    .collect();
                app.ok(
                    Some(&admin),
                    "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } } }",
                    json!({ "i": inputs }),
                )
                .await;
                sent.fetch_add(50, Ordering::Relaxed);
            }
        })
    };
    while sent.load(Ordering::Relaxed) < 500 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("threatwatch.db");
    let out = run(&url, &["backup", "--to", copy.to_str().unwrap()]).await;
    let during = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    ingest.await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("To restore"), "{}", text(&out));

    // A second backup to the same file is refused, and the copy is intact.
    let size = std::fs::metadata(&copy).unwrap().len();
    let again = run(&url, &["backup", "--to", copy.to_str().unwrap()]).await;
    assert!(!again.status.success());
    assert!(text(&again).contains("already exists"), "{}", text(&again));
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), size);

    // Restored beside the word index file of the database it was copied
    // from, as it stood later (here: its marks within the copy's rows, and
    // a word the copy's rows do not hold): only the copy's own owner key
    // says that file is not its own, and it is rebuilt, not trusted.
    let words = format!("{}-words", copy.display());
    app.exec_sql(&format!("VACUUM words INTO '{words}'")).await;
    {
        use diesel::connection::SimpleConnection;
        use diesel::Connection;
        let mut c = diesel::SqliteConnection::establish(&words).unwrap();
        c.batch_execute(&format!(
            "ATTACH '{}' AS copy; \
             UPDATE words_indexed SET through = min(through, \
                 (SELECT coalesce(max(id), 0) FROM copy.events)) WHERE list = 'events'; \
             UPDATE words_indexed SET through = min(through, \
                 (SELECT coalesce(max(id), 0) FROM copy.alerts)) WHERE list = 'alerts'; \
             INSERT INTO events_fts (rowid, body) SELECT min(id), 'zulu' FROM copy.events;",
            copy.display()
        ))
        .unwrap();
    }

    // The service opens the copy: whole batches only, every alert with its
    // raising event and its audit entry.
    let restored = TestApp::spawn_with(
        TestDb::Sqlite {
            _dir: dir,
            url: format!("sqlite://{}", copy.display()),
        },
        |_| {},
    )
    .await;
    let admin = restored.admin().await;
    let d = restored
        .ok(
            Some(&admin),
            "{ events { totalCount } alerts { totalCount } auditLog(action: ALERT_CREATED) { totalCount } }",
            json!({}),
        )
        .await;
    let events = d["events"]["totalCount"].as_u64().unwrap();
    assert!(
        events >= 500 && events <= u64::from(during) + 50,
        "{events} of {during}"
    );
    assert_eq!(events % 50, 0, "a batch is all or nothing, in the copy too");
    assert_eq!(d["alerts"]["totalCount"].as_u64().unwrap(), events / 2);
    assert_eq!(d["auditLog"]["totalCount"], d["alerts"]["totalCount"]);
    let found = restored
        .ok(
            Some(&admin),
            "{ events(search: \"during\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(found["events"]["totalCount"], d["events"]["totalCount"]);
    let planted = restored
        .ok(
            Some(&admin),
            "{ events(search: \"zulu\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        planted["events"]["totalCount"], 0,
        "the word file was rebuilt for the copy"
    );
    assert_eq!(
        restored
            .text_sql("SELECT integrity_check AS value FROM pragma_integrity_check")
            .await,
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_refuses_what_it_cannot_copy() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy.db");
    let missing = format!("sqlite://{}", dir.path().join("absent.db").display());
    let out = run(&missing, &["backup", "--to", to.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("no SQLite database"), "{}", text(&out));
    assert!(!to.exists(), "nothing is left behind");
    let out = run(
        "postgres://postgres@127.0.0.1:5432/postgres",
        &["backup", "--to", to.to_str().unwrap()],
    )
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
    assert!(!to.exists());
}

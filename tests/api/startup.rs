//! Starting the real binary: the first admin's password, what the log
//! holds, and settings that stop the start or only warn.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::binary::{command, gather, served_at, start, Running};
use crate::helpers::{Backend, TestDb};

fn generated_password(stderr: &str) -> Option<String> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Created user 'admin' with password: "))?;
    Some(line.rsplit(' ').next()?.to_string())
}

async fn users(db: &TestDb) -> String {
    db.text("SELECT CAST(COUNT(*) AS TEXT) AS value FROM users")
        .await
}

/// A start that cannot listen creates no admin; the next start creates
/// one and prints its password on standard error, never into the log,
/// which here is JSON.
async fn the_first_admin_waits_for_the_listener(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_at = busy.local_addr().unwrap().to_string();
    let url = db.url().to_string();
    let mut failed = start(&url, &[("THREATWATCH_BIND", busy_at.as_str())]);
    let status = tokio::task::spawn_blocking(move || {
        let status = failed.exit();
        (status, failed.out(), failed.err())
    })
    .await
    .unwrap();
    let (status, out, err) = status;
    assert!(!status.success(), "{out}{err}");
    assert!(err.contains("THREATWATCH_BIND"), "{err}");
    assert!(
        !format!("{out}{err}").contains("Created user"),
        "{out}{err}"
    );
    // Nothing at all: not even the schema (or, on SQLite, the file).
    match &db {
        TestDb::Sqlite { url, .. } => assert!(
            !std::path::Path::new(url.trim_start_matches("sqlite://")).exists(),
            "a start that cannot listen creates nothing"
        ),
        TestDb::Postgres { .. } => assert_eq!(
            db.text("SELECT CAST(COUNT(*) AS TEXT) AS value FROM information_schema.tables WHERE table_name = 'users'")
                .await,
            "0",
            "a start that cannot listen creates nothing"
        ),
    }
    drop(busy);

    let mut running = start(&url, &[("THREATWATCH_LOG_FORMAT", "json")]);
    let (addr, running) = tokio::task::spawn_blocking(move || (running.serving(), running))
        .await
        .unwrap();
    let err = running.err();
    let password = generated_password(&err).unwrap_or_else(|| panic!("no password in {err}"));
    // It works, and logging in writes to the log: still no password there.
    let login: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }", "variables": { "p": password } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(login["data"]["login"]["accessToken"].is_string(), "{login}");
    let out = running.out();
    assert!(!out.contains(&password), "the password went into the log");
    for line in out.lines() {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "not a JSON line: {line}"
        );
    }
    assert!(
        !err.lines()
            .any(|l| l.starts_with('{') && l.contains(&password)),
        "{err}"
    );
    drop(running);
    // A third start finds the admin and prints nothing.
    let mut again = start(&url, &[]);
    let again = tokio::task::spawn_blocking(move || {
        again.serving();
        again
    })
    .await
    .unwrap();
    assert!(!again.err().contains("Created user"), "{}", again.err());
    assert_eq!(users(&db).await, "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_after_bind_sqlite() {
    the_first_admin_waits_for_the_listener(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_admin_after_bind_postgres() {
    the_first_admin_waits_for_the_listener(Backend::Postgres).await;
}

/// A misspelt setting is named, with the one meant, and the start goes
/// on; the log written to a file carries no colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_settings_warn_and_the_log_file_is_plain() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("threatwatch.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = command(
        db.url(),
        &[
            ("THREATWATCH_ACESS_TTL", "10m"),
            ("THREATWATCH_PORT", "tcp://10.0.0.1:8000"),
            ("THREATWATCH_ADMIN_PASSWORD", "admin-password-1"),
        ],
    )
    .stdout(log)
    .stderr(Stdio::null())
    .spawn()
    .expect("binary runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if served_at(&text).is_some() || Instant::now() > deadline {
            break text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("exited with {status}: {text}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(served_at(&text).is_some(), "the start goes on: {text}");
    assert!(
        text.contains("THREATWATCH_ACESS_TTL is not a threatwatch setting")
            && text.contains("did you mean THREATWATCH_ACCESS_TTL?"),
        "{text}"
    );
    assert!(text.contains("THREATWATCH_PORT"), "{text}");
    assert!(
        !text.contains("\x1b["),
        "colour codes in a log file: {text:?}"
    );
}

/// A command that is expected to end by itself: its exit code (`None` when
/// it had to be stopped after 30 s, as a server that started would be) and
/// its standard error.
async fn run(url: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = command(url, env);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("binary runs");
        let stderr = gather(child.stderr.take().unwrap());
        let mut running = Running {
            child,
            stdout: Arc::default(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = running.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return (status.code(), running.err());
            }
            if Instant::now() > deadline {
                return (None, running.err());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap()
}

/// Origins a browser never sends, and a bad metrics address, stop the
/// start, naming the variable and the rule, before anything is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tw.db").display());
    for (var, value, rule) in [
        ("THREATWATCH_CORS_ORIGINS", "example.com", "has no scheme"),
        (
            "THREATWATCH_CORS_ORIGINS",
            "https://example.com/app",
            "has a path",
        ),
        (
            "THREATWATCH_CORS_ORIGINS",
            "https://ok.example, *",
            "is not allowed",
        ),
        (
            "THREATWATCH_CORS_ORIGINS",
            "https://a b.example",
            "no valid host",
        ),
        ("THREATWATCH_METRICS_BIND", "9464", "expected HOST:PORT"),
        ("THREATWATCH_METRICS_BIND", "127.0.0.1:8000", "must differ"),
        ("THREATWATCH_ACCESS_TTL", "soon", "expected e.g."),
        ("THREATWATCH_WEBHOOK_KEEP", "forever", "expected e.g."),
        ("THREATWATCH_RETENTION", "a year", "expected e.g."),
        ("THREATWATCH_RETENTION", "0s", "longer than zero"),
    ] {
        let (code, err) = run(
            &url,
            &[],
            &[(var, value), ("THREATWATCH_BIND", "127.0.0.1:8000")],
        )
        .await;
        assert_eq!(code, Some(2), "{value}: {err}");
        assert!(err.contains(var) && err.contains(rule), "{value}: {err}");
    }
    assert!(!dir.path().join("tw.db").exists(), "nothing was created");
}

/// A PostgreSQL that cannot be reached is named with why, and without
/// its password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_says_why() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused = format!("postgres://tw:s3cret-pw@127.0.0.1:{closed}/tw");
    for (url, cause) in [
        (refused.as_str(), "connection refused"),
        (
            "postgres://tw:s3cret-pw@no-such-host.invalid/tw",
            "unknown host",
        ),
    ] {
        let (code, err) = run(url, &["migrate"], &[]).await;
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("DATABASE_URL"), "{err}");
        assert!(err.contains(cause), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let (code, err) = run(url, &[], &[]).await;
        assert_eq!(code, Some(1), "serve: {err}");
        assert!(err.contains(cause), "serve: {err}");
    }
}

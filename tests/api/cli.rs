use std::io::Write;
use std::process::{Command, Stdio};

use crate::helpers::{Backend, TestApp, TestDb};

pub(crate) fn threatwatch(db_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_threatwatch"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("THREATWATCH_BCRYPT_COST", "4")
        .env_remove("THREATWATCH_JWT_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

async fn user_create_then_login(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let url = db.url().to_string();
    let out = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            threatwatch(
                &url,
                &[
                    "user",
                    "create",
                    "--username",
                    "soc-lead",
                    "--role",
                    "admin",
                    "--password-stdin",
                ],
                "a-long-password\n",
            )
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user soc-lead (ADMIN)"));

    // Creating the same name again fails with a message, not a crash.
    let again = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            threatwatch(
                &url,
                &[
                    "user",
                    "create",
                    "--username",
                    "soc-lead",
                    "--role",
                    "analyst",
                    "--password-stdin",
                ],
                "a-long-password\n",
            )
        }
    })
    .await
    .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already taken"));

    let app = TestApp::spawn_with(db, |_| {}).await;
    let token = app.token("soc-lead", "a-long-password").await;
    let me = app
        .ok(Some(&token), "{ me { role } }", serde_json::json!({}))
        .await;
    assert_eq!(me["me"]["role"], "ADMIN");
    // Users existed at start, so no admin was bootstrapped.
    assert!(app
        .login("admin", crate::helpers::ADMIN_PASSWORD)
        .await
        .get("errors")
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_sqlite() {
    user_create_then_login(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_create_postgres() {
    user_create_then_login(Backend::Postgres).await;
}

#[test]
fn schema_command_matches_checked_in_schema() {
    let out = threatwatch("sqlite://unused.db", &["schema"], "");
    assert!(out.status.success());
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == checked_in,
        "schema.graphql is out of date: run `cargo run -- schema > schema.graphql`"
    );
}

#[test]
fn bad_settings_name_the_variable() {
    let out = threatwatch("mysql://localhost/x", &["migrate"], "");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));
    let out = Command::new(env!("CARGO_BIN_EXE_threatwatch"))
        .arg("migrate")
        .env("DATABASE_URL", "sqlite://x.db")
        .env("THREATWATCH_ACCESS_TTL", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("THREATWATCH_ACCESS_TTL"));
    // A work factor that would make each login a denial of service.
    let out = Command::new(env!("CARGO_BIN_EXE_threatwatch"))
        .arg("migrate")
        .env("DATABASE_URL", "sqlite://x.db")
        .env("THREATWATCH_BCRYPT_COST", "15")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("THREATWATCH_BCRYPT_COST"));
}

#[test]
fn migrate_creates_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let out = threatwatch(&url, &["migrate"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        first.starts_with("applied ") && !first.starts_with("applied 0 "),
        "{first}"
    );
    let out = threatwatch(&url, &["migrate"], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied 0 migration"));
}

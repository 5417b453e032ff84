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

/// Runs `threatwatch user ...` against the app's database, off the runtime.
async fn user_cli(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let url = app.db().url().to_string();
    let args: Vec<String> = ["user"].iter().chain(args).map(|s| s.to_string()).collect();
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        threatwatch(&url, &args, &stdin)
    })
    .await
    .unwrap()
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).to_string()
}

/// The operator's commands do what updateUser and resetPassword do, with
/// the same rules and the same audit entries, as actor "cli".
async fn user_commands_manage_people(app: TestApp) {
    use serde_json::json;
    let admin = app.admin().await;
    let ana = app.user_with_role("ana", "ANALYST").await;

    let out = user_cli(&app, &["list"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 3, "{list}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("LAST LOGIN"),
        "{list}"
    );
    assert!(
        lines[1].contains("admin") && lines[1].contains("ADMIN"),
        "{list}"
    );
    assert!(
        lines[2].contains("ana") && lines[2].contains("ANALYST"),
        "{list}"
    );
    assert!(
        lines[2].contains("yes") && !lines[2].contains("never"),
        "{list}"
    );

    let out = user_cli(&app, &["disable", "--username", "ana"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        crate::helpers::code(&app.login("ana", "password-123").await),
        "UNAUTHENTICATED"
    );
    let out = user_cli(&app, &["list"], "").await;
    assert!(text(&out.stdout).lines().nth(2).unwrap().contains(" no "));
    let out = user_cli(&app, &["enable", "--username", "ana"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = user_cli(
        &app,
        &["set-role", "--username", "ana", "--role", "admin"],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ana is now ADMIN"));
    let out = user_cli(
        &app,
        &["set-password", "--username", "ana", "--password-stdin"],
        "a-new-password\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Her first session ended with the role change (the CLI is another
    // process: this instance learns it from the database).
    tokio::time::sleep(std::time::Duration::from_millis(5_200)).await;
    let body = app.gql(Some(&ana), "{ me { role } }", json!({})).await;
    assert_eq!(crate::helpers::code(&body), "UNAUTHENTICATED", "{body}");
    let ana = app.token("ana", "a-new-password").await;
    let me = app.ok(Some(&ana), "{ me { role } }", json!({})).await;
    assert_eq!(me["me"]["role"], "ADMIN");

    // The last active admin stays, whoever asks.
    let out = user_cli(&app, &["disable", "--username", "ana"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for args in [
        &["disable", "--username", "admin"][..],
        &["set-role", "--username", "admin", "--role", "analyst"][..],
    ] {
        let out = user_cli(&app, args, "").await;
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("last active ADMIN"),
            "{}",
            text(&out.stderr)
        );
    }
    app.ok(Some(&admin), "{ me { role } }", json!({})).await;

    // Hostile or mistaken input: a message and a failure status, no change.
    for (args, stdin, says) in [
        (
            &["disable", "--username", "nobody"][..],
            "",
            "no user named",
        ),
        (&["disable", "--username", "a b"][..], "", "no user named"),
        (
            &["set-role", "--username", "admin", "--role", "sensor"][..],
            "",
            "invalid value",
        ),
        (
            &["set-password", "--username", "admin", "--password-stdin"][..],
            "short\n",
            "password: ",
        ),
        (
            &["set-password", "--username", "nobody", "--password-stdin"][..],
            "long-enough-1\n",
            "no user named",
        ),
    ] {
        let out = user_cli(&app, args, stdin).await;
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    app.ok(Some(&admin), "{ me { role } }", json!({})).await;

    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(first: 100) { nodes { action actor detail } } }",
            json!({}),
        )
        .await;
    let by_cli: Vec<(String, String)> = log["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"] == "cli")
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let actions: Vec<&str> = by_cli.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "USER_UPDATED",
            "PASSWORD_RESET",
            "USER_UPDATED",
            "USER_UPDATED",
            "USER_UPDATED"
        ],
        "{by_cli:?}"
    );
    assert!(
        by_cli[2]
            .1
            .contains(r#""role":{"from":"ANALYST","to":"ADMIN"}"#),
        "{by_cli:?}"
    );
    assert!(by_cli.iter().all(|(_, d)| !d.contains("a-new-password")));
}

crate::both!(user_commands_manage_people);

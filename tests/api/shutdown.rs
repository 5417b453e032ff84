//! SIGTERM in the middle of a steady ingest load: every event acknowledged
//! to a client is in the database afterwards, and the process exits 0.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{Backend, TestApp, TestDb, ADMIN_PASSWORD};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn acknowledged_events_survive_sigterm(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_threatwatch"))
        .env("DATABASE_URL", db.url())
        .env("THREATWATCH_BIND", format!("127.0.0.1:{port}"))
        .env("THREATWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("THREATWATCH_BCRYPT_COST", "4")
        .env("THREATWATCH_RATE_ANON", "off")
        .env("THREATWATCH_RATE_USER", "off")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/graphql");
    let client = reqwest::Client::new();
    let mut token = None;
    for _ in 0..100 {
        let login = json!({ "query": format!("mutation {{ login(username: \"admin\", password: \"{ADMIN_PASSWORD}\") {{ accessToken }} }}") });
        if let Ok(r) = client.post(&url).json(&login).send().await {
            let v: Value = r.json().await.unwrap();
            token = v["data"]["login"]["accessToken"].as_str().map(String::from);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = token.expect("server came up");

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut senders = Vec::new();
    for n in 0..16 {
        let (client, url, token, acked) =
            (client.clone(), url.clone(), token.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            let q = "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id } } }";
            for i in 0.. {
                let body = json!({ "query": q, "variables": { "i": { "source": format!("S{n}"), "eventType": "X", "severity": if i % 3 == 0 { "HIGH" } else { "LOW" }, "description": "load" } } });
                let Ok(r) = client.post(&url).bearer_auth(&token).json(&body).send().await else { break };
                let Ok(v) = r.json::<Value>().await else { break };
                match v["data"]["ingestEvent"]["event"]["id"].as_str() {
                    Some(id) => acked.lock().unwrap().push(id.to_string()),
                    None => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    for s in senders {
        let _ = tokio::time::timeout(Duration::from_secs(30), s).await;
    }
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "threatwatch exited with {status}");

    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() > 50, "the load ran ({} events)", acked.len());
    let app = TestApp::spawn_with(db, |_| {}).await;
    let admin = app.admin().await;
    let mut stored = HashSet::new();
    let mut after: Option<String> = None;
    loop {
        let d = app
            .ok(Some(&admin), "query($a: String) { events(first: 100, after: $a) { nodes { id } pageInfo { hasNextPage endCursor } } }", json!({ "a": after }))
            .await;
        for n in d["events"]["nodes"].as_array().unwrap() {
            stored.insert(n["id"].as_str().unwrap().to_string());
        }
        if d["events"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = d["events"]["pageInfo"]["endCursor"]
            .as_str()
            .map(String::from);
    }
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost: {lost:?}",
        lost.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_sqlite() {
    acknowledged_events_survive_sigterm(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_postgres() {
    acknowledged_events_survive_sigterm(Backend::Postgres).await;
}

/// Whether `/readyz` answers `status` within ten seconds.
async fn readyz_becomes(app: &TestApp, status: u16) -> bool {
    for _ in 0..50 {
        let r = app.client.get(app.url("/readyz")).send().await.unwrap();
        if r.status().as_u16() == status {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// PostgreSQL goes away (connections killed, new ones refused) and comes
/// back: meanwhile clean errors and a 503 from /readyz; afterwards the same
/// process serves again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_when_postgres_comes_back() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let admin = app.admin().await;
    app.ingest(&admin, "HIGH", "before").await;
    let TestDb::Postgres { name, .. } = app.db() else {
        unreachable!()
    };
    let outage = format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid();"
    );
    crate::helpers::admin_sql(&outage).await;

    // pg_terminate_backend only signals: a pooled connection may answer
    // once more before its backend is gone.
    assert!(readyz_becomes(&app, 503).await, "readyz during the outage");
    let body = app
        .gql(Some(&admin), "mutation { ingestEvent(input: {source: \"during\", eventType: \"X\", severity: HIGH, description: \"d\"}) { event { id } } }", json!({}))
        .await;
    let code = body["errors"][0]["extensions"]["code"].as_str().unwrap();
    assert!(
        code == "INTERNAL_SERVER_ERROR" || code == "UNAUTHENTICATED",
        "{body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        !message.to_lowercase().contains("sql") && !message.contains("postgres"),
        "{message}"
    );

    crate::helpers::admin_sql(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await;
    assert!(readyz_becomes(&app, 200).await, "readyz recovered");
    let admin = app.admin().await;
    app.ingest(&admin, "HIGH", "after").await;
    let d = app
        .ok(Some(&admin), "{ alerts { totalCount } }", json!({}))
        .await;
    assert_eq!(d["alerts"]["totalCount"], 2);
}

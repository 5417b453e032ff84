//! The outbox: every change an endpoint wants gets its outbox row in the
//! change's own transaction, and becomes one delivery per endpoint behind
//! it. Deliveries are read back through `webhook(id){ deliveries }`, which
//! makes every queued change into deliveries first; no worker is needed
//! (rows stay PENDING, or are retried when a worker refuses the example
//! address), so these check existence, trigger and alert, never status.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::binary::start;
use crate::both;
use crate::deliveries::{Receiver, Reply};
use crate::helpers::{Backend, TestApp, TestDb};

const URL: &str = "https://hooks.example.com/x";

/// The receiver listens on loopback.
const LOOPBACK: &[(&str, &str)] = &[("THREATWATCH_WEBHOOK_ALLOW_NETS", "127.0.0.0/8")];

const CREATE: &str = "mutation($i: WebhookInput!) { createWebhook(input: $i) { webhook { id } } }";

async fn hook(app: &TestApp, admin: &str, input: Value) -> String {
    let d = app.ok(Some(admin), CREATE, json!({ "i": input })).await;
    d["createWebhook"]["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// (trigger, alert id) of every delivery of webhook `id`, oldest first.
async fn deliveries(app: &TestApp, admin: &str, id: &str) -> Vec<(String, String)> {
    let d = app
        .ok(
            Some(admin),
            "query($id: ID!) { webhook(id: $id) { deliveries(first: 100) { totalCount nodes { trigger status alert { id } } } } }",
            json!({ "id": id }),
        )
        .await;
    let mut out: Vec<(String, String)> = d["webhook"]["deliveries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["trigger"].as_str().unwrap_or("").to_string(),
                n["alert"]["id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.reverse();
    out
}

async fn ingest(
    app: &TestApp,
    token: &str,
    severity: &str,
    source: &str,
    key: Option<&str>,
) -> Value {
    app.ok(
        Some(token),
        "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { alert { id occurrences } } }",
        json!({ "i": { "source": source, "eventType": "Intrusion", "severity": severity,
                       "description": "outbox test", "dedupKey": key } }),
    )
    .await["ingestEvent"]
        .clone()
}

fn alert_id(ingested: &Value) -> String {
    ingested["alert"]["id"].as_str().unwrap().to_string()
}

fn pair(trigger: &str, alert: &str) -> (String, String) {
    (trigger.to_string(), alert.to_string())
}

/// ALERT_RAISED reaches exactly the endpoints whose filters take the
/// alert: triggers, minSeverity, sources; a disabled endpoint gets nothing,
/// and neither does an event that raises nothing.
async fn raised_alerts_follow_each_filter(app: TestApp) {
    let admin = app.admin().await;
    let all = hook(
        &app,
        &admin,
        json!({ "name": "all", "url": URL, "triggers": ["ALERT_RAISED", "ALERT_REPEATED", "ALERT_STATUS_CHANGED", "ALERT_ASSIGNED", "ALERT_COMMENTED"] }),
    )
    .await;
    let critical = hook(
        &app,
        &admin,
        json!({ "name": "critical", "url": URL, "triggers": ["ALERT_RAISED"], "minSeverity": "CRITICAL" }),
    )
    .await;
    let fw1 = hook(
        &app,
        &admin,
        json!({ "name": "fw1 chat", "url": URL, "triggers": ["ALERT_RAISED"], "sources": ["fw-1"], "format": "SLACK" }),
    )
    .await;
    let status_only = hook(
        &app,
        &admin,
        json!({ "name": "status", "url": URL, "triggers": ["ALERT_STATUS_CHANGED"] }),
    )
    .await;
    let off = hook(
        &app,
        &admin,
        json!({ "name": "off", "url": URL, "triggers": ["ALERT_RAISED"] }),
    )
    .await;
    app.ok(
        Some(&admin),
        "mutation($id: ID!, $i: WebhookInput!) { updateWebhook(id: $id, input: $i, enabled: false) { enabled } }",
        json!({ "id": off, "i": { "name": "off", "url": URL, "triggers": ["ALERT_RAISED"] } }),
    )
    .await;

    let high = alert_id(&ingest(&app, &admin, "HIGH", "fw-2", None).await);
    let crit = alert_id(&ingest(&app, &admin, "CRITICAL", "fw-1", None).await);
    // LOW raises no alert: nothing to report.
    let low = ingest(&app, &admin, "LOW", "fw-1", None).await;
    assert!(low["alert"].is_null(), "{low}");

    assert_eq!(
        deliveries(&app, &admin, &all).await,
        vec![pair("ALERT_RAISED", &high), pair("ALERT_RAISED", &crit)]
    );
    assert_eq!(
        deliveries(&app, &admin, &critical).await,
        vec![pair("ALERT_RAISED", &crit)]
    );
    assert_eq!(
        deliveries(&app, &admin, &fw1).await,
        vec![pair("ALERT_RAISED", &crit)]
    );
    assert!(deliveries(&app, &admin, &status_only).await.is_empty());
    assert!(deliveries(&app, &admin, &off).await.is_empty());

    // The SLACK body is chat text; the STANDARD one the documented JSON.
    let body = app
        .text_sql(&format!(
            "SELECT body AS value FROM webhook_deliveries WHERE webhook_id = {fw1}"
        ))
        .await;
    let slack: Value = serde_json::from_str(&body).unwrap();
    assert!(slack["text"].as_str().unwrap().contains("fw-1"), "{body}");
    let body = app
        .text_sql(&format!(
            "SELECT body AS value FROM webhook_deliveries WHERE webhook_id = {all} AND alert_id = {crit}"
        ))
        .await;
    let standard: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(standard["type"], "alert.raised", "{body}");
    assert_eq!(standard["data"]["alert"]["id"], crit.as_str(), "{body}");
}

/// A storm of 50 repeats in a minute is one ALERT_REPEATED per endpoint,
/// sent with the first repeat; repeats folded in one batch count once.
async fn a_repeat_storm_is_one_message_per_endpoint(app: TestApp) {
    let admin = app.admin().await;
    let a = hook(
        &app,
        &admin,
        json!({ "name": "a", "url": URL, "triggers": ["ALERT_REPEATED"] }),
    )
    .await;
    let b = hook(
        &app,
        &admin,
        json!({ "name": "b", "url": URL, "triggers": ["ALERT_RAISED", "ALERT_REPEATED"], "format": "SLACK" }),
    )
    .await;
    let raised = alert_id(&ingest(&app, &admin, "HIGH", "ids-1", Some("storm")).await);
    for _ in 0..40 {
        let again = ingest(&app, &admin, "HIGH", "ids-1", Some("storm")).await;
        assert_eq!(alert_id(&again), raised);
    }
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({ "source": "ids-1", "eventType": "Intrusion", "severity": "HIGH", "description": "outbox test", "dedupKey": "storm" }))
        .collect();
    app.ok(
        Some(&admin),
        "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { alert { id } } }",
        json!({ "i": batch }),
    )
    .await;
    assert_eq!(
        deliveries(&app, &admin, &a).await,
        vec![pair("ALERT_REPEATED", &raised)]
    );
    assert_eq!(
        deliveries(&app, &admin, &b).await,
        vec![
            pair("ALERT_RAISED", &raised),
            pair("ALERT_REPEATED", &raised)
        ]
    );
    // The repeat carries the occurrences as of the first repeat.
    let body = app
        .text_sql(&format!(
            "SELECT body AS value FROM webhook_deliveries WHERE webhook_id = {a}"
        ))
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "alert.repeated", "{body}");
    assert_eq!(v["data"]["alert"]["occurrences"], 2, "{body}");

    // An hour later (moved back behind the service's back) the next repeat
    // goes out again, once, with the count so far.
    app.exec_sql(if app.db_is_postgres() {
        "UPDATE webhook_deliveries SET created_at = created_at - INTERVAL '2 hours'"
    } else {
        "UPDATE webhook_deliveries SET created_at = datetime(created_at, '-2 hours')"
    })
    .await;
    ingest(&app, &admin, "HIGH", "ids-1", Some("storm")).await;
    ingest(&app, &admin, "HIGH", "ids-1", Some("storm")).await;
    let got = deliveries(&app, &admin, &a).await;
    assert_eq!(
        got,
        vec![
            pair("ALERT_REPEATED", &raised),
            pair("ALERT_REPEATED", &raised)
        ]
    );
    let count = app
        .text_sql(&format!(
            "SELECT body AS value FROM webhook_deliveries WHERE webhook_id = {a} ORDER BY id DESC LIMIT 1"
        ))
        .await;
    let v: Value = serde_json::from_str(&count).unwrap();
    assert_eq!(v["data"]["alert"]["occurrences"], 52, "{count}");
}

/// Status changes (single and bulk), assignments and comments each write
/// theirs, with from/to; what changes nothing, or fails, writes nothing.
async fn changes_by_people_are_reported(app: TestApp) {
    let admin = app.admin().await;
    let analyst = app.user_with_role("ann", "ANALYST").await;
    let all = hook(
        &app,
        &admin,
        json!({ "name": "people", "url": URL, "triggers": ["ALERT_STATUS_CHANGED", "ALERT_ASSIGNED", "ALERT_COMMENTED"] }),
    )
    .await;
    let x = alert_id(&ingest(&app, &admin, "HIGH", "fw-1", None).await);
    let y = alert_id(&ingest(&app, &admin, "HIGH", "fw-1", None).await);
    let me = app.ok(Some(&admin), "{ me { id } }", json!({})).await["me"]["id"].clone();

    let status =
        "mutation($id: ID!, $s: AlertStatus!) { updateAlertStatus(id: $id, status: $s) { id } }";
    app.ok(
        Some(&admin),
        status,
        json!({ "id": x, "s": "ACKNOWLEDGED" }),
    )
    .await;
    // Unchanged: nothing.
    app.ok(
        Some(&admin),
        status,
        json!({ "id": x, "s": "ACKNOWLEDGED" }),
    )
    .await;
    app.ok(
        Some(&admin),
        "mutation($ids: [ID!]!) { updateAlertStatuses(ids: $ids, status: RESOLVED) { id } }",
        json!({ "ids": [x, y] }),
    )
    .await;
    // A refused move back: nothing.
    let bad = app
        .gql(Some(&admin), status, json!({ "id": x, "s": "OPEN" }))
        .await;
    assert!(bad["errors"].is_array(), "{bad}");
    // A bulk move that fails on its second id stores nothing for the first.
    let z = alert_id(&ingest(&app, &admin, "HIGH", "fw-1", None).await);
    let bad = app
        .gql(
            Some(&admin),
            "mutation($ids: [ID!]!) { updateAlertStatuses(ids: $ids, status: ACKNOWLEDGED) { id } }",
            json!({ "ids": [z, x] }),
        )
        .await;
    assert!(bad["errors"].is_array(), "{bad}");

    let assign = "mutation($id: ID!, $a: ID) { assignAlert(id: $id, assignee: $a) { id } }";
    app.ok(Some(&admin), assign, json!({ "id": z, "a": me }))
        .await;
    app.ok(Some(&admin), assign, json!({ "id": z, "a": me }))
        .await;
    // An ANALYST may not take someone else's alert: refused, nothing.
    let refused = app
        .gql(Some(&analyst), assign, json!({ "id": z, "a": null }))
        .await;
    assert!(refused["errors"].is_array(), "{refused}");
    app.ok(Some(&admin), assign, json!({ "id": z, "a": null }))
        .await;

    let comment = "mutation($id: ID!, $b: String!) { commentOnAlert(id: $id, body: $b) { id } }";
    app.ok(
        Some(&analyst),
        comment,
        json!({ "id": z, "b": "looks <b>bad</b>" }),
    )
    .await;
    let huge = app
        .gql(
            Some(&analyst),
            comment,
            json!({ "id": z, "b": "x".repeat(20_000) }),
        )
        .await;
    assert!(huge["errors"].is_array(), "{huge}");
    let missing = app
        .gql(
            Some(&analyst),
            comment,
            json!({ "id": "999999", "b": "hello" }),
        )
        .await;
    assert!(missing["errors"].is_array(), "{missing}");

    assert_eq!(
        deliveries(&app, &admin, &all).await,
        vec![
            pair("ALERT_STATUS_CHANGED", &x),
            pair("ALERT_STATUS_CHANGED", &x),
            pair("ALERT_STATUS_CHANGED", &y),
            pair("ALERT_ASSIGNED", &z),
            pair("ALERT_ASSIGNED", &z),
            pair("ALERT_COMMENTED", &z),
        ]
    );
    let body = app
        .text_sql(&format!(
            "SELECT body AS value FROM webhook_deliveries WHERE webhook_id = {all} AND \"trigger\" = 'ALERT_COMMENTED'"
        ))
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["comment"]["body"], "looks <b>bad</b>", "{body}");
    assert_eq!(v["data"]["comment"]["author"], "ann", "{body}");
    let body = app
        .text_sql(&format!(
            "SELECT body AS value FROM webhook_deliveries WHERE webhook_id = {all} AND \"trigger\" = 'ALERT_ASSIGNED' ORDER BY id LIMIT 1"
        ))
        .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["from"], Value::Null, "{body}");
    assert_eq!(v["data"]["to"], "admin", "{body}");
    assert_eq!(v["data"]["alert"]["assignee"], "admin", "{body}");
}

/// The outbox row is part of the change: when it cannot be written the
/// ingest is refused and nothing of it is stored.
async fn a_failed_outbox_write_refuses_the_ingest(app: TestApp) {
    let admin = app.admin().await;
    hook(
        &app,
        &admin,
        json!({ "name": "a", "url": URL, "triggers": ["ALERT_RAISED"] }),
    )
    .await;
    ingest(&app, &admin, "HIGH", "fw-1", None).await;
    let events = app
        .text_sql("SELECT CAST(COUNT(*) AS TEXT) AS value FROM events")
        .await;
    app.exec_sql("DROP TABLE webhook_outbox").await;
    let refused = app
        .gql(
            Some(&admin),
            "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { alert { id } } }",
            json!({ "i": { "source": "fw-1", "eventType": "Intrusion", "severity": "HIGH", "description": "lost?" } }),
        )
        .await;
    assert!(refused["errors"].is_array(), "{refused}");
    assert_eq!(
        app.text_sql("SELECT CAST(COUNT(*) AS TEXT) AS value FROM events")
            .await,
        events
    );
    assert_eq!(
        app.text_sql("SELECT CAST(COUNT(*) AS TEXT) AS value FROM alerts")
            .await,
        "1"
    );
    // An event that raises nothing owes no delivery and still goes in.
    ingest(&app, &admin, "LOW", "fw-1", None).await;
}

/// A queued change outlives changes to its endpoints: one deleted before
/// the change is fanned out gets nothing (and stops nothing), one whose
/// format changed gets the body the change has, and an id list that does
/// not parse is skipped where it does not. The row is gone afterwards.
async fn a_queued_change_outlives_its_endpoints(app: TestApp) {
    let admin = app.admin().await;
    let alert = alert_id(&ingest(&app, &admin, "HIGH", "fw-1", None).await);
    let standard = hook(
        &app,
        &admin,
        json!({ "name": "std", "url": URL, "triggers": ["ALERT_RAISED"] }),
    )
    .await;
    let gone = hook(
        &app,
        &admin,
        json!({ "name": "gone", "url": URL, "triggers": ["ALERT_RAISED"] }),
    )
    .await;
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { deleteWebhook(id: $id) }",
        json!({ "id": gone }),
    )
    .await;
    // As a change queued while `gone` was there and `standard` took SLACK.
    let now = if app.db_is_postgres() {
        "now()::timestamp"
    } else {
        "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    };
    app.exec_sql(&format!(
        "INSERT INTO webhook_outbox (\"trigger\", alert_id, webhooks, standard, slack, created_at) \
         VALUES ('ALERT_RAISED', {alert}, '{gone},x,{standard},', NULL, '{{\"text\":\"queued\"}}', {now})"
    ))
    .await;
    assert_eq!(
        deliveries(&app, &admin, &standard).await,
        vec![pair("ALERT_RAISED", &alert)]
    );
    let body = app
        .text_sql(&format!(
            "SELECT body AS value FROM webhook_deliveries WHERE webhook_id = {standard}"
        ))
        .await;
    assert_eq!(body, r#"{"text":"queued"}"#);
    assert_eq!(
        app.text_sql("SELECT CAST(COUNT(*) AS TEXT) AS value FROM webhook_outbox")
            .await,
        "0"
    );
    // And the outbox keeps flowing after it.
    let next = alert_id(&ingest(&app, &admin, "HIGH", "fw-1", None).await);
    assert_eq!(
        deliveries(&app, &admin, &standard).await,
        vec![pair("ALERT_RAISED", &alert), pair("ALERT_RAISED", &next)]
    );
}

both!(
    a_queued_change_outlives_its_endpoints,
    raised_alerts_follow_each_filter,
    a_repeat_storm_is_one_message_per_endpoint,
    changes_by_people_are_reported,
    a_failed_outbox_write_refuses_the_ingest,
);

async fn post(
    client: &reqwest::Client,
    addr: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut req = client
        .post(format!("http://{addr}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// `kill -9` right after acknowledged ingests, with more ingests and
/// deliveries in flight: after a restart every acknowledged raised alert
/// has its delivery row, no stored alert lacks one, and a receiver that
/// counts the alert ids it was sent sees every stored alert.
async fn acknowledged_raises_survive_kill_9(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let url = db.url().to_string();
    let receiver = Receiver::start().await;
    // Slow answers at first, so deliveries are under way when it dies.
    receiver.script("/pager", vec![Reply::slow(Duration::from_millis(200)); 8]);
    let mut running = start(&url, LOOPBACK);
    let (addr, running) = tokio::task::spawn_blocking(move || (running.serving(), running))
        .await
        .unwrap();
    let log = running.log();
    let password = log
        .lines()
        .find_map(|l| l.strip_prefix("Created user 'admin' with password: "))
        .unwrap_or_else(|| panic!("no password in {log}"))
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let login = post(
        &client,
        &addr,
        None,
        "mutation($p: String!) { login(username: \"admin\", password: $p) { accessToken } }",
        json!({ "p": password }),
    )
    .await;
    let token = login["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let created = post(
        &client,
        &addr,
        Some(&token),
        CREATE,
        json!({ "i": { "name": "pager", "url": receiver.url("/pager"), "triggers": ["ALERT_RAISED"] } }),
    )
    .await;
    let hook = created["data"]["createWebhook"]["webhook"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let ingest = "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { alert { id } } }";
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let d = post(
            &client,
            &addr,
            Some(&token),
            ingest,
            json!({ "i": { "source": format!("fw-{i}"), "eventType": "Intrusion", "severity": "HIGH", "description": "durable" } }),
        )
        .await;
        acknowledged.push(
            d["data"]["ingestEvent"]["alert"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{d}"))
                .to_string(),
        );
    }
    // More in flight when the process dies: each is either stored with its
    // delivery or not at all.
    for i in 0..10 {
        let (client, addr, token) = (client.clone(), addr.clone(), token.clone());
        tokio::spawn(async move {
            let _ = client
                .post(format!("http://{addr}/graphql"))
                .bearer_auth(token)
                .json(&json!({ "query": ingest, "variables": { "i": { "source": format!("late-{i}"), "eventType": "Intrusion", "severity": "HIGH", "description": "in flight" } } }))
                .send()
                .await;
        });
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut running = running;
    running.child.kill().unwrap(); // SIGKILL
    let _ = running.child.wait();
    drop(running);

    let mut again = start(&url, LOOPBACK);
    let (_addr, again) = tokio::task::spawn_blocking(move || (again.serving(), again))
        .await
        .unwrap();
    // The restarted worker makes the changes queued before the kill into
    // deliveries first.
    let deadline = Instant::now() + Duration::from_secs(30);
    while db
        .text("SELECT CAST(COUNT(*) AS TEXT) AS value FROM webhook_outbox")
        .await
        != "0"
    {
        assert!(Instant::now() < deadline, "the outbox was never fanned out");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in &acknowledged {
        let n = db
            .text(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) AS value FROM webhook_deliveries \
                 WHERE webhook_id = {hook} AND alert_id = {id} AND \"trigger\" = 'ALERT_RAISED'"
            ))
            .await;
        assert_eq!(n, "1", "alert {id}");
    }
    let orphans = db
        .text(
            "SELECT CAST(COUNT(*) AS TEXT) AS value FROM alerts WHERE NOT EXISTS \
             (SELECT 1 FROM webhook_deliveries d WHERE d.alert_id = alerts.id)",
        )
        .await;
    assert_eq!(orphans, "0");
    // Deliveries the dead process had claimed stay leased to it for a
    // minute: let that minute pass.
    db.exec("UPDATE webhook_deliveries SET locked_until = NULL WHERE status = 'PENDING'")
        .await
        .unwrap();
    // Every stored alert reaches the receiver (some twice, at least once
    // being the promise): the acknowledged ones by id, the rest by count.
    let stored: usize = db
        .text("SELECT CAST(COUNT(*) AS TEXT) AS value FROM alerts")
        .await
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let seen: std::collections::HashSet<String> = receiver
            .all()
            .iter()
            .filter_map(|s| serde_json::from_str::<Value>(&s.body).ok())
            .filter_map(|b| match &b["data"]["alert"]["id"] {
                Value::String(id) => Some(id.clone()),
                Value::Number(id) => Some(id.to_string()),
                _ => None,
            })
            .collect();
        if seen.len() >= stored || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id in &acknowledged {
        assert!(seen.contains(id), "alert {id} never reached the receiver");
    }
    assert_eq!(seen.len(), stored, "{}", again.log());
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_deliveries_sqlite() {
    acknowledged_raises_survive_kill_9(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_keeps_deliveries_postgres() {
    acknowledged_raises_survive_kill_9(Backend::Postgres).await;
}

//! The delivery worker against a scripted receiver: signatures checked
//! here from the specification, retries and their schedule (time moved by
//! SQL, not waited for), Retry-After, 410 and the 5-day rule disabling an
//! endpoint, no redirects, refused addresses, a slow endpoint beside a
//! fast one, rotation, and two instances sharing the work.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{KeyInit, Mac};
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::{both, both_with};

/// What the receiver was sent.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    path: String,
    id: String,
    timestamp: String,
    signature: String,
    pub(crate) body: String,
}

/// One scripted answer.
#[derive(Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    sleep: Duration,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            sleep: Duration::ZERO,
        }
    }

    /// 200, after `sleep`.
    pub(crate) fn slow(sleep: Duration) -> Self {
        Self {
            sleep,
            ..Self::status(200)
        }
    }
}

/// A receiver on loopback: records every request, answers each path from
/// its script (200 when the script is spent).
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<HashMap<String, VecDeque<Reply>>>>,
    base: String,
}

async fn answer(State(r): State<Receiver>, uri: Uri, headers: HeaderMap, body: String) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let path = uri.path().to_string();
    r.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body,
    });
    let reply = r
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(|q| q.pop_front())
        .unwrap_or(Reply::status(200));
    tokio::time::sleep(reply.sleep).await;
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), "scripted").into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

impl Receiver {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let r = Receiver {
            base: format!("http://{}", listener.local_addr().unwrap()),
            ..Receiver::default()
        };
        let app = axum::Router::new().fallback(answer).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub(crate) fn script(&self, path: &str, replies: Vec<Reply>) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_string(), replies.into());
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    pub(crate) fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn loopback(s: &mut threatwatch::config::Settings) {
    s.webhook_allow_nets = vec!["127.0.0.0/8".parse().unwrap()];
}

const DELIVERY: &str =
    "id status attempts lastAttemptAt nextAttemptAt deliveredAt lastStatusCode lastError";

async fn create(app: &TestApp, admin: &str, name: &str, url: &str) -> (String, String) {
    let d = app
        .ok(
            Some(admin),
            "mutation($i: WebhookInput!) { createWebhook(input: $i) { secret webhook { id } } }",
            json!({ "i": { "name": name, "url": url, "triggers": ["ALERT_RAISED"] } }),
        )
        .await;
    let c = &d["createWebhook"];
    (
        c["webhook"]["id"].as_str().unwrap().to_string(),
        c["secret"].as_str().unwrap().to_string(),
    )
}

async fn ping(app: &TestApp, admin: &str, hook: &str) -> String {
    let d = app
        .ok(
            Some(admin),
            "mutation($id: ID!) { testWebhook(id: $id) { id } }",
            json!({ "id": hook }),
        )
        .await;
    d["testWebhook"]["id"].as_str().unwrap().to_string()
}

async fn webhook(app: &TestApp, admin: &str, hook: &str) -> Value {
    let d = app
        .ok(
            Some(admin),
            &format!(
                "query($id: ID!) {{ webhook(id: $id) {{ enabled disabledReason deliveries(first: 100) {{ nodes {{ {DELIVERY} }} }} }} }}"
            ),
            json!({ "id": hook }),
        )
        .await;
    d["webhook"].clone()
}

async fn delivery(app: &TestApp, admin: &str, hook: &str, id: &str) -> Value {
    let w = webhook(app, admin, hook).await;
    w["deliveries"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no delivery {id} in {w}"))
}

/// Evaluates `$check` (an `Option`) until it is `Some`, for up to 10 s.
macro_rules! eventually {
    ($what:expr, $check:expr) => {{
        let start = Instant::now();
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "timed out: {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

async fn attempted(app: &TestApp, admin: &str, hook: &str, id: &str, attempts: i64) -> Value {
    eventually!(&format!("delivery {id} attempted {attempts} times"), {
        let d = delivery(app, admin, hook, id).await;
        (d["attempts"].as_i64() >= Some(attempts)).then_some(d)
    })
}

fn at(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("no time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// The Standard Webhooks check, written here from the specification:
/// base64 HMAC-SHA256 over `{id}.{timestamp}.{body}` keyed with the
/// secret's base64 part, one `v1,` signature per space-separated entry.
fn verifies(secret: &str, seen: &Seen) -> usize {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", seen.id, seen.timestamp, seen.body).as_bytes());
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    seen.signature.split(' ').filter(|s| *s == expected).count()
}

fn old_stamp(days: i64) -> String {
    (Utc::now() - chrono::TimeDelta::days(days))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

async fn a_delivery_is_signed_and_recorded(app: TestApp) {
    let r = Receiver::start().await;
    let admin = app.admin().await;
    let (hook, secret) = create(&app, &admin, "ok", &r.url("/ok")).await;
    let id = ping(&app, &admin, &hook).await;
    let d = eventually!("delivered", {
        let d = delivery(&app, &admin, &hook, &id).await;
        (d["status"] == "DELIVERED").then_some(d)
    });
    assert_eq!(d["attempts"], 1, "{d}");
    assert_eq!(d["lastStatusCode"], 200, "{d}");
    assert!(
        d["deliveredAt"].is_string() && d["nextAttemptAt"].is_null(),
        "{d}"
    );
    let seen = r.seen("/ok");
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert!(s.id.starts_with("msg_"), "{s:?}");
    let stamp: i64 = s.timestamp.parse().unwrap();
    assert!((Utc::now().timestamp() - stamp).abs() < 30, "{s:?}");
    assert_eq!(verifies(&secret, s), 1, "{s:?}");
    let body: Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(body["type"], "ping");
    // A wrong secret does not verify: the check above checks something.
    assert_eq!(verifies("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", s), 0);
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("threatwatch_webhook_deliveries_total{result=\"delivered\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("threatwatch_webhook_oldest_pending_seconds"));
}

async fn a_failure_is_retried_on_schedule(app: TestApp) {
    let r = Receiver::start().await;
    r.script("/flaky", vec![Reply::status(500)]);
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "flaky", &r.url("/flaky")).await;
    let id = ping(&app, &admin, &hook).await;
    let d = attempted(&app, &admin, &hook, &id, 1).await;
    assert_eq!(d["status"], "PENDING", "{d}");
    assert_eq!(d["lastStatusCode"], 500, "{d}");
    assert!(
        d["lastError"].as_str().unwrap().starts_with("HTTP 500"),
        "{d}"
    );
    let wait = (at(&d["nextAttemptAt"]) - at(&d["lastAttemptAt"])).num_milliseconds();
    assert!(
        (4_500..=5_500).contains(&wait),
        "first retry after ~5 s: {wait} ms"
    );
    // The endpoint is failing since that attempt.
    let failing = app
        .text_sql(&format!(
            "SELECT CASE WHEN failing_since IS NULL THEN 'no' ELSE 'yes' END AS value FROM webhooks WHERE id = {hook}"
        ))
        .await;
    assert_eq!(failing, "yes");
    // Time moves: the retry is due now.
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET next_attempt_at = created_at WHERE id = {id}"
    ))
    .await;
    let d = attempted(&app, &admin, &hook, &id, 2).await;
    assert_eq!(d["status"], "DELIVERED", "{d}");
    let seen = r.seen("/flaky");
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].id, seen[1].id, "the same webhook-id on a retry");
    let failing = app
        .text_sql(&format!(
            "SELECT CASE WHEN failing_since IS NULL THEN 'no' ELSE 'yes' END AS value FROM webhooks WHERE id = {hook}"
        ))
        .await;
    assert_eq!(failing, "no", "a success ends the failing streak");
}

async fn retry_after_is_honoured(app: TestApp) {
    let r = Receiver::start().await;
    r.script(
        "/busy",
        vec![Reply {
            status: 429,
            headers: vec![("retry-after", "120".into())],
            sleep: Duration::ZERO,
        }],
    );
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "busy", &r.url("/busy")).await;
    let id = ping(&app, &admin, &hook).await;
    let d = attempted(&app, &admin, &hook, &id, 1).await;
    assert_eq!(
        (d["status"].as_str(), d["lastStatusCode"].as_i64()),
        (Some("PENDING"), Some(429))
    );
    let wait = (at(&d["nextAttemptAt"]) - at(&d["lastAttemptAt"])).num_seconds();
    assert!((119..=121).contains(&wait), "{wait} s");
}

async fn gone_disables_the_endpoint(app: TestApp) {
    let r = Receiver::start().await;
    r.script("/gone/T1/s3cr3tpath", vec![Reply::status(410)]);
    let admin = app.admin().await;
    let (hook, secret) = create(&app, &admin, "gone", &r.url("/gone/T1/s3cr3tpath")).await;
    let id = ping(&app, &admin, &hook).await;
    attempted(&app, &admin, &hook, &id, 1).await;
    let w = eventually!("disabled", {
        let w = webhook(&app, &admin, &hook).await;
        (w["enabled"] == false).then_some(w)
    });
    assert!(w["disabledReason"].as_str().unwrap().contains("410"), "{w}");
    let detail = app
        .text_sql(
            "SELECT detail || '|' || actor || '|' || target_id AS value FROM audit_log WHERE action = 'WEBHOOK_DISABLED'",
        )
        .await;
    assert!(
        detail.contains("410") && detail.ends_with(&format!("|system|{hook}")),
        "{detail}"
    );
    assert!(
        !detail.contains("s3cr3tpath") && !detail.contains(&secret),
        "{detail}"
    );
    // A disabled endpoint is not called.
    let later = ping(&app, &admin, &hook).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let d = delivery(&app, &admin, &hook, &later).await;
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64()),
        (Some("PENDING"), Some(0))
    );
    assert_eq!(r.all().len(), 1);
}

async fn five_days_of_failure_disables(app: TestApp) {
    let r = Receiver::start().await;
    r.script("/down", vec![Reply::status(503)]);
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "down", &r.url("/down")).await;
    app.exec_sql(&format!(
        "UPDATE webhooks SET failing_since = '{}' WHERE id = {hook}",
        old_stamp(6)
    ))
    .await;
    let id = ping(&app, &admin, &hook).await;
    attempted(&app, &admin, &hook, &id, 1).await;
    let w = eventually!("disabled", {
        let w = webhook(&app, &admin, &hook).await;
        (w["enabled"] == false).then_some(w)
    });
    assert!(
        w["disabledReason"].as_str().unwrap().contains("5 days"),
        "{w}"
    );
    let n = app
        .text_sql("SELECT CAST(COUNT(*) AS TEXT) AS value FROM audit_log WHERE action = 'WEBHOOK_DISABLED' AND actor = 'system'")
        .await;
    assert_eq!(n, "1");
}

async fn redirects_are_not_followed(app: TestApp) {
    let r = Receiver::start().await;
    r.script(
        "/moved",
        vec![Reply {
            status: 302,
            headers: vec![("location", r.url("/elsewhere"))],
            sleep: Duration::ZERO,
        }],
    );
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "moved", &r.url("/moved")).await;
    let id = ping(&app, &admin, &hook).await;
    let d = attempted(&app, &admin, &hook, &id, 1).await;
    assert_eq!(d["lastStatusCode"], 302, "{d}");
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed"),
        "{d}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(r.seen("/elsewhere").is_empty());
}

async fn a_slow_endpoint_does_not_delay_another(app: TestApp) {
    let r = Receiver::start().await;
    let slow = Reply {
        status: 200,
        headers: vec![],
        sleep: Duration::from_secs(8),
    };
    r.script("/slow", vec![slow; 10]);
    let admin = app.admin().await;
    let (slow_hook, _) = create(&app, &admin, "slow", &r.url("/slow")).await;
    let (fast_hook, _) = create(&app, &admin, "fast", &r.url("/fast")).await;
    for _ in 0..6 {
        ping(&app, &admin, &slow_hook).await;
    }
    eventually!("the slow endpoint is busy", {
        (r.seen("/slow").len() >= 4).then_some(Value::Null)
    });
    let started = Instant::now();
    let id = ping(&app, &admin, &fast_hook).await;
    eventually!("the fast endpoint is served", {
        (!r.seen("/fast").is_empty()).then_some(Value::Null)
    });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let d = eventually!("fast delivered", {
        let d = delivery(&app, &admin, &fast_hook, &id).await;
        (d["status"] == "DELIVERED").then_some(d)
    });
    assert_eq!(d["attempts"], 1);
    // At most 4 in flight to one endpoint.
    assert_eq!(r.seen("/slow").len(), 4, "per-endpoint bound");
}

async fn a_refused_address_is_never_called(app: TestApp) {
    let r = Receiver::start().await;
    let admin = app.admin().await;
    let port = r.base.rsplit(':').next().unwrap().to_string();
    let (hook, _) = create(&app, &admin, "local", &format!("http://localhost:{port}/x")).await;
    let id = ping(&app, &admin, &hook).await;
    let d = attempted(&app, &admin, &hook, &id, 1).await;
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .starts_with("refused address"),
        "{d}"
    );
    assert!(d["lastStatusCode"].is_null(), "{d}");
    assert_eq!(d["status"], "PENDING", "{d}");
    assert!(r.all().is_empty());
}

async fn a_rotation_signs_with_both_secrets(app: TestApp) {
    let r = Receiver::start().await;
    let admin = app.admin().await;
    let (hook, old) = create(&app, &admin, "rot", &r.url("/rot")).await;
    let d = app
        .ok(
            Some(&admin),
            "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret } }",
            json!({ "id": hook }),
        )
        .await;
    let new = d["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    ping(&app, &admin, &hook).await;
    eventually!("received", {
        (!r.seen("/rot").is_empty()).then_some(Value::Null)
    });
    let s = &r.seen("/rot")[0];
    assert_eq!(s.signature.split(' ').count(), 2, "{s:?}");
    assert_eq!(verifies(&new, s), 1, "{s:?}");
    assert_eq!(verifies(&old, s), 1, "{s:?}");
    assert!(s.signature.starts_with("v1,"));
}

async fn delivered_rows_are_pruned_failed_kept(app: TestApp) {
    let r = Receiver::start().await;
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "prune", &r.url("/p")).await;
    let done = ping(&app, &admin, &hook).await;
    eventually!("delivered", {
        let d = delivery(&app, &admin, &hook, &done).await;
        (d["status"] == "DELIVERED").then_some(d)
    });
    let old = old_stamp(40);
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET delivered_at = '{old}', created_at = '{old}' WHERE id = {done}"
    ))
    .await;
    let failed = ping(&app, &admin, &hook).await;
    attempted(&app, &admin, &hook, &failed, 1).await;
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET status = 'FAILED', next_attempt_at = NULL, created_at = '{old}' WHERE id = {failed}"
    ))
    .await;
    // Pruning runs when a worker starts, then hourly.
    let _peer = app.peer_with(loopback).await;
    eventually!("pruned", {
        let n = app
            .text_sql(&format!(
                "SELECT CAST(COUNT(*) AS TEXT) AS value FROM webhook_deliveries WHERE id = {done}"
            ))
            .await;
        (n == "0").then_some(Value::Null)
    });
    let d = delivery(&app, &admin, &hook, &failed).await;
    assert_eq!(d["status"], "FAILED", "{d}");
}

/// A delivery leased by another instance (one that may have died
/// mid-attempt) is left alone until the lease runs out, then attempted.
/// PostgreSQL only: leases are how instances share its outbox; SQLite has
/// one instance, which keeps what it holds in memory and writes no lease.
async fn a_lease_holds_a_delivery_until_it_runs_out(app: TestApp) {
    if !app.db_is_postgres() {
        return;
    }
    let r = Receiver::start().await;
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "leased", &r.url("/l")).await;
    // Leased before the worker sees it: pinging with the endpoint off.
    app.exec_sql(&format!(
        "UPDATE webhooks SET enabled = false WHERE id = {hook}"
    ))
    .await;
    let id = ping(&app, &admin, &hook).await;
    let later = (Utc::now() + chrono::TimeDelta::hours(1))
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string();
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET locked_until = '{later}' WHERE id = {id}"
    ))
    .await;
    app.exec_sql(&format!(
        "UPDATE webhooks SET enabled = true WHERE id = {hook}"
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(r.all().is_empty(), "a leased delivery is not attempted");
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET locked_until = '{}' WHERE id = {id}",
        old_stamp(1)
    ))
    .await;
    let d = eventually!("delivered after the lease", {
        let d = delivery(&app, &admin, &hook, &id).await;
        (d["status"] == "DELIVERED").then_some(d)
    });
    assert_eq!(d["attempts"], 1);
    assert_eq!(r.all().len(), 1);
}

/// A keep beyond any date (the setting is bounded only by humantime)
/// prunes nothing and stops nothing: the worker still delivers.
async fn an_endless_keep_prunes_nothing(app: TestApp) {
    let r = Receiver::start().await;
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "endless", &r.url("/e")).await;
    let id = ping(&app, &admin, &hook).await;
    let d = eventually!("delivered", {
        let d = delivery(&app, &admin, &hook, &id).await;
        (d["status"] == "DELIVERED").then_some(d)
    });
    assert_eq!(d["attempts"], 1);
}

/// Two instances over one PostgreSQL: every delivery is received once.
async fn two_instances_share_the_work(app: TestApp) {
    if !app.db_is_postgres() {
        return;
    }
    let r = Receiver::start().await;
    let _peer = app.peer_with(loopback).await;
    let admin = app.admin().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let (hook, _) = create(&app, &admin, &format!("h{i}"), &r.url(&format!("/h{i}"))).await;
        for _ in 0..8 {
            ids.push((hook.clone(), ping(&app, &admin, &hook).await));
        }
    }
    for (hook, id) in &ids {
        eventually!("delivered", {
            let d = delivery(&app, &admin, hook, id).await;
            (d["status"] == "DELIVERED").then_some(d)
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = r.all();
    let mut msg: Vec<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    msg.sort_unstable();
    msg.dedup();
    assert_eq!(seen.len(), ids.len(), "each delivery once");
    assert_eq!(msg.len(), ids.len());
}

/// Two instances over one PostgreSQL, both ingesting and both fanning out
/// the outbox at once: every change reaches each endpoint exactly once.
async fn two_instances_fan_out_each_change_once(app: TestApp) {
    if !app.db_is_postgres() {
        return;
    }
    let r = Receiver::start().await;
    let peer = app.peer_with(loopback).await;
    let admin = app.admin().await;
    create(&app, &admin, "a", &r.url("/a")).await;
    create(&app, &admin, "b", &r.url("/b")).await;
    let ingest = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { alert { id } } }";
    let sends = (0..40).map(|n| {
        let url = if n % 2 == 0 {
            app.url("/graphql")
        } else {
            peer.url("/graphql")
        };
        let inputs: Vec<Value> = (0..5)
            .map(|i| json!({ "source": format!("fw-{n}-{i}"), "eventType": "Intrusion", "severity": "HIGH", "description": "fan out" }))
            .collect();
        let (client, admin) = (app.client.clone(), admin.clone());
        async move {
            let answer: Value = client
                .post(url)
                .bearer_auth(admin)
                .json(&json!({ "query": ingest, "variables": { "i": inputs } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(answer["errors"].is_null(), "{answer}");
        }
    });
    futures_util::future::join_all(sends).await;
    eventually!("every change at both endpoints", {
        (r.all().len() >= 400).then_some(())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = r.all();
    let mut pairs: Vec<(String, String)> = seen
        .iter()
        .map(|s| {
            let body: Value = serde_json::from_str(&s.body).unwrap();
            let alert = body["data"]["alert"]["id"].as_str().unwrap().to_string();
            (s.path.clone(), alert)
        })
        .collect();
    assert_eq!(pairs.len(), 400, "a change was delivered twice");
    pairs.sort_unstable();
    pairs.dedup();
    assert_eq!(pairs.len(), 400, "a change went twice to one endpoint");
}

both!(a_refused_address_is_never_called);

/// Deliveries held by the worker (queued, in flight, or attempted and
/// waiting to be recorded) are never claimed a second time, though claim
/// rounds keep coming: with a slow receiver and many deliveries, each is
/// sent exactly once. On SQLite nothing in the database marks them; the
/// worker's memory must.
async fn each_delivery_is_sent_once(app: TestApp) {
    let r = Receiver::start().await;
    let admin = app.admin().await;
    let (hook, _) = create(&app, &admin, "once", &r.url("/once")).await;
    r.script("/once", vec![Reply::slow(Duration::from_millis(150)); 40]);
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(ping(&app, &admin, &hook).await);
    }
    eventually!("all delivered", {
        let w = webhook(&app, &admin, &hook).await;
        let nodes = w["deliveries"]["nodes"].as_array().unwrap().clone();
        nodes
            .iter()
            .all(|n| n["status"] == "DELIVERED")
            .then_some(())
    });
    let seen = r.seen("/once");
    let distinct: std::collections::HashSet<&str> = seen.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(distinct.len(), 40);
    assert_eq!(seen.len(), 40, "a delivery was sent twice");
    for id in &ids {
        assert_eq!(delivery(&app, &admin, &hook, id).await["attempts"], 1);
    }
}

both_with!(
    each_delivery_is_sent_once => super::loopback,
    a_delivery_is_signed_and_recorded => super::loopback,
    a_failure_is_retried_on_schedule => super::loopback,
    retry_after_is_honoured => super::loopback,
    gone_disables_the_endpoint => super::loopback,
    five_days_of_failure_disables => super::loopback,
    redirects_are_not_followed => super::loopback,
    a_slow_endpoint_does_not_delay_another => super::loopback,
    a_rotation_signs_with_both_secrets => super::loopback,
    delivered_rows_are_pruned_failed_kept => super::loopback,
    two_instances_share_the_work => super::loopback,
    two_instances_fan_out_each_change_once => super::loopback,
    a_lease_holds_a_delivery_until_it_runs_out => super::loopback,
    an_endless_keep_prunes_nothing => |s| {
        super::loopback(s);
        s.webhook_keep = std::time::Duration::from_secs(u64::MAX / 4);
    },
);

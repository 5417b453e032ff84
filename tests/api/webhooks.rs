//! Webhooks, the admin's side: registering endpoints, their secrets (shown
//! once, sealed at rest, rotated with an overlap), the outbox rows that
//! pings and redeliveries write, and who may do any of it.

use chrono::{NaiveDateTime, Utc};
use serde_json::{json, Value};

use crate::helpers::{code, TestApp, TestDb};
use crate::{both, both_with};

const WEBHOOK_FIELDS: &str =
    "id name url triggers minSeverity sources format enabled disabledReason createdBy createdAt";

fn create_q() -> String {
    format!(
        "mutation($i: WebhookInput!) {{ createWebhook(input: $i) {{ secret webhook {{ {WEBHOOK_FIELDS} }} }} }}"
    )
}

fn update_q() -> String {
    format!(
        "mutation($id: ID!, $i: WebhookInput!, $e: Boolean) {{ updateWebhook(id: $id, input: $i, enabled: $e) {{ {WEBHOOK_FIELDS} }} }}"
    )
}

const DELETE: &str = "mutation($id: ID!) { deleteWebhook(id: $id) }";
const ROTATE: &str =
    "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { id name } } }";
const DELIVERY_FIELDS: &str = "id trigger alert { id } status attempts createdAt lastAttemptAt nextAttemptAt deliveredAt lastStatusCode lastError";

fn test_q() -> String {
    format!("mutation($id: ID!) {{ testWebhook(id: $id) {{ {DELIVERY_FIELDS} }} }}")
}

fn redeliver_q() -> String {
    format!("mutation($id: ID!) {{ redeliverWebhook(deliveryId: $id) {{ {DELIVERY_FIELDS} }} }}")
}

fn input(name: &str, url: &str) -> Value {
    json!({ "name": name, "url": url, "triggers": ["ALERT_RAISED"] })
}

/// Creates a webhook; its id and secret.
async fn create(app: &TestApp, admin: &str, name: &str) -> (String, String) {
    let d = app
        .ok(
            Some(admin),
            &create_q(),
            json!({ "i": input(name, "https://hooks.example.com/services/T1/B2/tok3n") }),
        )
        .await;
    let c = &d["createWebhook"];
    (
        c["webhook"]["id"].as_str().unwrap().to_string(),
        c["secret"].as_str().unwrap().to_string(),
    )
}

/// The text of one value from the database, behind the service's back.
async fn sql(app: &TestApp, query: &str) -> String {
    app.text_sql(query).await
}

async fn count(app: &TestApp, from_where: &str) -> i64 {
    sql(
        app,
        &format!("SELECT CAST(COUNT(*) AS TEXT) AS value FROM {from_where}"),
    )
    .await
    .parse()
    .unwrap()
}

async fn audit(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    let d = app
        .ok(
            Some(admin),
            &format!("{{ auditLog(action: {action}, first: 100) {{ nodes {{ actor targetType targetId detail }} }} }}"),
            json!({}),
        )
        .await;
    d["auditLog"]["nodes"].as_array().unwrap().clone()
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("")
}

fn stamp(text: &str) -> NaiveDateTime {
    let text = text.trim_end_matches("+00").trim_end_matches('Z');
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

async fn webhooks_are_created_listed_changed_and_deleted(app: TestApp) {
    let admin = app.admin().await;
    let d = app
        .ok(
            Some(&admin),
            &create_q(),
            json!({ "i": {
                "name": " pager ",
                "url": "https://hooks.example.com/services/T1/B2/tok3n",
                "triggers": ["ALERT_COMMENTED", "ALERT_RAISED", "ALERT_RAISED"],
            } }),
        )
        .await;
    let hook = &d["createWebhook"]["webhook"];
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["name"], "pager");
    assert_eq!(hook["triggers"], json!(["ALERT_RAISED", "ALERT_COMMENTED"]));
    assert_eq!(hook["format"], "STANDARD");
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["disabledReason"], Value::Null);
    assert_eq!(hook["minSeverity"], Value::Null);
    assert_eq!(hook["sources"], Value::Null);
    assert_eq!(hook["createdBy"], "admin");

    let list = app
        .ok(
            Some(&admin),
            &format!("{{ webhooks {{ {WEBHOOK_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    assert_eq!(list["webhooks"][0], *hook);
    let one = app
        .ok(
            Some(&admin),
            &format!("query($id: ID!) {{ webhook(id: $id) {{ {WEBHOOK_FIELDS} }} }}"),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(one["webhook"], *hook);
    let none = app
        .ok(
            Some(&admin),
            "query($id: ID!) { webhook(id: $id) { id } }",
            json!({ "id": "999999" }),
        )
        .await;
    assert_eq!(none["webhook"], Value::Null);

    // A full replacement of the settings.
    let changed = json!({
        "name": "chat",
        "url": "https://chat.example.org/hooks/abc",
        "triggers": ["ALERT_STATUS_CHANGED"],
        "minSeverity": "CRITICAL",
        "sources": ["fw-1", " fw-1", "ids"],
        "format": "SLACK",
    });
    let d = app
        .ok(Some(&admin), &update_q(), json!({ "id": id, "i": changed }))
        .await;
    let u = &d["updateWebhook"];
    assert_eq!(u["name"], "chat");
    assert_eq!(u["url"], "https://chat.example.org/hooks/abc");
    assert_eq!(u["triggers"], json!(["ALERT_STATUS_CHANGED"]));
    assert_eq!(u["minSeverity"], "CRITICAL");
    assert_eq!(u["sources"], json!(["fw-1", "ids"]));
    assert_eq!(u["format"], "SLACK");
    assert_eq!(u["enabled"], true);

    // Off by an admin, then back on.
    let d = app
        .ok(
            Some(&admin),
            &update_q(),
            json!({ "id": id, "i": changed, "e": false }),
        )
        .await;
    assert_eq!(d["updateWebhook"]["enabled"], false);
    assert_eq!(d["updateWebhook"]["disabledReason"], "turned off by admin");
    // Left out, `enabled` stays as it is.
    let d = app
        .ok(Some(&admin), &update_q(), json!({ "id": id, "i": changed }))
        .await;
    assert_eq!(d["updateWebhook"]["enabled"], false);

    // The service turned it off after days of failures: enabled: true is a
    // fresh start, the failing clock included.
    app.exec_sql(&format!(
        "UPDATE webhooks SET enabled = FALSE, disabled_reason = 'gone (410)', \
         failing_since = '2026-01-01 00:00:00' WHERE id = {id}"
    ))
    .await;
    let d = app
        .ok(
            Some(&admin),
            &update_q(),
            json!({ "id": id, "i": changed, "e": true }),
        )
        .await;
    assert_eq!(d["updateWebhook"]["enabled"], true);
    assert_eq!(d["updateWebhook"]["disabledReason"], Value::Null);
    assert_eq!(
        count(
            &app,
            &format!("webhooks WHERE id = {id} AND failing_since IS NULL")
        )
        .await,
        1
    );

    // Deleting takes its deliveries with it.
    app.ok(Some(&admin), &test_q(), json!({ "id": id })).await;
    app.ok(Some(&admin), &test_q(), json!({ "id": id })).await;
    assert_eq!(
        count(&app, &format!("webhook_deliveries WHERE webhook_id = {id}")).await,
        2
    );
    let d = app.ok(Some(&admin), DELETE, json!({ "id": id })).await;
    assert_eq!(d["deleteWebhook"], true);
    assert_eq!(count(&app, "webhook_deliveries").await, 0);
    assert_eq!(count(&app, "webhooks").await, 0);
    let body = app.gql(Some(&admin), DELETE, json!({ "id": id })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");

    // Each change is audited, naming the webhook; the URL only to its
    // origin (chat services keep their own token in the path).
    for (action, n) in [
        ("WEBHOOK_CREATED", 1),
        ("WEBHOOK_UPDATED", 4),
        ("WEBHOOK_DELETED", 1),
    ] {
        let entries = audit(&app, &admin, action).await;
        assert_eq!(entries.len(), n, "{action}: {entries:?}");
        for e in &entries {
            assert_eq!(e["actor"], "admin");
            assert_eq!(e["targetType"], "Webhook");
            assert_eq!(e["targetId"], id.as_str());
            let detail = e["detail"].as_str().unwrap();
            assert!(
                !detail.contains("tok3n") && !detail.contains("/hooks/abc"),
                "{detail}"
            );
        }
    }
    let created = audit(&app, &admin, "WEBHOOK_CREATED").await;
    let detail: Value = serde_json::from_str(created[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["name"], "pager");
    assert_eq!(detail["url"], "https://hooks.example.com");
}

/// The secret is shown once, in the `whsec_` form, and is nowhere else:
/// not in listings, not in the audit log, not in the database's rows or
/// files in plain text.
async fn the_secret_is_shown_once_and_sealed_at_rest(app: TestApp) {
    let admin = app.admin().await;
    let (id, secret) = create(&app, &admin, "pager").await;
    let encoded = secret.strip_prefix("whsec_").expect("whsec_ form");
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(key.len(), 32);

    // No field of the schema shows it again.
    let listing = app
        .ok(
            Some(&admin),
            &format!("{{ webhooks {{ {WEBHOOK_FIELDS} deliveries {{ nodes {{ id }} }} }} }}"),
            json!({}),
        )
        .await;
    assert!(!listing.to_string().contains(encoded));
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(first: 100) { nodes { action detail } } }",
            json!({}),
        )
        .await;
    assert!(!log.to_string().contains(encoded), "{log}");

    // The row holds it sealed.
    let stored = sql(
        &app,
        &format!("SELECT secret AS value FROM webhooks WHERE id = {id}"),
    )
    .await;
    assert!(stored.starts_with("v1."), "{stored}");
    assert!(!stored.contains(encoded));
    let (_, second) = create(&app, &admin, "other").await;
    assert_ne!(second, secret, "each webhook its own secret");

    // Nor is it anywhere in SQLite's files (the database and its WAL).
    if let TestDb::Sqlite { .. } = app.db() {
        let path = app.db().url().trim_start_matches("sqlite://").to_string();
        for file in [path.clone(), format!("{path}-wal")] {
            let Ok(bytes) = std::fs::read(&file) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(encoded), "{file} holds the secret");
            assert!(!text.contains(&secret), "{file} holds the secret");
        }
    }

    // Rotation: a new secret, shown once; the old one keeps signing for
    // 24 hours, stored sealed as the previous secret.
    let before = Utc::now().naive_utc();
    let d = app.ok(Some(&admin), ROTATE, json!({ "id": id })).await;
    let rotated = d["rotateWebhookSecret"]["secret"].as_str().unwrap();
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    assert_eq!(d["rotateWebhookSecret"]["webhook"]["id"], id.as_str());
    let previous = sql(
        &app,
        &format!("SELECT previous_secret AS value FROM webhooks WHERE id = {id}"),
    )
    .await;
    assert_eq!(previous, stored, "the old secret is kept as it was");
    let now_stored = sql(
        &app,
        &format!("SELECT secret AS value FROM webhooks WHERE id = {id}"),
    )
    .await;
    assert!(!now_stored.contains(rotated.trim_start_matches("whsec_")));
    let until = stamp(
        &sql(
            &app,
            &format!(
                "SELECT CAST(previous_secret_until AS TEXT) AS value FROM webhooks WHERE id = {id}"
            ),
        )
        .await,
    );
    let hours = (until - before).num_seconds() as f64 / 3600.0;
    assert!(
        (23.9..24.1).contains(&hours),
        "previous secret for {hours} h"
    );
    let entries = audit(&app, &admin, "WEBHOOK_SECRET_ROTATED").await;
    assert_eq!(entries.len(), 1);
    let all = app
        .ok(
            Some(&admin),
            "{ auditLog(first: 100) { nodes { detail } } }",
            json!({}),
        )
        .await
        .to_string();
    for s in [&secret, rotated] {
        assert!(!all.contains(s.trim_start_matches("whsec_")));
    }

    // Without THREATWATCH_SECRET_KEY or a JWT secret the key is kept with
    // the data, in the settings table.
    assert_eq!(
        count(&app, "settings WHERE key = 'webhook_seal_key'").await,
        1
    );
}

/// With THREATWATCH_SECRET_KEY the sealing key stays out of the database.
async fn an_operator_key_stays_out_of_the_database(app: TestApp) {
    let admin = app.admin().await;
    let (id, secret) = create(&app, &admin, "pager").await;
    assert_eq!(
        count(&app, "settings WHERE key = 'webhook_seal_key'").await,
        0
    );
    let stored = sql(
        &app,
        &format!("SELECT secret AS value FROM webhooks WHERE id = {id}"),
    )
    .await;
    assert!(stored.starts_with("v1.") && !stored.contains(secret.trim_start_matches("whsec_")));
}

/// With only THREATWATCH_JWT_SECRET the key is derived from it, and kept
/// out of the database too.
async fn a_jwt_secret_keeps_the_key_out_too(app: TestApp) {
    an_operator_key_stays_out_of_the_database(app).await;
}

async fn webhooks_are_for_admins_only(app: TestApp) {
    let admin = app.admin().await;
    let (id, _) = create(&app, &admin, "pager").await;
    let d = app.ok(Some(&admin), &test_q(), json!({ "id": id })).await;
    let delivery = d["testWebhook"]["id"].as_str().unwrap().to_string();
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let key = app
        .ok(
            Some(&admin),
            "mutation { createApiKey(name: \"fw\") { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();

    let fields: Vec<(String, Value)> = vec![
        ("{ webhooks { id } }".into(), json!({})),
        (
            "query($id: ID!) { webhook(id: $id) { id } }".into(),
            json!({ "id": id }),
        ),
        (
            create_q(),
            json!({ "i": input("evil", "https://evil.example/") }),
        ),
        (
            update_q(),
            json!({ "id": id, "i": input("evil", "https://evil.example/") }),
        ),
        (DELETE.into(), json!({ "id": id })),
        (ROTATE.into(), json!({ "id": id })),
        (test_q(), json!({ "id": id })),
        (redeliver_q(), json!({ "id": delivery })),
    ];
    for (q, v) in &fields {
        for token in [&analyst] {
            let body = app.gql(Some(token), q, v.clone()).await;
            assert_eq!(code(&body), "FORBIDDEN", "{q}: {body}");
        }
        let body: Value = app
            .client
            .post(app.url("/graphql"))
            .header("X-API-Key", &key)
            .json(&json!({ "query": q, "variables": v }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(code(&body), "FORBIDDEN", "{q}: {body}");
        let body = app.gql(None, q, v.clone()).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{q}: {body}");
    }
    // Nothing changed: one webhook, its name, its one delivery, one secret.
    assert_eq!(count(&app, "webhooks WHERE name = 'pager'").await, 1);
    assert_eq!(count(&app, "webhooks").await, 1);
    assert_eq!(count(&app, "webhook_deliveries").await, 1);
    assert_eq!(
        count(&app, "webhooks WHERE previous_secret IS NULL").await,
        1
    );
}

async fn hostile_webhook_input_is_refused(app: TestApp) {
    let admin = app.admin().await;
    let (id, _) = create(&app, &admin, "pager").await;
    let huge = format!("https://x.example/{}", "a".repeat(10_000));
    let cases: Vec<(Value, &str)> = vec![
        (input("a", "not a url"), "input.url: is not a URL"),
        (input("a", "hooks.example.com/x"), "input.url: is not a URL"),
        (
            input("a", "https://u:p@x.example/"),
            "input.url: must not carry a user",
        ),
        (
            input("a", "https://u@x.example/"),
            "input.url: must not carry a user",
        ),
        (
            input("a", "ftp://x.example/"),
            "input.url: must start with https://",
        ),
        (
            input("a", "file:///etc/passwd"),
            "input.url: must start with https://",
        ),
        (
            input("a", "javascript:alert(1)"),
            "input.url: must start with https://",
        ),
        (input("a", &huge), "input.url: must be 1 to 2000"),
        (input("a", ""), "input.url: must be 1 to 2000"),
        (
            input("a", "https://169.254.169.254/latest/meta-data/"),
            "input.url: 169.254.169.254 is a link-local",
        ),
        (
            input("a", "https://[::ffff:127.0.0.1]/"),
            "input.url: ::ffff:127.0.0.1 is a loopback",
        ),
        (
            input("a", "https://127.0.0.1:8000/graphql"),
            "input.url: 127.0.0.1 is a loopback",
        ),
        // The decimal and hex forms of 127.0.0.1 that URL parsers accept.
        (
            input("a", "https://2130706433/"),
            "input.url: 127.0.0.1 is a loopback",
        ),
        (
            input("a", "https://0x7f.1/"),
            "input.url: 127.0.0.1 is a loopback",
        ),
        (
            input("a", "https://10.0.0.5/hook"),
            "input.url: 10.0.0.5 is a private",
        ),
        (
            input("a", "https://[fd00:ec2::254]/"),
            "input.url: fd00:ec2::254 is a unique-local",
        ),
        (
            input("a", "http://8.8.8.8/hook"),
            "input.url: http:// may only reach",
        ),
        (
            input("", "https://x.example/"),
            "input.name: must not be empty",
        ),
        (
            input(&"n".repeat(101), "https://x.example/"),
            "input.name: must be",
        ),
        (
            input("PAGER", "https://x.example/"),
            "input.name: a webhook named \"PAGER\" exists already",
        ),
        (
            json!({ "name": "a", "url": "https://x.example/", "triggers": [] }),
            "input.triggers: must name at least one",
        ),
        (
            json!({ "name": "a", "url": "https://x.example/", "triggers": ["ALERT_RAISED"], "sources": [] }),
            "input.sources: must name 1 to 100",
        ),
        (
            json!({ "name": "a", "url": "https://x.example/", "triggers": ["ALERT_RAISED"],
                    "sources": (0..101).map(|i| format!("s{i}")).collect::<Vec<_>>() }),
            "input.sources: must name 1 to 100",
        ),
    ];
    for (i, expected) in &cases {
        let body = app.gql(Some(&admin), &create_q(), json!({ "i": i })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{i}: {body}");
        assert!(message(&body).starts_with(expected), "{expected} / {body}");
        assert!(
            !message(&body).contains(&"a".repeat(100)),
            "echoes the input"
        );
        if i["name"] == "PAGER" {
            continue; // its own name in another case: a rename, allowed
        }
        // The same rules on update; a failed update changes nothing.
        let body = app
            .gql(Some(&admin), &update_q(), json!({ "id": id, "i": i }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{i}: {body}");
    }
    let body = app
        .gql(
            Some(&admin),
            &create_q(),
            json!({ "i": { "name": "a", "url": "https://x.example/", "triggers": ["NOPE"] } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(count(&app, "webhooks").await, 1);
    assert_eq!(
        count(
            &app,
            "webhooks WHERE name = 'pager' AND url = 'https://hooks.example.com/services/T1/B2/tok3n'"
        )
        .await,
        1
    );
    assert!(audit(&app, &admin, "WEBHOOK_UPDATED").await.is_empty());

    // A rename onto another webhook's name is refused too.
    create(&app, &admin, "chat").await;
    let body = app
        .gql(
            Some(&admin),
            &update_q(),
            json!({ "id": id, "i": input("Chat", "https://x.example/") }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(message(&body).starts_with("input.name:"), "{body}");

    // Ids that name nothing, and ids that are not ids.
    let unknown = "987654";
    let by_id: Vec<(String, Value)> = vec![
        (
            update_q(),
            json!({ "id": unknown, "i": input("z", "https://x.example/") }),
        ),
        (DELETE.into(), json!({ "id": unknown })),
        (ROTATE.into(), json!({ "id": unknown })),
        (test_q(), json!({ "id": unknown })),
        (redeliver_q(), json!({ "id": unknown })),
    ];
    for (q, v) in &by_id {
        let body = app.gql(Some(&admin), q, v.clone()).await;
        assert_eq!(code(&body), "NOT_FOUND", "{q}: {body}");
    }
    for bad in ["abc", "-1", "0", "1.5", "99999999999999999999999", ""] {
        for (q, v) in &by_id {
            let mut v = v.clone();
            v["id"] = json!(bad);
            let body = app.gql(Some(&admin), q, v).await;
            assert_eq!(code(&body), "BAD_USER_INPUT", "{q} {bad}: {body}");
        }
        let body = app
            .gql(
                Some(&admin),
                "query($id: ID!) { webhook(id: $id) { id } }",
                json!({ "id": bad }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
    assert_eq!(count(&app, "webhook_deliveries").await, 0);
}

/// `THREATWATCH_WEBHOOK_ALLOW_NETS` lets a listed range in, plain http too.
async fn listed_networks_may_be_called(app: TestApp) {
    let admin = app.admin().await;
    let d = app
        .ok(
            Some(&admin),
            &create_q(),
            json!({ "i": input("local", "http://127.0.0.1:9000/hook") }),
        )
        .await;
    assert_eq!(
        d["createWebhook"]["webhook"]["url"],
        "http://127.0.0.1:9000/hook"
    );
    let body = app
        .gql(
            Some(&admin),
            &create_q(),
            json!({ "i": input("meta", "https://169.254.169.254/") }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

async fn pings_and_redeliveries_queue_pending_deliveries(app: TestApp) {
    let admin = app.admin().await;
    let (id, _) = create(&app, &admin, "pager").await;
    let d = app.ok(Some(&admin), &test_q(), json!({ "id": id })).await;
    let ping = &d["testWebhook"];
    assert_eq!(ping["status"], "PENDING");
    assert_eq!(ping["trigger"], Value::Null);
    assert_eq!(ping["alert"], Value::Null);
    assert_eq!(ping["attempts"], 0);
    assert_eq!(ping["deliveredAt"], Value::Null);
    assert_eq!(ping["lastStatusCode"], Value::Null);
    assert!(ping["nextAttemptAt"].is_string(), "due now: {ping}");
    let ping_id = ping["id"].as_str().unwrap().to_string();
    let body: Value = serde_json::from_str(
        &sql(
            &app,
            &format!("SELECT body AS value FROM webhook_deliveries WHERE id = {ping_id}"),
        )
        .await,
    )
    .unwrap();
    assert_eq!(body["type"], "ping");
    assert_eq!(body["data"]["webhook"], "pager");
    let first_msg = sql(
        &app,
        &format!("SELECT message_id AS value FROM webhook_deliveries WHERE id = {ping_id}"),
    )
    .await;
    assert!(
        first_msg.starts_with("msg_") && first_msg.len() > 20,
        "{first_msg}"
    );

    // It failed for good; a redelivery is a new delivery of the same bytes
    // under a new webhook-id.
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET status = 'FAILED', attempts = 8, next_attempt_at = NULL, \
         last_status_code = 500, last_error = 'HTTP 500' WHERE id = {ping_id}"
    ))
    .await;
    let d = app
        .ok(Some(&admin), &redeliver_q(), json!({ "id": ping_id }))
        .await;
    let again = &d["redeliverWebhook"];
    assert_ne!(again["id"], ping_id.as_str());
    assert_eq!(again["status"], "PENDING");
    assert_eq!(again["attempts"], 0);
    assert_eq!(again["lastError"], Value::Null);
    let again_id = again["id"].as_str().unwrap();
    let same = |col: &str| {
        format!(
            "webhook_deliveries a JOIN webhook_deliveries b ON a.{col} = b.{col} \
             WHERE a.id = {ping_id} AND b.id = {again_id}"
        )
    };
    assert_eq!(count(&app, &same("body")).await, 1, "same body");
    assert_eq!(count(&app, &same("webhook_id")).await, 1, "same webhook");
    assert_eq!(
        count(&app, &same("message_id")).await,
        0,
        "a new webhook-id"
    );
    let failed = app
        .ok(
            Some(&admin),
            &format!(
                "query($id: ID!) {{ webhook(id: $id) {{ deliveries(status: FAILED) {{ nodes {{ {DELIVERY_FIELDS} }} }} }} }}"
            ),
            json!({ "id": id }),
        )
        .await;
    let failed = &failed["webhook"]["deliveries"]["nodes"];
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!(failed[0]["id"], ping_id.as_str());
    assert_eq!(failed[0]["lastStatusCode"], 500);
    assert_eq!(failed[0]["lastError"], "HTTP 500");
    assert_eq!(failed[0]["attempts"], 8);

    // A delivery about an alert shows the alert.
    let alert = app.ingest(&admin, "HIGH", "fw-1").await["alert"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET \"trigger\" = 'ALERT_RAISED', alert_id = {alert} WHERE id = {again_id}"
    ))
    .await;
    let d = app
        .ok(Some(&admin), &redeliver_q(), json!({ "id": again_id }))
        .await;
    assert_eq!(d["redeliverWebhook"]["trigger"], "ALERT_RAISED");
    assert_eq!(d["redeliverWebhook"]["alert"]["id"], alert.as_str());
}

async fn deliveries_are_paged_newest_first_by_status(app: TestApp) {
    let admin = app.admin().await;
    let (id, _) = create(&app, &admin, "pager").await;
    let (other, _) = create(&app, &admin, "other").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let d = app.ok(Some(&admin), &test_q(), json!({ "id": id })).await;
        ids.push(d["testWebhook"]["id"].as_str().unwrap().to_string());
    }
    app.ok(Some(&admin), &test_q(), json!({ "id": other }))
        .await;
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET status = 'DELIVERED', next_attempt_at = NULL, \
         delivered_at = created_at, attempts = 1, last_status_code = 204 WHERE id IN ({}, {})",
        ids[0], ids[3]
    ))
    .await;
    app.exec_sql(&format!(
        "UPDATE webhook_deliveries SET status = 'FAILED', next_attempt_at = NULL WHERE id = {}",
        ids[1]
    ))
    .await;
    let page_q = "query($id: ID!, $s: DeliveryStatus, $f: Int, $a: String) { webhook(id: $id) { \
                  deliveries(status: $s, first: $f, after: $a) { totalCount \
                  edges { cursor node { id status } } nodes { id } \
                  pageInfo { hasNextPage hasPreviousPage endCursor } } } }";
    let page = |s: Value, f: Value, a: Value| {
        let app = &app;
        let admin = &admin;
        let id = &id;
        async move {
            app.ok(
                Some(admin),
                page_q,
                json!({ "id": id, "s": s, "f": f, "a": a }),
            )
            .await["webhook"]["deliveries"]
                .clone()
        }
    };
    let ids_of = |c: &Value| -> Vec<String> {
        c["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_string())
            .collect()
    };

    let p1 = page(Value::Null, json!(2), Value::Null).await;
    assert_eq!(ids_of(&p1), [ids[4].clone(), ids[3].clone()]);
    assert_eq!(p1["totalCount"], 5, "only this webhook's");
    assert_eq!(p1["pageInfo"]["hasNextPage"], true);
    let p2 = page(Value::Null, json!(2), p1["pageInfo"]["endCursor"].clone()).await;
    assert_eq!(ids_of(&p2), [ids[2].clone(), ids[1].clone()]);
    assert_eq!(p2["pageInfo"]["hasPreviousPage"], true);
    let p3 = page(Value::Null, json!(2), p2["pageInfo"]["endCursor"].clone()).await;
    assert_eq!(ids_of(&p3), [ids[0].clone()]);
    assert_eq!(p3["pageInfo"]["hasNextPage"], false);

    let pending = page(json!("PENDING"), Value::Null, Value::Null).await;
    assert_eq!(ids_of(&pending), [ids[4].clone(), ids[2].clone()]);
    assert_eq!(pending["totalCount"], 2);
    let delivered = page(json!("DELIVERED"), json!(1), Value::Null).await;
    assert_eq!(ids_of(&delivered), [ids[3].clone()]);
    assert_eq!(delivered["totalCount"], 2);
    assert_eq!(delivered["edges"][0]["node"]["status"], "DELIVERED");
    let rest = page(
        json!("DELIVERED"),
        json!(1),
        delivered["pageInfo"]["endCursor"].clone(),
    )
    .await;
    assert_eq!(ids_of(&rest), [ids[0].clone()]);
    let failed = page(json!("FAILED"), Value::Null, Value::Null).await;
    assert_eq!(ids_of(&failed), [ids[1].clone()]);

    // Bad page arguments are input errors.
    for (f, a) in [
        (json!(0), Value::Null),
        (json!(1000), Value::Null),
        (json!(-1), Value::Null),
        (Value::Null, json!("not-a-cursor")),
        (Value::Null, json!("A".repeat(10_000))),
    ] {
        let body = app
            .gql(Some(&admin), page_q, json!({ "id": id, "f": f, "a": a }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    let body = app
        .gql(Some(&admin), page_q, json!({ "id": id, "s": "LOST" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

/// At most 100 webhooks, also when the last places are raced for: each
/// create past the cap is refused by name, and none slips through.
async fn the_cap_holds_when_creates_race(app: TestApp) {
    let admin = app.admin().await;
    for i in 0..95 {
        create(&app, &admin, &format!("hook-{i}")).await;
    }
    let racers = (0..12).map(|i| {
        let (app, admin) = (&app, &admin);
        async move {
            app.gql(
                Some(admin),
                &create_q(),
                json!({ "i": input(&format!("racer-{i}"), "https://hooks.example.com/r") }),
            )
            .await
        }
    });
    let answers = futures_util::future::join_all(racers).await;
    let made = answers
        .iter()
        .filter(|b| b["data"]["createWebhook"].is_object())
        .count();
    assert_eq!(made, 5, "{answers:?}");
    for refused in answers.iter().filter(|b| b["errors"].is_array()) {
        assert_eq!(code(refused), "BAD_USER_INPUT", "{refused}");
        assert!(
            message(refused).contains("at most 100 webhooks"),
            "{refused}"
        );
    }
    assert_eq!(count(&app, "webhooks").await, 100);
}

both!(
    the_cap_holds_when_creates_race,
    webhooks_are_created_listed_changed_and_deleted,
    the_secret_is_shown_once_and_sealed_at_rest,
    webhooks_are_for_admins_only,
    hostile_webhook_input_is_refused,
    pings_and_redeliveries_queue_pending_deliveries,
    deliveries_are_paged_newest_first_by_status,
);

both_with!(
    an_operator_key_stays_out_of_the_database => |s| {
        s.secret_key = Some(threatwatch::config::SecretKey([9; 32]));
    },
    a_jwt_secret_keeps_the_key_out_too => |s| {
        s.jwt_secret = Some("a jwt secret of at least thirty-two characters".into());
    },
    listed_networks_may_be_called => |s| {
        s.webhook_allow_nets = vec!["127.0.0.0/8".parse().unwrap()];
    },
);

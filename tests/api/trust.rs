//! Events a team can trust: keys bound to their sources, an externalId that
//! cannot be claimed by a different event, the sensor's own time, and live
//! views told of every change to an alert.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp};
use crate::live::{quiet, recv, subscribed};

const INGEST: &str = "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { \
    event { id source severity externalId timestamp occurredAt } alert { id } } }";
const INGEST_MANY: &str = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { \
    event { id source severity } alert { id } } }";

async fn create_key(app: &TestApp, admin: &str, name: &str, sources: Value) -> (String, Value) {
    let done = app
        .ok(
            Some(admin),
            "mutation($n: String!, $s: [String!]) { createApiKey(name: $n, sources: $s) { \
             key apiKey { id name sources revokedAt } } }",
            json!({ "n": name, "s": sources }),
        )
        .await;
    let created = &done["createApiKey"];
    (
        created["key"].as_str().unwrap().to_string(),
        created["apiKey"].clone(),
    )
}

async fn as_key(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    app.client
        .post(app.url("/graphql"))
        .header("x-api-key", key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn event(source: &str, severity: &str, external_id: Option<&str>) -> Value {
    json!({ "source": source, "eventType": "Intrusion", "severity": severity,
            "description": "port scan from 10.0.0.8", "externalId": external_id })
}

async fn count(app: &TestApp, admin: &str, what: &str) -> i64 {
    let q = format!("{{ {what} {{ totalCount }} }}");
    app.ok(Some(admin), &q, json!({})).await[what]["totalCount"]
        .as_i64()
        .unwrap()
}

async fn audit_details(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    let q = format!("{{ auditLog(action: {action}) {{ nodes {{ actor detail }} }} }}");
    app.ok(Some(admin), &q, json!({})).await["auditLog"]["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

async fn keys_ingest_only_for_their_sources(app: TestApp) {
    let admin = app.admin().await;
    let (fw, key) = create_key(&app, &admin, "fw-1", json!(["Firewall-1", " Firewall-1 "])).await;
    assert_eq!(
        key["sources"],
        json!(["Firewall-1"]),
        "trimmed, repeats dropped"
    );
    let (any, key) = create_key(&app, &admin, "collector", Value::Null).await;
    assert_eq!(key["sources"], Value::Null);

    let ok = as_key(
        &app,
        &fw,
        INGEST,
        json!({ "i": event("Firewall-1", "HIGH", None) }),
    )
    .await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let ok = as_key(
        &app,
        &any,
        INGEST,
        json!({ "i": event("CCTV-Lobby", "LOW", None) }),
    )
    .await;
    assert!(ok.get("errors").is_none(), "{ok}");

    let before = count(&app, &admin, "events").await;
    let refused = as_key(
        &app,
        &fw,
        INGEST,
        json!({ "i": event("CCTV-Lobby", "LOW", None) }),
    )
    .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let msg = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains("\"CCTV-Lobby\"") && msg.contains("\"Firewall-1\""),
        "{msg}"
    );
    // One stranger in a batch refuses the batch: nothing is stored.
    let batch =
        json!({ "i": [event("Firewall-1", "LOW", None), event("Server-1", "CRITICAL", None)] });
    let refused = as_key(&app, &fw, INGEST_MANY, batch).await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("inputs[1].source"));
    assert_eq!(count(&app, &admin, "events").await, before);

    // The REST path for the old system's sensors obeys the same binding.
    let r = app
        .client
        .post(app.url("/api/v1/event/ingest/"))
        .header("x-api-key", &fw)
        .json(&json!({ "source": "Server-1", "event_type": "Intrusion", "severity": "HIGH", "description": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(count(&app, &admin, "events").await, before);

    let listed = app
        .ok(Some(&admin), "{ apiKeys { name sources } }", json!({}))
        .await;
    assert!(
        listed["apiKeys"]
            .as_array()
            .unwrap()
            .contains(&json!({ "name": "fw-1", "sources": ["Firewall-1"] })),
        "{listed}"
    );
}

async fn key_sources_are_validated(app: TestApp) {
    let admin = app.admin().await;
    let long = "x".repeat(101);
    let many: Vec<String> = (0..101).map(|i| format!("s{i}")).collect();
    for (sources, field) in [
        (json!([]), "sources"),
        (json!(["fw", "  "]), "sources[1]"),
        (json!([long]), "sources[0]"),
        (json!(["a\u{7}b"]), "sources[0]"),
        (json!(many), "sources"),
    ] {
        let body = app
            .gql(
                Some(&admin),
                "mutation($s: [String!]) { createApiKey(name: \"k\", sources: $s) { key } }",
                json!({ "s": sources }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        let msg = body["errors"][0]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("{field}: ")), "{msg}");
    }
    assert!(
        app.ok(Some(&admin), "{ apiKeys { id } }", json!({})).await["apiKeys"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Only an admin binds keys.
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let body = app
        .gql(
            Some(&analyst),
            "mutation { createApiKey(name: \"k\", sources: [\"fw\"]) { key } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
}

async fn a_revoked_keys_name_can_be_used_again(app: TestApp) {
    let admin = app.admin().await;
    let (_, first) = create_key(&app, &admin, "Gate-1", Value::Null).await;
    let again = app
        .gql(
            Some(&admin),
            "mutation { createApiKey(name: \"gate-1\") { key } }",
            json!({}),
        )
        .await;
    assert_eq!(
        code(&again),
        "BAD_USER_INPUT",
        "names of live keys stay unique"
    );
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({ "id": first["id"] }),
    )
    .await;
    let (new_key, second) = create_key(&app, &admin, "Gate-1", json!(["Gate-1"])).await;
    assert_ne!(first["id"], second["id"]);
    let ok = as_key(
        &app,
        &new_key,
        INGEST,
        json!({ "i": event("Gate-1", "LOW", None) }),
    )
    .await;
    assert!(ok.get("errors").is_none(), "{ok}");
}

/// The issue's own case: a CCTV key claims the firewall's id with a LOW
/// event; the firewall's real CRITICAL event with that id must not vanish.
async fn an_external_id_cannot_hide_a_different_event(app: TestApp) {
    let admin = app.admin().await;
    let (cctv, _) = create_key(&app, &admin, "cctv", Value::Null).await;
    let (fw, _) = create_key(&app, &admin, "fw", json!(["Firewall-1"])).await;
    let first = as_key(
        &app,
        &cctv,
        INGEST,
        json!({ "i": event("Firewall-1", "LOW", Some("fw1-000999")) }),
    )
    .await;
    assert!(first.get("errors").is_none(), "{first}");
    let stored = first["data"]["ingestEvent"]["event"].clone();

    let real = as_key(
        &app,
        &fw,
        INGEST,
        json!({ "i": event("Firewall-1", "CRITICAL", Some("fw1-000999")) }),
    )
    .await;
    assert_eq!(code(&real), "BAD_USER_INPUT", "{real}");
    let err = &real["errors"][0];
    let msg = err["message"].as_str().unwrap();
    assert!(msg.starts_with("input.externalId: "), "{msg}");
    assert!(
        !msg.contains("LOW"),
        "the stored event's content is not revealed: {msg}"
    );
    assert!(real["data"].is_null(), "{real}");
    assert_eq!(count(&app, &admin, "events").await, 1);
    assert_eq!(count(&app, &admin, "alerts").await, 0);

    let conflicts = audit_details(&app, &admin, "EVENT_CONFLICT").await;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0]["actor"], "apikey:fw");
    let detail: Value = serde_json::from_str(conflicts[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail["externalId"], "fw1-000999");
    assert_eq!(detail["differs"], json!(["severity"]));
    assert_eq!(detail["claimedBy"]["storedEvent"], stored["id"]);

    // The same event again is still answered with the stored one.
    let repeat = as_key(
        &app,
        &cctv,
        INGEST,
        json!({ "i": event("Firewall-1", "LOW", Some("fw1-000999")) }),
    )
    .await;
    assert_eq!(
        repeat["data"]["ingestEvent"]["event"]["id"], stored["id"],
        "{repeat}"
    );
    assert_eq!(count(&app, &admin, "events").await, 1);

    // Two events of one batch claiming one id with different content: the
    // batch is refused whole, naming the second.
    let batch = json!({ "i": [
        event("Firewall-1", "LOW", None),
        event("Server-1", "HIGH", Some("s-1")),
        { "source": "Server-1", "eventType": "Malware", "severity": "HIGH",
          "description": "port scan from 10.0.0.8", "externalId": "s-1" },
    ] });
    let refused = app.gql(Some(&admin), INGEST_MANY, batch).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(refused["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("inputs[2].externalId: "));
    assert_eq!(count(&app, &admin, "events").await, 1);
    assert_eq!(audit_details(&app, &admin, "EVENT_CONFLICT").await.len(), 2);

    // Repeats with the same content in one batch are one event, as before.
    let batch = json!({ "i": [event("Server-1", "HIGH", Some("s-1")), event("Server-1", "HIGH", Some("s-1"))] });
    let done = app.ok(Some(&admin), INGEST_MANY, batch).await;
    let pair = done["ingestEvents"].as_array().unwrap();
    assert_eq!(pair[0]["event"]["id"], pair[1]["event"]["id"]);
    assert_eq!(count(&app, &admin, "events").await, 2);
}

/// Concurrent conflicting events under one id: exactly one is stored, every
/// other caller is refused or handed the same event, none is lost silently.
async fn concurrent_claims_of_one_id_store_one_event(app: TestApp) {
    let admin = app.admin().await;
    let severities = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = app.client.clone();
        let url = app.url("/graphql");
        let token = admin.clone();
        let severity = severities[i % 4];
        tasks.push(tokio::spawn(async move {
            let body: Value = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": INGEST, "variables": { "i": event("Firewall-1", severity, Some("race")) } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (severity, body)
        }));
    }
    let mut stored = Vec::new();
    let mut refused = 0;
    for t in tasks {
        let (severity, body) = t.await.unwrap();
        if body.get("errors").is_some() {
            assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
            refused += 1;
        } else {
            let e = &body["data"]["ingestEvent"]["event"];
            assert_eq!(
                e["severity"], severity,
                "an accepted answer is the caller's own event"
            );
            stored.push(e["id"].clone());
        }
    }
    let distinct: std::collections::HashSet<String> = stored.iter().map(Value::to_string).collect();
    assert_eq!(distinct.len(), 1, "{stored:?}");
    assert_eq!(count(&app, &admin, "events").await, 1);
    let audited = app
        .ok(
            Some(&admin),
            "{ auditLog(action: EVENT_CONFLICT) { totalCount } }",
            json!({}),
        )
        .await["auditLog"]["totalCount"]
        .clone();
    assert_eq!(audited, refused, "every refusal is audited");
}

async fn sensors_send_the_time_of_the_event(app: TestApp) {
    let admin = app.admin().await;
    let mut e = event("Firewall-1", "HIGH", None);
    e["occurredAt"] = json!("2026-01-02T03:04:05.678Z");
    let done = app.ok(Some(&admin), INGEST, json!({ "i": e })).await;
    let stored = &done["ingestEvent"]["event"];
    assert_eq!(stored["occurredAt"], "2026-01-02T03:04:05.678Z");
    assert_ne!(stored["timestamp"], stored["occurredAt"]);
    let id = stored["id"].clone();
    let read = app
        .ok(
            Some(&admin),
            "{ events { nodes { id occurredAt } } alerts { nodes { event { occurredAt } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        read["events"]["nodes"][0],
        json!({ "id": id, "occurredAt": "2026-01-02T03:04:05.678Z" })
    );
    assert_eq!(
        read["alerts"]["nodes"][0]["event"]["occurredAt"],
        "2026-01-02T03:04:05.678Z"
    );

    // Without one, it is when the event was stored.
    let done = app
        .ok(
            Some(&admin),
            INGEST,
            json!({ "i": event("Firewall-1", "LOW", None) }),
        )
        .await;
    let stored = &done["ingestEvent"]["event"];
    assert_eq!(stored["occurredAt"], stored["timestamp"]);

    // A clock an hour ahead is refused, naming the field; nothing stored.
    let mut e = event("Firewall-1", "CRITICAL", None);
    let ahead = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    e["occurredAt"] = json!(ahead.to_rfc3339());
    let body = app.gql(Some(&admin), INGEST, json!({ "i": e })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let msg = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("input.occurredAt: ") && msg.contains("5 minutes"),
        "{msg}"
    );
    // Not a time at all.
    let mut e = event("Firewall-1", "CRITICAL", None);
    e["occurredAt"] = json!("yesterday");
    let body = app.gql(Some(&admin), INGEST, json!({ "i": e })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(count(&app, &admin, "events").await, 2);
}

async fn live_views_hear_of_every_change(app: TestApp) {
    let admin = app.admin().await;
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let ana_id = app.ok(Some(&analyst), "{ me { id } }", json!({})).await["me"]["id"].clone();
    let mut updated = subscribed(
        app.addr,
        &analyst,
        "1",
        "subscription { alertUpdated { id status occurrences assignee { username } comments { totalCount } } }",
    )
    .await;
    let mut repeat = event("Firewall-1", "HIGH", None);
    repeat["dedupKey"] = json!("scan-10.0.0.8");
    let first = app.ok(Some(&admin), INGEST, json!({ "i": repeat })).await;
    let id = first["ingestEvent"]["alert"]["id"].clone();
    quiet(&mut updated).await;

    // A repeat folded in.
    app.ok(Some(&admin), INGEST, json!({ "i": repeat })).await;
    let msg = recv(&mut updated).await.unwrap();
    let alert = &msg["payload"]["data"]["alertUpdated"];
    assert_eq!(
        (&alert["id"], &alert["occurrences"]),
        (&id, &json!(2)),
        "{msg}"
    );
    // Several repeats in one batch: one notice, with the final count.
    app.ok(
        Some(&admin),
        INGEST_MANY,
        json!({ "i": [repeat, repeat, repeat] }),
    )
    .await;
    let msg = recv(&mut updated).await.unwrap();
    assert_eq!(
        msg["payload"]["data"]["alertUpdated"]["occurrences"], 5,
        "{msg}"
    );
    quiet(&mut updated).await;

    // An owner.
    app.ok(
        Some(&admin),
        "mutation($id: ID!, $a: ID) { assignAlert(id: $id, assignee: $a) { id } }",
        json!({ "id": id, "a": ana_id }),
    )
    .await;
    let msg = recv(&mut updated).await.unwrap();
    assert_eq!(
        msg["payload"]["data"]["alertUpdated"]["assignee"]["username"], "ana",
        "{msg}"
    );
    // The same owner again changes nothing and says nothing.
    app.ok(
        Some(&admin),
        "mutation($id: ID!, $a: ID) { assignAlert(id: $id, assignee: $a) { id } }",
        json!({ "id": id, "a": ana_id }),
    )
    .await;
    quiet(&mut updated).await;

    // A comment.
    app.ok(
        Some(&analyst),
        "mutation($id: ID!) { commentOnAlert(id: $id, body: \"looking\") { id } }",
        json!({ "id": id }),
    )
    .await;
    let msg = recv(&mut updated).await.unwrap();
    assert_eq!(
        msg["payload"]["data"]["alertUpdated"]["comments"]["totalCount"], 1,
        "{msg}"
    );

    // A status.
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: ACKNOWLEDGED) { id } }",
        json!({ "id": id }),
    )
    .await;
    let msg = recv(&mut updated).await.unwrap();
    assert_eq!(
        msg["payload"]["data"]["alertUpdated"]["status"], "ACKNOWLEDGED",
        "{msg}"
    );
    // A comment on an alert that does not exist changes nothing live.
    let body = app
        .gql(
            Some(&analyst),
            "mutation { commentOnAlert(id: \"999999\", body: \"x\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    quiet(&mut updated).await;
}

/// One document of many aliased conflicting ingests is one request at
/// admission; each audit row of a conflict costs the caller one more, so
/// the audit log cannot be flooded past the caller's quota.
async fn conflicts_cannot_flood_the_audit_log(app: TestApp) {
    let admin = app.admin().await;
    let (key, _) = create_key(&app, &admin, "noisy", Value::Null).await;
    let first = as_key(
        &app,
        &key,
        INGEST,
        json!({ "i": event("fw", "LOW", Some("x")) }),
    )
    .await;
    assert!(first.get("errors").is_none(), "{first}");
    let fields: String = (0..30)
        .map(|i| {
            format!(
                "a{i}: ingestEvent(input: {{source: \"fw\", eventType: \"Intrusion\", severity: HIGH, \
                 description: \"other\", externalId: \"x\"}}) {{ event {{ id }} }} "
            )
        })
        .collect();
    let body = as_key(&app, &key, &format!("mutation {{ {fields} }}"), json!({})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(count(&app, &admin, "events").await, 1);
    let audited = app
        .ok(
            Some(&admin),
            "{ auditLog(action: EVENT_CONFLICT) { totalCount } }",
            json!({}),
        )
        .await["auditLog"]["totalCount"]
        .as_i64()
        .unwrap();
    // A quota of 10 a minute: two requests spent, at most 8 rows.
    assert!((1..=8).contains(&audited), "{audited} conflict rows");
}

fn ten_sensor_requests_a_minute(s: &mut threatwatch::config::Settings) {
    s.rate_sensor = threatwatch::config::Quota::parse("X", "10/min").unwrap();
}

crate::both_with!(conflicts_cannot_flood_the_audit_log => super::ten_sensor_requests_a_minute);

both!(
    keys_ingest_only_for_their_sources,
    key_sources_are_validated,
    a_revoked_keys_name_can_be_used_again,
    an_external_id_cannot_hide_a_different_event,
    concurrent_claims_of_one_id_store_one_event,
    sensors_send_the_time_of_the_event,
    live_views_hear_of_every_change,
);

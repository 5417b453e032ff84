use serde_json::json;

use crate::both;
use crate::helpers::{code, TestApp};

const INGEST: &str = "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id source eventType severity description timestamp alert { id } } alert { id status severity createdAt updatedAt event { id } } } }";

async fn totals(app: &TestApp, token: &str) -> (i64, i64) {
    let d = app
        .ok(
            Some(token),
            "{ events { totalCount } alerts { totalCount } }",
            json!({}),
        )
        .await;
    (
        d["events"]["totalCount"].as_i64().unwrap(),
        d["alerts"]["totalCount"].as_i64().unwrap(),
    )
}

async fn high_and_critical_raise_one_open_alert(app: TestApp) {
    let admin = app.admin().await;
    for (severity, raises) in [
        ("LOW", false),
        ("MEDIUM", false),
        ("HIGH", true),
        ("CRITICAL", true),
    ] {
        let d = app
            .ok(Some(&admin), INGEST, json!({ "i": { "source": "Firewall-1", "eventType": "Malware", "severity": severity, "description": "found" } }))
            .await;
        let p = &d["ingestEvent"];
        assert_eq!(p["event"]["severity"], severity);
        assert_eq!(p["event"]["source"], "Firewall-1");
        if raises {
            assert_eq!(p["alert"]["status"], "OPEN");
            assert_eq!(p["alert"]["severity"], severity);
            assert_eq!(p["alert"]["event"]["id"], p["event"]["id"]);
            assert_eq!(p["event"]["alert"]["id"], p["alert"]["id"]);
        } else {
            assert!(p["alert"].is_null(), "{severity} raised an alert");
            assert!(p["event"]["alert"].is_null());
        }
    }
    assert_eq!(totals(&app, &admin).await, (4, 2));
    let log = app
        .ok(Some(&admin), "{ auditLog(action: ALERT_CREATED) { totalCount nodes { actor targetType targetId } } }", json!({}))
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 2);
    assert_eq!(log["auditLog"]["nodes"][0]["actor"], "admin");
    assert_eq!(log["auditLog"]["nodes"][0]["targetType"], "Alert");
}

async fn invalid_input_is_refused_and_stores_nothing(app: TestApp) {
    let admin = app.admin().await;
    let cases = [
        (
            json!({ "source": "", "eventType": "X", "severity": "HIGH", "description": "d" }),
            "input.source",
        ),
        (
            json!({ "source": "s".repeat(101), "eventType": "X", "severity": "HIGH", "description": "d" }),
            "input.source",
        ),
        (
            json!({ "source": "S", "eventType": "e".repeat(101), "severity": "HIGH", "description": "d" }),
            "input.eventType",
        ),
        (
            json!({ "source": "S", "eventType": "X", "severity": "HIGH", "description": "" }),
            "input.description",
        ),
        (
            json!({ "source": "S", "eventType": "X", "severity": "HIGH", "description": "d".repeat(10_001) }),
            "input.description",
        ),
        (
            json!({ "source": "S", "eventType": "X", "severity": "SEVERE", "description": "d" }),
            "Severity",
        ),
        (
            json!({ "source": "S", "eventType": "X", "description": "d" }),
            "severity",
        ),
    ];
    for (input, names) in cases {
        let body = app.gql(Some(&admin), INGEST, json!({ "i": input })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{input}");
        let msg = body["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains(names), "message {msg:?} should name {names}");
    }
    // Limits are on characters: 100 multi-byte characters are fine.
    app.ok(Some(&admin), INGEST, json!({ "i": { "source": "é".repeat(100), "eventType": "X", "severity": "LOW", "description": "d".repeat(10_000) } }))
        .await;
    assert_eq!(totals(&app, &admin).await, (1, 0));
}

async fn anonymous_cannot_ingest(app: TestApp) {
    let body = app
        .gql(None, INGEST, json!({ "i": { "source": "S", "eventType": "X", "severity": "HIGH", "description": "d" } }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    let admin = app.admin().await;
    assert_eq!(totals(&app, &admin).await, (0, 0));
}

async fn batch_ingest_is_all_or_nothing(app: TestApp) {
    let admin = app.admin().await;
    let q = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } alert { id } } }";
    let good = |n: usize| json!({ "source": format!("S{n}"), "eventType": "X", "severity": if n.is_multiple_of(2) { "HIGH" } else { "LOW" }, "description": "d" });
    let mut inputs: Vec<_> = (0..5).map(good).collect();
    inputs.push(json!({ "source": "", "eventType": "X", "severity": "HIGH", "description": "d" }));
    let body = app.gql(Some(&admin), q, json!({ "i": inputs })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("inputs[5].source"));
    assert_eq!(totals(&app, &admin).await, (0, 0));

    let body = app.gql(Some(&admin), q, json!({ "i": [] })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let too_many: Vec<_> = (0..1001).map(good).collect();
    assert_eq!(
        code(&app.gql(Some(&admin), q, json!({ "i": too_many })).await),
        "BAD_USER_INPUT"
    );

    let d = app
        .ok(
            Some(&admin),
            q,
            json!({ "i": (0..10).map(good).collect::<Vec<_>>() }),
        )
        .await;
    let done = d["ingestEvents"].as_array().unwrap();
    assert_eq!(done.len(), 10);
    assert_eq!(done.iter().filter(|p| !p["alert"].is_null()).count(), 5);
    assert_eq!(totals(&app, &admin).await, (10, 5));
}

async fn external_id_stores_one_event(app: TestApp) {
    let admin = app.admin().await;
    let input = json!({ "i": { "source": "IDS-2", "eventType": "Intrusion", "severity": "HIGH", "description": "d", "externalId": "ids-0001" } });
    let first = app.ok(Some(&admin), INGEST, input.clone()).await;
    let second = app.ok(Some(&admin), INGEST, input).await;
    assert_eq!(
        first["ingestEvent"]["event"]["id"],
        second["ingestEvent"]["event"]["id"]
    );
    assert_eq!(
        first["ingestEvent"]["alert"]["id"],
        second["ingestEvent"]["alert"]["id"]
    );
    // The same external id from another source is another event.
    app.ok(Some(&admin), INGEST, json!({ "i": { "source": "IDS-3", "eventType": "Intrusion", "severity": "HIGH", "description": "d", "externalId": "ids-0001" } }))
        .await;
    assert_eq!(totals(&app, &admin).await, (2, 2));

    // Repeats inside one batch, and of an event stored earlier.
    let q = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } alert { id } } }";
    let repeat = json!({ "source": "IDS-4", "eventType": "Intrusion", "severity": "CRITICAL", "description": "d", "externalId": "x-9" });
    let earlier = json!({ "source": "IDS-2", "eventType": "Intrusion", "severity": "HIGH", "description": "d", "externalId": "ids-0001" });
    let d = app
        .ok(Some(&admin), q, json!({ "i": [repeat, earlier, repeat] }))
        .await;
    let done = d["ingestEvents"].as_array().unwrap();
    assert_eq!(done[0]["event"]["id"], done[2]["event"]["id"]);
    assert_eq!(done[0]["alert"]["id"], done[2]["alert"]["id"]);
    assert_eq!(done[1]["event"]["id"], first["ingestEvent"]["event"]["id"]);
    assert_eq!(totals(&app, &admin).await, (3, 3));
}

async fn concurrent_ingests_all_land(app: TestApp) {
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let mut tasks = Vec::new();
    for n in 0..40u32 {
        let client = app.client.clone();
        let url = app.url("/graphql");
        let token = analyst.clone();
        tasks.push(tokio::spawn(async move {
            let severity = if n.is_multiple_of(4) { "CRITICAL" } else { "MEDIUM" };
            let body: serde_json::Value = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "query": INGEST, "variables": { "i": { "source": format!("S{n}"), "eventType": "X", "severity": severity, "description": "d" } } }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(body.get("errors").is_none(), "{body}");
            body["data"]["ingestEvent"]["event"]["id"].as_str().unwrap().to_string()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    assert_eq!(totals(&app, &analyst).await, (40, 10));
}

/// A job the database refuses fails alone: the jobs committed beside it in
/// the same group land, nothing of it is stored, and the writer's
/// connection is left clean for the next one.
async fn a_refused_ingest_fails_alone(app: TestApp) {
    let admin = app.admin().await;
    let postgres = app.db_is_postgres();
    let trap = if postgres {
        "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'boom'; END $$; \
         CREATE TRIGGER boom BEFORE INSERT ON events FOR EACH ROW \
         WHEN (NEW.source = 'BOOM') EXECUTE FUNCTION boom();"
    } else {
        "CREATE TRIGGER boom BEFORE INSERT ON events WHEN NEW.source = 'BOOM' \
         BEGIN SELECT RAISE(ABORT, 'boom'); END;"
    };
    app.db().exec(trap).await.unwrap();

    // All at once, so that the refused one is grouped with others.
    let bodies = futures_util::future::join_all((0..41u32).map(|n| {
        let source = if n == 20 { "BOOM".to_string() } else { format!("S{n}") };
        let input = json!({ "i": { "source": source, "eventType": "X", "severity": "HIGH", "description": "d" } });
        app.gql(Some(&admin), INGEST, input)
    }))
    .await;
    for (n, body) in bodies.iter().enumerate() {
        if n == 20 {
            assert_eq!(code(body), "INTERNAL_SERVER_ERROR", "{body}");
            assert!(
                !body.to_string().contains("boom"),
                "database detail leaked: {body}"
            );
        } else {
            assert!(body.get("errors").is_none(), "{body}");
        }
    }
    assert_eq!(totals(&app, &admin).await, (40, 40));

    // A batch with one refused event stores none of its events.
    let q = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } } }";
    let batch: Vec<_> = ["A", "BOOM", "C"]
        .iter()
        .map(|s| json!({ "source": s, "eventType": "X", "severity": "CRITICAL", "description": "d" }))
        .collect();
    let body = app.gql(Some(&admin), q, json!({ "i": batch })).await;
    assert_eq!(code(&body), "INTERNAL_SERVER_ERROR", "{body}");
    assert_eq!(totals(&app, &admin).await, (40, 40));

    app.db()
        .exec(if postgres {
            "DROP TRIGGER boom ON events"
        } else {
            "DROP TRIGGER boom"
        })
        .await
        .unwrap();
    let body = app.gql(Some(&admin), q, json!({ "i": batch })).await;
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(totals(&app, &admin).await, (43, 43));
}

/// Large requests beyond the permits wait their turn (bounded memory)
/// rather than fail: more 1,000-event batches at once than there are
/// permits all land, each whole.
async fn large_batches_at_once_all_land(app: TestApp) {
    let admin = app.admin().await;
    let q = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } } }";
    let batches = threatwatch::http::large_request_permits() + 3;
    let all = futures_util::future::join_all((0..batches).map(|b| {
        let inputs: Vec<_> = (0..1000)
            .map(|n| json!({ "source": format!("fw-{b}"), "eventType": "Port scan", "severity": "LOW", "description": format!("event {n} of batch {b}, long enough to make the body large") }))
            .collect();
        app.gql(Some(&admin), q, json!({ "i": inputs }))
    }));
    // A permit that is never given back would hang the rest.
    let bodies = tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("every batch answered");
    for body in &bodies {
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(body["data"]["ingestEvents"].as_array().unwrap().len(), 1000);
    }
    assert_eq!(totals(&app, &admin).await, (1000 * batches as i64, 0));
}

/// What an ingest answers is what is stored: every field of the event and
/// of the alert it raised (or was folded into) reads back the same.
async fn ingest_answers_what_is_stored(app: TestApp) {
    let admin = app.admin().await;
    const EVENT: &str = "id source eventType severity description timestamp externalId dedupKey";
    const ALERT: &str =
        "id status severity createdAt updatedAt occurrences lastSeenAt acknowledgedAt resolvedAt";
    let q = format!("mutation($i: [IngestEventInput!]!) {{ ingestEvents(inputs: $i) {{ event {{ {EVENT} }} alert {{ {ALERT} event {{ id }} }} }} }}");
    let input = |n: u32, severity: &str| json!({ "source": "IDS-9", "eventType": "Intrusion", "severity": severity, "description": format!("d{n}"), "externalId": format!("x-{n}"), "dedupKey": "scan" });
    let d = app
        .ok(
            Some(&admin),
            &q,
            json!({ "i": [input(1, "HIGH"), input(2, "CRITICAL"), input(3, "LOW")] }),
        )
        .await;
    let done = d["ingestEvents"].as_array().unwrap();
    assert_eq!(done[0]["alert"]["id"], done[1]["alert"]["id"]);
    assert!(done[2]["alert"].is_null());
    let events = app.all_nodes(&admin, "events", EVENT).await;
    for item in done {
        let id = item["event"]["id"].as_str().unwrap();
        let stored = events.iter().find(|e| e["id"] == id).unwrap();
        assert_eq!(stored, &item["event"]);
    }
    // The alert as answered by the last event folded into it.
    let alert = &done[1]["alert"];
    let stored = app
        .ok(
            Some(&admin),
            &format!("query($id: ID!) {{ alert(id: $id) {{ {ALERT} event {{ id }} }} }}"),
            json!({ "id": alert["id"] }),
        )
        .await;
    assert_eq!(&stored["alert"], alert);
    assert_eq!(alert["occurrences"], 2);
    assert_eq!(alert["event"]["id"], done[0]["event"]["id"]);
}

/// A batch larger than one statement (300 events: statements of 64, 32, 8
/// and 4 rows) links every event to the right alert: repeats of alerts
/// stored before, repeats of alerts the batch itself raises, and events
/// that raise none; counts and raising events read back as answered.
async fn a_batch_across_statements_links_every_event(app: TestApp) {
    use std::collections::HashMap;
    let admin = app.admin().await;
    let q = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } alert { id occurrences event { id } } } }";
    let high = |key: String| json!({ "source": "IDS-7", "eventType": "Intrusion", "severity": "HIGH", "description": "d", "dedupKey": key });
    // 100 open alerts, one per key k0..k99.
    let first = app
        .ok(
            Some(&admin),
            q,
            json!({ "i": (0..100).map(|n| high(format!("k{n}"))).collect::<Vec<_>>() }),
        )
        .await;
    let earlier: HashMap<String, String> = (0..100)
        .map(|n| {
            let alert = &first["ingestEvents"][n]["alert"];
            (format!("k{n}"), alert["id"].as_str().unwrap().to_string())
        })
        .collect();

    // i % 3: 0 LOW, 1 a repeat of an earlier key, 2 one of 37 new keys.
    let key_of = |i: usize| match i % 3 {
        1 => Some(format!("k{}", i % 100)),
        2 => Some(format!("new{}", i % 37)),
        _ => None,
    };
    let inputs: Vec<_> = (0..300)
        .map(|i| match key_of(i) {
            Some(key) => high(key),
            None => json!({ "source": "IDS-7", "eventType": "Scan", "severity": "LOW", "description": "d" }),
        })
        .collect();
    let second = app.ok(Some(&admin), q, json!({ "i": inputs })).await;
    let done = second["ingestEvents"].as_array().unwrap();
    assert_eq!(done.len(), 300);

    let mut repeats: HashMap<String, i64> = HashMap::new();
    let mut raised_by: HashMap<String, (String, String)> = HashMap::new();
    for (i, item) in done.iter().enumerate() {
        let event = item["event"]["id"].as_str().unwrap().to_string();
        let Some(key) = key_of(i) else {
            assert!(item["alert"].is_null(), "event {i}: {item}");
            continue;
        };
        *repeats.entry(key.clone()).or_default() += 1;
        let alert = item["alert"]["id"].as_str().unwrap().to_string();
        if let Some(id) = earlier.get(&key) {
            assert_eq!(
                &alert, id,
                "event {i} folds into the earlier alert of {key}"
            );
        } else {
            // The first event of a new key raises it; the rest fold in.
            let (id, raiser) = raised_by
                .entry(key.clone())
                .or_insert((alert.clone(), event.clone()));
            assert_eq!(&alert, id, "event {i}, key {key}");
            assert_eq!(item["alert"]["event"]["id"], json!(raiser), "event {i}");
        }
    }
    assert_eq!(raised_by.len(), 37);

    // Read back: every event's alert, every alert's count and raiser.
    let stored: HashMap<String, serde_json::Value> = app
        .all_nodes(&admin, "events", "id alert { id }")
        .await
        .into_iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["alert"]["id"].clone(),
            )
        })
        .collect();
    assert_eq!(stored.len(), 400);
    for item in done {
        let id = item["event"]["id"].as_str().unwrap();
        assert_eq!(stored[id], item["alert"]["id"], "event {id}");
    }
    let alerts = app
        .all_nodes(&admin, "alerts", "id occurrences event { id dedupKey }")
        .await;
    assert_eq!(alerts.len(), 137);
    for alert in &alerts {
        let key = alert["event"]["dedupKey"].as_str().unwrap();
        let earlier_one = i64::from(earlier.contains_key(key));
        assert_eq!(
            alert["occurrences"].as_i64().unwrap(),
            earlier_one + repeats.get(key).copied().unwrap_or(0),
            "{alert}"
        );
        if let Some((id, raiser)) = raised_by.get(key) {
            assert_eq!(alert["id"], json!(id));
            assert_eq!(alert["event"]["id"], json!(raiser));
        }
    }
}

both!(
    a_batch_across_statements_links_every_event,
    ingest_answers_what_is_stored,
    large_batches_at_once_all_land,
    a_refused_ingest_fails_alone,
    high_and_critical_raise_one_open_alert,
    invalid_input_is_refused_and_stores_nothing,
    anonymous_cannot_ingest,
    batch_ingest_is_all_or_nothing,
    external_id_stores_one_event,
    concurrent_ingests_all_land,
);

//! Figures that do not lie: `alertStats(since)` counts only alerts created
//! since then, and one event can be read by its id.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp};

const STATS: &str = "query($since: DateTime) { alertStats(since: $since) { total \
    byStatus { status count } bySeverity { severity count } } }";

fn count_of(list: &Value, key: &str, value: &str) -> i64 {
    list.as_array()
        .unwrap()
        .iter()
        .find(|c| c[key] == value)
        .map(|c| c["count"].as_i64().unwrap())
        .unwrap()
}

async fn alert_stats_since_covers_every_figure(app: TestApp) {
    let admin = app.admin().await;
    let old = app.ingest(&admin, "HIGH", "Firewall-1").await;
    app.ingest(&admin, "CRITICAL", "Server-1").await;
    app.ingest(&admin, "LOW", "Server-1").await;
    // The first alert was raised long ago.
    let id = old["alert"]["id"].as_str().unwrap();
    app.exec_sql(&format!(
        "UPDATE alerts SET created_at = '2020-01-01 00:00:00' WHERE id = {id}"
    ))
    .await;

    let stats = |since: Value| {
        let app = &app;
        let admin = admin.clone();
        async move { app.ok(Some(&admin), STATS, json!({ "since": since })).await["alertStats"].clone() }
    };
    let all = stats(Value::Null).await;
    assert_eq!(all["total"], 2, "{all}");
    let recent = stats(json!("2025-01-01T00:00:00Z")).await;
    assert_eq!(recent["total"], 1, "{recent}");
    assert_eq!(count_of(&recent["byStatus"], "status", "OPEN"), 1);
    assert_eq!(count_of(&recent["bySeverity"], "severity", "CRITICAL"), 1);
    assert_eq!(count_of(&recent["bySeverity"], "severity", "HIGH"), 0);
    // Every status and severity is listed even when its count is zero.
    let future = stats(json!("2099-11-01T00:00:00Z")).await;
    assert_eq!(future["total"], 0, "{future}");
    assert_eq!(future["byStatus"].as_array().unwrap().len(), 3);
    assert_eq!(future["bySeverity"].as_array().unwrap().len(), 4);
    assert!(future["bySeverity"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["count"] == 0));
    let bad = app
        .gql(Some(&admin), STATS, json!({ "since": "last week" }))
        .await;
    assert_eq!(code(&bad), "BAD_USER_INPUT", "{bad}");
}

async fn one_event_by_its_id(app: TestApp) {
    let admin = app.admin().await;
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let done = app.ingest(&admin, "CRITICAL", "Server-1").await;
    let id = done["event"]["id"].as_str().unwrap();
    let q = "query($id: ID!) { event(id: $id) { id source severity alert { id } } }";
    let read = app.ok(Some(&analyst), q, json!({ "id": id })).await;
    assert_eq!(read["event"]["source"], "Server-1");
    assert_eq!(read["event"]["alert"]["id"], done["alert"]["id"]);
    let none = app.ok(Some(&analyst), q, json!({ "id": "987654" })).await;
    assert!(none["event"].is_null(), "{none}");
    for bad in ["x", "-1", "99999999999999999999999", ""] {
        let body = app.gql(Some(&analyst), q, json!({ "id": bad })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
    let key = app
        .ok(
            Some(&admin),
            "mutation { createApiKey(name: \"cam\") { key } }",
            json!({}),
        )
        .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let body: Value = app
        .client
        .post(app.url("/graphql"))
        .header("x-api-key", key)
        .json(&json!({ "query": q, "variables": { "id": id } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app.gql(None, q, json!({ "id": id })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

both!(alert_stats_since_covers_every_figure, one_event_by_its_id);

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp};

const STATUS: &str = "mutation($id: ID!, $s: AlertStatus!) { updateAlertStatus(id: $id, status: $s) { id status createdAt updatedAt } }";

async fn alert_ids(app: &TestApp, token: &str, args: &str) -> Vec<String> {
    let d = app
        .ok(
            Some(token),
            &format!("{{ alerts{args} {{ totalCount nodes {{ id severity status }} }} }}"),
            json!({}),
        )
        .await;
    let ids: Vec<String> = d["alerts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        d["alerts"]["totalCount"].as_u64().unwrap() as usize,
        ids.len(),
        "totalCount for {args}"
    );
    ids
}

fn id(v: &Value) -> String {
    v["alert"]["id"].as_str().unwrap().to_string()
}

async fn filters_by_severity_and_status_newest_first(app: TestApp) {
    let admin = app.admin().await;
    let h1 = id(&app.ingest(&admin, "HIGH", "A").await);
    let c1 = id(&app.ingest(&admin, "CRITICAL", "B").await);
    let h2 = id(&app.ingest(&admin, "HIGH", "C").await);
    app.ingest(&admin, "LOW", "D").await;
    app.ok(
        Some(&admin),
        STATUS,
        json!({ "id": h2, "s": "ACKNOWLEDGED" }),
    )
    .await;

    assert_eq!(
        alert_ids(&app, &admin, "").await,
        [h2.clone(), c1.clone(), h1.clone()]
    );
    assert_eq!(
        alert_ids(&app, &admin, "(severity: HIGH)").await,
        [h2.clone(), h1.clone()]
    );
    assert_eq!(
        alert_ids(&app, &admin, "(status: OPEN)").await,
        [c1.clone(), h1.clone()]
    );
    assert_eq!(
        alert_ids(&app, &admin, "(severity: HIGH, status: OPEN)").await,
        [h1]
    );
    assert_eq!(
        alert_ids(&app, &admin, "(severity: LOW)").await,
        Vec::<String>::new()
    );

    let d = app
        .ok(
            Some(&admin),
            "{ events(severity: LOW) { totalCount nodes { source alert { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["events"]["totalCount"], 1);
    assert_eq!(d["events"]["nodes"][0]["source"], "D");
}

async fn alert_by_id(app: TestApp) {
    let admin = app.admin().await;
    let a = id(&app.ingest(&admin, "CRITICAL", "Server-1").await);
    let d = app.ok(Some(&admin), "query($id: ID!) { alert(id: $id) { id status severity event { source alert { id } } } }", json!({ "id": a })).await;
    assert_eq!(d["alert"]["event"]["source"], "Server-1");
    assert_eq!(d["alert"]["event"]["alert"]["id"], a.as_str());
    let d = app
        .ok(Some(&admin), "{ alert(id: \"999999\") { id } }", json!({}))
        .await;
    assert!(d["alert"].is_null());
    let body = app
        .gql(
            Some(&admin),
            "{ alert(id: \"not-an-id\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

async fn admin_moves_alerts_forward_with_audit(app: TestApp) {
    let admin = app.admin().await;
    let a = id(&app.ingest(&admin, "HIGH", "Firewall-1").await);
    let ack = app
        .ok(
            Some(&admin),
            STATUS,
            json!({ "id": a, "s": "ACKNOWLEDGED" }),
        )
        .await;
    assert_eq!(ack["updateAlertStatus"]["status"], "ACKNOWLEDGED");
    let created = ack["updateAlertStatus"]["createdAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ack["updateAlertStatus"]["updatedAt"].as_str().unwrap() >= created.as_str());
    let res = app
        .ok(Some(&admin), STATUS, json!({ "id": a, "s": "RESOLVED" }))
        .await;
    assert_eq!(res["updateAlertStatus"]["status"], "RESOLVED");

    // Resolved is final.
    let back = app
        .gql(Some(&admin), STATUS, json!({ "id": a, "s": "OPEN" }))
        .await;
    assert_eq!(code(&back), "BAD_USER_INPUT");

    let log = app
        .ok(Some(&admin), "{ auditLog(action: ALERT_STATUS_CHANGED) { totalCount nodes { actor at targetType targetId detail } } }", json!({}))
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 2);
    let newest = &log["auditLog"]["nodes"][0];
    assert_eq!(newest["actor"], "admin");
    assert_eq!(newest["targetId"], a.as_str());
    let detail: Value = serde_json::from_str(newest["detail"].as_str().unwrap()).unwrap();
    assert_eq!(detail, json!({ "from": "ACKNOWLEDGED", "to": "RESOLVED" }));
}

async fn analyst_cannot_change_status(app: TestApp) {
    let admin = app.admin().await;
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let a = id(&app.ingest(&admin, "HIGH", "Firewall-1").await);
    let body = app
        .gql(Some(&analyst), STATUS, json!({ "id": a, "s": "RESOLVED" }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let d = app
        .ok(
            Some(&admin),
            "query($id: ID!) { alert(id: $id) { status } }",
            json!({ "id": a }),
        )
        .await;
    assert_eq!(d["alert"]["status"], "OPEN");
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_STATUS_CHANGED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 0);
}

async fn unknown_alert_is_not_found(app: TestApp) {
    let admin = app.admin().await;
    let body = app
        .gql(
            Some(&admin),
            STATUS,
            json!({ "id": "424242", "s": "RESOLVED" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let body = app
        .gql(Some(&admin), STATUS, json!({ "id": "x", "s": "RESOLVED" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

async fn stats_count_by_status_and_severity(app: TestApp) {
    let admin = app.admin().await;
    let a = id(&app.ingest(&admin, "HIGH", "A").await);
    app.ingest(&admin, "CRITICAL", "B").await;
    app.ingest(&admin, "CRITICAL", "C").await;
    app.ok(Some(&admin), STATUS, json!({ "id": a, "s": "RESOLVED" }))
        .await;
    let d = app
        .ok(
            Some(&admin),
            "{ alertStats { total byStatus { status count } bySeverity { severity count } } }",
            json!({}),
        )
        .await;
    let s = &d["alertStats"];
    assert_eq!(s["total"], 3);
    assert!(s["byStatus"]
        .as_array()
        .unwrap()
        .contains(&json!({ "status": "OPEN", "count": 2 })));
    assert!(s["byStatus"]
        .as_array()
        .unwrap()
        .contains(&json!({ "status": "RESOLVED", "count": 1 })));
    assert!(s["bySeverity"]
        .as_array()
        .unwrap()
        .contains(&json!({ "severity": "CRITICAL", "count": 2 })));
    assert!(s["bySeverity"]
        .as_array()
        .unwrap()
        .contains(&json!({ "severity": "LOW", "count": 0 })));
}

both!(
    filters_by_severity_and_status_newest_first,
    alert_by_id,
    admin_moves_alerts_forward_with_audit,
    analyst_cannot_change_status,
    unknown_alert_is_not_found,
    stats_count_by_status_and_severity,
);

/// The counters behind alertStats and totalCount agree with the rows after
/// a mix of ingests (single and batched) and status changes.
async fn counters_match_the_rows(app: TestApp) {
    let admin = app.admin().await;
    let q = "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { alert { id } } }";
    let inputs: Vec<_> = (0..30)
        .map(|i| {
            let severity = ["LOW", "MEDIUM", "HIGH", "CRITICAL"][i % 4];
            json!({ "source": "S", "eventType": "X", "severity": severity, "description": "d" })
        })
        .collect();
    let done = app.ok(Some(&admin), q, json!({ "i": inputs })).await;
    let ids: Vec<String> = done["ingestEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["alert"]["id"].as_str().map(String::from))
        .collect();
    for (n, id) in ids.iter().enumerate().take(6) {
        let status = if n % 2 == 0 {
            "ACKNOWLEDGED"
        } else {
            "RESOLVED"
        };
        app.ok(Some(&admin), STATUS, json!({ "id": id, "s": status }))
            .await;
    }
    // alert_ids asserts that totalCount equals the rows listed.
    for status in ["OPEN", "ACKNOWLEDGED", "RESOLVED"] {
        for severity in ["HIGH", "CRITICAL"] {
            alert_ids(
                &app,
                &admin,
                &format!("(status: {status}, severity: {severity}, first: 100)"),
            )
            .await;
        }
    }
    let s = app
        .ok(
            Some(&admin),
            "{ alertStats { total byStatus { status count } } }",
            json!({}),
        )
        .await;
    assert_eq!(s["alertStats"]["total"], 14);
    assert!(s["alertStats"]["byStatus"]
        .as_array()
        .unwrap()
        .contains(&json!({ "status": "ACKNOWLEDGED", "count": 3 })));
}

both!(counters_match_the_rows);

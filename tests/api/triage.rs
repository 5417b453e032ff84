//! Triage: ownership, notes, bulk actions, lifecycle times.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp};

const ASSIGN: &str = "mutation($id: ID!, $a: ID) { assignAlert(id: $id, assignee: $a) { id assignee { id username } } }";
const BULK: &str = "mutation($ids: [ID!]!, $s: AlertStatus!) { updateAlertStatuses(ids: $ids, status: $s) { id status acknowledgedAt resolvedAt } }";

async fn alerts(app: &TestApp, token: &str, n: usize) -> Vec<String> {
    let inputs: Vec<_> = (0..n).map(|i| json!({ "source": format!("S{i}"), "eventType": "X", "severity": "HIGH", "description": "d" })).collect();
    let d = app
        .ok(
            Some(token),
            "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { alert { id } } }",
            json!({ "i": inputs }),
        )
        .await;
    d["ingestEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alert"]["id"].as_str().unwrap().to_string())
        .collect()
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.ok(Some(token), "{ me { id } }", json!({})).await["me"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ids_of(d: &Value) -> Vec<String> {
    d["alerts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect()
}

async fn assignment_rules_and_filters(app: TestApp) {
    let admin = app.admin().await;
    let ana = app.user_with_role("ana", "ANALYST").await;
    let bob = app.user_with_role("bob", "ANALYST").await;
    let cam = app.user_with_role("cam", "SENSOR").await;
    let (ana_id, bob_id, cam_id) = (
        user_id(&app, &ana).await,
        user_id(&app, &bob).await,
        user_id(&app, &cam).await,
    );
    let a = alerts(&app, &admin, 3).await;

    // An admin assigns anyone who works alerts.
    let d = app
        .ok(Some(&admin), ASSIGN, json!({ "id": a[0], "a": bob_id }))
        .await;
    assert_eq!(d["assignAlert"]["assignee"]["username"], "bob");
    assert_eq!(
        code(
            &app.gql(Some(&admin), ASSIGN, json!({ "id": a[1], "a": cam_id }))
                .await
        ),
        "BAD_USER_INPUT"
    );
    assert_eq!(
        code(
            &app.gql(Some(&admin), ASSIGN, json!({ "id": a[1], "a": "999999" }))
                .await
        ),
        "NOT_FOUND"
    );
    assert_eq!(
        code(
            &app.gql(Some(&admin), ASSIGN, json!({ "id": "999999", "a": ana_id }))
                .await
        ),
        "NOT_FOUND"
    );

    // An analyst takes a free alert, cannot take bob's, cannot give one away.
    app.ok(Some(&ana), ASSIGN, json!({ "id": a[1], "a": ana_id }))
        .await;
    assert_eq!(
        code(
            &app.gql(Some(&ana), ASSIGN, json!({ "id": a[0], "a": ana_id }))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(Some(&ana), ASSIGN, json!({ "id": a[0], "a": null }))
                .await
        ),
        "FORBIDDEN"
    );
    assert_eq!(
        code(
            &app.gql(Some(&ana), ASSIGN, json!({ "id": a[2], "a": bob_id }))
                .await
        ),
        "FORBIDDEN"
    );

    let mine = app
        .ok(
            Some(&ana),
            "query($a: ID) { alerts(assignee: $a) { totalCount nodes { id } } }",
            json!({ "a": ana_id }),
        )
        .await;
    assert_eq!(ids_of(&mine), [a[1].clone()]);
    assert_eq!(mine["alerts"]["totalCount"], 1);
    let free = app
        .ok(
            Some(&ana),
            "{ alerts(unassigned: true, status: OPEN) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids_of(&free), [a[2].clone()]);
    assert_eq!(free["alerts"]["totalCount"], 1);
    let both = app
        .gql(
            Some(&ana),
            "query($a: ID) { alerts(assignee: $a, unassigned: true) { totalCount } }",
            json!({ "a": ana_id }),
        )
        .await;
    assert_eq!(code(&both), "BAD_USER_INPUT");

    // And gives their own back.
    let d = app
        .ok(Some(&ana), ASSIGN, json!({ "id": a[1], "a": null }))
        .await;
    assert!(d["assignAlert"]["assignee"].is_null());
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_ASSIGNED) { totalCount nodes { actor detail } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 3);
    assert_eq!(log["auditLog"]["nodes"][0]["actor"], "ana");
}

async fn comments_are_kept_newest_first(app: TestApp) {
    let admin = app.admin().await;
    let ana = app.user_with_role("ana", "ANALYST").await;
    let a = alerts(&app, &admin, 1).await;
    let q = "mutation($id: ID!, $b: String!) { commentOnAlert(id: $id, body: $b) { id author body createdAt } }";
    for (who, body) in [
        (&ana, "looks like a scan"),
        (&admin, "blocked at the edge"),
        (&ana, "closing"),
    ] {
        app.ok(Some(who), q, json!({ "id": a[0], "b": body })).await;
    }
    for (body, expected) in [
        ("", "BAD_USER_INPUT"),
        (&"x".repeat(10_001)[..], "BAD_USER_INPUT"),
    ] {
        assert_eq!(
            code(
                &app.gql(Some(&ana), q, json!({ "id": a[0], "b": body }))
                    .await
            ),
            expected
        );
    }
    assert_eq!(
        code(
            &app.gql(Some(&ana), q, json!({ "id": "999999", "b": "x" }))
                .await
        ),
        "NOT_FOUND"
    );
    let d = app
        .ok(Some(&ana), "query($id: ID!) { alert(id: $id) { comments(first: 2) { totalCount nodes { author body } pageInfo { hasNextPage endCursor } } } }", json!({ "id": a[0] }))
        .await;
    let c = &d["alert"]["comments"];
    assert_eq!(c["totalCount"], 3);
    assert_eq!(c["nodes"][0], json!({ "author": "ana", "body": "closing" }));
    assert_eq!(c["nodes"][1]["author"], "admin");
    assert_eq!(c["pageInfo"]["hasNextPage"], true);
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_COMMENTED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 3);
    assert!(app
        .try_exec_sql("UPDATE alert_comments SET body = 'rewritten'")
        .await
        .is_err());
    assert!(app
        .try_exec_sql("DELETE FROM alert_comments")
        .await
        .is_err());
    let sensor = app.user_with_role("cam", "SENSOR").await;
    assert_eq!(
        code(
            &app.gql(Some(&sensor), q, json!({ "id": a[0], "b": "x" }))
                .await
        ),
        "FORBIDDEN"
    );
}

async fn bulk_changes_are_all_or_nothing(app: TestApp) {
    let admin = app.admin().await;
    let a = alerts(&app, &admin, 4).await;
    app.ok(
        Some(&admin),
        "mutation($id: ID!) { updateAlertStatus(id: $id, status: RESOLVED) { id } }",
        json!({ "id": a[3] }),
    )
    .await;

    // A resolved alert cannot go back: the whole call fails, nothing moves.
    let body = app
        .gql(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], a[3]], "s": "ACKNOWLEDGED" }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("ids[1]"));
    let body = app
        .gql(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], "999999"], "s": "ACKNOWLEDGED" }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let open = app
        .ok(
            Some(&admin),
            "{ alerts(status: OPEN) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(open["alerts"]["totalCount"], 3);

    let d = app
        .ok(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], a[1], a[2]], "s": "ACKNOWLEDGED" }),
        )
        .await;
    let moved = d["updateAlertStatuses"].as_array().unwrap();
    assert_eq!(moved.len(), 3);
    assert!(moved.iter().all(|m| m["status"] == "ACKNOWLEDGED"
        && m["acknowledgedAt"].is_string()
        && m["resolvedAt"].is_null()));
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_STATUS_CHANGED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 4);

    for (ids, why) in [
        (json!([]), "empty"),
        (
            json!((0..501).map(|i| i.to_string()).collect::<Vec<_>>()),
            "too many",
        ),
        (json!([a[0], a[0]]), "twice"),
    ] {
        assert_eq!(
            code(
                &app.gql(Some(&admin), BULK, json!({ "ids": ids, "s": "RESOLVED" }))
                    .await
            ),
            "BAD_USER_INPUT",
            "{why}"
        );
    }
    let ana = app.user_with_role("ana", "ANALYST").await;
    assert_eq!(
        code(
            &app.gql(Some(&ana), BULK, json!({ "ids": [a[0]], "s": "RESOLVED" }))
                .await
        ),
        "FORBIDDEN"
    );
}

async fn lifecycle_times_and_means(app: TestApp) {
    let admin = app.admin().await;
    let stats = "query($s: DateTime) { alertStats(since: $s) { meanSecondsToAcknowledge meanSecondsToResolve } }";
    let d = app.ok(Some(&admin), stats, json!({})).await;
    assert!(d["alertStats"]["meanSecondsToAcknowledge"].is_null());
    assert!(d["alertStats"]["meanSecondsToResolve"].is_null());

    let a = alerts(&app, &admin, 2).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.ok(
        Some(&admin),
        BULK,
        json!({ "ids": [a[0]], "s": "ACKNOWLEDGED" }),
    )
    .await;
    let d = app
        .ok(
            Some(&admin),
            BULK,
            json!({ "ids": [a[0], a[1]], "s": "RESOLVED" }),
        )
        .await;
    let done = d["updateAlertStatuses"].as_array().unwrap();
    assert!(done[0]["acknowledgedAt"].is_string());
    assert!(
        done[1]["acknowledgedAt"].is_null(),
        "straight to RESOLVED was never acknowledged"
    );
    assert!(done[1]["resolvedAt"].is_string());

    let d = app.ok(Some(&admin), stats, json!({})).await;
    let ack = d["alertStats"]["meanSecondsToAcknowledge"]
        .as_f64()
        .unwrap();
    let res = d["alertStats"]["meanSecondsToResolve"].as_f64().unwrap();
    assert!((0.25..30.0).contains(&ack), "{ack}");
    assert!(res >= ack, "{res} {ack}");
    let d = app
        .ok(Some(&admin), stats, json!({ "s": "2020-01-01T00:00:00Z" }))
        .await;
    assert!(
        (d["alertStats"]["meanSecondsToAcknowledge"]
            .as_f64()
            .unwrap()
            - ack)
            .abs()
            < 0.01
    );
    let d = app
        .ok(
            Some(&admin),
            stats,
            json!({ "s": "2999-01-01T00:00:00+02:00" }),
        )
        .await;
    assert!(d["alertStats"]["meanSecondsToAcknowledge"].is_null());
    assert_eq!(
        code(
            &app.gql(Some(&admin), stats, json!({ "s": "yesterday" }))
                .await
        ),
        "BAD_USER_INPUT"
    );

    let ev = app.ok(Some(&admin), "query($id: ID!) { alert(id: $id) { events { totalCount nodes { id } } event { id } } }", json!({ "id": a[0] })).await;
    assert_eq!(ev["alert"]["events"]["totalCount"], 1);
    assert_eq!(
        ev["alert"]["events"]["nodes"][0]["id"],
        ev["alert"]["event"]["id"]
    );
}

both!(
    assignment_rules_and_filters,
    comments_are_kept_newest_first,
    bulk_changes_are_all_or_nothing,
    lifecycle_times_and_means,
);

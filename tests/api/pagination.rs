use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp};

const PAGE: &str = "query($f: Int, $a: String, $l: Int, $b: String, $s: Severity) { alerts(first: $f, after: $a, last: $l, before: $b, severity: $s) { totalCount edges { cursor node { id } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

fn ids(page: &Value) -> Vec<i64> {
    page["alerts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

async fn ingest_many(app: &TestApp, token: &str, n: usize, severity: &str) {
    let inputs: Vec<_> = (0..n).map(|i| json!({ "source": format!("S{i}"), "eventType": "X", "severity": severity, "description": "d" })).collect();
    app.ok(
        Some(token),
        "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } } }",
        json!({ "i": inputs }),
    )
    .await;
}

async fn paging_forward_is_stable_while_alerts_arrive(app: TestApp) {
    let admin = app.admin().await;
    ingest_many(&app, &admin, 25, "HIGH").await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = app
            .ok(Some(&admin), PAGE, json!({ "f": 10, "a": after }))
            .await;
        seen.extend(ids(&p));
        pages += 1;
        // New alerts keep arriving between pages; they must not shift the walk.
        ingest_many(&app, &admin, 3, "CRITICAL").await;
        let info = &p["alerts"]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], pages > 1);
        if info["hasNextPage"] == false {
            break;
        }
        after = Some(info["endCursor"].as_str().unwrap().to_string());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 25, "no duplicate, nothing skipped: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seen:?}"
    );
    let p = app.ok(Some(&admin), PAGE, json!({})).await;
    assert_eq!(p["alerts"]["totalCount"], 25 + 3 * 3);
    assert_eq!(ids(&p).len(), 10, "first defaults to 10");
}

async fn paging_backward(app: TestApp) {
    let admin = app.admin().await;
    ingest_many(&app, &admin, 7, "HIGH").await;
    let all = ids(&app.ok(Some(&admin), PAGE, json!({ "f": 100 })).await);
    let last = app.ok(Some(&admin), PAGE, json!({ "l": 3 })).await;
    assert_eq!(ids(&last), all[4..]);
    assert_eq!(last["alerts"]["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(last["alerts"]["pageInfo"]["hasNextPage"], false);
    let before = last["alerts"]["pageInfo"]["startCursor"].as_str().unwrap();
    let prev = app
        .ok(Some(&admin), PAGE, json!({ "l": 3, "b": before }))
        .await;
    assert_eq!(ids(&prev), all[1..4]);
    assert_eq!(prev["alerts"]["pageInfo"]["hasNextPage"], true);
    let start = prev["alerts"]["pageInfo"]["startCursor"].as_str().unwrap();
    let first = app
        .ok(Some(&admin), PAGE, json!({ "l": 3, "b": start }))
        .await;
    assert_eq!(ids(&first), all[..1]);
    assert_eq!(first["alerts"]["pageInfo"]["hasPreviousPage"], false);
}

async fn filtered_pages(app: TestApp) {
    let admin = app.admin().await;
    for _ in 0..3 {
        ingest_many(&app, &admin, 4, "HIGH").await;
        ingest_many(&app, &admin, 4, "CRITICAL").await;
    }
    let mut after: Option<String> = None;
    let mut seen = 0;
    loop {
        let p = app
            .ok(
                Some(&admin),
                PAGE,
                json!({ "f": 5, "a": after, "s": "CRITICAL" }),
            )
            .await;
        assert_eq!(p["alerts"]["totalCount"], 12);
        seen += ids(&p).len();
        if p["alerts"]["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = Some(
            p["alerts"]["pageInfo"]["endCursor"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(seen, 12);
}

async fn page_arguments_are_checked(app: TestApp) {
    let admin = app.admin().await;
    for vars in [
        json!({ "f": 1, "l": 1 }),
        json!({ "f": 0 }),
        json!({ "f": 101 }),
        json!({ "l": -1 }),
        json!({ "a": "not-a-cursor" }),
        json!({ "b": "////" }),
    ] {
        let body = app.gql(Some(&admin), PAGE, vars.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{vars}");
    }
    let body = app.gql(Some(&admin), PAGE, json!({ "f": 101 })).await;
    assert!(body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .starts_with("first"));
    let d = app.ok(Some(&admin), PAGE, json!({ "f": 100 })).await;
    assert_eq!(d["alerts"]["pageInfo"]["startCursor"], Value::Null);
}

both!(
    paging_forward_is_stable_while_alerts_arrive,
    paging_backward,
    filtered_pages,
    page_arguments_are_checked,
);

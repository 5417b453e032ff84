//! Narrowing lists down: source, event type, time range and words on
//! `alerts` and `events`, `event(id:)`, and `alertStats(since:)`.

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp};

const ALERTS: &str = "query($src: String, $type: String, $since: DateTime, $until: DateTime, $q: String, $sev: Severity, $status: AlertStatus, $f: Int, $a: String, $l: Int, $b: String) { alerts(source: $src, eventType: $type, since: $since, until: $until, search: $q, severity: $sev, status: $status, first: $f, after: $a, last: $l, before: $b) { totalCount nodes { id createdAt event { source eventType description } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

const EVENTS: &str = "query($src: String, $type: String, $since: DateTime, $until: DateTime, $q: String, $sev: Severity, $f: Int, $a: String, $l: Int, $b: String) { events(source: $src, eventType: $type, since: $since, until: $until, search: $q, severity: $sev, first: $f, after: $a, last: $l, before: $b) { totalCount nodes { id source eventType timestamp } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

const EVENT: &str =
    "query($id: ID!) { event(id: $id) { id source eventType severity description alert { id } } }";

const STATS: &str = "query($s: DateTime) { alertStats(since: $s) { total byStatus { status count } bySeverity { severity count } } }";

/// (source, eventType, severity, description)
const SAMPLE: &[(&str, &str, &str, &str)] = &[
    ("fw-1", "Malware", "HIGH", "Malware detected on HOST-7"),
    ("fw-1", "Intrusion", "CRITICAL", "Port scan from 10.0.0.9"),
    ("fw-2", "Malware", "CRITICAL", "Ransomware note found"),
    ("cctv-1", "Motion", "LOW", "Motion in the lobby"),
    ("fw-1", "Malware", "MEDIUM", "malware quarantined"),
    ("ids-1", "Intrusion", "HIGH", "Brute force on ssh: detected"),
];

async fn ingest(app: &TestApp, token: &str, rows: &[(&str, &str, &str, &str)]) {
    let inputs: Vec<_> = rows
        .iter()
        .map(|(s, t, v, d)| json!({ "source": s, "eventType": t, "severity": v, "description": d }))
        .collect();
    app.ok(
        Some(token),
        "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } } }",
        json!({ "i": inputs }),
    )
    .await;
}

fn ids(d: &Value, list: &str) -> Vec<i64> {
    d[list]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {d}"))
        .iter()
        .map(|n| n["id"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// A new sensor API key (role SENSOR).
async fn sensor_key(app: &TestApp, admin: &str) -> String {
    app.ok(
        Some(admin),
        "mutation { createApiKey(name: \"filters-sensor\") { key } }",
        json!({}),
    )
    .await["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A GraphQL request made with an API key.
async fn gql_key(app: &TestApp, key: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(app.url("/graphql"))
        .header("x-api-key", key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("JSON body")
}

async fn alert_ids(app: &TestApp, token: &str, vars: Value) -> (Vec<i64>, Value) {
    let d = app.ok(Some(token), ALERTS, vars).await;
    (ids(&d, "alerts"), d["alerts"]["totalCount"].clone())
}

async fn event_ids(app: &TestApp, token: &str, vars: Value) -> (Vec<i64>, Value) {
    let d = app.ok(Some(token), EVENTS, vars).await;
    (ids(&d, "events"), d["events"]["totalCount"].clone())
}

async fn each_filter_alone_and_combined(app: TestApp) {
    let admin = app.admin().await;
    let analyst = app.user_with_role("ana", "ANALYST").await;
    ingest(&app, &admin, SAMPLE).await;
    // Alerts: HIGH and CRITICAL only (rows 0, 1, 2, 5 → alert ids 1..=4).
    let (all, total) = alert_ids(&app, &analyst, json!({})).await;
    assert_eq!((all.len(), total), (4, json!(4)));
    let sources = |d: &Value, list: &str, field: &str| -> Vec<String> {
        d[list]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let v = if list == "alerts" {
                    &n["event"][field]
                } else {
                    &n[field]
                };
                v.as_str().unwrap().to_string()
            })
            .collect()
    };
    let d = app
        .ok(Some(&analyst), ALERTS, json!({ "src": "fw-1" }))
        .await;
    assert_eq!(sources(&d, "alerts", "source"), ["fw-1", "fw-1"]);
    assert_eq!(d["alerts"]["totalCount"], 2);
    let d = app
        .ok(Some(&analyst), ALERTS, json!({ "type": "Malware" }))
        .await;
    assert_eq!(sources(&d, "alerts", "eventType"), ["Malware", "Malware"]);
    assert_eq!(d["alerts"]["totalCount"], 2);
    // Combined with each other and with the older filters.
    let (x, t) = alert_ids(&app, &analyst, json!({ "src": "fw-1", "type": "Malware" })).await;
    assert_eq!((x.len(), t), (1, json!(1)));
    let (x, t) = alert_ids(
        &app,
        &analyst,
        json!({ "src": "fw-1", "sev": "CRITICAL", "status": "OPEN" }),
    )
    .await;
    assert_eq!((x.len(), t), (1, json!(1)));
    let (x, t) = alert_ids(&app, &analyst, json!({ "src": "fw-1", "sev": "LOW" })).await;
    assert_eq!((x.len(), t), (0, json!(0)));
    let (x, t) = alert_ids(&app, &analyst, json!({ "src": "nobody" })).await;
    assert_eq!((x.len(), t), (0, json!(0)));
    // Exact match: neither a prefix nor another case.
    let (x, _) = alert_ids(&app, &analyst, json!({ "src": "fw" })).await;
    assert!(x.is_empty());
    let (x, _) = alert_ids(&app, &analyst, json!({ "type": "malware" })).await;
    assert!(x.is_empty());

    // Events: every severity.
    let (x, t) = event_ids(&app, &analyst, json!({ "src": "fw-1" })).await;
    assert_eq!((x.len(), t), (3, json!(3)));
    let (x, t) = event_ids(&app, &analyst, json!({ "src": "fw-1", "type": "Malware" })).await;
    assert_eq!((x.len(), t), (2, json!(2)));
    let (x, t) = event_ids(
        &app,
        &analyst,
        json!({ "src": "fw-1", "type": "Malware", "sev": "MEDIUM" }),
    )
    .await;
    assert_eq!((x.len(), t), (1, json!(1)));
    let (x, t) = event_ids(&app, &analyst, json!({ "q": "malware", "src": "fw-1" })).await;
    assert_eq!((x.len(), t), (2, json!(2)));
    let (x, t) = event_ids(&app, &analyst, json!({ "q": "detected", "sev": "HIGH" })).await;
    assert_eq!((x.len(), t), (2, json!(2)));

    // Alerts search the words of their event; combined with the rest.
    let (x, t) = alert_ids(&app, &analyst, json!({ "q": "malware" })).await;
    assert_eq!(
        (x.len(), t),
        (2, json!(2)),
        "description or event type; the MEDIUM one raised none"
    );
    let (x, t) = alert_ids(&app, &analyst, json!({ "q": "detected" })).await;
    assert_eq!((x.len(), t), (2, json!(2)));
    let (x, t) = alert_ids(&app, &analyst, json!({ "q": "detected", "src": "ids-1" })).await;
    assert_eq!((x.len(), t), (1, json!(1)));
    let (x, t) = alert_ids(
        &app,
        &analyst,
        json!({ "q": "detected", "since": "2000-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!((x.len(), t), (2, json!(2)));
    let (x, t) = alert_ids(
        &app,
        &analyst,
        json!({ "q": "detected", "until": "2000-01-01T00:00:00Z" }),
    )
    .await;
    assert_eq!((x.len(), t), (0, json!(0)));
    // Source and event type are words too.
    let (x, _) = alert_ids(&app, &analyst, json!({ "q": "intrusion ids" })).await;
    assert_eq!(x.len(), 1);
}

async fn search_ignores_case_and_word_order(app: TestApp) {
    let admin = app.admin().await;
    ingest(&app, &admin, SAMPLE).await;
    for q in [
        "malware detected",
        "DETECTED Malware",
        "host-7 malware",
        "  Host 7  ",
        "on detected HOST",
    ] {
        let (x, t) = event_ids(&app, &admin, json!({ "q": q })).await;
        assert_eq!((x.len(), t), (1, json!(1)), "{q}");
        let (x, t) = alert_ids(&app, &admin, json!({ "q": q })).await;
        assert_eq!((x.len(), t), (1, json!(1)), "{q}");
    }
    // Every word must match.
    let (x, _) = event_ids(&app, &admin, json!({ "q": "quarantined ransomware" })).await;
    assert!(x.is_empty());
    let (x, _) = event_ids(&app, &admin, json!({ "q": "malware" })).await;
    assert_eq!(x.len(), 3, "description or event type, any case");
    // Whole words, not parts of them.
    let (x, _) = event_ids(&app, &admin, json!({ "q": "malw" })).await;
    assert!(x.is_empty());
}

async fn hostile_input_is_refused_or_harmless(app: TestApp) {
    let admin = app.admin().await;
    ingest(&app, &admin, SAMPLE).await;
    ingest(
        &app,
        &admin,
        &[(
            "fw-9",
            "Odd",
            "HIGH",
            "quote \" star * NEAR( OR - AND NOT café ü",
        )],
    )
    .await;
    // Query syntax is read as words (or dropped), never as syntax.
    for (q, want) in [
        ("\"", None),
        ("*", None),
        ("NEAR(", Some(1)),
        ("NEAR(malware, detected)", Some(0)),
        ("-", None),
        ("OR", Some(1)),
        ("malware OR ransomware", Some(0)),
        ("NOT malware", Some(0)),
        ("\"malware\" \"detected", Some(1)),
        ("description:malware", Some(0)),
        ("malware*", Some(3)),
        ("^malware", Some(3)),
        ("{source event_type}: fw", Some(0)),
        ("café", Some(1)),
        ("ü", Some(1)),
        ("日本語", Some(0)),
        ("'; DROP TABLE events; --", Some(0)),
        ("star quote", Some(1)),
    ] {
        for list in ["events", "alerts"] {
            let query = if list == "events" { EVENTS } else { ALERTS };
            let body = app.gql(Some(&admin), query, json!({ "q": q })).await;
            match want {
                None => {
                    assert_eq!(code(&body), "BAD_USER_INPUT", "{q}: {body}");
                    let msg = body["errors"][0]["message"].as_str().unwrap();
                    assert!(msg.contains("search"), "{msg}");
                }
                Some(n) => {
                    assert!(body.get("errors").is_none(), "{q}: {body}");
                    let found = body["data"][list]["nodes"].as_array().unwrap().len();
                    let total = &body["data"][list]["totalCount"];
                    // Events hold the MEDIUM one that raised no alert.
                    let n = if list == "alerts" && (q == "malware*" || q == "^malware") {
                        n - 1
                    } else {
                        n
                    };
                    assert_eq!((found, total), (n, &json!(n)), "{list} {q}: {body}");
                }
            }
        }
    }
    // Empty, blank, punctuation only, too long.
    for q in [
        String::new(),
        "   ".into(),
        "\"*-()!?".into(),
        "a".repeat(201),
        "malware ".repeat(1_250),
    ] {
        let body = app.gql(Some(&admin), EVENTS, json!({ "q": q })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        let msg = body["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains("search"), "{msg}");
        let body = app.gql(Some(&admin), ALERTS, json!({ "q": q })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    // Bad labels.
    for (var, field) in [("src", "source"), ("type", "eventType")] {
        for bad in [String::new(), "x".repeat(101), "a\u{0}b".into()] {
            for query in [ALERTS, EVENTS] {
                let body = app.gql(Some(&admin), query, json!({ var: bad })).await;
                assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
                let msg = body["errors"][0]["message"].as_str().unwrap();
                assert!(msg.contains(field), "{msg}");
            }
        }
    }
    // A reversed range names both ends.
    for query in [ALERTS, EVENTS] {
        let body = app
            .gql(
                Some(&admin),
                query,
                json!({ "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z" }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        let msg = body["errors"][0]["message"].as_str().unwrap();
        assert!(msg.contains("since") && msg.contains("until"), "{msg}");
        let body = app
            .gql(Some(&admin), query, json!({ "since": "yesterday" }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    }
    // The same instant at both ends is a valid (narrow) range.
    let (x, _) = event_ids(
        &app,
        &admin,
        json!({ "since": "2026-12-01T00:00:00Z", "until": "2026-12-01T00:00:00Z" }),
    )
    .await;
    assert!(x.is_empty());
    // A sensor may not read lists, filtered or not.
    let key = sensor_key(&app, &admin).await;
    for query in [ALERTS, EVENTS] {
        let body = gql_key(&app, &key, query, json!({ "src": "fw-1", "q": "malware" })).await;
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
    }
}

/// Sets the creation times of alerts and their events (by alert id), as an
/// import of older alerts would have them.
async fn set_times(app: &TestApp, times: &[(i64, &str)]) {
    for (alert, at) in times {
        app.exec_sql(&format!(
            "UPDATE alerts SET created_at = '{at}' WHERE id = {alert}"
        ))
        .await;
        app.exec_sql(&format!(
            "UPDATE events SET created_at = '{at}' WHERE id = (SELECT event_id FROM alerts WHERE id = {alert})"
        ))
        .await;
    }
}

/// Pages through `query` with `vars` forwards by `size`, then backwards
/// from the end, and returns both walks (each newest first).
async fn walk(
    app: &TestApp,
    token: &str,
    query: &str,
    list: &str,
    vars: Value,
    size: i64,
) -> (Vec<i64>, Vec<i64>) {
    let mut forward = Vec::new();
    let mut after = Value::Null;
    loop {
        let mut v = vars.clone();
        v["f"] = json!(size);
        v["a"] = after.clone();
        let d = app.ok(Some(token), query, v).await;
        let page = ids(&d, list);
        assert!(page.len() as i64 <= size);
        forward.extend(page);
        let info = &d[list]["pageInfo"];
        assert_eq!(info["hasPreviousPage"], !after.is_null(), "{d}");
        if info["hasNextPage"] != true {
            break;
        }
        after = info["endCursor"].clone();
    }
    let mut backward = Vec::new();
    let mut before = Value::Null;
    loop {
        let mut v = vars.clone();
        v["l"] = json!(size);
        v["b"] = before.clone();
        let d = app.ok(Some(token), query, v).await;
        let mut page = ids(&d, list);
        page.reverse();
        backward.extend(page);
        let info = &d[list]["pageInfo"];
        assert_eq!(info["hasNextPage"], !before.is_null(), "{d}");
        if info["hasPreviousPage"] != true {
            break;
        }
        before = info["startCursor"].clone();
    }
    backward.reverse();
    (forward, backward)
}

async fn filtered_lists_page_both_ways_without_gaps(app: TestApp) {
    let admin = app.admin().await;
    // 30 alerts from three sources, round robin; alert i has source
    // fw-(i % 3), and every other one says "breach".
    let rows: Vec<(String, String)> = (0..30)
        .map(|i| {
            let d = if i % 2 == 0 {
                "breach seen"
            } else {
                "all quiet"
            };
            (format!("fw-{}", i % 3), d.to_string())
        })
        .collect();
    let sample: Vec<(&str, &str, &str, &str)> = rows
        .iter()
        .map(|(s, d)| (s.as_str(), "Intrusion", "HIGH", d.as_str()))
        .collect();
    ingest(&app, &admin, &sample).await;
    // Creation times out of id order, as imported alerts have them: ids
    // 1..=30 get times that fall with the id for the last ten.
    let mut times = Vec::new();
    for id in 1..=30i64 {
        let minute = if id > 20 { 60 - id } else { id };
        times.push((id, format!("2026-11-01 10:{minute:02}:00")));
    }
    let times_ref: Vec<(i64, &str)> = times.iter().map(|(i, t)| (*i, t.as_str())).collect();
    set_times(&app, &times_ref).await;
    let at = |id: i64| times.iter().find(|(i, _)| *i == id).unwrap().1.clone();

    for (vars, expect) in [
        (json!({ "src": "fw-1" }), {
            // A source alone is ordered by creation time too: its one
            // index is (source, created_at, id).
            let mut v: Vec<i64> = (1..=30).filter(|i| (i - 1) % 3 == 1).collect();
            v.sort_by_key(|i| std::cmp::Reverse((at(*i), *i)));
            v
        }),
        (json!({ "q": "breach" }), {
            let mut v: Vec<i64> = (1..=30).filter(|i| (i - 1) % 2 == 0).collect();
            v.reverse();
            v
        }),
        (
            json!({ "src": "fw-0", "since": "2026-11-01T10:05:00Z", "until": "2026-11-01T10:35:00Z" }),
            {
                // Newest first by creation time, then id.
                let mut v: Vec<i64> = (1..=30)
                    .filter(|i| (i - 1) % 3 == 0)
                    .filter(|i| {
                        let t = at(*i);
                        t.as_str() >= "2026-11-01 10:05:00" && t.as_str() <= "2026-11-01 10:35:00"
                    })
                    .collect();
                v.sort_by_key(|i| std::cmp::Reverse((at(*i), *i)));
                v
            },
        ),
        (json!({ "since": "2026-11-01T10:15:00Z" }), {
            let mut v: Vec<i64> = (1..=30)
                .filter(|i| at(*i).as_str() >= "2026-11-01 10:15:00")
                .collect();
            v.sort_by_key(|i| std::cmp::Reverse((at(*i), *i)));
            v
        }),
    ] {
        assert!(!expect.is_empty());
        for size in [1, 2, 4] {
            let (fwd, back) = walk(&app, &admin, ALERTS, "alerts", vars.clone(), size).await;
            assert_eq!(fwd, expect, "forward by {size}, {vars}");
            assert_eq!(back, expect, "backward by {size}, {vars}");
            let (fwd, back) = walk(&app, &admin, EVENTS, "events", vars.clone(), size).await;
            // Alert i's event has id i: one event per alert here.
            assert_eq!(fwd, expect, "events forward by {size}, {vars}");
            assert_eq!(back, expect, "events backward by {size}, {vars}");
        }
        let (_, total) = alert_ids(&app, &admin, vars.clone()).await;
        assert_eq!(total, json!(expect.len()), "{vars}");
        let (_, total) = event_ids(&app, &admin, vars.clone()).await;
        assert_eq!(total, json!(expect.len()), "{vars}");
    }
    // A cursor from the unfiltered list positions a time-ordered page too,
    // and one that names no row is refused.
    let d = app
        .ok(
            Some(&admin),
            "{ alerts(first: 1) { pageInfo { endCursor } } }",
            json!({}),
        )
        .await;
    let cursor = d["alerts"]["pageInfo"]["endCursor"].clone();
    let (x, _) = alert_ids(
        &app,
        &admin,
        json!({ "since": "2026-11-01T10:00:00Z", "a": cursor }),
    )
    .await;
    assert!(x.iter().all(|id| (at(*id), *id) < (at(30), 30)), "{x:?}");
    let gone = base64_cursor(999_999);
    let body = app
        .gql(
            Some(&admin),
            ALERTS,
            json!({ "since": "2026-11-01T10:00:00Z", "a": gone }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

fn base64_cursor(id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("k1:{id}"))
}

async fn alert_stats_honour_since(app: TestApp) {
    let admin = app.admin().await;
    ingest(&app, &admin, SAMPLE).await;
    // Alerts 1 and 2 are old; 3 and 4 new. Alert 3 is resolved.
    set_times(
        &app,
        &[(1, "2026-10-01 00:00:00"), (2, "2026-10-02 00:00:00")],
    )
    .await;
    app.ok(
        Some(&admin),
        "mutation { updateAlertStatus(id: \"3\", status: RESOLVED) { id } }",
        json!({}),
    )
    .await;
    let count = |d: &Value, list: &str, key: &str, value: &str| -> i64 {
        d["alertStats"][list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c[key] == value)
            .map(|c| c["count"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no {value} in {d}"))
    };
    let d = app.ok(Some(&admin), STATS, json!({})).await;
    assert_eq!(d["alertStats"]["total"], 4);
    assert_eq!(count(&d, "byStatus", "status", "RESOLVED"), 1);
    let d = app
        .ok(Some(&admin), STATS, json!({ "s": "2026-11-01T00:00:00Z" }))
        .await;
    assert_eq!(d["alertStats"]["total"], 2, "{d}");
    assert_eq!(count(&d, "byStatus", "status", "OPEN"), 1);
    assert_eq!(count(&d, "byStatus", "status", "RESOLVED"), 1);
    assert_eq!(count(&d, "byStatus", "status", "ACKNOWLEDGED"), 0);
    // Alerts 3 (CRITICAL, fw-2) and 4 (HIGH, ids-1).
    assert_eq!(count(&d, "bySeverity", "severity", "CRITICAL"), 1);
    assert_eq!(count(&d, "bySeverity", "severity", "HIGH"), 1);
    assert_eq!(count(&d, "bySeverity", "severity", "LOW"), 0);
    let d = app
        .ok(Some(&admin), STATS, json!({ "s": "2030-11-01T00:00:00Z" }))
        .await;
    assert_eq!(d["alertStats"]["total"], 0, "{d}");
    for list in ["byStatus", "bySeverity"] {
        let counts = d["alertStats"][list].as_array().unwrap();
        assert!(!counts.is_empty());
        assert!(counts.iter().all(|c| c["count"] == 0), "{d}");
    }
    let body = app
        .gql(Some(&admin), STATS, json!({ "s": "not a time" }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

async fn one_event_by_id(app: TestApp) {
    let admin = app.admin().await;
    let analyst = app.user_with_role("ana", "ANALYST").await;
    ingest(&app, &admin, SAMPLE).await;
    let d = app.ok(Some(&analyst), EVENT, json!({ "id": "1" })).await;
    assert_eq!(d["event"]["source"], "fw-1");
    assert_eq!(d["event"]["description"], "Malware detected on HOST-7");
    assert_eq!(d["event"]["alert"]["id"], "1");
    let d = app.ok(Some(&admin), EVENT, json!({ "id": "4" })).await;
    assert_eq!(d["event"]["severity"], "LOW");
    assert!(d["event"]["alert"].is_null());
    let d = app.ok(Some(&admin), EVENT, json!({ "id": "999999" })).await;
    assert!(d["event"].is_null(), "{d}");
    for bad in ["abc", "0", "-1", "", "99999999999999999999999"] {
        let body = app.gql(Some(&admin), EVENT, json!({ "id": bad })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
    }
    let key = sensor_key(&app, &admin).await;
    let body = gql_key(&app, &key, EVENT, json!({ "id": "1" })).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app.gql(None, EVENT, json!({ "id": "1" })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

/// SQLite indexes words behind ingest (a second or so late): a search
/// made right after an ingest returns, or right after a backlog larger
/// than one indexing step, still finds every event stored before it, and
/// so do searches racing other sensors' ingest.
async fn search_sees_every_stored_event_at_once(app: TestApp) {
    let admin = app.admin().await;
    let batches = 6;
    for b in 0..batches {
        let rows: Vec<String> = (0..1000)
            .map(|i| match (b, i) {
                (0, 0) => "filler needlefirst".to_string(),
                (5, 999) => "filler needlelast".to_string(),
                _ => format!("filler row{b}x{i}"),
            })
            .collect();
        let sample: Vec<(&str, &str, &str, &str)> = rows
            .iter()
            .map(|d| ("bulk-1", "Scan", "LOW", d.as_str()))
            .collect();
        ingest(&app, &admin, &sample).await;
    }
    for (word, n) in [("needlelast", 1), ("needlefirst", 1), ("filler", 6000)] {
        let (found, total) = event_ids(&app, &admin, json!({ "q": word, "f": 1 })).await;
        assert_eq!(found.len(), 1, "{word}");
        assert_eq!(total, json!(n), "{word}");
    }

    let app = std::sync::Arc::new(app);
    let tasks: Vec<_> = (0..4)
        .map(|t| {
            let app = app.clone();
            let admin = admin.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let word = format!("race{t}x{i}");
                    let d = format!("seen {word}");
                    ingest(&app, &admin, &[("race-1", "Intrusion", "HIGH", d.as_str())]).await;
                    let (events, _) = event_ids(&app, &admin, json!({ "q": word })).await;
                    assert_eq!(events.len(), 1, "events, {word}");
                    let (alerts, _) = alert_ids(&app, &admin, json!({ "q": word })).await;
                    assert_eq!(alerts.len(), 1, "alerts, {word}");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a racing sensor and search");
    }
}

/// The index catches up in steps sized by how long they take: long
/// descriptions make for shorter steps, and every event is still found.
async fn search_catches_up_over_long_descriptions(app: TestApp) {
    let admin = app.admin().await;
    let filler = "padding ".repeat(1_100);
    let rows: Vec<String> = (0..300).map(|i| format!("{filler} tail{i}")).collect();
    for part in rows.chunks(100) {
        let sample: Vec<(&str, &str, &str, &str)> = part
            .iter()
            .map(|d| ("long-1", "Dump", "LOW", d.as_str()))
            .collect();
        ingest(&app, &admin, &sample).await;
    }
    for word in ["tail0", "tail150", "tail299"] {
        let (found, total) = event_ids(&app, &admin, json!({ "q": word })).await;
        assert_eq!((found.len(), total), (1, json!(1)), "{word}");
    }
    let (_, total) = event_ids(&app, &admin, json!({ "q": "padding", "f": 1 })).await;
    assert_eq!(total, json!(300));
}

both!(
    search_catches_up_over_long_descriptions,
    search_sees_every_stored_event_at_once,
    each_filter_alone_and_combined,
    search_ignores_case_and_word_order,
    hostile_input_is_refused_or_harmless,
    filtered_lists_page_both_ways_without_gaps,
    alert_stats_honour_since,
    one_event_by_id,
);

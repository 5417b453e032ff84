//! Retention (`THREATWATCH_RETENTION`): what a pass deletes and keeps, the
//! figures across it, a purge racing new repeats, and events refused for
//! being older than the window. Rows are made old by moving their times
//! back in the database, so no test waits out a window.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_with;
use crate::helpers::{code, Backend, TestApp};

const OLD: &str = "2020-01-01 00:00:00";

fn retention_on(s: &mut threatwatch::config::Settings) {
    s.retention = Some(Duration::from_secs(86_400));
    s.retention_every = Duration::from_millis(200);
}

/// (event id, alert id) of each input, in order.
async fn ingest(app: &TestApp, token: &str, inputs: Value) -> Vec<(String, Option<String>)> {
    let d = app
        .ok(
            Some(token),
            "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } alert { id } } }",
            json!({ "i": inputs }),
        )
        .await;
    d["ingestEvents"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["event"]["id"].as_str().expect("an id").to_string(),
                r["alert"]["id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

async fn set_status(app: &TestApp, token: &str, id: &str, status: &str) {
    app.ok(
        Some(token),
        "mutation($id: ID!, $s: AlertStatus!) { updateAlertStatus(id: $id, status: $s) { id } }",
        json!({ "id": id, "s": status }),
    )
    .await;
}

/// The RETENTION_PURGED entries, newest first, once there are `n`.
async fn purges(app: &TestApp, token: &str, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        let d = app
            .ok(
                Some(token),
                "{ auditLog(action: RETENTION_PURGED) { nodes { actor detail } } }",
                json!({}),
            )
            .await;
        let nodes = d["auditLog"]["nodes"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if nodes.len() >= n {
            return nodes;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {n} retention passes recorded");
}

/// Resolves `ids`, then makes every alert and event old: created in 2020,
/// alerts resolved the day after.
async fn resolve_and_age_everything(app: &TestApp, token: &str, ids: &[String]) {
    app.ok(
        Some(token),
        "mutation($ids: [ID!]!) { updateAlertStatuses(ids: $ids, status: RESOLVED) { id } }",
        json!({ "ids": ids }),
    )
    .await;
    app.exec_sql(&format!(
        "UPDATE alerts SET created_at = '{OLD}', resolved_at = '2020-01-02 00:00:00'"
    ))
    .await;
    app.exec_sql(&format!("UPDATE events SET created_at = '{OLD}'"))
        .await;
}

/// (alerts, events) the recorded passes purged, summed over every entry.
async fn purged(app: &TestApp, token: &str) -> (i64, i64) {
    purges(app, token, 1)
        .await
        .iter()
        .fold((0, 0), |(a, e), entry| {
            let d: Value =
                serde_json::from_str(entry["detail"].as_str().expect("detail")).expect("JSON");
            (
                a + d["alerts"].as_i64().expect("a count"),
                e + d["events"].as_i64().expect("a count"),
            )
        })
}

const STATS: &str = "query($s: DateTime) { alertStats(since: $s) { total byStatus { status count } bySeverity { severity count } meanSecondsToAcknowledge meanSecondsToResolve } }";

/// The figures from the counters, and the same figures counted from the
/// rows (`since` before any alert): they must agree.
async fn stats_agree(app: &TestApp, token: &str) -> Value {
    let kept = app.ok(Some(token), STATS, json!({})).await["alertStats"].clone();
    let counted = app
        .ok(Some(token), STATS, json!({ "s": "1970-01-01T00:00:00Z" }))
        .await["alertStats"]
        .clone();
    // The mean times are sums less the purged alerts' seconds, which
    // floating point keeps to within rounding.
    let mean = |v: &Value, k: &str| v[k].as_f64();
    for k in ["meanSecondsToAcknowledge", "meanSecondsToResolve"] {
        match (mean(&kept, k), mean(&counted, k)) {
            (Some(a), Some(b)) => {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{k}: {a} vs {b}")
            }
            (a, b) => assert_eq!(a, b, "{k}"),
        }
    }
    let strip = |mut v: Value| {
        for k in ["meanSecondsToAcknowledge", "meanSecondsToResolve"] {
            v[k] = Value::Null;
        }
        v
    };
    assert_eq!(strip(kept.clone()), strip(counted), "counters against rows");
    kept
}

async fn alive(app: &TestApp, token: &str, what: &str, id: &str) -> bool {
    let d = app
        .ok(
            Some(token),
            &format!("query($id: ID!) {{ {what}(id: $id) {{ id }} }}"),
            json!({ "id": id }),
        )
        .await;
    !d[what].is_null()
}

async fn a_pass_deletes_what_is_past_and_keeps_the_rest(app: TestApp) {
    let admin = app.admin().await;
    let hi = |key: &str, d: &str| json!({ "source": "old-fw", "eventType": "Intrusion", "severity": "HIGH", "description": d, "dedupKey": key });
    // A: raised, repeated three times, commented, acknowledged, resolved.
    let a = ingest(
        &app,
        &admin,
        json!([
            hi("k-a", "old breach"),
            hi("k-a", "again"),
            hi("k-a", "again"),
            hi("k-a", "again")
        ]),
    )
    .await;
    let alert_a = a[0].1.clone().expect("A raised");
    // B: raised and repeated, then left OPEN.
    let b = ingest(
        &app,
        &admin,
        json!([hi("k-b", "still open"), hi("k-b", "again")]),
    )
    .await;
    let alert_b = b[0].1.clone().expect("B raised");
    let low = |s: &str| json!({ "source": s, "eventType": "Motion", "severity": "LOW", "description": "motion" });
    let l1 = ingest(&app, &admin, json!([low("old-cam")])).await[0]
        .0
        .clone();
    let l2 = ingest(&app, &admin, json!([low("new-cam")])).await[0]
        .0
        .clone();
    for alert in [&alert_a, &alert_b] {
        app.ok(
            Some(&admin),
            "mutation($id: ID!) { commentOnAlert(id: $id, body: \"seen\") { id } }",
            json!({ "id": alert }),
        )
        .await;
    }
    set_status(&app, &admin, &alert_a, "ACKNOWLEDGED").await;
    set_status(&app, &admin, &alert_a, "RESOLVED").await;

    // Everything but L2 is made old; A was resolved long ago.
    app.exec_sql(&format!(
        "UPDATE alerts SET created_at = '{OLD}', resolved_at = '2020-01-02 00:00:00' WHERE id = {alert_a}"
    ))
    .await;
    app.exec_sql(&format!(
        "UPDATE alerts SET created_at = '{OLD}' WHERE id = {alert_b}"
    ))
    .await;
    app.exec_sql(&format!(
        "UPDATE events SET created_at = '{OLD}' WHERE id <> {l2}"
    ))
    .await;

    let entries = purges(&app, &admin, 1).await;
    assert_eq!(entries[0]["actor"], "system");
    let detail: Value =
        serde_json::from_str(entries[0]["detail"].as_str().expect("detail")).expect("JSON");
    assert_eq!(detail["alerts"], 1, "{detail}");
    assert_eq!(detail["events"], 5, "A's four events and L1: {detail}");
    assert_eq!(detail["comments"], 1, "{detail}");

    assert!(!alive(&app, &admin, "alert", &alert_a).await);
    for (event, _) in &a {
        assert!(
            !alive(&app, &admin, "event", event).await,
            "A's event {event}"
        );
    }
    assert!(
        !alive(&app, &admin, "event", &l1).await,
        "old unlinked event"
    );
    // An alert that is not resolved keeps everything, however old.
    assert!(alive(&app, &admin, "alert", &alert_b).await);
    for (event, _) in &b {
        assert!(
            alive(&app, &admin, "event", event).await,
            "B's event {event}"
        );
    }
    assert!(alive(&app, &admin, "event", &l2).await, "recent event");
    let comments = app
        .ok(
            Some(&admin),
            "query($id: ID!) { alert(id: $id) { comments { totalCount } } }",
            json!({ "id": alert_b }),
        )
        .await;
    assert_eq!(comments["alert"]["comments"]["totalCount"], 1);
    // B's comment is still append-only.
    let refused = app
        .try_exec_sql(&format!(
            "DELETE FROM alert_comments WHERE alert_id = {alert_b}"
        ))
        .await;
    assert!(refused.is_err(), "a live alert's comment was deleted");

    // Figures: only B is left; no alert is resolved, so no mean.
    let stats = stats_agree(&app, &admin).await;
    assert_eq!(stats["total"], 1, "{stats}");
    assert!(stats["meanSecondsToResolve"].is_null(), "{stats}");
    assert!(stats["meanSecondsToAcknowledge"].is_null(), "{stats}");
    let lists = app
        .ok(
            Some(&admin),
            "{ alerts { totalCount } events { totalCount } resolved: alerts(status: RESOLVED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(lists["alerts"]["totalCount"], 1, "{lists}");
    assert_eq!(lists["resolved"]["totalCount"], 0, "{lists}");
    assert_eq!(lists["events"]["totalCount"], 3, "B's two and L2: {lists}");

    // Passes that find nothing leave no entry.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(purges(&app, &admin, 1).await.len(), 1);
}

/// Many old resolved alerts (more than one step's worth) are purged while
/// a sensor sends new repeats of one of their keys: the repeats raise a new
/// alert and fold into it, and every figure stays exact.
async fn a_purge_racing_new_repeats_keeps_every_figure(app: TestApp) {
    let admin = app.admin().await;
    let old: Vec<Value> = (0..450)
        .map(|i| {
            let key = if i == 0 { "storm".to_string() } else { format!("k{i}") };
            json!({ "source": "racer", "eventType": "Scan", "severity": if i % 2 == 0 { "HIGH" } else { "CRITICAL" }, "description": "old", "dedupKey": key })
        })
        .collect();
    let stored = ingest(&app, &admin, json!(old)).await;
    let ids: Vec<String> = stored.iter().filter_map(|(_, a)| a.clone()).collect();
    assert_eq!(ids.len(), 450);
    resolve_and_age_everything(&app, &admin, &ids).await;

    let repeat = json!({ "source": "racer", "eventType": "Scan", "severity": "HIGH", "description": "new", "dedupKey": "storm" });
    let mut new_alert = None;
    for _ in 0..40 {
        let got = ingest(&app, &admin, json!([repeat.clone(), repeat.clone()])).await;
        for (_, alert) in got {
            let alert = alert.expect("a repeat belongs to an alert");
            assert!(!ids.contains(&alert), "folded into a resolved alert");
            assert_eq!(new_alert.get_or_insert(alert.clone()), &alert);
        }
    }
    purges(&app, &admin, 1).await;
    // Wait for the old ones to be gone entirely (one pass or several).
    for _ in 0..100 {
        let d = app
            .ok(Some(&admin), "{ alerts { totalCount } }", json!({}))
            .await;
        if d["alerts"]["totalCount"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new_alert = new_alert.expect("the repeats raised an alert");
    let d = app
        .ok(
            Some(&admin),
            "query($id: ID!) { alert(id: $id) { occurrences status } alerts { totalCount } events(source: \"racer\") { totalCount } }",
            json!({ "id": new_alert }),
        )
        .await;
    assert_eq!(d["alert"]["occurrences"], 80, "{d}");
    assert_eq!(d["alerts"]["totalCount"], 1, "{d}");
    assert_eq!(d["events"]["totalCount"], 80, "{d}");
    let stats = stats_agree(&app, &admin).await;
    assert_eq!(stats["total"], 1, "{stats}");
    let (purged, _) = purged(&app, &admin).await;
    assert_eq!(
        purged, 450,
        "every old alert purged once, none counted twice"
    );
}

/// Two instances over one PostgreSQL purge side by side: each row goes
/// once and is counted once, whichever instance took it.
async fn two_instances_purge_each_row_once(app: TestApp) {
    if !app.db_is_postgres() {
        return;
    }
    let _peer = app.peer_with(retention_on).await;
    let admin = app.admin().await;
    let rows: Vec<Value> = (0..900)
        .map(|i| {
            let severity = if i % 2 == 0 { "HIGH" } else { "LOW" };
            json!({ "source": "pair", "eventType": "Scan", "severity": severity, "description": "old", "dedupKey": format!("k{i}") })
        })
        .collect();
    let stored = ingest(&app, &admin, json!(rows)).await;
    let ids: Vec<String> = stored.iter().filter_map(|(_, a)| a.clone()).collect();
    assert_eq!(ids.len(), 450);
    resolve_and_age_everything(&app, &admin, &ids).await;
    let mut gone = (0, 0);
    for _ in 0..150 {
        let d = app
            .ok(
                Some(&admin),
                "{ alerts { totalCount } events { totalCount } }",
                json!({}),
            )
            .await;
        // The newest alert (with its event) and the newest event (the last
        // LOW one) are kept: see `the_newest_rows_are_kept_so_ids_are_never_reused`.
        if d["alerts"]["totalCount"] == 1 && d["events"]["totalCount"] == 2 {
            // Both instances' passes are over once each has logged its part.
            tokio::time::sleep(Duration::from_millis(500)).await;
            gone = purged(&app, &admin).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gone,
        (449, 898),
        "(alerts, events) purged, summed over both instances"
    );
    let stats = stats_agree(&app, &admin).await;
    assert_eq!(stats["total"], 1, "{stats}");
}

/// SQLite gives a new row the largest id plus one: were the newest event
/// or alert purged, its id would be handed out again and the word index,
/// cursors and webhook deliveries would take the new row for the old one.
/// So the newest of each stays, however old, and new rows get new ids.
async fn the_newest_rows_are_kept_so_ids_are_never_reused(app: TestApp) {
    let admin = app.admin().await;
    let low = json!({ "source": "quiet", "eventType": "Scan", "severity": "LOW", "description": "old words" });
    let lows = ingest(&app, &admin, json!([low.clone(), low.clone(), low])).await;
    let high = json!({ "source": "quiet", "eventType": "Scan", "severity": "HIGH", "description": "old words" });
    let (last_event, alert) = ingest(&app, &admin, json!([high])).await.remove(0);
    let alert = alert.expect("raised");
    resolve_and_age_everything(&app, &admin, std::slice::from_ref(&alert)).await;
    purges(&app, &admin, 1).await;
    for (event, _) in &lows {
        assert!(
            !alive(&app, &admin, "event", event).await,
            "old event {event}"
        );
    }
    assert!(
        alive(&app, &admin, "alert", &alert).await,
        "the newest alert"
    );
    assert!(
        alive(&app, &admin, "event", &last_event).await,
        "the newest event"
    );

    let (fresh, _) = ingest(
        &app,
        &admin,
        json!([{ "source": "quiet", "eventType": "Scan", "severity": "LOW", "description": "brandnew words" }]),
    )
    .await
    .remove(0);
    let n = |id: &str| id.parse::<i64>().expect("numeric id");
    assert!(n(&fresh) > n(&last_event), "id {fresh} reused");
    let d = app
        .ok(
            Some(&admin),
            "{ events(search: \"brandnew\") { nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["events"]["nodes"][0]["id"], json!(fresh), "{d}");
    let stats = stats_agree(&app, &admin).await;
    assert_eq!(stats["total"], 1, "{stats}");
}

/// Alerts imported as RESOLVED carry no time of resolving (the old system
/// kept none): their last change stands in for it.
async fn imported_resolved_alerts_go_by_their_last_change(app: TestApp) {
    let admin = app.admin().await;
    let hi = json!({ "source": "legacy", "eventType": "Scan", "severity": "HIGH", "description": "imported" });
    let got = ingest(&app, &admin, json!([hi.clone(), hi])).await;
    let (old, recent) = (
        got[0].1.clone().expect("raised"),
        got[1].1.clone().expect("raised"),
    );
    for id in [&old, &recent] {
        set_status(&app, &admin, id, "RESOLVED").await;
    }
    // As the importer stores them: RESOLVED, no resolved_at.
    app.exec_sql(&format!(
        "UPDATE alerts SET resolved_at = NULL, seconds_to_resolve = NULL, updated_at = '{OLD}', created_at = '{OLD}' WHERE id = {old}"
    ))
    .await;
    app.exec_sql(&format!("UPDATE events SET created_at = '{OLD}'"))
        .await;
    app.exec_sql("UPDATE alert_lifecycle SET resolved = 1, seconds_to_resolve = (SELECT seconds_to_resolve FROM alerts WHERE resolved_at IS NOT NULL)")
        .await;
    purges(&app, &admin, 1).await;
    assert!(
        !alive(&app, &admin, "alert", &old).await,
        "the imported old alert"
    );
    assert!(alive(&app, &admin, "alert", &recent).await);
    let stats = stats_agree(&app, &admin).await;
    assert_eq!(stats["total"], 1, "{stats}");
}

/// An event from before the window would be deleted at the next pass:
/// it is refused, naming the field and the setting.
async fn events_older_than_the_window_are_refused(app: TestApp) {
    let admin = app.admin().await;
    let at = |hours: i64| {
        (chrono::Utc::now() - chrono::TimeDelta::hours(hours))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let q =
        "mutation($i: IngestEventInput!) { ingestEvent(input: $i) { event { id occurredAt } } }";
    let event = |when: String| json!({ "i": { "source": "late-fw", "eventType": "Scan", "severity": "CRITICAL", "description": "late", "occurredAt": when } });
    let body = app.gql(Some(&admin), q, event(at(49))).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let msg = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("input.occurredAt:"), "{msg}");
    assert!(msg.contains("THREATWATCH_RETENTION"), "{msg}");
    let d = app
        .ok(
            Some(&admin),
            "{ events(source: \"late-fw\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(d["events"]["totalCount"], 0, "nothing stored");
    app.ok(Some(&admin), q, event(at(12))).await;
}

/// Segments of SQLite's events word index: FTS5 keeps a segment's pages
/// under rowids that carry its id from bit 37 on, and the pages listing
/// its deleted rows (tombstones) under ids from 65,536 up.
const SEGMENTS: &str = "SELECT CAST(count(DISTINCT id >> 37) AS TEXT) AS value FROM events_fts_data WHERE id >> 37 BETWEEN 1 AND 65535";
const TOMBSTONE_PAGES: &str =
    "SELECT CAST(count(*) AS TEXT) AS value FROM events_fts_data WHERE id >> 37 > 65535";

/// Polls `sql` until `done` holds of its number, or fails naming `what`.
async fn until_sql(app: &TestApp, sql: &str, what: &str, done: impl Fn(i64) -> bool) {
    let mut last = 0;
    for _ in 0..100 {
        last = app.text_sql(sql).await.parse().expect("a number");
        if done(last) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: still {last}");
}

/// Twelve batches of 50 LOW events with `word` in them, each searched for
/// as it lands: a search indexes what is new in a transaction of its own,
/// which writes one segment, and does not merge. Then waits until the
/// background indexer has merged some of them: FTS5 alone merges none
/// before 16 pile up on a level. (Which level each lands on depends on
/// when the indexer's round falls, so only "fewer than without merging"
/// is certain.)
async fn segments_of(app: &TestApp, admin: &str, word: &str) {
    let before: i64 = app.text_sql(SEGMENTS).await.parse().expect("a number");
    for b in 0..12 {
        let inputs: Vec<Value> = (0..50)
            .map(|i| json!({ "source": "fw-merge", "eventType": "Scan", "severity": "LOW", "description": format!("{word} batch{b} item{i}") }))
            .collect();
        ingest(app, admin, Value::Array(inputs)).await;
        let found = app
            .ok(
                Some(admin),
                "query($w: String) { events(search: $w) { totalCount } }",
                json!({ "w": word }),
            )
            .await;
        assert_eq!(found["events"]["totalCount"], 50 * (b + 1), "{found}");
    }
    until_sql(app, SEGMENTS, "segments after the fill", |n| {
        n < before + 12
    })
    .await;
}

/// SQLite's word indexes merge in the background indexer's steps, never
/// in the commit of whatever wrote to them (a retention step's commit
/// merged megabytes of index while ingest waited): FTS5's automerge and
/// merge-on-delete are off, segments are merged all the same, and the
/// words of purged events leave the file when their segment merges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_word_indexes_merge_in_steps_of_their_own() {
    let Some(app) = TestApp::spawn_tweaked(Backend::Sqlite, retention_on).await else {
        return;
    };
    let admin = app.admin().await;
    for table in ["events_fts", "alerts_fts"] {
        for option in ["automerge", "deletemerge"] {
            let value = app
                .text_sql(&format!(
                    "SELECT CAST(v AS TEXT) AS value FROM {table}_config WHERE k = '{option}'"
                ))
                .await;
            assert_eq!(value, "0", "{table} {option}");
        }
    }
    segments_of(&app, &admin, "early").await;
    // Every event made old and purged by a pass, all but the newest: their
    // segment is left with tombstones where its rows were.
    app.exec_sql(&format!("UPDATE events SET created_at = '{OLD}'"))
        .await;
    purges(&app, &admin, 1).await;
    let found = app
        .ok(
            Some(&admin),
            "{ events(search: \"early\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        found["events"]["totalCount"], 1,
        "the newest is kept: {found}"
    );
    // The indexer drops the purged rows' words on its next round.
    until_sql(&app, TOMBSTONE_PAGES, "tombstones of the purge", |n| n > 0).await;
    // Newer fills pile segments up on that level until it merges: the
    // purged rows' words and their tombstones go.
    for round in 0..8 {
        segments_of(&app, &admin, &format!("later{round}")).await;
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        if app.text_sql(TOMBSTONE_PAGES).await == "0" {
            return;
        }
    }
    panic!("the purged rows' segment never merged");
}

/// A word index found broken (here its table is gone) is rebuilt: the
/// word file is made again and filled from the start, and both lists are
/// searchable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_word_index_is_rebuilt() {
    let Some(app) = TestApp::spawn(Backend::Sqlite).await else {
        return;
    };
    let admin = app.admin().await;
    app.exec_sql("DROP TABLE words.events_fts").await;
    let inputs: Vec<Value> = (0..20)
        .map(|i| json!({ "source": "fw-broken", "eventType": "Scan", "severity": "HIGH", "description": format!("orphaned words {i}") }))
        .collect();
    let stored = ingest(&app, &admin, Value::Array(inputs)).await;
    let newest: i64 = stored
        .iter()
        .filter_map(|(_, alert)| alert.as_deref()?.parse().ok())
        .max()
        .expect("HIGH events raise alerts");
    until_sql(
        &app,
        "SELECT CAST(through AS TEXT) AS value FROM words_indexed WHERE list = 'alerts'",
        "the alerts' word index rebuilt",
        |through| through >= newest,
    )
    .await;
    let found = app
        .ok(
            Some(&admin),
            "{ alerts(search: \"orphaned\") { totalCount } events(search: \"orphaned\") { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(found["alerts"]["totalCount"], 20, "{found}");
    assert_eq!(found["events"]["totalCount"], 20, "{found}");
}

both_with!(
    a_pass_deletes_what_is_past_and_keeps_the_rest => super::retention_on,
    a_purge_racing_new_repeats_keeps_every_figure => super::retention_on,
    events_older_than_the_window_are_refused => super::retention_on,
    two_instances_purge_each_row_once => super::retention_on,
    the_newest_rows_are_kept_so_ids_are_never_reused => super::retention_on,
    imported_resolved_alerts_go_by_their_last_change => super::retention_on,
);

//! Races: many clients presenting or changing the same thing at once, over
//! real HTTP. Each outcome must match some order of the requests one after
//! another: one winner, the true previous value in every audit entry.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp, ADMIN_PASSWORD};

/// Concurrent requests per race: more than the test pool's connections and
/// the server's worker threads, so requests really overlap in the database.
const RACERS: usize = 16;
/// Races run per test: how long each request takes to reach the database
/// varies, so one burst may happen to line up one by one; several rarely do.
const ROUNDS: usize = 6;

const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";
const ASSIGN: &str =
    "mutation($id: ID!, $a: ID) { assignAlert(id: $id, assignee: $a) { id assignee { id } } }";
const EXPIRE: &str = "mutation($id: ID!) { expireSilence(id: $id) { id expiredAt } }";

/// The audit entries of `action`, oldest first.
async fn audit(app: &TestApp, admin: &str, action: &str) -> Vec<Value> {
    let log = app
        .ok(
            Some(admin),
            "query($a: AuditAction) { auditLog(action: $a, first: 100) { nodes { actor targetId detail } } }",
            json!({ "a": action }),
        )
        .await;
    let mut nodes = log["auditLog"]["nodes"].as_array().unwrap().clone();
    nodes.reverse();
    nodes
}

fn detail(entry: &Value) -> Value {
    serde_json::from_str(entry["detail"].as_str().unwrap_or("null")).unwrap()
}

async fn one_refresh_wins_and_the_rest_revoke_the_session(app: TestApp) {
    app.user_with_role("ana", "ANALYST").await;
    for _ in 0..ROUNDS {
        refresh_race(&app).await;
    }
    let admin = app.token("admin", ADMIN_PASSWORD).await;
    let revoked = audit(&app, &admin, "TOKEN_REVOKED").await;
    assert_eq!(revoked.len(), ROUNDS, "{revoked:#?}");
    for entry in &revoked {
        assert_eq!(entry["actor"], "ana");
        assert_eq!(detail(entry)["reason"], "refresh token reused");
    }
}

/// One session's refresh token presented `RACERS` times at once.
async fn refresh_race(app: &TestApp) {
    let login = app.login("ana", "password-123").await;
    let refresh = login["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();

    let answers =
        join_all((0..RACERS).map(|_| app.gql(None, REFRESH, json!({ "t": refresh.clone() }))))
            .await;
    let winners: Vec<&Value> = answers
        .iter()
        .filter(|a| a.get("errors").is_none())
        .collect();
    assert_eq!(winners.len(), 1, "{answers:#?}");
    for lost in answers.iter().filter(|a| a.get("errors").is_some()) {
        assert_eq!(code(lost), "UNAUTHENTICATED", "{lost}");
    }

    // The copies revoked the whole session, the winner's new pair with it.
    let pair = &winners[0]["data"]["refreshToken"];
    let next = app
        .gql(None, REFRESH, json!({ "t": pair["refreshToken"] }))
        .await;
    assert_eq!(code(&next), "UNAUTHENTICATED", "{next}");
    let me = app
        .gql(
            pair["accessToken"].as_str(),
            "{ me { username } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&me), "UNAUTHENTICATED", "{me}");
}

async fn concurrent_assignments_record_the_true_previous_owner(app: TestApp) {
    let admin = app.admin().await;
    let mut people = Vec::new();
    for name in ["ana", "bob", "cid"] {
        let token = app.user_with_role(name, "ANALYST").await;
        let me = app.ok(Some(&token), "{ me { id } }", json!({})).await;
        people.push(me["me"]["id"].as_str().unwrap().to_string());
    }
    let alert = app.ingest(&admin, "HIGH", "Firewall-1").await["alert"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let answers = join_all((0..RACERS).map(|i| {
        app.gql(
            Some(&admin),
            ASSIGN,
            json!({ "id": alert, "a": people[i % people.len()] }),
        )
    }))
    .await;
    for a in &answers {
        assert!(a.get("errors").is_none(), "{a}");
    }

    // Replayed in order, the entries form one chain from "nobody" to the
    // owner the alert has now: every `from` is the previous `to`.
    let entries = audit(&app, &admin, "ALERT_ASSIGNED").await;
    assert!(!entries.is_empty());
    let mut owner = Value::Null;
    for e in &entries {
        let d = detail(e);
        assert_eq!(d["from"], owner, "{entries:#?}");
        assert_ne!(d["to"], d["from"], "{entries:#?}");
        owner = d["to"].clone();
    }
    let now = app
        .ok(
            Some(&admin),
            "query($id: ID!) { alert(id: $id) { assignee { id } } }",
            json!({ "id": alert }),
        )
        .await;
    assert_eq!(now["alert"]["assignee"]["id"], owner);
}

async fn concurrent_expiries_end_a_silence_once(app: TestApp) {
    let admin = app.admin().await;
    for _ in 0..ROUNDS {
        let ends = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        let s = app
            .ok(
                Some(&admin),
                "mutation($i: SilenceInput!) { createSilence(input: $i) { id } }",
                json!({ "i": { "source": "Scanner-1", "comment": "pentest", "endsAt": ends } }),
            )
            .await;
        let id = s["createSilence"]["id"].as_str().unwrap().to_string();

        let answers =
            join_all((0..RACERS).map(|_| app.gql(Some(&admin), EXPIRE, json!({ "id": id })))).await;
        let ended: Vec<&Value> = answers
            .iter()
            .map(|a| &a["data"]["expireSilence"]["expiredAt"])
            .collect();
        assert!(ended[0].is_string(), "{answers:#?}");
        assert!(ended.iter().all(|e| *e == ended[0]), "{answers:#?}");

        let entries: Vec<Value> = audit(&app, &admin, "SILENCE_EXPIRED")
            .await
            .into_iter()
            .filter(|e| e["targetId"] == id.as_str())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:#?}");
    }
}

both!(
    one_refresh_wins_and_the_rest_revoke_the_session,
    concurrent_assignments_record_the_true_previous_owner,
    concurrent_expiries_end_a_silence_once,
);

//! Managing people: roles, disabling, passwords, and what each does to the
//! sessions of the account it touches.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both;
use crate::helpers::{code, TestApp, ADMIN_PASSWORD};

const UPDATE: &str = "mutation($id: ID!, $i: UpdateUserInput!) { updateUser(id: $id, input: $i) { id username role active lastLoginAt } }";
const RESET: &str =
    "mutation($id: ID!, $p: String!) { resetPassword(id: $id, password: $p) { id username } }";
const CHANGE: &str = "mutation($c: String!, $n: String!) { changePassword(current: $c, new: $n) }";
const REFRESH: &str =
    "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }";
const ME: &str = "{ me { username role } }";

/// Creates `name` with `role` and password "password-123"; its id.
async fn create(app: &TestApp, admin: &str, name: &str, role: &str) -> String {
    let d = app
        .ok(
            Some(admin),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            json!({ "i": { "username": name, "password": "password-123", "role": role } }),
        )
        .await;
    d["createUser"]["id"].as_str().unwrap().to_string()
}

/// A fresh login's (access, refresh) tokens.
async fn pair(app: &TestApp, name: &str, password: &str) -> (String, String) {
    let body = app.login(name, password).await;
    let l = &body["data"]["login"];
    match (l["accessToken"].as_str(), l["refreshToken"].as_str()) {
        (Some(a), Some(r)) => (a.into(), r.into()),
        _ => panic!("login as {name} failed: {body}"),
    }
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

async fn a_role_change_ends_sessions_and_is_audited(app: TestApp) {
    let admin = app.admin().await;
    let id = create(&app, &admin, "ana", "ANALYST").await;
    let (access, refresh) = pair(&app, "ana", "password-123").await;
    app.ok(Some(&access), ME, json!({})).await;

    let d = app
        .ok(
            Some(&admin),
            UPDATE,
            json!({ "id": id, "i": { "role": "ADMIN" } }),
        )
        .await;
    assert_eq!(d["updateUser"]["role"], "ADMIN");
    assert_eq!(d["updateUser"]["active"], true);

    // Ended at once on this instance: token and refresh token alike.
    let body = app.gql(Some(&access), ME, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = app.gql(None, REFRESH, json!({ "t": refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    // A new login carries the new role.
    let (fresh, _) = pair(&app, "ana", "password-123").await;
    let me = app.ok(Some(&fresh), ME, json!({})).await;
    assert_eq!(me["me"]["role"], "ADMIN");

    let entries = audit(&app, &admin, "USER_UPDATED").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["targetType"], "User");
    assert_eq!(entries[0]["targetId"], id.as_str());
    let detail: Value = serde_json::from_str(entries[0]["detail"].as_str().unwrap()).unwrap();
    assert_eq!(
        detail,
        json!({ "username": "ana", "role": { "from": "ANALYST", "to": "ADMIN" }, "sessionsEnded": 1 })
    );

    // Asking for what already is changes and records nothing.
    app.ok(
        Some(&admin),
        UPDATE,
        json!({ "id": id, "i": { "role": "ADMIN", "active": true } }),
    )
    .await;
    app.ok(Some(&fresh), ME, json!({})).await;
    assert_eq!(audit(&app, &admin, "USER_UPDATED").await.len(), 1);
}

async fn disabled_people_cannot_sign_in(app: TestApp) {
    let admin = app.admin().await;
    let id = create(&app, &admin, "ana", "ANALYST").await;
    let (access, refresh) = pair(&app, "ana", "password-123").await;
    let wrong = app.login("ana", "not-her-password").await;

    let d = app
        .ok(
            Some(&admin),
            UPDATE,
            json!({ "id": id, "i": { "active": false } }),
        )
        .await;
    assert_eq!(d["updateUser"]["active"], false);

    let body = app
        .gql(Some(&access), "{ alerts { totalCount } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = app.gql(None, REFRESH, json!({ "t": refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    // The right password for a disabled account answers like a wrong one.
    let body = app.login("ana", "password-123").await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(message(&body), message(&wrong));

    let list = app
        .ok(
            Some(&admin),
            "{ users { nodes { username active } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["users"]["nodes"][0]["username"], "ana");
    assert_eq!(list["users"]["nodes"][0]["active"], false);
    let detail = audit(&app, &admin, "USER_UPDATED").await[0]["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        detail.contains(r#""active":{"from":true,"to":false}"#),
        "{detail}"
    );

    // Enabled again: a new login works, the old sessions stay ended.
    app.ok(
        Some(&admin),
        UPDATE,
        json!({ "id": id, "i": { "active": true } }),
    )
    .await;
    let (fresh, _) = pair(&app, "ana", "password-123").await;
    app.ok(Some(&fresh), ME, json!({})).await;
    let body = app.gql(Some(&access), ME, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = app.gql(None, REFRESH, json!({ "t": refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

/// Another instance trusts its cached check of a token for at most the
/// credential cache's five seconds.
async fn disabling_reaches_other_instances(app: TestApp) {
    let admin = app.admin().await;
    let id = create(&app, &admin, "ana", "ANALYST").await;
    let (access, _) = pair(&app, "ana", "password-123").await;
    let peer = app.peer().await;
    let on_peer = || async {
        let body: Value = app
            .client
            .post(peer.url("/graphql"))
            .bearer_auth(&access)
            .json(&json!({ "query": ME }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body
    };
    let body = on_peer().await;
    assert_eq!(body["data"]["me"]["username"], "ana", "{body}");

    app.ok(
        Some(&admin),
        UPDATE,
        json!({ "id": id, "i": { "active": false } }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let body = on_peer().await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

async fn admins_keep_themselves_and_the_last_admin(app: TestApp) {
    let admin = app.admin().await;
    let me = app
        .ok(
            Some(&admin),
            "{ me { username } users { nodes { id username } } }",
            json!({}),
        )
        .await;
    let admin_id = me["users"]["nodes"][0]["id"].as_str().unwrap().to_string();

    for (input, field) in [
        (json!({ "active": false }), "active"),
        (json!({ "role": "ANALYST" }), "role"),
        (json!({ "role": "ANALYST", "active": false }), "active"),
    ] {
        let body = app
            .gql(Some(&admin), UPDATE, json!({ "id": admin_id, "i": input }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert!(message(&body).starts_with(&format!("{field}: ")), "{body}");
        assert!(message(&body).contains("themselves"), "{body}");
    }
    // Still an admin, still signed in.
    let d = app.ok(Some(&admin), ME, json!({})).await;
    assert_eq!(d["me"]["role"], "ADMIN");

    // With a second admin, each may remove the other, but not both.
    let bob_id = create(&app, &admin, "bob", "ADMIN").await;
    let bob = app.token("bob", "password-123").await;
    app.ok(
        Some(&bob),
        UPDATE,
        json!({ "id": admin_id, "i": { "active": false } }),
    )
    .await;
    let body = app
        .gql(
            Some(&bob),
            UPDATE,
            json!({ "id": bob_id, "i": { "role": "ANALYST" } }),
        )
        .await;
    // Bob, now the only active admin, cannot step down either.
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let body = app.login("admin", ADMIN_PASSWORD).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(audit(&app, &bob, "USER_UPDATED").await.len(), 1);
}

/// Two admins demoting each other at the same moment: one of them wins,
/// the other is refused, and one active admin is left. Run a few rounds,
/// and both ways of removing an admin.
async fn concurrent_removals_leave_one_admin(app: TestApp) {
    let admin = app.admin().await;
    let me = app
        .ok(
            Some(&admin),
            "{ users { nodes { id username } } }",
            json!({}),
        )
        .await;
    let admin_id = me["users"]["nodes"][0]["id"].as_str().unwrap().to_string();
    let bob_id = create(&app, &admin, "bob", "ADMIN").await;
    let passwords = [("admin", ADMIN_PASSWORD), ("bob", "password-123")];
    for round in 0..6 {
        let (a, _) = pair(&app, passwords[0].0, passwords[0].1).await;
        let (b, _) = pair(&app, passwords[1].0, passwords[1].1).await;
        let removal = if round % 2 == 0 {
            json!({ "role": "ANALYST" })
        } else {
            json!({ "active": false })
        };
        let (x, y) = tokio::join!(
            app.gql(Some(&a), UPDATE, json!({ "id": bob_id, "i": removal })),
            app.gql(Some(&b), UPDATE, json!({ "id": admin_id, "i": removal })),
        );
        let wins: Vec<&Value> = [&x, &y]
            .into_iter()
            .filter(|b| b.get("errors").is_none())
            .collect();
        assert_eq!(wins.len(), 1, "round {round}: {x} {y}");
        let refused = if x.get("errors").is_some() { &x } else { &y };
        let refusal = code(refused);
        // The loser either counted one admin left, or was itself removed
        // and its session ended before it got there.
        assert!(
            refusal == "BAD_USER_INPUT" || refusal == "UNAUTHENTICATED",
            "round {round}: {refused}"
        );
        let (survivor, loser_id) = if x.get("errors").is_none() {
            (&a, &bob_id)
        } else {
            (&b, &admin_id)
        };
        let list = app
            .ok(
                Some(survivor),
                "{ users { nodes { role active } } }",
                json!({}),
            )
            .await;
        let admins = list["users"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["role"] == "ADMIN" && u["active"] == true)
            .count();
        assert_eq!(admins, 1, "round {round}: {list}");
        // Put the other back for the next round.
        app.ok(
            Some(survivor),
            UPDATE,
            json!({ "id": loser_id, "i": { "role": "ADMIN", "active": true } }),
        )
        .await;
    }
}

async fn people_management_refuses_hostile_input(app: TestApp) {
    let admin = app.admin().await;
    let id = create(&app, &admin, "ana", "ANALYST").await;
    let analyst = app.token("ana", "password-123").await;
    let sensor = app.user_with_role("cam", "SENSOR").await;
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

    let update = json!({ "id": id, "i": { "role": "ADMIN" } });
    let reset = json!({ "id": id, "p": "new-password-1" });
    for token in [&analyst, &sensor] {
        for (q, v) in [(UPDATE, &update), (RESET, &reset)] {
            let body = app.gql(Some(token), q, v.clone()).await;
            assert_eq!(code(&body), "FORBIDDEN", "{body}");
        }
    }
    for (q, v) in [(UPDATE, &update), (RESET, &reset)] {
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
        assert_eq!(code(&body), "FORBIDDEN", "{body}");
        let body = app.gql(None, q, v.clone()).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }

    for bad in ["abc", "-1", "0", "1.5", "99999999999999999999999"] {
        for (q, v) in [
            (UPDATE, json!({ "id": bad, "i": { "active": false } })),
            (RESET, json!({ "id": bad, "p": "new-password-1" })),
        ] {
            let body = app.gql(Some(&admin), q, v).await;
            assert_eq!(code(&body), "BAD_USER_INPUT", "{bad}: {body}");
            assert!(message(&body).starts_with("id: "), "{body}");
        }
    }
    for (q, v) in [
        (UPDATE, json!({ "id": "987654", "i": { "active": false } })),
        (RESET, json!({ "id": "987654", "p": "new-password-1" })),
    ] {
        let body = app.gql(Some(&admin), q, v).await;
        assert_eq!(code(&body), "NOT_FOUND", "{body}");
    }
    for (input, field) in [
        (json!({}), "input"),
        (json!({ "role": null, "active": null }), "input"),
        (json!({ "role": "SENSOR" }), "role"),
        (json!({ "role": "SENSOR", "active": true }), "role"),
    ] {
        let body = app
            .gql(Some(&admin), UPDATE, json!({ "id": id, "i": input }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert!(message(&body).starts_with(&format!("{field}: ")), "{body}");
    }
    let body = app
        .gql(
            Some(&admin),
            UPDATE,
            json!({ "id": id, "i": { "role": "ROOT" } }),
        )
        .await;
    assert!(body.get("errors").is_some(), "{body}");
    for password in ["short".to_string(), "x".repeat(73), "y".repeat(1 << 20)] {
        let body = app
            .gql(Some(&admin), RESET, json!({ "id": id, "p": password }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT");
        assert!(
            message(&body).starts_with("password: "),
            "{}",
            message(&body)
        );
    }
    let body = app
        .gql(
            Some(&admin),
            "mutation($i: CreateUserInput!) { createUser(input: $i) { id } }",
            json!({ "i": { "username": "cam2", "password": "password-123", "role": "SENSOR" } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(message(&body).starts_with("role: "), "{body}");

    // None of it changed anything.
    app.ok(Some(&analyst), ME, json!({})).await;
    assert_eq!(
        app.ok(Some(&analyst), ME, json!({})).await["me"]["role"],
        "ANALYST"
    );
    assert!(audit(&app, &admin, "USER_UPDATED").await.is_empty());
    assert!(audit(&app, &admin, "PASSWORD_RESET").await.is_empty());
    let users = app
        .ok(Some(&admin), "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(users["users"]["totalCount"], 3);
}

async fn a_reset_password_ends_sessions(app: TestApp) {
    let admin = app.admin().await;
    let id = create(&app, &admin, "ana", "ANALYST").await;
    let (access, refresh) = pair(&app, "ana", "password-123").await;
    let d = app
        .ok(
            Some(&admin),
            RESET,
            json!({ "id": id, "p": "brand-new-pass" }),
        )
        .await;
    assert_eq!(d["resetPassword"]["username"], "ana");

    let body = app.gql(Some(&access), ME, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = app.gql(None, REFRESH, json!({ "t": refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(
        code(&app.login("ana", "password-123").await),
        "UNAUTHENTICATED"
    );
    pair(&app, "ana", "brand-new-pass").await;

    let entries = audit(&app, &admin, "PASSWORD_RESET").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"], "admin");
    assert_eq!(entries[0]["targetId"], id.as_str());
    let detail = entries[0]["detail"].as_str().unwrap();
    assert!(detail.contains(r#""sessionsEnded":1"#), "{detail}");
    assert!(!detail.contains("brand-new-pass"), "{detail}");
}

async fn changing_ones_password_keeps_only_this_session(app: TestApp) {
    let admin = app.admin().await;
    create(&app, &admin, "ana", "ANALYST").await;
    let (here, here_refresh) = pair(&app, "ana", "password-123").await;
    let (there, there_refresh) = pair(&app, "ana", "password-123").await;

    let body = app
        .gql(
            Some(&here),
            CHANGE,
            json!({ "c": "not-my-password", "n": "fresh-password" }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert!(message(&body).starts_with("current: "), "{body}");
    for (new, why) in [
        ("short", "at least 8"),
        (&*"z".repeat(1 << 20), "at most 72"),
        ("password-123", "differ"),
    ] {
        let body = app
            .gql(
                Some(&here),
                CHANGE,
                json!({ "c": "password-123", "n": new }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert!(message(&body).starts_with("new: "), "{body}");
        assert!(message(&body).contains(why), "{body}");
    }
    app.ok(Some(&there), ME, json!({})).await;

    let d = app
        .ok(
            Some(&here),
            CHANGE,
            json!({ "c": "password-123", "n": "fresh-password" }),
        )
        .await;
    assert_eq!(d["changePassword"], true);
    // This session goes on, refresh token and all; the other has ended.
    app.ok(Some(&here), ME, json!({})).await;
    app.ok(None, REFRESH, json!({ "t": here_refresh })).await;
    let body = app.gql(Some(&there), ME, json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let body = app.gql(None, REFRESH, json!({ "t": there_refresh })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(
        code(&app.login("ana", "password-123").await),
        "UNAUTHENTICATED"
    );
    pair(&app, "ana", "fresh-password").await;

    let entries = audit(&app, &admin, "PASSWORD_CHANGED").await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["actor"], "ana");
    let detail = entries[0]["detail"].as_str().unwrap();
    assert!(detail.contains(r#""sessionsEnded":1"#), "{detail}");
    assert!(!detail.contains("fresh-password"), "{detail}");
    // The wrong guess is on record as a failed login.
    let failed = audit(&app, &admin, "LOGIN_FAILED").await;
    assert!(
        failed.iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("changePassword")),
        "{failed:?}"
    );

    // Only people have passwords.
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
    let body: Value = app
        .client
        .post(app.url("/graphql"))
        .header("X-API-Key", &key)
        .json(&json!({ "query": CHANGE, "variables": { "c": "x", "n": "fresh-password-2" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = app
        .gql(
            None,
            CHANGE,
            json!({ "c": "fresh-password", "n": "fresh-password-2" }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

/// Guessing at the current password is guessing at a login: the same
/// throttle stops it, and stops logins to the account with it.
async fn wrong_current_passwords_are_throttled(app: TestApp) {
    let admin = app.admin().await;
    create(&app, &admin, "ana", "ANALYST").await;
    let token = app.token("ana", "password-123").await;
    let mut limited = None;
    for i in 0..10 {
        let body = app
            .gql(
                Some(&token),
                CHANGE,
                json!({ "c": format!("guess-{i}"), "n": "fresh-password" }),
            )
            .await;
        if code(&body) == "RATE_LIMITED" {
            limited = Some(i);
            break;
        }
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    assert!(limited.is_some_and(|i| i >= 5), "{limited:?}");
    let body = app.login("ana", "password-123").await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
}

async fn last_login_is_recorded_and_guarded(app: TestApp) {
    let admin = app.admin().await;
    let id = create(&app, &admin, "ana", "ANALYST").await;
    let q = "{ users { nodes { username lastLoginAt } } }";
    let list = app.ok(Some(&admin), q, json!({})).await;
    assert_eq!(list["users"]["nodes"][0]["username"], "ana");
    assert!(list["users"]["nodes"][0]["lastLoginAt"].is_null());
    assert!(list["users"]["nodes"][1]["lastLoginAt"].is_string());

    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let ana = app.token("ana", "password-123").await;
    let list = app.ok(Some(&admin), q, json!({})).await;
    let at: chrono::DateTime<chrono::Utc> = list["users"]["nodes"][0]["lastLoginAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(at >= before && at <= chrono::Utc::now(), "{at}");
    // A failed login is no login.
    app.login("ana", "wrong-password").await;
    let again = app.ok(Some(&admin), q, json!({})).await;
    assert_eq!(
        again["users"]["nodes"][0]["lastLoginAt"],
        list["users"]["nodes"][0]["lastLoginAt"]
    );

    // Her own, yes; a colleague's, only for an admin.
    let me = app
        .ok(Some(&ana), "{ me { active lastLoginAt } }", json!({}))
        .await;
    assert_eq!(me["me"]["active"], true);
    assert!(me["me"]["lastLoginAt"].is_string());
    let alert = app.ingest(&admin, "HIGH", "Firewall-1").await["alert"]["id"].clone();
    app.ok(
        Some(&admin),
        "mutation($a: ID!, $u: ID) { assignAlert(id: $a, assignee: $u) { id } }",
        json!({ "a": alert, "u": id }),
    )
    .await;
    let bob = app.user_with_role("bob", "ANALYST").await;
    let body = app
        .gql(
            Some(&bob),
            "query($a: ID!) { alert(id: $a) { assignee { username active lastLoginAt } } }",
            json!({ "a": alert }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let d = app
        .ok(
            Some(&bob),
            "query($a: ID!) { alert(id: $a) { assignee { username active } } }",
            json!({ "a": alert }),
        )
        .await;
    assert_eq!(d["alert"]["assignee"]["username"], "ana");
}

both!(
    a_role_change_ends_sessions_and_is_audited,
    disabled_people_cannot_sign_in,
    disabling_reaches_other_instances,
    admins_keep_themselves_and_the_last_admin,
    concurrent_removals_leave_one_admin,
    people_management_refuses_hostile_input,
    a_reset_password_ends_sessions,
    changing_ones_password_keeps_only_this_session,
    last_login_is_recorded_and_guarded,
    wrong_current_passwords_are_throttled,
);

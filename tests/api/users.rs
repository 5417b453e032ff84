use serde_json::json;

use crate::both;
use crate::helpers::{code, TestApp};

const CREATE: &str =
    "mutation($i: CreateUserInput!) { createUser(input: $i) { id username role createdAt } }";

async fn admin_creates_users_who_can_log_in(app: TestApp) {
    let admin = app.admin().await;
    let d = app
        .ok(
            Some(&admin),
            CREATE,
            json!({ "i": { "username": "ana", "password": "analyst-pass", "role": "ANALYST" } }),
        )
        .await;
    assert_eq!(d["createUser"]["role"], "ANALYST");
    let token = app.token("ana", "analyst-pass").await;
    let me = app
        .ok(Some(&token), "{ me { id username role } }", json!({}))
        .await;
    assert_eq!(me["me"]["id"], d["createUser"]["id"]);

    let list = app
        .ok(
            Some(&admin),
            "{ users(first: 10) { totalCount nodes { username } pageInfo { hasNextPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["users"]["totalCount"], 2);
    assert_eq!(list["users"]["nodes"][0]["username"], "ana");

    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: USER_CREATED) { nodes { actor targetId } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["nodes"][0]["actor"], "admin");
    assert_eq!(
        log["auditLog"]["nodes"][0]["targetId"],
        d["createUser"]["id"]
    );
}

async fn user_input_is_validated(app: TestApp) {
    let admin = app.admin().await;
    for (input, field) in [
        (
            json!({ "username": "admin", "password": "password-1", "role": "ADMIN" }),
            "username",
        ),
        (
            json!({ "username": "ADMIN", "password": "password-1", "role": "ADMIN" }),
            "username",
        ),
        (
            json!({ "username": "bad name", "password": "password-1", "role": "ADMIN" }),
            "username",
        ),
        (
            json!({ "username": "bob", "password": "short", "role": "ANALYST" }),
            "password",
        ),
        (
            json!({ "username": "bob", "password": "x".repeat(73), "role": "ANALYST" }),
            "password",
        ),
    ] {
        let body = app.gql(Some(&admin), CREATE, json!({ "i": input })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{input}");
        assert!(body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with(field));
    }
    let list = app
        .ok(Some(&admin), "{ users { totalCount } }", json!({}))
        .await;
    assert_eq!(list["users"]["totalCount"], 1);
}

async fn only_admins_manage_users(app: TestApp) {
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let body = app
        .gql(
            Some(&analyst),
            CREATE,
            json!({ "i": { "username": "eve", "password": "password-1", "role": "ADMIN" } }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
    let body = app.login("eve", "password-1").await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

both!(
    admin_creates_users_who_can_log_in,
    user_input_is_validated,
    only_admins_manage_users
);

use serde_json::json;

use crate::helpers::{code, TestApp, ADMIN_PASSWORD};
use crate::{both, both_with};

async fn login_returns_a_token_pair(app: TestApp) {
    let body = app.login("admin", ADMIN_PASSWORD).await;
    let login = &body["data"]["login"];
    assert_eq!(login["tokenType"], "Bearer");
    assert_eq!(login["expiresIn"], 300);
    let access = login["accessToken"].as_str().unwrap();
    assert_ne!(access, login["refreshToken"].as_str().unwrap());

    let me = app
        .ok(
            Some(access),
            "{ me { id username role createdAt } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["username"], "admin");
    assert_eq!(me["me"]["role"], "ADMIN");
    assert!(me["me"]["createdAt"].as_str().unwrap().ends_with('Z'));
}

async fn wrong_password_and_unknown_user_answer_alike(app: TestApp) {
    let wrong = app.login("admin", "not-the-password").await;
    let unknown = app.login("nobody", "not-the-password").await;
    assert_eq!(code(&wrong), "UNAUTHENTICATED");
    assert_eq!(code(&unknown), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert!(wrong["data"].is_null());

    let admin = app.admin().await;
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: LOGIN_FAILED) { totalCount nodes { actor ip detail } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 2);
    let detail = log["auditLog"]["nodes"][0]["detail"].as_str().unwrap();
    assert!(
        !detail.contains("not-the-password"),
        "password leaked into audit: {detail}"
    );
    assert_eq!(log["auditLog"]["nodes"][0]["ip"], "127.0.0.1");
}

async fn refresh_issues_a_new_pair_and_tokens_keep_their_type(app: TestApp) {
    let body = app.login("admin", ADMIN_PASSWORD).await;
    let access = body["data"]["login"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = body["data"]["login"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();

    let renewed = app
        .ok(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken refreshToken } }",
            json!({ "t": refresh }),
        )
        .await;
    let new_access = renewed["refreshToken"]["accessToken"].as_str().unwrap();
    app.ok(Some(new_access), "{ me { username } }", json!({}))
        .await;

    // A refresh token is no access token, and the other way round.
    let me = app
        .gql(Some(&refresh), "{ me { username } }", json!({}))
        .await;
    assert_eq!(code(&me), "UNAUTHENTICATED");
    let wrong = app
        .gql(
            None,
            "mutation($t: String!) { refreshToken(refreshToken: $t) { accessToken } }",
            json!({ "t": access }),
        )
        .await;
    assert_eq!(code(&wrong), "UNAUTHENTICATED");
}

async fn bad_tokens_are_unauthenticated(app: TestApp) {
    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0."] {
        let body = app
            .gql(Some(token), "{ alerts { totalCount } }", json!({}))
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{token}");
    }
    let body = app.gql(None, "{ me { username } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    // A bad token does not stop a login in the same request.
    let body = app.gql(Some("garbage"), &format!("mutation {{ login(username: \"admin\", password: \"{ADMIN_PASSWORD}\") {{ tokenType }} }}"), json!({})).await;
    assert_eq!(body["data"]["login"]["tokenType"], "Bearer");
}

async fn roles_are_checked_on_each_field(app: TestApp) {
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let sensor = app.user_with_role("cam", "SENSOR").await;

    for q in ["{ users { totalCount } }", "{ auditLog { totalCount } }"] {
        assert_eq!(
            code(&app.gql(Some(&analyst), q, json!({})).await),
            "FORBIDDEN",
            "{q}"
        );
    }
    for q in [
        "{ alerts { totalCount } }",
        "{ events { totalCount } }",
        "{ alert(id: \"1\") { id } }",
        "{ alertStats { total } }",
    ] {
        assert_eq!(
            code(&app.gql(Some(&sensor), q, json!({})).await),
            "FORBIDDEN",
            "{q}"
        );
        app.ok(Some(&analyst), q, json!({})).await;
    }
    // The sensor may ingest; a forbidden field next to an allowed one fails alone.
    app.ingest(&sensor, "LOW", "CCTV-Lobby").await;
    let mixed = app
        .gql(
            Some(&analyst),
            "{ me { username } users { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(mixed["data"]["me"]["username"], "ana");
    assert_eq!(code(&mixed), "FORBIDDEN");
    assert_eq!(mixed["errors"][0]["path"][0], "users");
}

/// Accounts brought over from the Django system keep their passwords: its
/// hashes are verified, and replaced by bcrypt on the first login.
async fn django_password_hashes_upgrade_on_login(app: TestApp) {
    use base64::Engine;
    app.user_with_role("legacy", "ANALYST").await;
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"old-django-pass", b"Zq3xSalt", 20_000, &mut out);
    let hash = format!(
        "pbkdf2_sha256$20000$Zq3xSalt${}",
        base64::engine::general_purpose::STANDARD.encode(out)
    );
    app.exec_sql(&format!(
        "UPDATE users SET password_hash = '{hash}' WHERE username = 'legacy'"
    ))
    .await;
    assert_eq!(
        code(&app.login("legacy", "wrong-password").await),
        "UNAUTHENTICATED"
    );
    let token = app.token("legacy", "old-django-pass").await;
    app.ok(Some(&token), "{ me { username } }", json!({})).await;
    let now = app
        .text_sql("SELECT password_hash AS value FROM users WHERE username = 'legacy'")
        .await;
    assert!(now.starts_with("$2"), "rehashed with bcrypt: {now}");
    app.token("legacy", "old-django-pass").await;
}

/// A stored hash whose own parameters ask for more than the caps is never
/// run, even with the right password: it counts as a wrong one. (Each of
/// these is within what the checks allowed before the caps.)
async fn stored_hashes_beyond_the_caps_are_not_run(app: TestApp) {
    use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
    use base64::Engine;
    app.user_with_role("legacy", "ANALYST").await;
    let password = "old-django-pass";
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), b"Zq3xSalt", 2_000_001, &mut out);
    let pbkdf2 = format!(
        "pbkdf2_sha256$2000001$Zq3xSalt${}",
        base64::engine::general_purpose::STANDARD.encode(out)
    );
    // Little memory, so the test stays quick; eleven passes, one too many.
    let params = Params::new(64, 11, 1, Some(32)).unwrap();
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(password.as_bytes(), b"0HtXsxBbtRzuDOfG")
        .unwrap();
    for hash in [pbkdf2, format!("argon2{phc}")] {
        app.exec_sql(&format!(
            "UPDATE users SET password_hash = '{hash}' WHERE username = 'legacy'"
        ))
        .await;
        let body = app.login("legacy", password).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{hash}: {body}");
        assert_eq!(
            body["errors"][0]["message"], "invalid username or password",
            "{body}"
        );
    }
}

/// A token that was checked once and then presented again is not trusted
/// past its expiry (plus the 5 s leeway for clock skew between instances):
/// remembering verified tokens must not remember them for ever.
async fn access_tokens_expire_although_checked_before(app: TestApp) {
    let token = app.admin().await;
    for _ in 0..3 {
        app.ok(Some(&token), "{ me { username } }", json!({})).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(7_200)).await;
    let body = app
        .gql(Some(&token), "{ me { username } }", json!({}))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(body["errors"][0]["message"], "token has expired", "{body}");
}

both_with!(
    access_tokens_expire_although_checked_before =>
        |s: &mut threatwatch::config::Settings| s.access_ttl = std::time::Duration::from_secs(1),
);

both!(
    django_password_hashes_upgrade_on_login,
    stored_hashes_beyond_the_caps_are_not_run,
    login_returns_a_token_pair,
    wrong_password_and_unknown_user_answer_alike,
    refresh_issues_a_new_pair_and_tokens_keep_their_type,
    bad_tokens_are_unauthenticated,
    roles_are_checked_on_each_field,
);

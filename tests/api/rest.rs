//! The REST paths kept for the Django system's sensors and scripts, with
//! their old request and response shapes (SimpleJWT, DRF).

use serde_json::{json, Value};

use crate::helpers::{TestApp, ADMIN_PASSWORD};
use crate::{both, both_with};

async fn post_json(app: &TestApp, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.client.post(app.url(path)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn rest_token(app: &TestApp, user: &str, password: &str) -> (String, String) {
    let (status, body) = post_json(
        app,
        "/api/v1/auth/login/",
        None,
        json!({ "username": user, "password": password }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["access"].as_str().unwrap().into(),
        body["refresh"].as_str().unwrap().into(),
    )
}

async fn login_and_refresh(app: TestApp) {
    let (access, refresh) = rest_token(&app, "admin", ADMIN_PASSWORD).await;
    // The access token works on GraphQL too: one system.
    app.ok(Some(&access), "{ me { username } }", json!({}))
        .await;
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/refresh/",
        None,
        json!({ "refresh": refresh }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body["access"].is_string() && body["refresh"].is_string());
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/refresh/",
        None,
        json!({ "refresh": "junk" }),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "token_not_valid");
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/login/",
        None,
        json!({ "username": "admin", "password": "wrong" }),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["detail"],
        "No active account found with the given credentials"
    );
    let (status, body) = post_json(
        &app,
        "/api/v1/auth/login/",
        None,
        json!({ "username": "admin" }),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body, json!({ "password": ["This field is required."] }));
}

async fn ingest_as_json_and_forms(app: TestApp) {
    let sensor = app.user_with_role("cam", "SENSOR").await;
    let (status, body) = post_json(
        &app,
        "/api/v1/event/ingest/",
        Some(&sensor),
        json!({ "source": "Firewall-1", "event_type": "Intrusion", "severity": "HIGH", "description": "port scan" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"], "Firewall-1");
    assert_eq!(body["event_type"], "Intrusion");
    assert!(body["id"].is_number() && body["timestamp"].is_string());

    let r = app
        .client
        .post(app.url("/api/v1/event/ingest/"))
        .bearer_auth(&sensor)
        .form(&[
            ("source", "CCTV-Lobby"),
            ("event_type", "Motion"),
            ("severity", "low"),
            ("description", "after hours"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let form = reqwest::multipart::Form::new()
        .text("source", "Server-1")
        .text("event_type", "Malware")
        .text("severity", "CRITICAL")
        .text("description", "trojan");
    let r = app
        .client
        .post(app.url("/api/v1/event/ingest/"))
        .bearer_auth(&sensor)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // DRF's error shapes, and nothing stored.
    let (status, body) = post_json(
        &app,
        "/api/v1/event/ingest/",
        Some(&sensor),
        json!({ "source": "S", "event_type": "X", "severity": "SEVERE", "description": "d" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["severity"][0]
        .as_str()
        .unwrap()
        .contains("not a valid choice"));
    let (status, body) = post_json(
        &app,
        "/api/v1/event/ingest/",
        Some(&sensor),
        json!({ "source": "", "event_type": "X", "severity": "HIGH", "description": "d" }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["source"].is_array(), "{body}");
    let (status, body) = post_json(&app, "/api/v1/event/ingest/", None, json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(
        body["detail"],
        "Authentication credentials were not provided."
    );

    let admin = app.admin().await;
    let d = app
        .ok(
            Some(&admin),
            "{ events { totalCount } alerts { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(d["events"]["totalCount"], 3);
    assert_eq!(d["alerts"]["totalCount"], 2);
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_CREATED) { totalCount nodes { actor } } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 2);
    assert_eq!(log["auditLog"]["nodes"][0]["actor"], "cam");
}

async fn alerts_in_drf_pages_and_patch(app: TestApp) {
    let admin = app.admin().await;
    let inputs: Vec<_> = (0..23)
        .map(|i| json!({ "source": format!("S{i}"), "eventType": "X", "severity": if i % 3 == 0 { "CRITICAL" } else { "HIGH" }, "description": "d" }))
        .collect();
    app.ok(
        Some(&admin),
        "mutation($i: [IngestEventInput!]!) { ingestEvents(inputs: $i) { event { id } } }",
        json!({ "i": inputs }),
    )
    .await;
    let (access, _) = rest_token(&app, "admin", ADMIN_PASSWORD).await;
    let get = |path: String| {
        let req = app.client.get(app.url(&path)).bearer_auth(&access);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, page1) = get("/api/v1/alerts/".into()).await;
    assert_eq!(status, 200);
    assert_eq!(page1["count"], 23);
    assert_eq!(page1["results"].as_array().unwrap().len(), 10);
    assert!(page1["previous"].is_null());
    assert!(page1["next"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/alerts/?page=2"));
    // Oldest first, as the old view listed them without `ordering`.
    assert_eq!(page1["results"][0]["event"]["source"], "S0");
    let (_, page3) = get("/api/v1/alerts/?page=3".into()).await;
    assert_eq!(page3["results"].as_array().unwrap().len(), 3);
    assert!(page3["next"].is_null());
    let (_, oldest) = get("/api/v1/alerts/?ordering=created_at".into()).await;
    assert_eq!(oldest["results"][0]["event"]["source"], "S0");
    let (_, newest) = get("/api/v1/alerts/?ordering=-created_at".into()).await;
    assert_eq!(newest["results"][0]["event"]["source"], "S22");
    assert!(newest["next"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/alerts/?ordering=-created_at&page=2"));
    let (_, critical) = get("/api/v1/alerts/?event__severity=CRITICAL&status=OPEN".into()).await;
    assert_eq!(critical["count"], 8);
    assert_eq!(get("/api/v1/alerts/?page=9".into()).await.0, 404);
    assert_eq!(get("/api/v1/alerts/?status=BOGUS".into()).await.0, 400);

    let id = page1["results"][0]["id"].as_i64().unwrap();
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/alerts/{id}/")))
        .bearer_auth(&access)
        .json(&json!({ "status": "RESOLVED" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "RESOLVED");
    let analyst = app.user_with_role("ana", "ANALYST").await;
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/alerts/{id}/")))
        .bearer_auth(&analyst)
        .json(&json!({ "status": "OPEN" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .client
        .patch(app.url("/api/v1/alerts/999999/"))
        .bearer_auth(&access)
        .json(&json!({ "status": "RESOLVED" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // PUT, as DRF's UpdateAPIView takes it, here with a form body.
    let other = page1["results"][1]["id"].as_i64().unwrap();
    let r = app
        .client
        .put(app.url(&format!("/api/v1/alerts/{other}/")))
        .bearer_auth(&access)
        .form(&[("status", "ACKNOWLEDGED")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "ACKNOWLEDGED");
    // The old PATCH reopened resolved alerts; here alerts only move forward.
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/alerts/{id}/")))
        .bearer_auth(&access)
        .json(&json!({ "status": "OPEN" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({ "status": ["an alert that is RESOLVED cannot move back to OPEN"] })
    );
    let log = app
        .ok(
            Some(&admin),
            "{ auditLog(action: ALERT_STATUS_CHANGED) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(log["auditLog"]["totalCount"], 2);
}

async fn throttled_like_drf(app: TestApp) {
    for _ in 0..3 {
        post_json(
            &app,
            "/api/v1/auth/login/",
            None,
            json!({ "username": "x", "password": "y" }),
        )
        .await;
    }
    let r = app
        .client
        .post(app.url("/api/v1/auth/login/"))
        .json(&json!({ "username": "x", "password": "y" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert!(r.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .starts_with("Request was throttled"));
}

async fn can_be_switched_off(app: TestApp) {
    let r = app
        .client
        .post(app.url("/api/v1/auth/login/"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

both!(
    login_and_refresh,
    ingest_as_json_and_forms,
    alerts_in_drf_pages_and_patch
);
both_with!(
    throttled_like_drf => |s| s.rate_anon = threatwatch::config::Quota::parse("X", "3/min").unwrap(),
    can_be_switched_off => |s| s.rest_compat = false,
);

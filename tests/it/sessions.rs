//! `/api/v1/users/me/sessions` and `/api/v1/users/{id}/sessions`.

use crate::common::{tokens_of, TestApp, PASSWORD};
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

async fn login_from(app: &TestApp, email: &str, agent: &str) -> crate::common::Tokens {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, agent)
        .body(axum::body::Body::from(
            json!({ "email": email, "password": PASSWORD }).to_string(),
        ))
        .expect("request");
    let response = app.send(request).await;
    response.assert_status(StatusCode::OK);
    tokens_of(&response)
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|s| s["id"].as_i64().expect("id"))
        .collect()
}

async fn users_list_their_live_sessions_newest_first(app: TestApp) {
    app.register("devices@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let laptop = login_from(&app, "devices@example.com", "Laptop/1.0").await;
    let phone = login_from(&app, "devices@example.com", "Phone/2.0").await;
    let ended = login_from(&app, "devices@example.com", "Old/0.1").await;
    app.post("/api/v1/auth/logout", json!({}), Some(&ended.access))
        .await
        .assert_status(StatusCode::OK);

    let list = app
        .get("/api/v1/users/me/sessions", Some(&phone.access))
        .await;
    list.assert_status(StatusCode::OK);
    let sessions = list.body.as_array().expect("array");
    assert_eq!(sessions.len(), 2, "{}", list.text);
    assert_eq!(sessions[0]["user_agent"], "Phone/2.0");
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(sessions[1]["user_agent"], "Laptop/1.0");
    assert_eq!(sessions[1]["current"], false);
    assert_eq!(sessions[0]["ip"], "203.0.113.7");
    for session in sessions {
        let keys: Vec<&String> = session.as_object().expect("object").keys().collect();
        assert_eq!(keys.len(), 7, "{keys:?}");
        assert!(!session.to_string().contains("hash"));
    }
    let from_laptop = app
        .get("/api/v1/users/me/sessions", Some(&laptop.access))
        .await;
    assert_eq!(from_laptop.body[1]["current"], true);
}

async fn refreshing_updates_last_used_at(app: TestApp) {
    let (_, tokens) = app.user("lastused@example.com").await;
    let before = app
        .get("/api/v1/users/me/sessions", Some(&tokens.access))
        .await
        .body[0]["last_used_at"]
        .clone();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // Plain requests do not touch it...
    app.get("/api/v1/users/me", Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
    let unchanged = app
        .get("/api/v1/users/me/sessions", Some(&tokens.access))
        .await
        .body[0]["last_used_at"]
        .clone();
    assert_eq!(before, unchanged);
    // ...a refresh does.
    let next = tokens_of(
        app.refresh(&tokens.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    let after = app
        .get("/api/v1/users/me/sessions", Some(&next.access))
        .await
        .body[0]["last_used_at"]
        .clone();
    let parse = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("time")).expect("rfc3339")
    };
    assert!(parse(&after) > parse(&before), "{before} -> {after}");
}

async fn ending_one_session_stops_its_tokens_at_once(app: TestApp) {
    app.register("end@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let here = login_from(&app, "end@example.com", "Here").await;
    let there = login_from(&app, "end@example.com", "There").await;
    let list = app
        .get("/api/v1/users/me/sessions", Some(&here.access))
        .await;
    let there_id = list
        .body
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["user_agent"] == "There")
        .expect("there")["id"]
        .as_i64()
        .expect("id");
    let response = app
        .delete(
            &format!("/api/v1/users/me/sessions/{there_id}"),
            Some(&here.access),
        )
        .await;
    response.assert_status(StatusCode::NO_CONTENT);
    assert!(response.text.is_empty());
    app.assert_session_over(&there).await;
    app.get("/api/v1/users/me", Some(&here.access))
        .await
        .assert_status(StatusCode::OK);
    // Ending it again, or an unknown id: 404.
    app.delete(
        &format!("/api/v1/users/me/sessions/{there_id}"),
        Some(&here.access),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "Session not found");
    app.delete("/api/v1/users/me/sessions/999999", Some(&here.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "Session not found");
    for bad in ["0", "-1", "abc"] {
        app.delete(
            &format!("/api/v1/users/me/sessions/{bad}"),
            Some(&here.access),
        )
        .await
        .assert_validation(&["path", "session_id"]);
    }
}

async fn another_users_session_is_not_found(app: TestApp) {
    let (_, mallory) = app.user("mallory@example.com").await;
    let (_, alice) = app.user("alice@example.com").await;
    let alice_sessions = app
        .get("/api/v1/users/me/sessions", Some(&alice.access))
        .await;
    let alice_session = ids(&alice_sessions.body)[0];
    app.delete(
        &format!("/api/v1/users/me/sessions/{alice_session}"),
        Some(&mallory.access),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "Session not found");
    app.get("/api/v1/users/me", Some(&alice.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn ending_all_other_sessions_keeps_the_current_one(app: TestApp) {
    app.register("many@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let keep = login_from(&app, "many@example.com", "Keep").await;
    let others = [
        login_from(&app, "many@example.com", "A").await,
        login_from(&app, "many@example.com", "B").await,
    ];
    app.delete("/api/v1/users/me/sessions", Some(&keep.access))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    for other in &others {
        app.get("/api/v1/users/me", Some(&other.access))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    let left = app
        .get("/api/v1/users/me/sessions", Some(&keep.access))
        .await;
    assert_eq!(left.body.as_array().map(Vec::len), Some(1));
    assert_eq!(left.body[0]["current"], true);
}

async fn admins_see_and_end_a_users_sessions(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, user) = app.user("watched@example.com").await;
    let second = app.login("watched@example.com", PASSWORD).await;
    let list = app
        .get(&format!("/api/v1/users/{id}/sessions"), Some(&admin.access))
        .await;
    list.assert_status(StatusCode::OK);
    assert_eq!(ids(&list.body).len(), 2);
    assert!(list
        .body
        .as_array()
        .expect("array")
        .iter()
        .all(|s| s["current"] == false));
    app.get(&format!("/api/v1/users/{id}/sessions"), Some(&user.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    app.delete(&format!("/api/v1/users/{id}/sessions"), Some(&user.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    app.delete(&format!("/api/v1/users/{id}/sessions"), Some(&admin.access))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    for tokens in [&user, &second] {
        app.get("/api/v1/users/me", Some(&tokens.access))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        app.refresh(&tokens.refresh)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    let after = app
        .get(&format!("/api/v1/users/{id}/sessions"), Some(&admin.access))
        .await;
    assert_eq!(after.body, json!([]));
    app.get("/api/v1/users/424242/sessions", Some(&admin.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "User not found");
    app.delete("/api/v1/users/424242/sessions", Some(&admin.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "User not found");
    app.get("/api/v1/users/me/sessions", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
}

both_backends!(
    users_list_their_live_sessions_newest_first,
    refreshing_updates_last_used_at,
    ending_one_session_stops_its_tokens_at_once,
    another_users_session_is_not_found,
    ending_all_other_sessions_keeps_the_current_one,
    admins_see_and_end_a_users_sessions,
);

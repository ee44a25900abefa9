//! `/api/v1/users/me/sessions` and `/api/v1/users/{id}/sessions`.

use crate::common::{tokens_of, Backend, TestApp, PASSWORD};
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

fn expires_at(list: &Value) -> chrono::DateTime<chrono::Utc> {
    list[0]["expires_at"]
        .as_str()
        .expect("expires_at")
        .parse()
        .expect("RFC 3339")
}

#[track_caller]
fn assert_close(actual: chrono::DateTime<chrono::Utc>, expected: chrono::DateTime<chrono::Utc>) {
    let off = (actual - expected).num_seconds().abs();
    assert!(off <= 5, "{actual} is {off} s away from {expected}");
}

/// Moves every time of every session `seconds` into the past.
async fn sessions_age(app: &TestApp, seconds: i64) {
    for column in ["created_at", "last_used_at", "expires_at", "max_expires_at"] {
        app.shift_time("sessions", column, -seconds, "TRUE").await;
    }
}

const DAY: i64 = 86_400;

async fn a_session_ends_after_the_idle_timeout(backend: Backend) {
    let app = TestApp::start(
        backend,
        &[("SESSION_IDLE_DAYS", "2"), ("SESSION_MAX_DAYS", "30")],
    )
    .await;
    let (_, tokens) = app.user("idle@example.com").await;
    let list = app
        .get("/api/v1/users/me/sessions", Some(&tokens.access))
        .await;
    assert_close(
        expires_at(&list.body),
        chrono::Utc::now() + chrono::Duration::days(2),
    );
    // Two days and a second without a refresh.
    sessions_age(&app, 2 * DAY + 1).await;
    app.assert_session_over(&tokens).await;
}

async fn refreshing_extends_a_session_up_to_its_absolute_end(backend: Backend) {
    let app = TestApp::start(
        backend,
        &[("SESSION_IDLE_DAYS", "2"), ("SESSION_MAX_DAYS", "3")],
    )
    .await;
    let (_, tokens) = app.user("capped@example.com").await;
    // A day and a half later (half a day of idle time left), refresh.
    sessions_age(&app, 3 * DAY / 2).await;
    let tokens = tokens_of(
        app.refresh(&tokens.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    let list = app
        .get("/api/v1/users/me/sessions", Some(&tokens.access))
        .await;
    // Not now + 2 days: the absolute end, 3 days after sign-in.
    let end = chrono::Utc::now() + chrono::Duration::seconds(3 * DAY / 2);
    assert_close(expires_at(&list.body), end);
    // A day later: refreshed a day ago, well within the idle timeout, and
    // still refreshable, but the end does not move.
    sessions_age(&app, DAY).await;
    let tokens = tokens_of(
        app.refresh(&tokens.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    let list = app
        .get("/api/v1/users/me/sessions", Some(&tokens.access))
        .await;
    assert_close(expires_at(&list.body), end - chrono::Duration::days(1));
    // Past the absolute end the session is over, although it was just refreshed.
    sessions_age(&app, DAY / 2 + 1).await;
    app.assert_session_over(&tokens).await;
}

async fn the_server_purges_what_has_expired_by_itself(backend: Backend) {
    use leptos_auth::{config::Config, startup::Application};
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("purge.db").display()),
        Backend::Postgres => crate::common::pg::fresh_database().await,
    };
    let mut vars = crate::common::test_settings(&url, dir.path());
    vars.insert("MAINTENANCE_INTERVAL_SECONDS".into(), "1".into());
    vars.insert("AUDIT_RETENTION_DAYS".into(), "1".into());
    vars.insert("LEPTOS_SITE_ADDR".into(), "127.0.0.1:0".into());
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let server = Application::build(config).await.expect("build");
    let state = server.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    // Rows that have outlived their use, next to rows that have not.
    let repos = &state.services.repositories;
    let now = chrono::Utc::now();
    let user = state
        .services
        .users
        .create_admin("keeper@example.com", PASSWORD.to_owned().into())
        .await
        .expect("user");
    let old = now - chrono::Duration::days(40);
    for (hash, opened) in [("expired", old), ("live", now)] {
        repos
            .sessions
            .create(leptos_auth::repositories::NewSession {
                user_id: user.id,
                refresh_token_hash: hash,
                now: opened,
                expires_at: opened + chrono::Duration::days(7),
                max_expires_at: opened + chrono::Duration::days(30),
                user_agent: None,
                ip: None,
            })
            .await
            .expect("session");
    }
    use leptos_auth::repositories::ThrottleKind;
    repos
        .throttle
        .record(
            ThrottleKind::Login,
            Some("k"),
            None,
            now - chrono::Duration::hours(3),
        )
        .await
        .expect("record");
    repos
        .throttle
        .record(ThrottleKind::Login, Some("k"), None, now)
        .await
        .expect("record");
    let event = |at| leptos_auth::repositories::NewAuditEvent {
        at,
        event_type: leptos_auth::domain::AuditEventType::Logout,
        actor_user_id: None,
        subject_user_id: Some(user.id),
        ip: None,
        user_agent: None,
        details: json!({}),
    };
    repos
        .audit
        .append(&[event(now - chrono::Duration::days(2)), event(now)])
        .await
        .expect("append");
    let audit_total = || async {
        state.services.audit_log.flush().await;
        repos
            .audit
            .list(&Default::default(), 0, 100)
            .await
            .expect("list")
            .1
    };
    // One operator event (the admin's creation) plus the fresh one remain.
    let mut waited = 0;
    loop {
        let sessions = repos
            .sessions
            .list_live(user.id, now - chrono::Duration::days(100))
            .await
            .expect("list");
        let throttle = repos
            .throttle
            .count_for_account(ThrottleKind::Login, "k", now - chrono::Duration::days(1))
            .await
            .expect("count")
            .count;
        let audit = audit_total().await;
        if sessions.len() == 1 && throttle == 1 && audit == 2 {
            break;
        }
        waited += 1;
        assert!(
            waited < 100,
            "not purged after 10 s: sessions {}, throttle {throttle}, audit {audit}",
            sessions.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = stop.send(());
    running.await.expect("join").expect("clean shutdown");
}

both_backends!(
    users_list_their_live_sessions_newest_first,
    refreshing_updates_last_used_at,
    ending_one_session_stops_its_tokens_at_once,
    another_users_session_is_not_found,
    ending_all_other_sessions_keeps_the_current_one,
    admins_see_and_end_a_users_sessions,
);

each_backend!(
    a_session_ends_after_the_idle_timeout,
    refreshing_extends_a_session_up_to_its_absolute_end,
    the_server_purges_what_has_expired_by_itself,
);

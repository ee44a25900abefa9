//! The per-instance authentication cache: every way a session can end or a
//! user can change takes effect on the very next request to the instance
//! that made the change, although the session was being served from memory;
//! a change made behind the instance's back (plain SQL) shows within a
//! second. Cross-instance propagation is in `cluster.rs`.

use crate::common::{TestApp, Tokens, OTHER_PASSWORD, PASSWORD};
use http::StatusCode;
use leptos_auth::repositories::cache::AuthCache;
use serde_json::json;
use std::time::{Duration, Instant};

fn cache_of(app: &TestApp) -> AuthCache {
    app.state
        .services
        .repositories
        .auth_cache
        .clone()
        .expect("the authentication cache is on by default")
}

/// Uses the session (alone) and checks it is now served from memory.
async fn warm(app: &TestApp, tokens: &Tokens) {
    let cache = cache_of(app);
    cache.forget_all();
    for _ in 0..3 {
        app.get("/api/v1/users/me", Some(&tokens.access))
            .await
            .assert_status(StatusCode::OK);
    }
    assert_eq!(cache.len(), 1, "the session should now be cached");
}

async fn refused_now(app: &TestApp, tokens: &Tokens) {
    app.get("/api/v1/users/me", Some(&tokens.access))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn revocations_on_this_instance_apply_to_cached_sessions_at_once(app: TestApp) {
    let (_, admin) = app.admin("chief@example.com").await;

    // Sign-out.
    let (_, tokens) = app.user("leaver@example.com").await;
    warm(&app, &tokens).await;
    app.post("/api/v1/auth/logout", json!({}), Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
    refused_now(&app, &tokens).await;

    // Ending one's other sessions.
    let (_, first) = app.user("juggler@example.com").await;
    let second = app.login("juggler@example.com", PASSWORD).await;
    warm(&app, &first).await;
    app.delete("/api/v1/users/me/sessions", Some(&second.access))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    refused_now(&app, &first).await;

    // A password change signs the user out everywhere else.
    let (_, first) = app.user("rotator@example.com").await;
    let second = app.login("rotator@example.com", PASSWORD).await;
    warm(&app, &first).await;
    app.patch(
        "/api/v1/users/me",
        json!({ "password": OTHER_PASSWORD, "current_password": PASSWORD }),
        Some(&second.access),
    )
    .await
    .assert_status(StatusCode::OK);
    refused_now(&app, &first).await;

    // An admin ends all of a user's sessions.
    let (id, tokens) = app.user("watched@example.com").await;
    warm(&app, &tokens).await;
    app.delete(&format!("/api/v1/users/{id}/sessions"), Some(&admin.access))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    refused_now(&app, &tokens).await;

    // Deactivation.
    let (id, tokens) = app.user("suspended@example.com").await;
    warm(&app, &tokens).await;
    app.deactivate(&admin, id).await;
    refused_now(&app, &tokens).await;

    // Deletion.
    let (id, tokens) = app.user("gone@example.com").await;
    warm(&app, &tokens).await;
    app.delete(&format!("/api/v1/users/{id}"), Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    refused_now(&app, &tokens).await;

    // A refresh token presented twice ends its session (reuse detection).
    let (_, tokens) = app.user("replayed@example.com").await;
    warm(&app, &tokens).await;
    app.refresh(&tokens.refresh)
        .await
        .assert_status(StatusCode::OK);
    app.refresh(&tokens.refresh)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    refused_now(&app, &tokens).await;
}

async fn changes_to_a_user_show_at_once_on_cached_sessions(app: TestApp) {
    let (_, admin) = app.admin("chief@example.com").await;
    let (id, tokens) = app.user("climber@example.com").await;
    warm(&app, &tokens).await;
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "role": "admin", "email": "climbed@example.com" }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    let me = app.get("/api/v1/users/me", Some(&tokens.access)).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["email"], "climbed@example.com");
    // The new power works at once too.
    app.get("/api/v1/users", Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn a_change_behind_the_instances_back_shows_within_a_second(app: TestApp) {
    let (id, tokens) = app.user("bystander@example.com").await;
    warm(&app, &tokens).await;
    let revoked = app
        .exec_unannounced(&format!(
            "UPDATE sessions SET revoked_at = created_at WHERE user_id = {id}"
        ))
        .await;
    assert_eq!(revoked, 1);
    let start = Instant::now();
    loop {
        let status = app
            .get("/api/v1/users/me", Some(&tokens.access))
            .await
            .status;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepted {:?} after the database revoked it",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

both_backends!(
    revocations_on_this_instance_apply_to_cached_sessions_at_once,
    changes_to_a_user_show_at_once_on_cached_sessions,
    a_change_behind_the_instances_back_shows_within_a_second,
);

async fn the_cache_can_be_turned_off(backend: crate::common::Backend) {
    let app = TestApp::start(backend, &[("AUTH_CACHE_SECONDS", "0")]).await;
    assert!(app.state.services.repositories.auth_cache.is_none());
    let (id, tokens) = app.user("plain@example.com").await;
    app.get("/api/v1/users/me", Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
    app.exec_unannounced(&format!(
        "UPDATE sessions SET revoked_at = created_at WHERE user_id = {id}"
    ))
    .await;
    refused_now(&app, &tokens).await;
}

each_backend!(the_cache_can_be_turned_off);

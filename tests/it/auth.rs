//! `/api/v1/auth/*`: login, refresh (rotation, reuse), logout.

use crate::common::{tokens_of, Backend, TestApp, OTHER_PASSWORD, PASSWORD};
use axum::http::StatusCode;
use serde_json::json;

async fn login_with_json_email_returns_a_bearer_token_pair(app: TestApp) {
    app.user("alice@example.com").await;
    let response = app.login_response("alice@example.com", PASSWORD).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.body["token_type"], "bearer");
    assert_eq!(response.body["expires_in"], 900);
    assert!(response.body["access_token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    assert!(response.body["refresh_token"]
        .as_str()
        .is_some_and(|t| t.len() >= 22));
    assert_eq!(response.headers["cache-control"], "no-store");
    let me = app
        .get("/api/v1/users/me", response.body["access_token"].as_str())
        .await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["email"], "alice@example.com");
}

async fn login_accepts_the_oauth2_password_form_and_json_username(app: TestApp) {
    app.user("form@example.com").await;
    let form = format!(
        "username={}&password={}",
        "FORM%40example.com",
        PASSWORD.replace(' ', "+")
    );
    let response = app
        .post_raw(
            "/api/v1/auth/login",
            Some("application/x-www-form-urlencoded"),
            form,
        )
        .await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.body["token_type"], "bearer");

    let json_username = app
        .post(
            "/api/v1/auth/login",
            json!({ "username": "form@example.com", "password": PASSWORD }),
            None,
        )
        .await;
    json_username.assert_status(StatusCode::OK);
}

async fn unknown_email_and_wrong_password_get_the_same_answer(app: TestApp) {
    app.user("bob@example.com").await;
    let wrong = app
        .login_response("bob@example.com", "not the right password")
        .await;
    let unknown = app.login_response("nobody@example.com", PASSWORD).await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
    unknown.assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
    assert_eq!(wrong.text, unknown.text);
    assert_eq!(
        wrong.headers.get("www-authenticate"),
        unknown.headers.get("www-authenticate")
    );
    // Not even a malformed email or an over-long password gets another answer.
    app.login_response("not-an-email", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
    app.login_response("bob@example.com", &"x".repeat(10_000))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
}

async fn login_email_is_case_insensitive_but_the_password_is_exact(app: TestApp) {
    app.user("carol@example.com").await;
    app.login_response("  CAROL@Example.com ", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    app.login_response("carol@example.com", &format!(" {PASSWORD}"))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login_response("carol@example.com", &PASSWORD.to_uppercase())
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn a_deactivated_user_with_the_right_password_is_told_inactive(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, _) = app.user("dave@example.com").await;
    app.deactivate(&admin, id).await;
    app.login_response("dave@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Inactive user");
    // A wrong password on an inactive account reveals nothing.
    app.login_response("dave@example.com", OTHER_PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
}

async fn login_without_fields_is_a_422(app: TestApp) {
    app.post(
        "/api/v1/auth/login",
        json!({ "email": "a@example.com" }),
        None,
    )
    .await
    .assert_validation(&["body", "password"]);
    app.post("/api/v1/auth/login", json!({ "password": PASSWORD }), None)
        .await
        .assert_validation(&["body", "email"]);
    app.post_raw(
        "/api/v1/auth/login",
        Some("application/x-www-form-urlencoded"),
        "password=x",
    )
    .await
    .assert_validation(&["body", "username"]);
    app.post_raw(
        "/api/v1/auth/login",
        Some("application/json"),
        "{\"email\": ",
    )
    .await
    .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    app.post_raw("/api/v1/auth/login", Some("text/plain"), "hello")
        .await
        .assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

async fn each_login_opens_its_own_session(app: TestApp) {
    app.user("multi@example.com").await;
    let laptop = app.login("multi@example.com", PASSWORD).await;
    let phone = app.login("multi@example.com", PASSWORD).await;
    app.post("/api/v1/auth/logout", json!({}), Some(&laptop.access))
        .await
        .assert_status(StatusCode::OK);
    // The phone's session is untouched.
    app.get("/api/v1/users/me", Some(&phone.access))
        .await
        .assert_status(StatusCode::OK);
    app.refresh(&phone.refresh)
        .await
        .assert_status(StatusCode::OK);
    app.refresh(&laptop.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
}

async fn refresh_rotates_the_pair(app: TestApp) {
    let (_, first) = app.user("rot@example.com").await;
    let response = app.refresh(&first.refresh).await;
    response.assert_status(StatusCode::OK);
    assert_eq!(response.headers["cache-control"], "no-store");
    let second = tokens_of(&response);
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    app.get("/api/v1/users/me", Some(&second.access))
        .await
        .assert_status(StatusCode::OK);
    let third = tokens_of(
        app.refresh(&second.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    app.get("/api/v1/users/me", Some(&third.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn reusing_a_rotated_refresh_token_revokes_the_whole_session(app: TestApp) {
    let (_, first) = app.user("reuse@example.com").await;
    let second = tokens_of(
        app.refresh(&first.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    // The old token again: reuse.
    app.refresh(&first.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
    // The newest refresh token and the access tokens of the session are dead too.
    app.refresh(&second.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
    app.get("/api/v1/users/me", Some(&second.access))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
    app.get("/api/v1/users/me", Some(&first.access))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    // Another session of the same user is unaffected.
    let other = app.login("reuse@example.com", PASSWORD).await;
    app.get("/api/v1/users/me", Some(&other.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn concurrent_refreshes_of_one_token_have_exactly_one_winner(app: TestApp) {
    let (_, tokens) = app.user("race@example.com").await;
    let bodies = vec![json!({ "refresh_token": tokens.refresh }); 10];
    let statuses = app.post_concurrently("/api/v1/auth/refresh", bodies).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
}

/// An instance with the shipped refresh reuse grace (10 s).
async fn with_grace(backend: Backend) -> TestApp {
    TestApp::start(backend, &[("REFRESH_REUSE_GRACE_SECONDS", "10")]).await
}

async fn racing_refreshes_within_the_grace_all_succeed_with_one_successor(backend: Backend) {
    let app = with_grace(backend).await;
    let (_, admin) = app.admin("grace-admin@example.com").await;
    let (user, first) = app.user("grace@example.com").await;
    let bodies = vec![json!({ "refresh_token": first.refresh }); 10];
    let responses = app
        .post_concurrently_responses("/api/v1/auth/refresh", bodies)
        .await;
    for response in &responses {
        response.assert_status(StatusCode::OK);
    }
    let pairs: Vec<_> = responses.iter().map(tokens_of).collect();
    // Every racer holds the session's one current refresh token.
    assert!(
        pairs.iter().all(|p| p.refresh == pairs[0].refresh),
        "one successor for all"
    );
    assert_ne!(pairs[0].refresh, first.refresh);
    for pair in &pairs {
        app.get("/api/v1/users/me", Some(&pair.access))
            .await
            .assert_status(StatusCode::OK);
    }
    assert_eq!(
        app.count(
            "sessions",
            &format!("user_id = {user} AND revoked_at IS NULL")
        )
        .await,
        1,
        "no session added or revoked"
    );
    let query = format!("user_id={user}");
    let kinds: Vec<String> = app
        .audit_events(&admin, &query)
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "refresh_reuse_within_grace")
            .count(),
        9,
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k == "refresh_reuse_detected"));
    // The chain goes on from the successor.
    let next = tokens_of(
        app.refresh(&pairs[0].refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    app.get("/api/v1/users/me", Some(&next.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn a_token_reused_after_the_grace_revokes_the_session(backend: Backend) {
    let app = with_grace(backend).await;
    let (user, first) = app.user("late@example.com").await;
    let second = tokens_of(
        app.refresh(&first.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    // Within the grace, the old token answers the same successor.
    let again = tokens_of(
        app.refresh(&first.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    assert_eq!(again.refresh, second.refresh);
    // Eleven seconds later (the rotation moved back in time), it is reuse.
    app.shift_time("sessions", "rotated_at", -11, &format!("user_id = {user}"))
        .await;
    app.refresh(&first.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
    app.assert_session_over(&second).await;
    app.get("/api/v1/users/me", Some(&again.access))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn the_grace_never_revives_a_signed_out_session(backend: Backend) {
    let app = with_grace(backend).await;
    let (_, first) = app.user("out@example.com").await;
    let second = tokens_of(
        app.refresh(&first.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    app.post("/api/v1/auth/logout", json!({}), Some(&second.access))
        .await
        .assert_status(StatusCode::OK);
    app.refresh(&first.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
    app.refresh(&second.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
}

async fn refresh_refuses_garbage_and_access_tokens(app: TestApp) {
    let (_, tokens) = app.user("types@example.com").await;
    app.refresh(&tokens.access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid token type");
    for garbage in [
        "",
        "garbage",
        &"a".repeat(10_000),
        "a.b.c",
        &"b.".repeat(4_000),
        "'; DROP TABLE sessions; --",
    ] {
        app.refresh(garbage)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
    }
    app.post("/api/v1/auth/refresh", json!({}), None)
        .await
        .assert_validation(&["body", "refresh_token"]);
    app.post("/api/v1/auth/refresh", json!({ "refresh_token": 42 }), None)
        .await
        .assert_validation(&["body", "refresh_token"]);
    // A refresh token is not a bearer token.
    app.get("/api/v1/users/me", Some(&tokens.refresh))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
}

async fn logout_revokes_the_session_and_its_refresh_token(app: TestApp) {
    let (_, tokens) = app.user("bye@example.com").await;
    app.post("/api/v1/auth/logout", json!({}), Some(&tokens.access))
        .await
        .assert_error(StatusCode::OK, "Successfully logged out");
    app.post("/api/v1/auth/logout", json!({}), Some(&tokens.access))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Token already invalidated");
    app.get("/api/v1/users/me", Some(&tokens.access))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
    app.refresh(&tokens.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
}

async fn logout_needs_a_valid_bearer_token(app: TestApp) {
    app.post("/api/v1/auth/logout", json!({}), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
    app.post("/api/v1/auth/logout", json!({}), Some("not.a.token"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
}

async fn login_upgrades_a_hash_made_with_old_parameters(app: TestApp) {
    use leptos_auth::{config::Argon2Settings, crypto::PasswordHasher};
    let (id, _) = app.user("legacy@example.com").await;
    // Store a hash made with weaker parameters, as an older deployment would have.
    let old = PasswordHasher::new(&Argon2Settings {
        memory_kib: 512,
        iterations: 1,
        parallelism: 1,
        max_concurrent: 1,
    })
    .expect("hasher");
    let legacy_hash = old.hash(PASSWORD.to_owned().into()).await.expect("hash");
    let users = &app.state.services.repositories.users;
    users
        .set_password_hash(id, &legacy_hash, chrono::Utc::now())
        .await
        .expect("store");
    app.login("legacy@example.com", PASSWORD).await;
    let stored = users
        .find_by_id(id)
        .await
        .expect("query")
        .expect("user")
        .password_hash;
    assert!(
        stored.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
        "{stored}"
    );
    app.login("legacy@example.com", PASSWORD).await;
}

both_backends!(
    login_with_json_email_returns_a_bearer_token_pair,
    login_accepts_the_oauth2_password_form_and_json_username,
    unknown_email_and_wrong_password_get_the_same_answer,
    login_email_is_case_insensitive_but_the_password_is_exact,
    a_deactivated_user_with_the_right_password_is_told_inactive,
    login_without_fields_is_a_422,
    each_login_opens_its_own_session,
    refresh_rotates_the_pair,
    reusing_a_rotated_refresh_token_revokes_the_whole_session,
    concurrent_refreshes_of_one_token_have_exactly_one_winner,
    refresh_refuses_garbage_and_access_tokens,
    logout_revokes_the_session_and_its_refresh_token,
    logout_needs_a_valid_bearer_token,
    login_upgrades_a_hash_made_with_old_parameters,
);

each_backend!(
    racing_refreshes_within_the_grace_all_succeed_with_one_successor,
    a_token_reused_after_the_grace_revokes_the_session,
    the_grace_never_revives_a_signed_out_session,
);

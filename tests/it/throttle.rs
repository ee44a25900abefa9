//! Brute-force throttling through the API: thresholds, `Retry-After`,
//! backoff, reset on success, per-address limits, and which address counts.

use crate::common::{Backend, TestApp, TestResponse, PASSWORD, PEER_IP};
use axum::http::{header, Method, Request, StatusCode};
use serde_json::json;

/// Only the per-account sign-in limit (5 per 15 minutes), as in production.
async fn account_limited(backend: Backend) -> TestApp {
    TestApp::start(backend, &[("LOGIN_MAX_FAILURES", "5")]).await
}

/// A JSON sign-in, optionally with `X-Forwarded-For`.
async fn login(
    app: &TestApp,
    email: &str,
    password: &str,
    forwarded: Option<&str>,
) -> TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, "ThrottleTest/1.0");
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    let body = json!({ "email": email, "password": password }).to_string();
    app.send(request.body(body.into()).expect("request")).await
}

/// Asserts a 429 with its `Retry-After` in `range`; returns the wait.
#[track_caller]
fn assert_throttled(response: &TestResponse, range: std::ops::RangeInclusive<u64>) -> u64 {
    response.assert_status(StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(range.contains(&wait), "Retry-After {wait} not in {range:?}");
    assert_eq!(
        response.body,
        json!({ "detail": format!("Too many attempts, try again in {wait} seconds") })
    );
    wait
}

async fn fail_logins(app: &TestApp, email: &str, times: usize) {
    for _ in 0..times {
        login(app, email, "wrong password entirely", None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
    }
}

/// Moves every counted failure `seconds` into the past.
async fn time_passes(app: &TestApp, seconds: i64) {
    app.shift_time("throttle_events", "at", -seconds, "TRUE")
        .await;
}

async fn five_failures_delay_the_account_and_cost_no_hashing(backend: Backend) {
    let app = account_limited(backend).await;
    app.register("victim@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    fail_logins(&app, "victim@example.com", 5).await;
    let hashes_before = app.state.services.hasher.operations();
    // Even the right password waits: the account is throttled, not the guess.
    let response = login(&app, "victim@example.com", PASSWORD, None).await;
    assert_throttled(&response, 25..=30);
    assert_eq!(
        app.state.services.hasher.operations(),
        hashes_before,
        "a throttled attempt does no password hashing"
    );
    // An unknown account is throttled the same way: no enumeration.
    fail_logins(&app, "nobody@example.com", 5).await;
    let unknown = login(&app, "nobody@example.com", PASSWORD, None).await;
    assert_throttled(&unknown, 25..=30);
    assert_eq!(
        unknown.headers.get(header::WWW_AUTHENTICATE),
        response.headers.get(header::WWW_AUTHENTICATE)
    );
    // Another account is not affected.
    app.register("bystander@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    login(&app, "bystander@example.com", PASSWORD, None)
        .await
        .assert_status(StatusCode::OK);
}

async fn waits_double_are_capped_and_expire_with_the_window(backend: Backend) {
    let app = account_limited(backend).await;
    app.register("patient@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    fail_logins(&app, "patient@example.com", 5).await;
    assert_throttled(
        &login(&app, "patient@example.com", PASSWORD, None).await,
        25..=30,
    );
    // After the 30 s wait one more guess is allowed; failing it doubles the wait.
    time_passes(&app, 31).await;
    fail_logins(&app, "patient@example.com", 1).await;
    assert_throttled(
        &login(&app, "patient@example.com", PASSWORD, None).await,
        55..=60,
    );
    // Many more failures: the wait is capped at 15 minutes.
    for _ in 0..2 {
        app.exec("INSERT INTO throttle_events (kind, account, ip, at) SELECT kind, account, ip, at FROM throttle_events")
            .await;
    }
    assert_throttled(
        &login(&app, "patient@example.com", PASSWORD, None).await,
        800..=900,
    );
    // Never a permanent lockout: once the failures leave the window, the
    // right password works.
    time_passes(&app, 16 * 60).await;
    login(&app, "patient@example.com", PASSWORD, None)
        .await
        .assert_status(StatusCode::OK);
}

async fn a_successful_login_resets_the_account_counter(backend: Backend) {
    let app = account_limited(backend).await;
    app.register("typo@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    fail_logins(&app, "typo@example.com", 4).await;
    login(&app, "typo@example.com", PASSWORD, None)
        .await
        .assert_status(StatusCode::OK);
    // Without the reset these would be failures 5..8 and the next attempt throttled.
    fail_logins(&app, "typo@example.com", 4).await;
    login(&app, "typo@example.com", PASSWORD, None)
        .await
        .assert_status(StatusCode::OK);
}

async fn one_address_is_limited_across_accounts(backend: Backend) {
    let app = TestApp::start(
        backend,
        &[
            ("LOGIN_IP_MAX_FAILURES_PER_HOUR", "3"),
            ("LOGIN_MAX_FAILURES", "0"),
        ],
    )
    .await;
    app.register("spray@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    for victim in ["a@example.com", "b@example.com", "c@example.com"] {
        fail_logins(&app, victim, 1).await;
    }
    let response = login(&app, "spray@example.com", PASSWORD, None).await;
    assert_throttled(&response, 3590..=3600);
    // The hour slides: once the oldest failure is an hour old, one more try.
    time_passes(&app, 3600).await;
    login(&app, "spray@example.com", PASSWORD, None)
        .await
        .assert_status(StatusCode::OK);
}

async fn registrations_are_limited_per_address_but_not_for_admins(backend: Backend) {
    let app = TestApp::start(backend, &[("REGISTRATION_MAX_PER_IP_PER_HOUR", "2")]).await;
    for email in ["r1@example.com", "r2@example.com"] {
        app.register(email, PASSWORD)
            .await
            .assert_status(StatusCode::CREATED);
    }
    assert_throttled(&app.register("r3@example.com", PASSWORD).await, 3590..=3600);
    // Malformed input is still reported as such (validation comes first).
    app.register("not-an-email", PASSWORD)
        .await
        .assert_validation(&["body", "email"]);
    let (_, admin) = app.admin("boss@example.com").await;
    app.post(
        "/api/v1/users",
        json!({ "email": "r3@example.com", "password": PASSWORD }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

async fn invalid_refresh_tokens_are_limited_per_address(backend: Backend) {
    let app = TestApp::start(backend, &[("REFRESH_IP_MAX_FAILURES_PER_HOUR", "2")]).await;
    let (_, tokens) = app.user("refresher@example.com").await;
    // A valid refresh does not count.
    let tokens = crate::common::tokens_of(
        app.refresh(&tokens.refresh)
            .await
            .assert_status(StatusCode::OK),
    );
    for _ in 0..2 {
        app.refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_throttled(&app.refresh(&tokens.refresh).await, 3590..=3600);
}

async fn a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing(backend: Backend) {
    let app = TestApp::start(backend, &[("LOGIN_IP_MAX_FAILURES_PER_HOUR", "2")]).await;
    app.register("forger@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    // Each failure claims another address; all count against the real peer.
    for (i, email) in ["x@example.com", "y@example.com"].iter().enumerate() {
        login(
            &app,
            email,
            "wrong password entirely",
            Some(&format!("198.51.100.{i}")),
        )
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    }
    let response = login(&app, "forger@example.com", PASSWORD, Some("198.51.100.99")).await;
    assert_throttled(&response, 3590..=3600);
    // And the session records the peer, not the claim.
    let other = TestApp::start(backend, &[]).await;
    other
        .register("claims@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let signed_in = login(&other, "claims@example.com", PASSWORD, Some("198.51.100.7")).await;
    let tokens = crate::common::tokens_of(signed_in.assert_status(StatusCode::OK));
    let sessions = other
        .get("/api/v1/users/me/sessions", Some(&tokens.access))
        .await;
    assert_eq!(sessions.body[0]["ip"], PEER_IP);
}

async fn a_trusted_proxy_forwards_the_client_address(backend: Backend) {
    let app = TestApp::start(
        backend,
        &[
            ("TRUSTED_PROXIES", "203.0.113.0/24, 10.0.0.0/8"),
            ("LOGIN_IP_MAX_FAILURES_PER_HOUR", "2"),
        ],
    )
    .await;
    app.register("behind@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    // client-written junk, the real client, an inner trusted proxy.
    let forwarded = "6.6.6.6, 198.51.100.20, 10.1.2.3";
    let tokens = crate::common::tokens_of(
        login(&app, "behind@example.com", PASSWORD, Some(forwarded))
            .await
            .assert_status(StatusCode::OK),
    );
    let sessions = app
        .get("/api/v1/users/me/sessions", Some(&tokens.access))
        .await;
    assert_eq!(sessions.body[0]["ip"], "198.51.100.20");
    // Per-address limits now apply per forwarded client.
    for _ in 0..2 {
        login(
            &app,
            "someone@example.com",
            "wrong password entirely",
            Some("198.51.100.20"),
        )
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_throttled(
        &login(&app, "behind@example.com", PASSWORD, Some("198.51.100.20")).await,
        3590..=3600,
    );
    login(&app, "behind@example.com", PASSWORD, Some("198.51.100.21"))
        .await
        .assert_status(StatusCode::OK);
}

async fn throttled_sign_ins_are_audited(backend: Backend) {
    let app = account_limited(backend).await;
    let (_, admin) = app.admin("auditor@example.com").await;
    let created = app.register("target@example.com", PASSWORD).await;
    let target = created.body["id"].as_i64().expect("id");
    fail_logins(&app, "target@example.com", 5).await;
    assert_throttled(
        &login(&app, "target@example.com", PASSWORD, None).await,
        1..=30,
    );
    let events = app
        .audit_events(&admin, &format!("type=login_throttled&user_id={target}"))
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["subject_user_id"], target);
    assert_eq!(events[0]["ip"], PEER_IP);
    assert_eq!(events[0]["details"]["scope"], "account");
    assert!(events[0]["details"]["retry_after"].as_u64().is_some());
    let failures = app
        .audit_events(&admin, &format!("type=login_failed&user_id={target}"))
        .await;
    assert_eq!(failures.len(), 5);
    assert_eq!(failures[0]["details"]["reason"], "wrong_password");
}

each_backend!(
    five_failures_delay_the_account_and_cost_no_hashing,
    waits_double_are_capped_and_expire_with_the_window,
    a_successful_login_resets_the_account_counter,
    one_address_is_limited_across_accounts,
    registrations_are_limited_per_address_but_not_for_admins,
    invalid_refresh_tokens_are_limited_per_address,
    a_forged_forwarded_for_from_an_untrusted_peer_changes_nothing,
    a_trusted_proxy_forwards_the_client_address,
    throttled_sign_ins_are_audited,
);

//! Email verification and password reset over real SMTP (an in-process SMTP
//! server, [`SmtpSink`]) and through the development outbox: messages are
//! captured, their links parsed and the flows completed, on both databases.

use crate::common::{
    smtp::{Captured, SmtpSink},
    Backend, TestApp, MAIL_PUBLIC_URL, OTHER_PASSWORD, PASSWORD,
};
use axum::http::{header, StatusCode};
use serde_json::json;

const VERIFY: &str = "/verify-email";
const RESET: &str = "/reset-password";

/// The newest message to `address` with this subject (after a flush).
async fn last_message(app: &TestApp, sink: &SmtpSink, address: &str, subject: &str) -> Captured {
    app.flush_mail().await;
    sink.messages_to(address)
        .into_iter()
        .rev()
        .find(|m| m.header("Subject").as_deref() == Some(subject))
        .unwrap_or_else(|| {
            panic!(
                "no message {subject:?} to {address}; got: {:?}",
                sink.messages()
                    .iter()
                    .map(|m| (m.to.clone(), m.header("Subject")))
                    .collect::<Vec<_>>()
            )
        })
}

async fn verification_token(app: &TestApp, sink: &SmtpSink, address: &str) -> String {
    last_message(app, sink, address, "Confirm your email address")
        .await
        .token(MAIL_PUBLIC_URL, VERIFY)
}

async fn reset_token(app: &TestApp, sink: &SmtpSink, address: &str) -> String {
    last_message(app, sink, address, "Reset your password")
        .await
        .token(MAIL_PUBLIC_URL, RESET)
}

async fn request_reset(app: &TestApp, email: &str) -> crate::common::TestResponse {
    app.post(
        "/api/v1/auth/password-recovery",
        json!({ "email": email }),
        None,
    )
    .await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> crate::common::TestResponse {
    app.post(
        "/api/v1/auth/reset-password",
        json!({ "token": token, "new_password": password }),
        None,
    )
    .await
}

async fn verify(app: &TestApp, token: &str) -> crate::common::TestResponse {
    app.post("/api/v1/auth/verify-email", json!({ "token": token }), None)
        .await
}

async fn email_verified(app: &TestApp, access: &str) -> bool {
    let me = app.get("/api/v1/users/me", Some(access)).await;
    me.assert_status(StatusCode::OK);
    me.body["email_verified"].as_bool().expect("email_verified")
}

const USED: &str = "This link has already been used. Please ask for a new one.";
const REPLACED: &str =
    "This link was replaced by a newer one. Please use the link in the most recent message.";
const EXPIRED: &str = "This link has expired. Please ask for a new one.";
const UNKNOWN: &str = "This link is not valid. Please ask for a new one.";

async fn sign_up_sends_a_link_that_verifies_the_address(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    let (id, tokens) = app.user("ann@example.com").await;
    assert!(!email_verified(&app, &tokens.access).await);

    let message = last_message(&app, &sink, "ann@example.com", "Confirm your email address").await;
    assert_eq!(message.from, "no-reply@example.com");
    assert!(message
        .html()
        .contains(&format!("{MAIL_PUBLIC_URL}{VERIFY}?token=")));
    let token = message.token(MAIL_PUBLIC_URL, VERIFY);
    assert!(token.len() >= 43, "at least 256 bits: {token}");
    // Only the hash is stored.
    assert_eq!(
        app.count("email_tokens", &format!("token_hash = '{token}'"))
            .await,
        0
    );

    verify(&app, &token)
        .await
        .assert_error(StatusCode::OK, "Email verified");
    assert!(email_verified(&app, &tokens.access).await);
    verify(&app, &token)
        .await
        .assert_error(StatusCode::BAD_REQUEST, USED);
    verify(&app, "not-a-token-we-issued")
        .await
        .assert_error(StatusCode::BAD_REQUEST, UNKNOWN);
    verify(&app, &"x".repeat(5000))
        .await
        .assert_error(StatusCode::BAD_REQUEST, UNKNOWN);

    let (_, admin) = app.admin("root@example.com").await;
    let events = app
        .audit_events(&admin, &format!("type=email_verified&user_id={id}"))
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["email"], "ann@example.com");
}

async fn reset_for_an_unknown_email_answers_the_same(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    app.user("bea@example.com").await;
    app.flush_mail().await;
    let before = sink.messages().len();

    let known = request_reset(&app, "Bea@Example.com").await;
    let unknown = request_reset(&app, "nobody@example.com").await;
    known.assert_status(StatusCode::ACCEPTED);
    unknown.assert_status(StatusCode::ACCEPTED);
    assert_eq!(known.body, unknown.body);
    assert_eq!(
        known.body["detail"],
        "If an account with this email exists, a link to reset its password has been sent"
    );
    app.flush_mail().await;
    let sent = &sink.messages()[before..];
    assert_eq!(sent.len(), 1, "one message, to the existing account");
    assert_eq!(sent[0].to, vec!["bea@example.com".to_owned()]);

    // A malformed address is a 422, whatever the accounts.
    request_reset(&app, "not an address")
        .await
        .assert_validation(&["body", "email"]);
}

async fn a_reset_link_sets_the_password_once_and_ends_every_session(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    let (_, laptop) = app.user("cid@example.com").await;
    let phone = app.login("cid@example.com", PASSWORD).await;
    request_reset(&app, "cid@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    let token = reset_token(&app, &sink, "cid@example.com").await;

    // The policy applies, and a refused password leaves the link usable.
    reset(&app, &token, "password")
        .await
        .assert_validation(&["body", "new_password"]);
    let statuses = app
        .post_concurrently(
            "/api/v1/auth/reset-password",
            (0..4)
                .map(|_| json!({ "token": token, "new_password": OTHER_PASSWORD }))
                .collect(),
        )
        .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "the link works exactly once: {statuses:?}"
    );
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST));
    reset(&app, &token, OTHER_PASSWORD)
        .await
        .assert_error(StatusCode::BAD_REQUEST, USED);

    app.assert_session_over(&laptop).await;
    app.assert_session_over(&phone).await;
    app.login_response("cid@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let fresh = app.login("cid@example.com", OTHER_PASSWORD).await;
    // The link proved the address.
    assert!(email_verified(&app, &fresh.access).await);
    let notice = last_message(&app, &sink, "cid@example.com", "Your password was changed").await;
    assert!(notice.text().contains("with a password-reset link"));
}

async fn a_second_reset_request_replaces_the_first_link(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    app.user("dee@example.com").await;
    request_reset(&app, "dee@example.com").await;
    let first = reset_token(&app, &sink, "dee@example.com").await;
    request_reset(&app, "dee@example.com").await;
    let second = reset_token(&app, &sink, "dee@example.com").await;
    assert_ne!(first, second);
    reset(&app, &first, OTHER_PASSWORD)
        .await
        .assert_error(StatusCode::BAD_REQUEST, REPLACED);
    reset(&app, &second, OTHER_PASSWORD)
        .await
        .assert_status(StatusCode::OK);
}

async fn expired_links_fail_with_a_clear_message(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    let (_, tokens) = app.user("eve@example.com").await;
    let verification = verification_token(&app, &sink, "eve@example.com").await;
    request_reset(&app, "eve@example.com").await;
    let reset_link = reset_token(&app, &sink, "eve@example.com").await;

    // A reset link lives 1 hour, a verification link 24 hours.
    app.shift_time(
        "email_tokens",
        "expires_at",
        -3601,
        "purpose = 'reset_password'",
    )
    .await;
    app.shift_time(
        "email_tokens",
        "expires_at",
        -23 * 3600,
        "purpose = 'verify_email'",
    )
    .await;
    reset(&app, &reset_link, OTHER_PASSWORD)
        .await
        .assert_error(StatusCode::BAD_REQUEST, EXPIRED);
    // 23 of its 24 hours have passed: still valid.
    verify(&app, &verification)
        .await
        .assert_status(StatusCode::OK);
    assert!(email_verified(&app, &tokens.access).await);

    // Expired links are purged a week after they expire.
    app.shift_time("email_tokens", "expires_at", -8 * 24 * 3600, "TRUE")
        .await;
    let report = app
        .state
        .services
        .maintenance
        .purge(chrono::Utc::now())
        .await
        .expect("purge");
    assert_eq!(report.email_tokens, 2);
    reset(&app, &reset_link, OTHER_PASSWORD)
        .await
        .assert_error(StatusCode::BAD_REQUEST, UNKNOWN);
}

async fn required_verification_blocks_then_allows_sign_in(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[("REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    app.register("fay@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    app.login_response("fay@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::FORBIDDEN, "Email not verified");
    // A wrong password says nothing about verification.
    app.login_response("fay@example.com", OTHER_PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");

    // A new link on request, without a session; the same answer for anyone.
    let asked = app
        .post(
            "/api/v1/auth/resend-verification",
            json!({ "email": "fay@example.com" }),
            None,
        )
        .await;
    asked.assert_status(StatusCode::ACCEPTED);
    let nobody = app
        .post(
            "/api/v1/auth/resend-verification",
            json!({ "email": "nobody@example.com" }),
            None,
        )
        .await;
    assert_eq!(asked.body, nobody.body);
    app.flush_mail().await;
    let links = sink.messages_to("fay@example.com");
    assert_eq!(links.len(), 2, "sign-up and the resend");
    // Messages are delivered concurrently, so the inbox order may differ
    // from the order the links were made in: the newer link confirms, the
    // replaced one is refused as replaced, whichever is opened first.
    let mut answers = Vec::new();
    for link in &links {
        answers.push(verify(&app, &link.token(MAIL_PUBLIC_URL, VERIFY)).await);
    }
    answers.sort_by_key(|answer| answer.status);
    answers[0].assert_status(StatusCode::OK);
    answers[1].assert_error(StatusCode::BAD_REQUEST, REPLACED);
    let tokens = app.login("fay@example.com", PASSWORD).await;
    assert!(email_verified(&app, &tokens.access).await);

    let (_, admin) = app.admin("root@example.com").await;
    let failures = app
        .audit_events(&admin, "type=login_failed")
        .await
        .into_iter()
        .filter(|e| e["details"]["reason"] == "email_not_verified")
        .count();
    assert_eq!(failures, 1);
}

async fn changing_the_email_needs_a_new_verification(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    let (_, tokens) = app.user("gus@example.com").await;
    let first = verification_token(&app, &sink, "gus@example.com").await;
    verify(&app, &first).await.assert_status(StatusCode::OK);
    assert!(email_verified(&app, &tokens.access).await);

    app.patch(
        "/api/v1/users/me",
        json!({ "email": "gus@new.example.com", "current_password": PASSWORD }),
        Some(&tokens.access),
    )
    .await
    .assert_status(StatusCode::OK);
    assert!(!email_verified(&app, &tokens.access).await);
    let notice = last_message(
        &app,
        &sink,
        "gus@example.com",
        "Your email address was changed",
    )
    .await;
    assert!(notice.text().contains("gus@new.example.com"));
    let token = verification_token(&app, &sink, "gus@new.example.com").await;
    verify(&app, &token).await.assert_status(StatusCode::OK);
    assert!(email_verified(&app, &tokens.access).await);

    // Saving the same address again changes nothing.
    app.patch(
        "/api/v1/users/me",
        json!({ "email": "gus@new.example.com", "current_password": PASSWORD }),
        Some(&tokens.access),
    )
    .await
    .assert_status(StatusCode::OK);
    assert!(email_verified(&app, &tokens.access).await);

    // An admin changing it has the same effect.
    let (_, admin) = app.admin("root@example.com").await;
    let me = app.get("/api/v1/users/me", Some(&tokens.access)).await;
    let id = me.body["id"].as_i64().expect("id");
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "email": "gus@third.example.com" }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    assert!(!email_verified(&app, &tokens.access).await);
    verification_token(&app, &sink, "gus@third.example.com").await;
    last_message(
        &app,
        &sink,
        "gus@new.example.com",
        "Your email address was changed",
    )
    .await;
}

async fn a_link_to_an_old_address_verifies_nothing(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    let (id, tokens) = app.user("hal@example.com").await;
    let old_link = verification_token(&app, &sink, "hal@example.com").await;
    // The address changes behind the link's back (as a direct write would).
    app.exec(&format!(
        "UPDATE users SET email = 'hal@moved.example.com' WHERE id = {id}"
    ))
    .await;
    verify(&app, &old_link)
        .await
        .assert_error(StatusCode::BAD_REQUEST, REPLACED);
    assert!(!email_verified(&app, &tokens.access).await);
}

async fn mail_requests_are_throttled_per_account_and_per_address(backend: Backend) {
    let (app, sink) = TestApp::with_mail(
        backend,
        &[
            ("EMAIL_REQUEST_INTERVAL_SECONDS", "60"),
            ("EMAIL_REQUESTS_PER_IP_PER_HOUR", "3"),
        ],
    )
    .await;
    app.user("ida@example.com").await;
    app.flush_mail().await;
    let before = sink.messages().len();
    // Per account: the second request within a minute sends nothing, and
    // answers exactly like the first.
    let first = request_reset(&app, "ida@example.com").await;
    let second = request_reset(&app, "ida@example.com").await;
    first.assert_status(StatusCode::ACCEPTED);
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    app.flush_mail().await;
    assert_eq!(sink.messages().len() - before, 1);

    // Per address: the fourth request in an hour is refused, for any account.
    request_reset(&app, "nobody@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    let refused = request_reset(&app, "someone@example.com").await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((3500..=3600).contains(&wait), "Retry-After {wait}");

    // A minute later the account may get a message again.
    app.shift_time("throttle_events", "at", -61, "ip IS NULL")
        .await;
    app.exec("DELETE FROM throttle_events WHERE account IS NULL")
        .await;
    request_reset(&app, "ida@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    app.flush_mail().await;
    assert_eq!(sink.messages().len() - before, 2);
}

async fn verification_can_be_resent_by_the_user_and_by_an_admin(backend: Backend) {
    let (app, sink) =
        TestApp::with_mail(backend, &[("EMAIL_REQUEST_INTERVAL_SECONDS", "60")]).await;
    let (id, tokens) = app.user("jon@example.com").await;
    let (_, regular) = app.user("kim@example.com").await;
    let (_, admin) = app.admin("root@example.com").await;
    app.flush_mail().await;
    let sent = || sink.messages_to("jon@example.com").len();
    assert_eq!(sent(), 1);

    app.post(
        "/api/v1/users/me/resend-verification",
        json!({}),
        Some(&tokens.access),
    )
    .await
    .assert_error(StatusCode::ACCEPTED, "Verification email sent");
    app.post(
        "/api/v1/users/me/resend-verification",
        json!({}),
        Some(&tokens.access),
    )
    .await
    .assert_status(StatusCode::TOO_MANY_REQUESTS);
    app.post("/api/v1/users/me/resend-verification", json!({}), None)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.flush_mail().await;
    assert_eq!(sent(), 2);

    let uri = format!("/api/v1/users/{id}/resend-verification");
    app.post(&uri, json!({}), Some(&regular.access))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    app.post(
        "/api/v1/users/999999/resend-verification",
        json!({}),
        Some(&admin.access),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "User not found");
    app.shift_time("throttle_events", "at", -61, "TRUE").await;
    app.post(&uri, json!({}), Some(&admin.access))
        .await
        .assert_status(StatusCode::ACCEPTED);
    let token = verification_token(&app, &sink, "jon@example.com").await;
    assert_eq!(sent(), 3);
    verify(&app, &token).await.assert_status(StatusCode::OK);
    app.post(&uri, json!({}), Some(&admin.access))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "Email already verified");
    app.post(
        "/api/v1/users/me/resend-verification",
        json!({}),
        Some(&tokens.access),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "Email already verified");
}

async fn smtp_failures_are_retried_and_never_fail_the_request(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    // The first attempt is refused for now (451): the message is sent on retry.
    sink.refuse_temporarily(1);
    app.register("lee@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let token = verification_token(&app, &sink, "lee@example.com").await;
    assert_eq!(sink.attempts(), 2);
    verify(&app, &token).await.assert_status(StatusCode::OK);

    // A permanent refusal (550) is not retried.
    sink.refuse_permanently(1);
    request_reset(&app, "lee@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
    app.flush_mail().await;
    assert_eq!(sink.attempts(), 3);
    assert_eq!(sink.messages_to("lee@example.com").len(), 1);
}

async fn an_unreachable_mail_server_never_fails_a_request(backend: Backend) {
    // Nothing listens on this port.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::start(
        backend,
        &[
            ("SMTP_URL", url.as_str()),
            ("MAIL_FROM", "no-reply@example.com"),
            ("PUBLIC_URL", MAIL_PUBLIC_URL),
        ],
    )
    .await;
    app.register("max@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    request_reset(&app, "max@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
}

async fn without_smtp_messages_go_to_the_outbox(backend: Backend) {
    let app = TestApp::start(backend, &[]).await;
    app.register("ned@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    app.flush_mail().await;
    let outbox = app.dir.path().join("outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .expect("outbox folder")
        .map(|entry| entry.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let message = Captured {
        from: String::new(),
        to: vec![],
        data: std::fs::read_to_string(&files[0])
            .expect("eml")
            .replace("\r\n", "\n"),
    };
    assert_eq!(message.header("To").as_deref(), Some("ned@example.com"));
    // PUBLIC_URL defaults to the listen address in development.
    let token = message.token("http://localhost:3000", VERIFY);
    verify(&app, &token).await.assert_status(StatusCode::OK);
}

each_backend!(
    sign_up_sends_a_link_that_verifies_the_address,
    reset_for_an_unknown_email_answers_the_same,
    a_reset_link_sets_the_password_once_and_ends_every_session,
    a_second_reset_request_replaces_the_first_link,
    expired_links_fail_with_a_clear_message,
    required_verification_blocks_then_allows_sign_in,
    changing_the_email_needs_a_new_verification,
    a_link_to_an_old_address_verifies_nothing,
    mail_requests_are_throttled_per_account_and_per_address,
    verification_can_be_resent_by_the_user_and_by_an_admin,
    smtp_failures_are_retried_and_never_fail_the_request,
    an_unreachable_mail_server_never_fails_a_request,
    without_smtp_messages_go_to_the_outbox,
);

//! Two-factor authentication through the API, on both backends: enrolment,
//! sign-in with a TOTP code or a recovery code, replay and skew, throttling,
//! the `mfa_token`, step-up confirmation, the admin reset and
//! `REQUIRE_2FA_FOR_ADMINS`. Codes are computed here, from the secret the API
//! hands out, with an RFC 6238 implementation of the test's own (HMAC-SHA1
//! from the `hmac` and `sha1` crates), never by the code under test.

use crate::common::{base32_decode, now_step, totp, Backend, TestApp, Tokens, PASSWORD};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// An enrolled user: their tokens, TOTP secret, and recovery codes.
struct Enrolled {
    id: i64,
    tokens: Tokens,
    secret: Vec<u8>,
    recovery_codes: Vec<String>,
    /// The step of the code that confirmed the enrolment (used up).
    confirmed_step: u64,
}

async fn enrol(app: &TestApp, email: &str) -> Enrolled {
    let (id, tokens) = app.user(email).await;
    enrol_user(app, id, tokens).await
}

async fn enrol_user(app: &TestApp, id: i64, tokens: Tokens) -> Enrolled {
    let started = app
        .post("/api/v1/users/me/mfa/totp", json!({}), Some(&tokens.access))
        .await;
    started.assert_status(StatusCode::OK);
    let secret = base32_decode(started.body["secret"].as_str().expect("secret"));
    assert_eq!(secret.len(), 20, "a 160-bit secret");
    let step = now_step();
    let confirmed = app
        .post(
            "/api/v1/users/me/mfa/totp/confirm",
            json!({ "code": totp(&secret, step) }),
            Some(&tokens.access),
        )
        .await;
    confirmed.assert_status(StatusCode::OK);
    let recovery_codes = confirmed.body["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    Enrolled {
        id,
        tokens,
        secret,
        recovery_codes,
        confirmed_step: step,
    }
}

/// The `mfa_token` of a right password for an enrolled account.
async fn password_step(app: &TestApp, email: &str) -> String {
    let response = app.login_response(email, PASSWORD).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.body["detail"], "Two-factor code required");
    response.body["mfa_token"]
        .as_str()
        .expect("mfa_token")
        .to_owned()
}

async fn second_step(app: &TestApp, mfa_token: &str, code: &str) -> crate::common::TestResponse {
    app.post(
        "/api/v1/auth/mfa",
        json!({ "mfa_token": mfa_token, "code": code }),
        None,
    )
    .await
}

/// Makes the session's last authentication `minutes` old.
async fn age_authentication(app: &TestApp, minutes: i64) {
    app.shift_time("sessions", "authenticated_at", -minutes * 60, "TRUE")
        .await;
}

async fn enrolment_needs_a_current_code_and_issues_single_use_recovery_codes(app: TestApp) {
    let (_, tokens) = app.user("enrol@example.com").await;
    let status = app.get("/api/v1/users/me/mfa", Some(&tokens.access)).await;
    status.assert_status(StatusCode::OK);
    assert_eq!(
        status.body,
        json!({ "enabled": false, "pending": false, "methods": [], "recovery_codes_left": 0 })
    );

    let started = app
        .post("/api/v1/users/me/mfa/totp", json!({}), Some(&tokens.access))
        .await;
    started.assert_status(StatusCode::OK);
    assert_eq!(started.headers["cache-control"], "no-store");
    let secret_text = started.body["secret"].as_str().expect("secret").to_owned();
    let uri = started.body["otpauth_uri"].as_str().expect("uri");
    assert!(
        uri.starts_with("otpauth://totp/leptos-auth:enrol%40example.com?"),
        "{uri}"
    );
    assert!(uri.contains(&format!("secret={secret_text}")), "{uri}");
    assert!(uri.contains("issuer=leptos-auth"), "{uri}");
    let svg = started.body["qr_svg"].as_str().expect("svg");
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"), "{svg}");
    let secret = base32_decode(&secret_text);

    // Pending: sign-in does not ask for a code yet.
    let status = app.get("/api/v1/users/me/mfa", Some(&tokens.access)).await;
    assert_eq!(status.body["pending"], true);
    assert_eq!(status.body["enabled"], false);
    app.login("enrol@example.com", PASSWORD).await;

    // A wrong code does not turn it on.
    let step = now_step();
    let wrong = format!(
        "{:06}",
        (totp(&secret, step).parse::<u32>().expect("digits") + 1) % 1_000_000
    );
    let refused = app
        .post(
            "/api/v1/users/me/mfa/totp/confirm",
            json!({ "code": wrong }),
            Some(&tokens.access),
        )
        .await;
    refused.assert_validation(&["body", "code"]);
    let confirmed = app
        .post(
            "/api/v1/users/me/mfa/totp/confirm",
            json!({ "code": totp(&secret, step) }),
            Some(&tokens.access),
        )
        .await;
    confirmed.assert_status(StatusCode::OK);
    assert_eq!(confirmed.headers["cache-control"], "no-store");
    let codes: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    for code in &codes {
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 4, "{code}");
        assert!(groups.iter().all(|g| g.len() == 4), "{code}");
    }

    let status = app.get("/api/v1/users/me/mfa", Some(&tokens.access)).await;
    assert_eq!(
        status.body,
        json!({ "enabled": true, "pending": false, "methods": ["totp", "recovery_code"], "recovery_codes_left": 10 })
    );
    let me = app.get("/api/v1/users/me", Some(&tokens.access)).await;
    assert_eq!(me.body["mfa_enabled"], true);
    // Once on, it cannot be started again, nor confirmed twice.
    app.post("/api/v1/users/me/mfa/totp", json!({}), Some(&tokens.access))
        .await
        .assert_error(
            StatusCode::CONFLICT,
            "Two-factor authentication is already on",
        );
    app.post(
        "/api/v1/users/me/mfa/totp/confirm",
        json!({ "code": totp(&secret, step + 1) }),
        Some(&tokens.access),
    )
    .await
    .assert_error(
        StatusCode::CONFLICT,
        "No two-factor setup in progress: start again",
    );

    // Regenerating replaces every old code.
    let renewed = app
        .post(
            "/api/v1/users/me/mfa/recovery-codes",
            json!({}),
            Some(&tokens.access),
        )
        .await;
    renewed.assert_status(StatusCode::OK);
    let new_codes = renewed.body["recovery_codes"].as_array().expect("codes");
    assert_eq!(new_codes.len(), 10);
    let token = password_step(&app, "enrol@example.com").await;
    second_step(&app, &token, &codes[0])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
    second_step(&app, &token, new_codes[0].as_str().expect("code"))
        .await
        .assert_status(StatusCode::OK);
}

async fn the_secret_and_the_codes_are_not_readable_from_the_database(app: TestApp) {
    let user = enrol(&app, "sealed@example.com").await;
    let rows: Vec<(Vec<u8>,)> = match &app.pool {
        leptos_auth::db::Pool::Sqlite(pool) => {
            sqlx::query_as("SELECT secret_sealed FROM totp_secrets")
                .fetch_all(pool)
                .await
        }
        leptos_auth::db::Pool::Postgres(pool) => {
            sqlx::query_as("SELECT secret_sealed FROM totp_secrets")
                .fetch_all(pool)
                .await
        }
    }
    .expect("read");
    assert_eq!(rows.len(), 1);
    let sealed = &rows[0].0;
    let base32: String = {
        // What the app showed, as text.
        let mut text = String::new();
        for chunk in user.secret.chunks(5) {
            let mut buffer = [0u8; 5];
            buffer[..chunk.len()].copy_from_slice(chunk);
            let bits = u64::from_be_bytes([
                0, 0, 0, buffer[0], buffer[1], buffer[2], buffer[3], buffer[4],
            ]);
            for i in (0..8).rev() {
                text.push(
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[((bits >> (i * 5)) & 31) as usize] as char,
                );
            }
        }
        text
    };
    assert!(sealed.len() > user.secret.len() + 16, "nonce and tag");
    assert!(!sealed
        .windows(user.secret.len())
        .any(|w| w == user.secret.as_slice()));
    assert!(!sealed.windows(8).any(|w| w == &base32.as_bytes()[..8]));
    // Recovery codes: only hashes.
    assert_eq!(app.count("recovery_codes", "TRUE").await, 10);
    for code in &user.recovery_codes {
        let bare = code.replace('-', "");
        assert_eq!(
            app.count(
                "recovery_codes",
                &format!("code_hash = '{code}' OR code_hash = '{bare}'")
            )
            .await,
            0
        );
    }
}

async fn sign_in_takes_a_totp_code_or_a_recovery_code_each_once(app: TestApp) {
    let user = enrol(&app, "second@example.com").await;
    let (_, admin) = app.admin("admin@example.com").await;

    // The password step gives no tokens, only the second step's token.
    let response = app.login_response("second@example.com", PASSWORD).await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(response.body["methods"], json!(["totp", "recovery_code"]));
    assert!(response.body.get("access_token").is_none());
    assert_eq!(response.headers["cache-control"], "no-store");
    let token = response.body["mfa_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // The code of the confirmation's step was used: refused (a replay).
    let step = user.confirmed_step;
    second_step(&app, &token, &totp(&user.secret, step))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
    // The next step's code is within the allowed skew: signed in.
    let signed_in = second_step(&app, &token, &totp(&user.secret, step + 1)).await;
    signed_in.assert_status(StatusCode::OK);
    let access = signed_in.body["access_token"].as_str().expect("access");
    app.get("/api/v1/users/me", Some(access))
        .await
        .assert_status(StatusCode::OK);
    // The mfa_token is used up, and the same code is refused again.
    second_step(&app, &token, &totp(&user.secret, step + 1))
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "Two-factor sign-in expired or invalid: sign in again",
        );
    let token = password_step(&app, "second@example.com").await;
    second_step(&app, &token, &totp(&user.secret, step + 1))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");

    // A recovery code, typed loosely (upper case, spaces), works once.
    let loose = user.recovery_codes[3].to_uppercase().replace('-', " ");
    second_step(&app, &token, &loose)
        .await
        .assert_status(StatusCode::OK);
    let token = password_step(&app, "second@example.com").await;
    second_step(&app, &token, &user.recovery_codes[3])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
    let status = app
        .get("/api/v1/users/me/mfa", Some(&user.tokens.access))
        .await;
    assert_eq!(status.body["recovery_codes_left"], 9);

    let used = app.audit_events(&admin, "type=recovery_code_used").await;
    assert_eq!(used.len(), 1);
    assert_eq!(used[0]["details"]["left"], 9);
    assert_eq!(used[0]["subject_user_id"], user.id);
    let failed = app.audit_events(&admin, "type=mfa_failed").await;
    let reasons: Vec<&str> = failed
        .iter()
        .map(|e| e["details"]["reason"].as_str().expect("reason"))
        .collect();
    assert_eq!(reasons, ["wrong_code", "reused_code", "reused_code"]);
    let succeeded = app.audit_events(&admin, "type=login_succeeded").await;
    let factors: Vec<&Value> = succeeded
        .iter()
        .filter(|e| e["subject_user_id"] == user.id)
        .map(|e| &e["details"]["second_factor"])
        .collect();
    assert_eq!(factors[..2], [&json!("recovery_code"), &json!("totp")]);
}

async fn a_code_of_one_step_either_side_passes_and_two_steps_do_not(app: TestApp) {
    let user = enrol(&app, "skew@example.com").await;
    for (offset, accepted) in [(-2i64, false), (2, false), (-1, true)] {
        // Forget the last accepted step, so only the window decides.
        app.exec("UPDATE totp_secrets SET last_step = NULL").await;
        let token = password_step(&app, "skew@example.com").await;
        let step = (now_step() as i64 + offset) as u64;
        let response = second_step(&app, &token, &totp(&user.secret, step)).await;
        if accepted {
            response.assert_status(StatusCode::OK);
        } else {
            response.assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
        }
    }
    // After a step was accepted, an earlier one is refused even within the window.
    app.exec("UPDATE totp_secrets SET last_step = NULL").await;
    let token = password_step(&app, "skew@example.com").await;
    second_step(&app, &token, &totp(&user.secret, now_step() + 1))
        .await
        .assert_status(StatusCode::OK);
    let token = password_step(&app, "skew@example.com").await;
    second_step(&app, &token, &totp(&user.secret, now_step()))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
}

async fn one_code_sent_twice_at_once_signs_in_once(app: TestApp) {
    let user = enrol(&app, "race@example.com").await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(password_step(&app, "race@example.com").await);
    }
    let code = totp(&user.secret, user.confirmed_step + 1);
    let bodies = tokens
        .iter()
        .map(|token| json!({ "mfa_token": token, "code": code }))
        .collect();
    let statuses = app.post_concurrently("/api/v1/auth/mfa", bodies).await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(ok, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED));

    // One mfa_token redeemed concurrently with two different right codes
    // (a TOTP code and a recovery code) opens one session.
    let token = password_step(&app, "race@example.com").await;
    let sessions_before = app.count("sessions", "revoked_at IS NULL").await;
    let statuses = app
        .post_concurrently(
            "/api/v1/auth/mfa",
            vec![
                json!({ "mfa_token": token, "code": totp(&user.secret, user.confirmed_step + 2) }),
                json!({ "mfa_token": token, "code": user.recovery_codes[0] }),
            ],
        )
        .await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert!(ok <= 1, "{statuses:?}");
    assert_eq!(
        app.count("sessions", "revoked_at IS NULL").await,
        sessions_before + ok as i64
    );
}

async fn the_mfa_token_expires_and_is_bound_to_its_account(app: TestApp) {
    let user = enrol(&app, "expiry@example.com").await;
    let other = enrol(&app, "other@example.com").await;
    let token = password_step(&app, "expiry@example.com").await;
    // Five minutes later it is gone.
    app.shift_time("mfa_challenges", "expires_at", -301, "TRUE")
        .await;
    second_step(&app, &token, &totp(&user.secret, user.confirmed_step + 1))
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "Two-factor sign-in expired or invalid: sign in again",
        );
    // Made up, or malformed.
    for bogus in ["", "x", &"a".repeat(300)] {
        second_step(&app, bogus, "123456").await.assert_error(
            StatusCode::UNAUTHORIZED,
            "Two-factor sign-in expired or invalid: sign in again",
        );
    }
    // Another account's code does not pass this account's step.
    let token = password_step(&app, "expiry@example.com").await;
    second_step(&app, &token, &totp(&other.secret, other.confirmed_step + 1))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
    second_step(&app, &token, &other.recovery_codes[0])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
    // Stored hashed.
    assert_eq!(
        app.count("mfa_challenges", &format!("token_hash = '{token}'"))
            .await,
        0
    );
    // Malformed bodies are 422, never 500.
    app.post("/api/v1/auth/mfa", json!({ "mfa_token": token }), None)
        .await
        .assert_validation(&["body", "code"]);
}

async fn the_code_can_come_with_the_password_in_one_request(app: TestApp) {
    let user = enrol(&app, "onecall@example.com").await;
    let response = app
        .post(
            "/api/v1/auth/login",
            json!({ "email": "onecall@example.com", "password": PASSWORD, "otp": totp(&user.secret, user.confirmed_step + 1) }),
            None,
        )
        .await;
    response.assert_status(StatusCode::OK);
    assert!(response.body["access_token"].is_string());
    // The OAuth2 password form takes it too.
    let form = format!(
        "username=onecall%40example.com&password={}&otp={}",
        PASSWORD.replace(' ', "+"),
        user.recovery_codes[1]
    );
    let response = app
        .post_raw(
            "/api/v1/auth/login",
            Some("application/x-www-form-urlencoded"),
            form,
        )
        .await;
    response.assert_status(StatusCode::OK);
    // A wrong one is refused outright.
    let response = app
        .post(
            "/api/v1/auth/login",
            json!({ "email": "onecall@example.com", "password": PASSWORD, "otp": "000000" }),
            None,
        )
        .await;
    response.assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
}

async fn a_wrong_password_says_nothing_about_a_second_factor(app: TestApp) {
    enrol(&app, "with@example.com").await;
    app.user("without@example.com").await;
    let with = app
        .login_response("with@example.com", "wrong password here")
        .await;
    let without = app
        .login_response("without@example.com", "wrong password here")
        .await;
    let unknown = app
        .login_response("nobody@example.com", "wrong password here")
        .await;
    for response in [&with, &without, &unknown] {
        response.assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
    }
    assert_eq!(with.text, without.text);
    assert_eq!(with.text, unknown.text);
}

async fn wrong_codes_back_off_like_wrong_passwords(backend: Backend) {
    let app = TestApp::start(
        backend,
        &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_WINDOW_MINUTES", "15")],
    )
    .await;
    let user = enrol(&app, "throttled@example.com").await;
    let (_, admin) = app.admin("admin@example.com").await;
    let token = password_step(&app, "throttled@example.com").await;
    for _ in 0..3 {
        second_step(&app, &token, "000000")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Incorrect two-factor code");
    }
    // The limit is reached: even the right code waits, and says how long.
    let refused = second_step(&app, &token, &totp(&user.secret, user.confirmed_step + 1)).await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("header")
        .parse()
        .expect("seconds");
    assert!((1..=30).contains(&wait), "{wait}");
    // Counted per account in the database: a new password step waits too.
    let token = password_step(&app, "throttled@example.com").await;
    second_step(&app, &token, &user.recovery_codes[0])
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    let failed = app.audit_events(&admin, "type=mfa_failed").await;
    assert!(failed.iter().any(|e| e["details"]["reason"] == "throttled"));
    // Once the wait is over, the right code passes and clears the count.
    app.shift_time("throttle_events", "at", -60, "kind = 'second_factor'")
        .await;
    second_step(&app, &token, &user.recovery_codes[0])
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        app.count("throttle_events", "kind = 'second_factor'").await,
        0
    );
}

async fn sensitive_actions_need_a_recent_authentication(app: TestApp) {
    let user = enrol(&app, "stepup@example.com").await;
    let access = user.tokens.access.clone();
    age_authentication(&app, 11).await;
    let needed = "Recent authentication required";
    app.delete("/api/v1/users/me/mfa/totp", Some(&access))
        .await
        .assert_error(StatusCode::FORBIDDEN, needed);
    app.post(
        "/api/v1/users/me/mfa/recovery-codes",
        json!({}),
        Some(&access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, needed);
    app.patch(
        "/api/v1/users/me",
        json!({ "password": "a brand new passphrase", "current_password": PASSWORD }),
        Some(&access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, needed);
    app.call(
        axum::http::Method::DELETE,
        "/api/v1/users/me",
        Some(json!({ "current_password": PASSWORD })),
        Some(&access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, needed);
    // Reading is not sensitive.
    app.get("/api/v1/users/me/mfa", Some(&access))
        .await
        .assert_status(StatusCode::OK);

    // Confirming: a wrong password or code is refused, neither or both is 422.
    app.post(
        "/api/v1/auth/confirm",
        json!({ "password": "not my password" }),
        Some(&access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Incorrect password");
    app.post(
        "/api/v1/auth/confirm",
        json!({ "code": "000000" }),
        Some(&access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Incorrect code");
    app.post("/api/v1/auth/confirm", json!({}), Some(&access))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    app.post("/api/v1/auth/confirm", json!({ "code": "1" }), None)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.delete("/api/v1/users/me/mfa/totp", Some(&access))
        .await
        .assert_error(StatusCode::FORBIDDEN, needed);
    // A right code confirms the session, and the action goes through.
    app.post(
        "/api/v1/auth/confirm",
        json!({ "code": totp(&user.secret, user.confirmed_step + 1) }),
        Some(&access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.delete("/api/v1/users/me/mfa/totp", Some(&access))
        .await
        .assert_status(StatusCode::OK);
    let status = app.get("/api/v1/users/me/mfa", Some(&access)).await;
    assert_eq!(status.body["enabled"], false);
    app.delete("/api/v1/users/me/mfa/totp", Some(&access))
        .await
        .assert_error(StatusCode::CONFLICT, "Two-factor authentication is not on");
    // Without a second factor, the password confirms.
    age_authentication(&app, 11).await;
    app.post(
        "/api/v1/auth/confirm",
        json!({ "code": "123456" }),
        Some(&access),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "Two-factor authentication is not on");
    app.post(
        "/api/v1/auth/confirm",
        json!({ "password": PASSWORD }),
        Some(&access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.patch(
        "/api/v1/users/me",
        json!({ "password": "a brand new passphrase", "current_password": PASSWORD }),
        Some(&access),
    )
    .await
    .assert_status(StatusCode::OK);
    // Sign-in again: no code asked any more.
    app.login("stepup@example.com", "a brand new passphrase")
        .await;
    let (_, admin) = app.admin("admin@example.com").await;
    let confirmations = app.audit_events(&admin, "type=step_up_confirmed").await;
    let methods: Vec<&Value> = confirmations
        .iter()
        .map(|e| &e["details"]["method"])
        .collect();
    assert_eq!(methods, [&json!("password"), &json!("totp")]);
}

async fn admin_changes_to_other_accounts_need_a_recent_authentication(app: TestApp) {
    let (admin_id, admin) = app.admin("admin@example.com").await;
    let (user_id, _) = app.user("someone@example.com").await;
    let _ = admin_id;
    age_authentication(&app, 11).await;
    let needed = "Recent authentication required";
    let uri = format!("/api/v1/users/{user_id}");
    for body in [
        json!({ "role": "admin" }),
        json!({ "is_active": false }),
        json!({ "password": "another fine passphrase" }),
    ] {
        app.patch(&uri, body, Some(&admin.access))
            .await
            .assert_error(StatusCode::FORBIDDEN, needed);
    }
    app.delete(&uri, Some(&admin.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, needed);
    // Lists and reads stay open.
    app.get(&uri, Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    app.post(
        "/api/v1/auth/confirm",
        json!({ "password": PASSWORD }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.patch(&uri, json!({ "is_active": false }), Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn an_admin_resets_a_lost_second_factor(app: TestApp) {
    let user = enrol(&app, "lost@example.com").await;
    let (_, admin) = app.admin("admin@example.com").await;
    let (_, regular) = app.user("regular@example.com").await;
    let uri = format!("/api/v1/users/{}/mfa", user.id);
    app.delete(&uri, Some(&regular.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    let listed = app
        .get(&format!("/api/v1/users/{}", user.id), Some(&admin.access))
        .await;
    assert_eq!(listed.body["mfa_enabled"], true);
    age_authentication(&app, 11).await;
    app.delete(&uri, Some(&admin.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Recent authentication required");
    app.post(
        "/api/v1/auth/confirm",
        json!({ "password": PASSWORD }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.delete(&uri, Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    app.delete(&uri, Some(&admin.access))
        .await
        .assert_error(StatusCode::CONFLICT, "Two-factor authentication is not on");
    app.delete("/api/v1/users/999999/mfa", Some(&admin.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "User not found");
    app.delete("/api/v1/users/0/mfa", Some(&admin.access))
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    // The user signs in with the password alone; nothing of the factor is left.
    app.login("lost@example.com", PASSWORD).await;
    assert_eq!(app.count("totp_secrets", "TRUE").await, 0);
    assert_eq!(app.count("recovery_codes", "TRUE").await, 0);
    let events = app.audit_events(&admin, "type=mfa_reset_by_admin").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["subject_user_id"], user.id);
    assert!(events[0]["actor_user_id"].is_i64());
}

async fn admins_can_be_required_to_use_a_second_factor(backend: Backend) {
    let app = TestApp::start(backend, &[("REQUIRE_2FA_FOR_ADMINS", "true")]).await;
    let (admin_id, admin) = app.admin("admin@example.com").await;
    let required = "Two-factor authentication required for admins";
    app.get("/api/v1/users", Some(&admin.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, required);
    app.get("/api/v1/audit", Some(&admin.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, required);
    // Their own account still works, enrolment included.
    app.get("/api/v1/users/me", Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    let enrolled = enrol_user(&app, admin_id, admin).await;
    app.get("/api/v1/users", Some(&enrolled.tokens.access))
        .await
        .assert_status(StatusCode::OK);
    // Regular users are not asked.
    let (_, user) = app.user("user@example.com").await;
    app.get("/api/v1/users/me/mfa", Some(&user.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn every_change_to_the_second_factor_is_mailed_to_the_user(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    let user = enrol(&app, "mailed@example.com").await;
    let token = password_step(&app, "mailed@example.com").await;
    second_step(&app, &token, &user.recovery_codes[0])
        .await
        .assert_status(StatusCode::OK);
    app.delete("/api/v1/users/me/mfa/totp", Some(&user.tokens.access))
        .await
        .assert_status(StatusCode::OK);
    let again = enrol_user(&app, user.id, user.tokens.clone()).await;
    let (_, admin) = app.admin("admin@example.com").await;
    app.delete(
        &format!("/api/v1/users/{}/mfa", again.id),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.flush_mail().await;
    let subjects: Vec<String> = sink
        .messages_to("mailed@example.com")
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    for subject in [
        "Two-factor authentication is on",
        "A recovery code was used",
        "Two-factor authentication is off",
        "Two-factor authentication was reset",
    ] {
        assert!(
            subjects.iter().any(|s| s == subject),
            "{subject} in {subjects:?}"
        );
    }
    let used = sink
        .messages_to("mailed@example.com")
        .into_iter()
        .find(|m| m.header("Subject").as_deref() == Some("A recovery code was used"))
        .expect("notice");
    assert!(
        used.text().contains("9 unused recovery codes are left"),
        "{}",
        used.text()
    );
    // No notice carries a code or the secret.
    for message in sink.messages_to("mailed@example.com") {
        for code in &user.recovery_codes {
            assert!(!message.text().contains(code.as_str()));
        }
    }
}

both_backends!(
    enrolment_needs_a_current_code_and_issues_single_use_recovery_codes,
    the_secret_and_the_codes_are_not_readable_from_the_database,
    sign_in_takes_a_totp_code_or_a_recovery_code_each_once,
    a_code_of_one_step_either_side_passes_and_two_steps_do_not,
    one_code_sent_twice_at_once_signs_in_once,
    the_mfa_token_expires_and_is_bound_to_its_account,
    the_code_can_come_with_the_password_in_one_request,
    a_wrong_password_says_nothing_about_a_second_factor,
    sensitive_actions_need_a_recent_authentication,
    admin_changes_to_other_accounts_need_a_recent_authentication,
    an_admin_resets_a_lost_second_factor,
);

each_backend!(
    admins_can_be_required_to_use_a_second_factor,
    every_change_to_the_second_factor_is_mailed_to_the_user,
    wrong_codes_back_off_like_wrong_passwords,
);

//! Passkeys through the API, on both backends, with a real software
//! authenticator (`webauthn-authenticator-rs`, see `common::passkey`):
//! registration, password-free sign-in, the second step of a password
//! sign-in, management, and every refusal the verifier owes: another
//! origin, another RP ID, a replayed assertion, an expired or reused
//! challenge, another user's credential, a counter that goes back, and
//! throttling.

use crate::common::{passkey::SoftDevice, Backend, TestApp, TestResponse, Tokens, PASSWORD};
use axum::http::StatusCode;
use serde_json::{json, Value};

/// `POST /api/v1/users/me/passkeys/register/start` for the signed-in `tokens`.
async fn registration_options(app: &TestApp, tokens: &Tokens) -> TestResponse {
    app.post(
        "/api/v1/users/me/passkeys/register/start",
        json!({}),
        Some(&tokens.access),
    )
    .await
}

/// Adds a passkey named `name` with `device` for the signed-in `tokens`.
async fn add_passkey(app: &TestApp, tokens: &Tokens, device: &mut SoftDevice, name: &str) -> Value {
    let options = registration_options(app, tokens).await;
    options.assert_status(StatusCode::OK);
    assert_eq!(options.headers["cache-control"], "no-store");
    let credential = device.register(&options.body);
    let added = app
        .post(
            "/api/v1/users/me/passkeys/register/finish",
            json!({ "name": name, "credential": credential }),
            Some(&tokens.access),
        )
        .await;
    added.assert_status(StatusCode::CREATED);
    added.body.clone()
}

/// A passwordless sign-in's start: (challenge id, options).
async fn start_sign_in(app: &TestApp) -> (String, Value) {
    let started = app
        .post("/api/v1/auth/passkey/start", json!({}), None)
        .await;
    started.assert_status(StatusCode::OK);
    assert_eq!(started.headers["cache-control"], "no-store");
    let challenge_id = started.body["challenge_id"]
        .as_str()
        .expect("challenge_id")
        .to_owned();
    (challenge_id, started.body["options"].clone())
}

async fn finish_sign_in(app: &TestApp, challenge_id: &str, credential: &Value) -> TestResponse {
    app.post(
        "/api/v1/auth/passkey/finish",
        json!({ "challenge_id": challenge_id, "credential": credential }),
        None,
    )
    .await
}

/// Signs in with `device`, no email given.
async fn sign_in_with(app: &TestApp, device: &mut SoftDevice) -> TestResponse {
    let (challenge_id, options) = start_sign_in(app).await;
    let assertion = device.assert(&options);
    finish_sign_in(app, &challenge_id, &assertion).await
}

/// Makes every session's last authentication `minutes` old.
async fn age_authentication(app: &TestApp, minutes: i64) {
    app.shift_time("sessions", "authenticated_at", -minutes * 60, "TRUE")
        .await;
}

async fn a_passkey_signs_in_without_an_email_and_counts_as_two_factors(app: TestApp) {
    let (_, admin) = app.admin("admin@example.com").await;
    let (id, tokens) = app.user("pk@example.com").await;
    let mut device = SoftDevice::new();
    let added = add_passkey(&app, &tokens, &mut device, "  Laptop ").await;
    assert_eq!(added["name"], "Laptop", "trimmed");
    assert!(added["kind"] == "synced" || added["kind"] == "device_bound");
    assert!(added["last_used_at"].is_null());
    let listed = app
        .get("/api/v1/users/me/passkeys", Some(&tokens.access))
        .await;
    listed.assert_status(StatusCode::OK);
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body[0]["id"], added["id"]);
    // Metadata only: no key, no credential id.
    assert!(listed.body[0].get("credential").is_none());

    // The options name no account; the device answers for the one it holds.
    let (challenge_id, options) = start_sign_in(&app).await;
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    assert!(options.get("mediation").is_none());
    let assertion = device.assert(&options);
    let signed_in = finish_sign_in(&app, &challenge_id, &assertion).await;
    signed_in.assert_status(StatusCode::OK);
    assert_eq!(signed_in.headers["cache-control"], "no-store");
    let access = signed_in.body["access_token"].as_str().expect("access");
    let me = app.get("/api/v1/users/me", Some(access)).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["id"], id);
    // The refresh token works like any other.
    app.refresh(signed_in.body["refresh_token"].as_str().expect("refresh"))
        .await
        .assert_status(StatusCode::OK);

    // Two factors: the new session may take a sensitive action at once,
    // while the password session, aged, may not.
    age_authentication(&app, 11).await;
    let fresh = sign_in_with(&app, &mut device).await;
    fresh.assert_status(StatusCode::OK);
    let fresh_access = fresh.body["access_token"].as_str().expect("access");
    app.post(
        "/api/v1/users/me/passkeys/register/start",
        json!({}),
        Some(&tokens.access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Recent authentication required");
    app.post(
        "/api/v1/users/me/passkeys/register/start",
        json!({}),
        Some(fresh_access),
    )
    .await
    .assert_status(StatusCode::OK);

    let listed = app
        .get("/api/v1/users/me/passkeys", Some(fresh_access))
        .await;
    assert!(listed.body[0]["last_used_at"].is_string());
    let added_events = app.audit_events(&admin, "type=passkey_added").await;
    assert_eq!(added_events.len(), 1);
    assert_eq!(added_events[0]["details"]["name"], "Laptop");
    let used = app.audit_events(&admin, "type=passkey_used").await;
    assert_eq!(used.len(), 2);
    assert_eq!(used[0]["details"]["during"], "sign_in");
    assert_eq!(used[0]["subject_user_id"], id);
    let signed = app.audit_events(&admin, "type=login_succeeded").await;
    assert_eq!(signed[0]["details"]["method"], "passkey");
}

async fn registration_is_bound_to_its_user_used_once_and_expires(app: TestApp) {
    let (_, alice) = app.user("alice@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;
    let mut device = SoftDevice::new();
    let options = registration_options(&app, &alice).await;
    let credential = device.register(&options.body);
    // Bob cannot finish Alice's registration.
    app.post(
        "/api/v1/users/me/passkeys/register/finish",
        json!({ "name": "Stolen", "credential": credential }),
        Some(&bob.access),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "Passkey request expired or already used: please try again",
    );
    let finish = |name: &'static str| {
        app.post(
            "/api/v1/users/me/passkeys/register/finish",
            json!({ "name": name, "credential": credential }),
            Some(&alice.access),
        )
    };
    finish("Phone").await.assert_status(StatusCode::CREATED);
    // Used once.
    finish("Phone again").await.assert_error(
        StatusCode::BAD_REQUEST,
        "Passkey request expired or already used: please try again",
    );
    // Expired after 5 minutes.
    let options = registration_options(&app, &alice).await;
    // The registered credential is excluded from a new registration.
    let excluded = options.body["publicKey"]["excludeCredentials"]
        .as_array()
        .expect("excludeCredentials");
    assert_eq!(excluded.len(), 1);
    let mut other = SoftDevice::new();
    let credential = other.register(&options.body);
    app.shift_time("webauthn_challenges", "expires_at", -301, "TRUE")
        .await;
    app.post(
        "/api/v1/users/me/passkeys/register/finish",
        json!({ "name": "Late", "credential": credential }),
        Some(&alice.access),
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    // Bad input is a clear 422 and loses nothing.
    app.post(
        "/api/v1/users/me/passkeys/register/finish",
        json!({ "name": "", "credential": {} }),
        Some(&alice.access),
    )
    .await
    .assert_validation(&["body", "name"]);
    app.post(
        "/api/v1/users/me/passkeys/register/finish",
        json!({ "name": "Fine", "credential": { "id": 3 } }),
        Some(&alice.access),
    )
    .await
    .assert_validation(&["body", "credential"]);
    app.post(
        "/api/v1/auth/passkey/finish",
        json!({ "challenge_id": "x", "credential": "not an assertion" }),
        None,
    )
    .await
    .assert_validation(&["body", "credential"]);
    let listed = app
        .get("/api/v1/users/me/passkeys", Some(&alice.access))
        .await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1));
}

async fn answers_made_for_another_origin_are_refused(app: TestApp) {
    let (_, admin) = app.admin("admin@example.com").await;
    let (_, tokens) = app.user("origin@example.com").await;
    let mut device = SoftDevice::new();
    let options = registration_options(&app, &tokens).await;
    // Same RP ID, another origin (another port).
    let credential = device.register_at("http://localhost:4000", &options.body);
    let refused = app
        .post(
            "/api/v1/users/me/passkeys/register/finish",
            json!({ "name": "Elsewhere", "credential": credential }),
            Some(&tokens.access),
        )
        .await;
    refused.assert_error(
        StatusCode::BAD_REQUEST,
        "This passkey answer was made for another site: open this site at http://localhost:3000",
    );
    let failed = app.audit_events(&admin, "type=passkey_failed").await;
    assert_eq!(failed[0]["details"]["reason"], "wrong_origin");
    assert_eq!(failed[0]["details"]["during"], "registration");

    // A passkey made here, used from another origin.
    add_passkey(&app, &tokens, &mut device, "Here").await;
    let (challenge_id, options) = start_sign_in(&app).await;
    let assertion = device.assert_at("http://localhost:4000", &options);
    finish_sign_in(&app, &challenge_id, &assertion)
        .await
        .assert_error(
        StatusCode::BAD_REQUEST,
        "This passkey answer was made for another site: open this site at http://localhost:3000",
    );
    let failed = app.audit_events(&admin, "type=passkey_failed").await;
    assert_eq!(failed[0]["details"]["reason"], "wrong_origin");
    assert_eq!(failed[0]["details"]["during"], "sign_in");
}

async fn answers_made_for_another_rp_id_are_refused(backend: Backend) {
    // The site is auth.example.test; a credential scoped to the parent
    // domain (which a browser allows there) is not this site's.
    let app = TestApp::start(backend, &[("PUBLIC_URL", "https://auth.example.test")]).await;
    let (_, admin) = app.admin("admin@example.com").await;
    let (_, tokens) = app.user("rpid@example.com").await;
    let options = registration_options(&app, &tokens).await;
    options.assert_status(StatusCode::OK);
    assert_eq!(options.body["publicKey"]["rp"]["id"], "auth.example.test");
    let mut tampered = options.body.clone();
    tampered["publicKey"]["rp"]["id"] = json!("example.test");
    let mut device = SoftDevice::new();
    let credential = device.register_at("https://auth.example.test", &tampered);
    app.post(
        "/api/v1/users/me/passkeys/register/finish",
        json!({ "name": "Parent", "credential": credential }),
        Some(&tokens.access),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "This passkey answer was made for another site: open this site at https://auth.example.test",
    );
    let failed = app.audit_events(&admin, "type=passkey_failed").await;
    assert_eq!(failed[0]["details"]["reason"], "wrong_rp_id");
    // The origin must be the site's exactly: not even a subdomain of it
    // (which a browser allows for this RP ID) passes.
    let options = registration_options(&app, &tokens).await;
    let credential = device.register_at("https://eu.auth.example.test", &options.body);
    app.post(
        "/api/v1/users/me/passkeys/register/finish",
        json!({ "name": "Subdomain", "credential": credential }),
        Some(&tokens.access),
    )
    .await
    .assert_status(StatusCode::BAD_REQUEST);
    let failed = app.audit_events(&admin, "type=passkey_failed").await;
    assert_eq!(failed[0]["details"]["reason"], "wrong_origin");
    assert_eq!(
        app.get("/api/v1/users/me/passkeys", Some(&tokens.access))
            .await
            .body,
        json!([])
    );
}

async fn passkeys_need_a_domain_name(backend: Backend) {
    let app = TestApp::start(backend, &[("PUBLIC_URL", "http://127.0.0.1:3000")]).await;
    let (_, tokens) = app.user("ip@example.com").await;
    app.post(
        "/api/v1/users/me/passkeys/register/start",
        json!({}),
        Some(&tokens.access),
    )
    .await
    .assert_error(
        StatusCode::NOT_FOUND,
        "Passkeys are not available on this server",
    );
    app.post("/api/v1/auth/passkey/start", json!({}), None)
        .await
        .assert_error(
            StatusCode::NOT_FOUND,
            "Passkeys are not available on this server",
        );
    // The sign-in page does not offer them.
    let login = app.get("/login", None).await;
    login.assert_status(StatusCode::OK);
    assert!(login.text.contains("Sign in"), "{}", login.text);
    assert!(!login.text.contains("data-passkey"), "{}", login.text);
    // The rest works as ever.
    app.get("/api/v1/users/me/passkeys", Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn a_challenge_and_an_assertion_are_used_once(app: TestApp) {
    let (_, tokens) = app.user("replay@example.com").await;
    let mut device = SoftDevice::new();
    add_passkey(&app, &tokens, &mut device, "Key").await;
    let (challenge_id, options) = start_sign_in(&app).await;
    let assertion = device.assert(&options);
    let bodies = vec![
        json!({ "challenge_id": challenge_id, "credential": assertion }),
        json!({ "challenge_id": challenge_id, "credential": assertion }),
    ];
    // Two requests at once with one assertion: exactly one signs in.
    let mut statuses = app
        .post_concurrently("/api/v1/auth/passkey/finish", bodies)
        .await;
    statuses.sort();
    assert_eq!(statuses, vec![StatusCode::OK, StatusCode::BAD_REQUEST]);
    // The same assertion for a new challenge: not accepted.
    let (new_challenge, _) = start_sign_in(&app).await;
    finish_sign_in(&app, &new_challenge, &assertion)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    // An expired challenge.
    let (old, options) = start_sign_in(&app).await;
    let assertion = device.assert(&options);
    app.shift_time("webauthn_challenges", "expires_at", -301, "TRUE")
        .await;
    finish_sign_in(&app, &old, &assertion).await.assert_error(
        StatusCode::BAD_REQUEST,
        "Passkey request expired or already used: please try again",
    );
    // A made-up challenge id.
    finish_sign_in(&app, "made-up", &assertion)
        .await
        .assert_status(StatusCode::BAD_REQUEST);
    // Challenge ids are stored hashed.
    let (challenge_id, _) = start_sign_in(&app).await;
    assert_eq!(
        app.count(
            "webauthn_challenges",
            &format!("key_hash = '{challenge_id}'")
        )
        .await,
        0
    );
}

async fn a_credential_answers_only_for_its_own_user(app: TestApp) {
    let (_, admin) = app.admin("admin@example.com").await;
    let (_, alice) = app.user("alice@example.com").await;
    let (_, bob) = app.user("bob@example.com").await;
    let mut alices = SoftDevice::new();
    add_passkey(&app, &alice, &mut alices, "Alice's").await;
    let mut bobs = SoftDevice::new();
    add_passkey(&app, &bob, &mut bobs, "Bob's").await;
    // Alice's credential, presented with Bob's user handle.
    let bob_handle = bobs.credential.clone().expect("bob").1;
    let alice_credential = alices.credential.clone().expect("alice").0;
    alices.credential = Some((alice_credential, bob_handle));
    let refused = sign_in_with(&app, &mut alices).await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    let failed = app.audit_events(&admin, "type=passkey_failed").await;
    assert_eq!(failed[0]["details"]["reason"], "credential_of_another_user");
    // An unknown user handle.
    let mut stranger = SoftDevice::new();
    let options = registration_options(&app, &alice).await;
    stranger.register(&options.body);
    let (id, _) = stranger.credential.clone().expect("registered");
    stranger.credential = Some((id, vec![7; 16]));
    sign_in_with(&app, &mut stranger)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    // Bob's own passkey still works.
    sign_in_with(&app, &mut bobs)
        .await
        .assert_status(StatusCode::OK);
}

async fn a_signature_counter_that_goes_back_is_refused(app: TestApp) {
    let (_, admin) = app.admin("admin@example.com").await;
    let (id, tokens) = app.user("clone@example.com").await;
    let mut device = SoftDevice::new();
    add_passkey(&app, &tokens, &mut device, "Token").await;
    sign_in_with(&app, &mut device)
        .await
        .assert_status(StatusCode::OK);
    // A clone of this authenticator signed in elsewhere, further ahead: the
    // stored counter is past what this one will send.
    let stored: String = match &app.pool {
        leptos_auth::db::Pool::Sqlite(pool) => {
            sqlx::query_scalar("SELECT credential FROM passkeys WHERE user_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        }
        leptos_auth::db::Pool::Postgres(pool) => {
            sqlx::query_scalar("SELECT credential FROM passkeys WHERE user_id = $1")
                .bind(id)
                .fetch_one(pool)
                .await
        }
    }
    .expect("stored credential");
    let mut record: Value = serde_json::from_str(&stored).expect("json");
    assert!(record["cred"]["counter"].as_u64().expect("counter") >= 1);
    record["cred"]["counter"] = json!(1000);
    app.exec(&format!(
        "UPDATE passkeys SET credential = '{}' WHERE user_id = {id}",
        record.to_string().replace('\'', "''")
    ))
    .await;
    sign_in_with(&app, &mut device)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    let failed = app.audit_events(&admin, "type=passkey_failed").await;
    assert_eq!(failed[0]["details"]["reason"], "counter_regression");
    assert_eq!(failed[0]["subject_user_id"], id);
}

async fn a_passkey_passes_the_second_step_of_a_password_sign_in(app: TestApp) {
    let (_, admin) = app.admin("admin@example.com").await;
    let (_, tokens) = app.user("second@example.com").await;
    // With a passkey but no second factor, the password alone signs in.
    let mut device = SoftDevice::new();
    add_passkey(&app, &tokens, &mut device, "Phone").await;
    app.login_response("second@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    app.enrol_totp(&tokens).await;
    let status = app.get("/api/v1/users/me/mfa", Some(&tokens.access)).await;
    assert_eq!(
        status.body["methods"],
        json!(["totp", "recovery_code", "webauthn"])
    );
    let first = app.login_response("second@example.com", PASSWORD).await;
    first.assert_status(StatusCode::UNAUTHORIZED);
    assert_eq!(
        first.body["methods"],
        json!(["totp", "recovery_code", "webauthn"])
    );
    let mfa_token = first.body["mfa_token"].as_str().expect("token").to_owned();
    let options = &first.body["webauthn"];
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "only this account's passkeys"
    );
    let assertion = device.assert(options);
    // Neither or both of code and credential: 422.
    app.post("/api/v1/auth/mfa", json!({ "mfa_token": mfa_token }), None)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let passed = app
        .post(
            "/api/v1/auth/mfa",
            json!({ "mfa_token": mfa_token, "credential": assertion }),
            None,
        )
        .await;
    passed.assert_status(StatusCode::OK);
    let used = app.audit_events(&admin, "type=passkey_used").await;
    assert_eq!(used[0]["details"]["during"], "second_factor");
    let signed = app.audit_events(&admin, "type=login_succeeded").await;
    assert_eq!(signed[0]["details"]["second_factor"], "webauthn");
    // The mfa_token is used up.
    app.post(
        "/api/v1/auth/mfa",
        json!({ "mfa_token": mfa_token, "credential": assertion }),
        None,
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);

    // A refused assertion uses its options up; new ones come from
    // /auth/passkey/start with the mfa_token.
    let first = app.login_response("second@example.com", PASSWORD).await;
    let mfa_token = first.body["mfa_token"].as_str().expect("token").to_owned();
    let mut stranger = SoftDevice::new();
    let (_, other) = app.user("other@example.com").await;
    add_passkey(&app, &other, &mut stranger, "Other's").await;
    let wrong = stranger.assert(&first.body["webauthn"]);
    app.post(
        "/api/v1/auth/mfa",
        json!({ "mfa_token": mfa_token, "credential": wrong }),
        None,
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    let again = app
        .post(
            "/api/v1/auth/passkey/start",
            json!({ "mfa_token": mfa_token }),
            None,
        )
        .await;
    again.assert_status(StatusCode::OK);
    assert!(again.body.get("challenge_id").is_none());
    let assertion = device.assert(&again.body["options"]);
    app.post(
        "/api/v1/auth/mfa",
        json!({ "mfa_token": mfa_token, "credential": assertion }),
        None,
    )
    .await
    .assert_status(StatusCode::OK);
    app.post(
        "/api/v1/auth/passkey/start",
        json!({ "mfa_token": "not-a-token" }),
        None,
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
}

async fn passkeys_are_renamed_and_removed_by_their_owner(app: TestApp) {
    let (_, admin) = app.admin("admin@example.com").await;
    let (_, tokens) = app.user("owner@example.com").await;
    let (_, other) = app.user("other@example.com").await;
    let mut device = SoftDevice::new();
    let added = add_passkey(&app, &tokens, &mut device, "Laptop").await;
    let path = format!("/api/v1/users/me/passkeys/{}", added["id"]);
    let renamed = app
        .patch(
            &path,
            json!({ "name": "Work laptop" }),
            Some(&tokens.access),
        )
        .await;
    renamed.assert_status(StatusCode::OK);
    assert_eq!(renamed.body["name"], "Work laptop");
    app.patch(
        &path,
        json!({ "name": "x".repeat(65) }),
        Some(&tokens.access),
    )
    .await
    .assert_validation(&["body", "name"]);
    // Another user's passkey is not theirs to touch.
    app.patch(&path, json!({ "name": "Mine" }), Some(&other.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "Passkey not found");
    app.delete(&path, Some(&other.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "Passkey not found");
    app.delete("/api/v1/users/me/passkeys/0", Some(&tokens.access))
        .await
        .assert_validation(&["path", "passkey_id"]);
    // Removing needs a recent authentication.
    age_authentication(&app, 11).await;
    app.delete(&path, Some(&tokens.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Recent authentication required");
    app.post(
        "/api/v1/auth/confirm",
        json!({ "password": PASSWORD }),
        Some(&tokens.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.delete(&path, Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
    let listed = app
        .get("/api/v1/users/me/passkeys", Some(&tokens.access))
        .await;
    assert_eq!(listed.body, json!([]));
    // Gone: it no longer signs in; the password still does.
    sign_in_with(&app, &mut device)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    app.login_response("owner@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::OK);
    let removed = app.audit_events(&admin, "type=passkey_removed").await;
    assert_eq!(removed[0]["details"]["name"], "Work laptop");
}

async fn adding_and_removing_a_passkey_is_mailed_to_the_user(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[("PUBLIC_URL", "http://localhost:3000")]).await;
    let (_, tokens) = app.user("mailed@example.com").await;
    let mut device = SoftDevice::new();
    let added = add_passkey(&app, &tokens, &mut device, "Desk key").await;
    app.delete(
        &format!("/api/v1/users/me/passkeys/{}", added["id"]),
        Some(&tokens.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.flush_mail().await;
    let messages = sink.messages_to("mailed@example.com");
    let subjects: Vec<String> = messages
        .iter()
        .filter_map(|m| m.header("Subject"))
        .collect();
    for subject in [
        "A passkey was added to your account",
        "A passkey was removed from your account",
    ] {
        assert!(
            subjects.iter().any(|s| s == subject),
            "{subject} in {subjects:?}"
        );
    }
    assert!(messages.iter().any(|m| m.text().contains("\"Desk key\"")));
}

async fn failed_passkey_sign_ins_are_throttled_like_passwords(backend: Backend) {
    let app = TestApp::start(
        backend,
        &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_WINDOW_MINUTES", "15")],
    )
    .await;
    let (_, tokens) = app.user("slow@example.com").await;
    let mut device = SoftDevice::new();
    add_passkey(&app, &tokens, &mut device, "Key").await;
    // Assertions for the wrong challenge count as failures of the account.
    let (_, options) = start_sign_in(&app).await;
    let stale = device.assert(&options);
    for _ in 0..3 {
        let (challenge_id, _) = start_sign_in(&app).await;
        finish_sign_in(&app, &challenge_id, &stale)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    }
    let refused = sign_in_with(&app, &mut device).await;
    refused.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers.contains_key("retry-after"));
    // The same counters as passwords: the password waits too.
    app.login_response("slow@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
    app.shift_time("throttle_events", "at", -60, "kind = 'login'")
        .await;
    sign_in_with(&app, &mut device)
        .await
        .assert_status(StatusCode::OK);
}

async fn unknown_credentials_are_throttled_per_address(backend: Backend) {
    let app = TestApp::start(backend, &[("LOGIN_IP_MAX_FAILURES_PER_HOUR", "2")]).await;
    let (_, tokens) = app.user("ip@example.com").await;
    let mut device = SoftDevice::new();
    add_passkey(&app, &tokens, &mut device, "Key").await;
    for _ in 0..2 {
        let mut forged = SoftDevice::new();
        let options = app
            .post(
                "/api/v1/users/me/passkeys/register/start",
                json!({}),
                Some(&tokens.access),
            )
            .await;
        forged.register(&options.body);
        let (forged_id, _) = forged.credential.clone().expect("forged");
        forged.credential = Some((forged_id, vec![9; 16]));
        sign_in_with(&app, &mut forged)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Passkey not accepted");
    }
    // Even the right passkey waits now, from this address.
    sign_in_with(&app, &mut device)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);
}

both_backends!(
    a_passkey_signs_in_without_an_email_and_counts_as_two_factors,
    registration_is_bound_to_its_user_used_once_and_expires,
    answers_made_for_another_origin_are_refused,
    a_challenge_and_an_assertion_are_used_once,
    a_credential_answers_only_for_its_own_user,
    a_signature_counter_that_goes_back_is_refused,
    a_passkey_passes_the_second_step_of_a_password_sign_in,
    passkeys_are_renamed_and_removed_by_their_owner,
);

each_backend!(
    answers_made_for_another_rp_id_are_refused,
    passkeys_need_a_domain_name,
    adding_and_removing_a_passkey_is_mailed_to_the_user,
    failed_passkey_sign_ins_are_throttled_like_passwords,
    unknown_credentials_are_throttled_per_address,
);

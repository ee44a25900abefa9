//! The security audit log through the API: every listed action leaves an
//! event with the right actor and subject; filters, paging, access rules.

use crate::common::{tokens_of, TestApp, Tokens, OTHER_PASSWORD, PASSWORD, PEER_IP};
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

/// The single event of `kind` concerning `subject` (fails unless exactly one).
#[track_caller]
fn only(events: &[Value]) -> &Value {
    assert_eq!(events.len(), 1, "expected one event: {events:#?}");
    &events[0]
}

async fn events(app: &TestApp, admin: &Tokens, kind: &str, subject: i64) -> Vec<Value> {
    app.audit_events(admin, &format!("type={kind}&user_id={subject}"))
        .await
        .into_iter()
        .filter(|e| e["subject_user_id"] == subject)
        .collect()
}

async fn sign_in_as(app: &TestApp, email: &str, password: &str, agent: &str) -> Tokens {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, agent)
        .body(
            json!({ "email": email, "password": password })
                .to_string()
                .into(),
        )
        .expect("request");
    let response = app.send(request).await;
    response.assert_status(StatusCode::OK);
    tokens_of(&response)
}

async fn every_security_action_is_recorded_with_actor_and_subject(app: TestApp) {
    let (admin_id, admin) = app.admin("chief@example.com").await;
    // The operator created the admin: no actor.
    let created = only(&events(&app, &admin, "user_created", admin_id).await).clone();
    assert_eq!(created["actor_user_id"], Value::Null);
    assert_eq!(created["details"]["by"], "operator");

    // Sign-up: the new user is their own actor.
    let user = app.register("member@example.com", PASSWORD).await.body["id"]
        .as_i64()
        .expect("id");
    let signup = only(&events(&app, &admin, "user_created", user).await).clone();
    assert_eq!(signup["actor_user_id"], user);
    assert_eq!(signup["details"]["by"], "registration");
    assert_eq!(signup["details"]["email"], "member@example.com");

    // Sign-in: success with device and address; failures with a reason.
    let laptop = sign_in_as(&app, "member@example.com", PASSWORD, "Laptop/1.0").await;
    let login = only(&events(&app, &admin, "login_succeeded", user).await).clone();
    assert_eq!(login["actor_user_id"], user);
    assert_eq!(login["ip"], PEER_IP);
    assert_eq!(login["user_agent"], "Laptop/1.0");
    assert!(login["details"]["session_id"].as_i64().is_some());
    app.login_response("member@example.com", "not the password at all")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let failed = only(&events(&app, &admin, "login_failed", user).await).clone();
    assert_eq!(failed["details"]["reason"], "wrong_password");
    assert_eq!(failed["actor_user_id"], Value::Null);
    app.login_response("ghost@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let unknown: Vec<Value> = app
        .audit_events(&admin, "type=login_failed")
        .await
        .into_iter()
        .filter(|e| e["subject_user_id"].is_null())
        .collect();
    let unknown = only(&unknown);
    assert_eq!(unknown["details"]["reason"], "unknown_account");
    assert_eq!(unknown["details"]["email"], "ghost@example.com");

    // Self-service: email and password changes.
    app.patch(
        "/api/v1/users/me",
        json!({ "email": "renamed@example.com", "current_password": PASSWORD }),
        Some(&laptop.access),
    )
    .await
    .assert_status(StatusCode::OK);
    let renamed = only(&events(&app, &admin, "email_changed", user).await).clone();
    assert_eq!(renamed["actor_user_id"], user);
    assert_eq!(
        renamed["details"],
        json!({ "by": "self", "from": "member@example.com", "to": "renamed@example.com" })
    );
    app.patch(
        "/api/v1/users/me",
        json!({ "password": OTHER_PASSWORD, "current_password": PASSWORD }),
        Some(&laptop.access),
    )
    .await
    .assert_status(StatusCode::OK);
    let changed = only(&events(&app, &admin, "password_changed", user).await).clone();
    assert_eq!(changed["actor_user_id"], user);
    assert_eq!(changed["details"]["by"], "self");

    // Sessions: the user signs out another device, then signs out.
    let phone = sign_in_as(&app, "renamed@example.com", OTHER_PASSWORD, "Phone/2.0").await;
    let sessions = app
        .get("/api/v1/users/me/sessions", Some(&laptop.access))
        .await;
    let phone_session = sessions
        .body
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["user_agent"] == "Phone/2.0")
        .expect("phone")["id"]
        .as_i64()
        .expect("id");
    app.delete(
        &format!("/api/v1/users/me/sessions/{phone_session}"),
        Some(&laptop.access),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let revoked = only(&events(&app, &admin, "session_revoked", user).await).clone();
    assert_eq!(revoked["actor_user_id"], user);
    assert_eq!(revoked["details"]["session_id"], phone_session);
    assert_eq!(
        revoked["ip"], PEER_IP,
        "recorded from the request that acted"
    );
    app.assert_session_over(&phone).await;
    app.post("/api/v1/auth/logout", json!({}), Some(&laptop.access))
        .await
        .assert_status(StatusCode::OK);
    let logout = only(&events(&app, &admin, "logout", user).await).clone();
    assert_eq!(logout["actor_user_id"], user);

    // A replayed refresh token.
    let tablet = sign_in_as(&app, "renamed@example.com", OTHER_PASSWORD, "Tablet/3.0").await;
    app.refresh(&tablet.refresh)
        .await
        .assert_status(StatusCode::OK);
    app.refresh(&tablet.refresh)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let reuse = only(&events(&app, &admin, "refresh_reuse_detected", user).await).clone();
    assert_eq!(reuse["actor_user_id"], Value::Null);
    assert!(reuse["details"]["session_id"].as_i64().is_some());

    // Admin actions: role, activity, password, sign-out everywhere, deletion.
    let uri = format!("/api/v1/users/{user}");
    app.patch(&uri, json!({ "role": "admin" }), Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    let role = only(&events(&app, &admin, "role_changed", user).await).clone();
    assert_eq!(role["actor_user_id"], admin_id);
    assert_eq!(
        role["details"],
        json!({ "by": "admin", "from": "regular", "to": "admin" })
    );
    app.deactivate(&admin, user).await;
    let off = only(&events(&app, &admin, "user_deactivated", user).await).clone();
    assert_eq!(off["actor_user_id"], admin_id);
    app.login_response("renamed@example.com", OTHER_PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let inactive: Vec<Value> = events(&app, &admin, "login_failed", user)
        .await
        .into_iter()
        .filter(|e| e["details"]["reason"] == "inactive")
        .collect();
    only(&inactive);
    app.patch(
        &uri,
        json!({ "is_active": true, "password": PASSWORD }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    only(&events(&app, &admin, "user_activated", user).await);
    let by_admin: Vec<Value> = events(&app, &admin, "password_changed", user)
        .await
        .into_iter()
        .filter(|e| e["actor_user_id"] == admin_id)
        .collect();
    assert_eq!(only(&by_admin)["details"]["by"], "admin");
    app.delete(&format!("{uri}/sessions"), Some(&admin.access))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    let everywhere = only(&events(&app, &admin, "signed_out_everywhere", user).await).clone();
    assert_eq!(everywhere["actor_user_id"], admin_id);
    app.delete(&uri, Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    let deleted = only(&events(&app, &admin, "user_deleted", user).await).clone();
    assert_eq!(deleted["actor_user_id"], admin_id);
    assert_eq!(deleted["details"]["email"], "renamed@example.com");

    // No password ever reaches the log.
    let everything = app
        .get("/api/v1/audit?limit=100", Some(&admin.access))
        .await;
    for secret in [PASSWORD, OTHER_PASSWORD, "not the password at all"] {
        assert!(
            !everything.text.contains(secret),
            "{secret} in the audit log"
        );
    }
}

async fn users_see_the_events_of_their_own_account_only(app: TestApp) {
    let (alice, alice_tokens) = app.user("alice@example.com").await;
    let (_, bob_tokens) = app.user("bob@example.com").await;
    app.login_response("alice@example.com", "not the password at all")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let mine = app
        .get("/api/v1/users/me/audit", Some(&alice_tokens.access))
        .await;
    mine.assert_status(StatusCode::OK);
    let list = mine.body.as_array().expect("array");
    let kinds: Vec<&str> = list
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        ["login_failed", "login_succeeded", "user_created"],
        "newest first"
    );
    assert!(list.iter().all(|e| e["subject_user_id"] == alice));
    assert_eq!(mine.headers["x-total-count"], "3");
    let page = app
        .get(
            "/api/v1/users/me/audit?skip=1&limit=1",
            Some(&alice_tokens.access),
        )
        .await;
    assert_eq!(page.body.as_array().map(Vec::len), Some(1));
    assert_eq!(page.body[0]["type"], "login_succeeded");
    assert_eq!(page.headers["x-total-count"], "3");
    // Bob sees his own, and may not read the admin log.
    let bobs = app
        .get("/api/v1/users/me/audit", Some(&bob_tokens.access))
        .await;
    assert!(bobs
        .body
        .as_array()
        .expect("array")
        .iter()
        .all(|e| e["subject_user_id"] != alice));
    app.get("/api/v1/audit", Some(&bob_tokens.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    app.get("/api/v1/audit", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
    app.get("/api/v1/users/me/audit", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
}

async fn the_admin_log_filters_and_pages(app: TestApp) {
    let (_, admin) = app.admin("filters@example.com").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let (id, _) = app.user(&format!("paged{i}@example.com")).await;
        ids.push(id);
    }
    let all = app.get("/api/v1/audit", Some(&admin.access)).await;
    all.assert_status(StatusCode::OK);
    // admin created + admin login + 3 x (created + login)
    assert_eq!(all.headers["x-total-count"], "8");
    let page = app
        .get("/api/v1/audit?skip=2&limit=3", Some(&admin.access))
        .await;
    assert_eq!(page.headers["x-total-count"], "8");
    let page_ids: Vec<&Value> = page
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|e| &e["id"])
        .collect();
    let all_ids: Vec<&Value> = all
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(page_ids, all_ids[2..5]);

    let created = app
        .get("/api/v1/audit?type=user_created", Some(&admin.access))
        .await;
    assert_eq!(created.headers["x-total-count"], "4");
    let one_user = app
        .get(
            &format!("/api/v1/audit?user_id={}", ids[1]),
            Some(&admin.access),
        )
        .await;
    assert_eq!(one_user.headers["x-total-count"], "2");
    // Time window: everything so far is before `until`, nothing after `since`.
    let later = (chrono::Utc::now() + chrono::Duration::minutes(5)).format("%Y-%m-%dT%H:%M:%SZ");
    let none = app
        .get(&format!("/api/v1/audit?since={later}"), Some(&admin.access))
        .await;
    assert_eq!(none.headers["x-total-count"], "0");
    assert_eq!(none.body, json!([]));
    let before = app
        .get(
            &format!("/api/v1/audit?until={later}&type=login_succeeded"),
            Some(&admin.access),
        )
        .await;
    assert_eq!(before.headers["x-total-count"], "4");
    // Age the first two events by a day: a `since` of an hour ago drops them.
    app.shift_time(
        "audit_events",
        "at",
        -86_400,
        &format!("id IN ({}, {})", all_ids[7], all_ids[6]),
    )
    .await;
    let hour_ago = (chrono::Utc::now() - chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    let recent = app
        .get(
            &format!("/api/v1/audit?since={hour_ago}"),
            Some(&admin.access),
        )
        .await;
    assert_eq!(recent.headers["x-total-count"], "6");

    for bad in [
        "type=not_a_type",
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "user_id=abc",
        "user_id=0",
        "user_id=-3",
        "limit=0",
        "limit=101",
        "skip=-1",
        "skip=1000000001",
        // The same bounds as the admin page: a range may not end before it starts.
        "since=2026-02-01T00:00:00Z&until=2026-01-31T23:59:59Z",
    ] {
        let response = app
            .get(&format!("/api/v1/audit?{bad}"), Some(&admin.access))
            .await;
        response.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            response.body["detail"][0]["loc"][0], "query",
            "{bad}: {}",
            response.text
        );
    }
    let reversed = app
        .get(
            "/api/v1/audit?since=2026-02-01T00:00:00Z&until=2026-01-31T23:59:59Z",
            Some(&admin.access),
        )
        .await;
    reversed.assert_validation(&["query", "until"]);
    // A one-instant range is a range.
    app.get(
        "/api/v1/audit?since=2026-02-01T00:00:00Z&until=2026-02-01T00:00:00Z",
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.get(
        "/api/v1/users/me/audit?skip=1000000001",
        Some(&admin.access),
    )
    .await
    .assert_validation(&["query", "skip"]);
}

async fn a_failing_audit_write_never_fails_the_request(app: TestApp) {
    let (_, tokens) = app.user("resilient@example.com").await;
    // The table is gone: every audit write fails from now on.
    app.exec("DROP TABLE audit_events").await;
    let again = app.login("resilient@example.com", PASSWORD).await;
    app.login_response("resilient@example.com", "not the password at all")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.post("/api/v1/auth/logout", json!({}), Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
    app.get("/api/v1/users/me", Some(&again.access))
        .await
        .assert_status(StatusCode::OK);
}

/// A user agent the device names recognise, used only by the admin below.
const ADMIN_BROWSER: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn a_users_own_log_shows_an_administrators_actions_without_their_device(app: TestApp) {
    let (admin_id, _) = app.admin("chief@example.com").await;
    let admin = sign_in_as(&app, "chief@example.com", PASSWORD, ADMIN_BROWSER).await;
    let (user, _) = app.user("member@example.com").await;
    let uri = format!("/api/v1/users/{user}");
    // The admin acts from their browser.
    let act = |method: Method, uri: String, body: Value| {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", admin.access))
            .header(header::USER_AGENT, ADMIN_BROWSER)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.to_string().into())
            .expect("request");
        app.send(request)
    };
    act(Method::PATCH, uri.clone(), json!({ "role": "admin" }))
        .await
        .assert_status(StatusCode::OK);
    // A new password signs the user out everywhere; they sign in with it.
    act(
        Method::PATCH,
        uri.clone(),
        json!({ "password": OTHER_PASSWORD }),
    )
    .await
    .assert_status(StatusCode::OK);
    let signed_in = app.login("member@example.com", OTHER_PASSWORD).await;
    act(Method::DELETE, format!("{uri}/sessions"), json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.assert_session_over(&signed_in).await;
    let tokens = app.login("member@example.com", OTHER_PASSWORD).await;
    let by_admin = ["signed_out_everywhere", "password_changed", "role_changed"];

    let mine = app
        .get("/api/v1/users/me/audit", Some(&tokens.access))
        .await;
    mine.assert_status(StatusCode::OK);
    let mine_list = mine.body.as_array().expect("array");
    for kind in by_admin {
        let event = mine_list
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {mine_list:#?}"));
        assert_eq!(event["by_administrator"], true, "{event}");
        assert_eq!(event["actor_user_id"], Value::Null, "{event}");
        assert_eq!(event["ip"], Value::Null, "{event}");
        assert_eq!(event["user_agent"], Value::Null, "{event}");
        assert_eq!(event["subject_user_id"], user, "{event}");
    }
    assert!(
        !mine.text.contains("Firefox"),
        "the administrator's device shows through: {}",
        mine.text
    );
    // The user's own doings keep their device and address.
    let own = mine_list
        .iter()
        .find(|e| e["type"] == "login_succeeded")
        .expect("a sign-in");
    assert_eq!(own["by_administrator"], false);
    assert_eq!(own["actor_user_id"], user);
    assert_eq!(own["ip"], PEER_IP);

    // The admin log keeps everything.
    for kind in by_admin {
        let event = only(&events(&app, &admin, kind, user).await).clone();
        assert_eq!(event["by_administrator"], true, "{event}");
        assert_eq!(event["actor_user_id"], admin_id, "{event}");
        assert_eq!(event["ip"], PEER_IP, "{event}");
        assert_eq!(event["user_agent"], ADMIN_BROWSER, "{event}");
    }
}

both_backends!(
    every_security_action_is_recorded_with_actor_and_subject,
    users_see_the_events_of_their_own_account_only,
    the_admin_log_filters_and_pages,
    a_failing_audit_write_never_fails_the_request,
    a_users_own_log_shows_an_administrators_actions_without_their_device,
);

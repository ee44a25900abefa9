//! `/api/v1/users*`: registration, the caller's own account, admin CRUD, and
//! the rules that guard them.

use crate::common::{TestApp, OTHER_PASSWORD, PASSWORD};
use axum::http::{Method, StatusCode};
use serde_json::json;

async fn registration_creates_an_active_regular_user(app: TestApp) {
    let response = app.register("  New.User@Example.com ", PASSWORD).await;
    response.assert_status(StatusCode::CREATED);
    let body = &response.body;
    assert!(body["id"].as_i64().is_some_and(|id| id > 0));
    assert_eq!(body["email"], "new.user@example.com");
    assert_eq!(body["role"], "regular");
    assert_eq!(body["is_active"], true);
    assert_eq!(body["email_verified"], false);
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().expect("created_at"))
            .is_ok()
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(body["updated_at"].as_str().expect("updated_at"))
            .is_ok()
    );
    let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
    assert_eq!(body["mfa_enabled"], false);
    assert_eq!(keys.len(), 8, "exactly the documented fields: {keys:?}");
    assert!(
        !response.text.contains("argon2"),
        "no password material: {}",
        response.text
    );
}

async fn anonymous_callers_cannot_sign_up_as_admin_or_inactive(app: TestApp) {
    app.post(
        "/api/v1/users",
        json!({ "email": "evil@example.com", "password": PASSWORD, "role": "admin" }),
        None,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    app.post(
        "/api/v1/users",
        json!({ "email": "evil@example.com", "password": PASSWORD, "is_active": false }),
        None,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    // A regular user cannot grant it either.
    let (_, user) = app.user("regular@example.com").await;
    app.post(
        "/api/v1/users",
        json!({ "email": "evil@example.com", "password": PASSWORD, "role": "admin" }),
        Some(&user.access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    // Asking for the defaults explicitly is fine.
    app.post(
        "/api/v1/users",
        json!({ "email": "fine@example.com", "password": PASSWORD, "role": "regular", "is_active": true }),
        None,
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.login_response("evil@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn admins_create_users_with_any_role(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let created = app
        .post(
            "/api/v1/users/",
            json!({ "email": "second-admin@example.com", "password": PASSWORD, "role": "admin", "is_active": false }),
            Some(&admin.access),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    assert_eq!(created.body["role"], "admin");
    assert_eq!(created.body["is_active"], false);
}

async fn duplicate_emails_in_any_letter_case_are_refused(app: TestApp) {
    app.register("dup@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    app.register("DUP@Example.COM", OTHER_PASSWORD)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "Email already registered");
    let (_, admin) = app.admin("root@example.com").await;
    app.post(
        "/api/v1/users",
        json!({ "email": "Dup@example.com", "password": PASSWORD }),
        Some(&admin.access),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "Email already registered");
}

async fn registration_validates_email_and_password(app: TestApp) {
    for bad_email in [
        "not-an-email",
        "a\r\nb@example.com",
        "a\0b@example.com",
        &format!("{}@example.com", "a".repeat(300)),
        "x@y",
        "' OR 1=1 --@example.com",
    ] {
        let response = app.register(bad_email, PASSWORD).await;
        response.assert_validation(&["body", "email"]);
    }
    let short = app.register("p1@example.com", "short").await;
    short.assert_validation(&["body", "password"]);
    assert!(short.text.contains("at least 12"), "{}", short.text);
    let weak = app.register("p2@example.com", "password1234").await;
    weak.assert_validation(&["body", "password"]);
    assert!(weak.text.contains("too weak"), "{}", weak.text);
    let mine = app
        .register("johnsmith@example.com", "johnsmith tulip lantern orbit")
        .await;
    mine.assert_validation(&["body", "password"]);
    assert!(mine.text.contains("email"), "{}", mine.text);
    app.register("p3@example.com", &"x".repeat(129))
        .await
        .assert_validation(&["body", "password"]);
    app.register("p4@example.com", &"y".repeat(10_000))
        .await
        .assert_validation(&["body", "password"]);
    app.post(
        "/api/v1/users",
        json!({ "email": "p5@example.com", "password": PASSWORD, "role": "superuser" }),
        None,
    )
    .await
    .assert_validation(&["body", "role"]);
    app.post("/api/v1/users", json!({ "email": "p6@example.com" }), None)
        .await
        .assert_validation(&["body", "password"]);
    app.post(
        "/api/v1/users",
        json!({ "email": null, "password": PASSWORD }),
        None,
    )
    .await
    .assert_validation(&["body", "email"]);
    app.post("/api/v1/users", json!(["p7@example.com", PASSWORD]), None)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing was created along the way.
    let (_, admin) = app.admin("root@example.com").await;
    let list = app.get("/api/v1/users", Some(&admin.access)).await;
    assert_eq!(list.body.as_array().map(Vec::len), Some(1), "{}", list.text);
}

async fn closed_registration_only_lets_admins_create_users(default_app: TestApp) {
    let app = TestApp::start(default_app.backend, &[("ALLOW_REGISTRATION", "false")]).await;
    app.register("someone@example.com", PASSWORD)
        .await
        .assert_error(
            StatusCode::FORBIDDEN,
            "Registration is disabled on this server",
        );
    let (_, admin) = app.admin("root@example.com").await;
    app.post(
        "/api/v1/users",
        json!({ "email": "someone@example.com", "password": PASSWORD }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::CREATED);
}

async fn concurrent_registrations_of_one_email_create_one_user(app: TestApp) {
    // The same address in two letter cases.
    let bodies = (0..8)
        .map(|i| {
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com"
            };
            json!({ "email": email, "password": PASSWORD })
        })
        .collect();
    let statuses = app.post_concurrently("/api/v1/users", bodies).await;
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::BAD_REQUEST),
        "{statuses:?}"
    );
}

async fn me_requires_a_token(app: TestApp) {
    let response = app.get("/api/v1/users/me", None).await;
    response.assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
    assert_eq!(response.headers["www-authenticate"], "Bearer");
    let invalid = app.get("/api/v1/users/me", Some("garbage")).await;
    invalid.assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
    assert_eq!(invalid.headers["www-authenticate"], "Bearer");
}

async fn changing_my_email_needs_the_current_password(app: TestApp) {
    let (_, tokens) = app.user("me@example.com").await;
    app.patch(
        "/api/v1/users/me",
        json!({ "email": "new@example.com" }),
        Some(&tokens.access),
    )
    .await
    .assert_validation(&["body", "current_password"]);
    app.patch(
        "/api/v1/users/me",
        json!({ "email": "new@example.com", "current_password": OTHER_PASSWORD }),
        Some(&tokens.access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Incorrect password");
    let ok = app
        .put(
            "/api/v1/users/me",
            json!({ "email": "New@Example.com", "current_password": PASSWORD }),
            Some(&tokens.access),
        )
        .await;
    ok.assert_status(StatusCode::OK);
    assert_eq!(ok.body["email"], "new@example.com");
    app.login_response("me@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login("new@example.com", PASSWORD).await;
    app.patch(
        "/api/v1/users/me",
        json!({ "email": "not-an-email", "current_password": PASSWORD }),
        Some(&tokens.access),
    )
    .await
    .assert_validation(&["body", "email"]);
}

async fn my_email_cannot_take_another_users_address(app: TestApp) {
    app.user("taken@example.com").await;
    let (_, tokens) = app.user("mine@example.com").await;
    app.patch(
        "/api/v1/users/me",
        json!({ "email": "TAKEN@example.com", "current_password": PASSWORD }),
        Some(&tokens.access),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "Email already registered");
}

async fn changing_my_password_signs_out_my_other_sessions(app: TestApp) {
    let (_, here) = app.user("pw@example.com").await;
    let elsewhere = app.login("pw@example.com", PASSWORD).await;
    app.patch(
        "/api/v1/users/me",
        json!({ "password": "weak", "current_password": PASSWORD }),
        Some(&here.access),
    )
    .await
    .assert_validation(&["body", "password"]);
    app.patch(
        "/api/v1/users/me",
        json!({ "password": OTHER_PASSWORD, "current_password": PASSWORD }),
        Some(&here.access),
    )
    .await
    .assert_status(StatusCode::OK);
    // This session stays; the other one is over.
    app.get("/api/v1/users/me", Some(&here.access))
        .await
        .assert_status(StatusCode::OK);
    app.refresh(&here.refresh)
        .await
        .assert_status(StatusCode::OK);
    app.assert_session_over(&elsewhere).await;
    app.login_response("pw@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login("pw@example.com", OTHER_PASSWORD).await;
}

async fn nobody_changes_their_own_role(app: TestApp) {
    let (_, user) = app.user("climber@example.com").await;
    app.patch(
        "/api/v1/users/me",
        json!({ "role": "admin" }),
        Some(&user.access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Cannot change your own role");
    // The same role is not a change.
    app.patch(
        "/api/v1/users/me",
        json!({ "role": "regular" }),
        Some(&user.access),
    )
    .await
    .assert_status(StatusCode::OK);
    let (_, admin) = app.admin("root@example.com").await;
    app.patch(
        "/api/v1/users/me",
        json!({ "role": "regular" }),
        Some(&admin.access),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "Cannot change your own role");
}

async fn regular_users_cannot_use_admin_routes(app: TestApp) {
    let (id, user) = app.user("plain@example.com").await;
    for response in [
        app.get("/api/v1/users", Some(&user.access)).await,
        app.get(&format!("/api/v1/users/{id}"), Some(&user.access))
            .await,
        app.patch(
            &format!("/api/v1/users/{id}"),
            json!({ "role": "admin" }),
            Some(&user.access),
        )
        .await,
        app.delete(&format!("/api/v1/users/{id}"), Some(&user.access))
            .await,
    ] {
        response.assert_error(StatusCode::FORBIDDEN, "Not enough permissions");
    }
    app.get("/api/v1/users", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
}

async fn admins_list_users_with_filters_paging_and_a_total(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    for i in 0..12 {
        app.register(&format!("member{i:02}@example.com"), PASSWORD)
            .await
            .assert_status(StatusCode::CREATED);
    }
    app.register("someone_else@test.org", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);

    let all = app.get("/api/v1/users", Some(&admin.access)).await;
    all.assert_status(StatusCode::OK);
    assert_eq!(all.headers["x-total-count"], "14");
    let ids: Vec<i64> = all
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ordered by id: {ids:?}"
    );

    let page = app
        .get("/api/v1/users?skip=3&limit=5", Some(&admin.access))
        .await;
    assert_eq!(page.headers["x-total-count"], "14");
    let page_ids: Vec<i64> = page
        .body
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(page_ids, ids[3..8].to_vec());

    let search = app
        .get("/api/v1/users?q=MEMBER1&limit=100", Some(&admin.access))
        .await;
    assert_eq!(search.headers["x-total-count"], "2");
    // LIKE wildcards in q are literal.
    let underscore = app.get("/api/v1/users?q=e_e", Some(&admin.access)).await;
    assert_eq!(
        underscore.headers["x-total-count"], "1",
        "{}",
        underscore.text
    );
    let percent = app.get("/api/v1/users?q=%25", Some(&admin.access)).await;
    assert_eq!(percent.headers["x-total-count"], "0");

    let admins = app
        .get("/api/v1/users?role=admin", Some(&admin.access))
        .await;
    assert_eq!(admins.headers["x-total-count"], "1");
    assert_eq!(admins.body[0]["email"], "root@example.com");

    let member = app
        .get("/api/v1/users?q=member00", Some(&admin.access))
        .await;
    let member_id = member.body[0]["id"].as_i64().expect("id");
    app.deactivate(&admin, member_id).await;
    let inactive = app
        .get("/api/v1/users?is_active=false", Some(&admin.access))
        .await;
    assert_eq!(inactive.headers["x-total-count"], "1");
    let active_regular = app
        .get(
            "/api/v1/users?is_active=true&role=regular",
            Some(&admin.access),
        )
        .await;
    assert_eq!(active_regular.headers["x-total-count"], "12");

    let beyond = app
        .get("/api/v1/users?skip=1000", Some(&admin.access))
        .await;
    beyond.assert_status(StatusCode::OK);
    assert_eq!(beyond.body, json!([]));
    assert_eq!(beyond.headers["x-total-count"], "14");
}

/// The search by email follows changes made through the API: the new
/// address is found and counted, the old one no longer, nor a deleted user.
async fn the_user_search_follows_email_changes_and_deletions(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, _) = app.user("original.name@search.test").await;
    let (gone, _) = app.user("leaving.soon@search.test").await;
    let search = |q: &'static str| {
        let app = &app;
        let token = admin.access.clone();
        async move {
            let found = app
                .get(&format!("/api/v1/users?q={q}&limit=100"), Some(&token))
                .await;
            found.assert_status(StatusCode::OK);
            let ids: Vec<i64> = found
                .body
                .as_array()
                .expect("array")
                .iter()
                .map(|u| u["id"].as_i64().expect("id"))
                .collect();
            assert_eq!(
                found.headers["x-total-count"],
                ids.len().to_string().as_str()
            );
            ids
        }
    };
    assert_eq!(search("original.name").await, vec![id]);
    assert_eq!(search("search.test").await, vec![id, gone]);

    app.put(
        &format!("/api/v1/users/{id}"),
        json!({ "email": "Renamed.Person@Search.Test" }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    assert_eq!(search("original").await, Vec::<i64>::new());
    assert_eq!(search("RENAMED.PERSON").await, vec![id]);
    assert_eq!(search("search.test").await, vec![id, gone]);

    app.delete(&format!("/api/v1/users/{gone}"), Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(search("leaving").await, Vec::<i64>::new());
    assert_eq!(search("search.test").await, vec![id]);
}

async fn list_paging_out_of_range_is_a_422(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("skip=-1", "skip"),
        ("skip=abc", "skip"),
        ("skip=1000000001", "skip"),
        ("limit=1e3", "limit"),
        ("role=owner", "role"),
        ("is_active=maybe", "is_active"),
    ] {
        app.get(&format!("/api/v1/users?{query}"), Some(&admin.access))
            .await
            .assert_validation(&["query", field]);
    }
    app.get("/api/v1/users?limit=100&skip=0", Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    app.get("/api/v1/users?skip=1000000000", Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
    app.get("/api/v1/users?limit=1", Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn admins_read_one_user(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, _) = app.user("target@example.com").await;
    let found = app
        .get(&format!("/api/v1/users/{id}"), Some(&admin.access))
        .await;
    found.assert_status(StatusCode::OK);
    assert_eq!(found.body["email"], "target@example.com");
    app.get("/api/v1/users/999999", Some(&admin.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "User not found");
    for bad in [
        "0",
        "-3",
        "abc",
        "1.5",
        "99999999999999999999",
        "%27%20OR%201%3D1",
    ] {
        app.get(&format!("/api/v1/users/{bad}"), Some(&admin.access))
            .await
            .assert_validation(&["path", "user_id"]);
    }
}

async fn admins_update_users(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, user) = app.user("edit@example.com").await;
    let updated = app
        .put(
            &format!("/api/v1/users/{id}"),
            json!({ "email": "Edited@Example.com", "role": "admin" }),
            Some(&admin.access),
        )
        .await;
    updated.assert_status(StatusCode::OK);
    assert_eq!(updated.body["email"], "edited@example.com");
    assert_eq!(updated.body["role"], "admin");
    // Promotion takes effect on the user's existing token at once.
    app.get("/api/v1/users", Some(&user.access))
        .await
        .assert_status(StatusCode::OK);
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "role": "regular" }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.get("/api/v1/users", Some(&user.access))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Not enough permissions");

    app.patch(
        "/api/v1/users/424242",
        json!({ "role": "admin" }),
        Some(&admin.access),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "User not found");
    app.user("other@example.com").await;
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "email": "OTHER@example.com" }),
        Some(&admin.access),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "Email already registered");
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "password": "weak" }),
        Some(&admin.access),
    )
    .await
    .assert_validation(&["body", "password"]);
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "is_active": "no" }),
        Some(&admin.access),
    )
    .await
    .assert_validation(&["body", "is_active"]);
}

async fn deactivation_ends_the_users_tokens_at_once(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, user) = app.user("soon-inactive@example.com").await;
    app.deactivate(&admin, id).await;
    app.get("/api/v1/users/me", Some(&user.access))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
    app.refresh(&user.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Invalid refresh token");
    // Reactivation does not bring old sessions back.
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "is_active": true }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.get("/api/v1/users/me", Some(&user.access))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.login("soon-inactive@example.com", PASSWORD).await;
}

async fn an_admin_password_reset_ends_all_of_the_users_sessions(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, user) = app.user("reset@example.com").await;
    app.patch(
        &format!("/api/v1/users/{id}"),
        json!({ "password": OTHER_PASSWORD }),
        Some(&admin.access),
    )
    .await
    .assert_status(StatusCode::OK);
    app.assert_session_over(&user).await;
    app.login("reset@example.com", OTHER_PASSWORD).await;
    // The admin's own session is not affected.
    app.get("/api/v1/users/me", Some(&admin.access))
        .await
        .assert_status(StatusCode::OK);
}

async fn deleting_a_user_ends_their_tokens(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, user) = app.user("gone@example.com").await;
    let deleted = app
        .delete(&format!("/api/v1/users/{id}"), Some(&admin.access))
        .await;
    deleted.assert_status(StatusCode::OK);
    assert_eq!(deleted.body["email"], "gone@example.com");
    app.get("/api/v1/users/me", Some(&user.access))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
    app.refresh(&user.refresh)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    app.delete(&format!("/api/v1/users/{id}"), Some(&admin.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "User not found");
    // The address is free again.
    app.register("gone@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
}

async fn the_last_active_admin_cannot_be_removed(app: TestApp) {
    let (root_id, root) = app.admin("root@example.com").await;
    let uri = format!("/api/v1/users/{root_id}");
    for body in [json!({ "role": "regular" }), json!({ "is_active": false })] {
        app.patch(&uri, body, Some(&root.access))
            .await
            .assert_error(StatusCode::CONFLICT, "Cannot remove the last active admin");
    }
    app.delete(&uri, Some(&root.access))
        .await
        .assert_error(StatusCode::CONFLICT, "Cannot remove the last active admin");
    // An inactive admin does not count.
    let (second_id, _) = app.admin("second@example.com").await;
    app.deactivate(&root, second_id).await;
    app.delete(&uri, Some(&root.access))
        .await
        .assert_error(StatusCode::CONFLICT, "Cannot remove the last active admin");
    // With another active admin, the first one may go.
    app.patch(
        &format!("/api/v1/users/{second_id}"),
        json!({ "is_active": true }),
        Some(&root.access),
    )
    .await
    .assert_status(StatusCode::OK);
    let demoted = app
        .patch(&uri, json!({ "role": "regular" }), Some(&root.access))
        .await;
    demoted.assert_status(StatusCode::OK);
    assert_eq!(demoted.body["role"], "regular");
    let state = app.get("/api/v1/users/me", Some(&root.access)).await;
    assert_eq!(state.body["role"], "regular");
}

async fn deleting_my_account_needs_my_password_and_ends_my_tokens(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, user) = app.user("leaving@example.com").await;
    let other_device = app.login("leaving@example.com", PASSWORD).await;
    let delete_me = |body: Option<serde_json::Value>, token: Option<String>| {
        let app = &app;
        async move {
            app.call(Method::DELETE, "/api/v1/users/me", body, token.as_deref())
                .await
        }
    };
    let password = |p: &str| Some(json!({ "current_password": p }));
    delete_me(password(PASSWORD), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
    delete_me(password(OTHER_PASSWORD), Some(user.access.clone()))
        .await
        .assert_error(StatusCode::FORBIDDEN, "Incorrect password");
    delete_me(Some(json!({})), Some(user.access.clone()))
        .await
        .assert_validation(&["body", "current_password"]);
    delete_me(None, Some(user.access.clone()))
        .await
        .assert_validation(&["body"]);
    // Nothing of that deleted anything.
    app.get("/api/v1/users/me", Some(&user.access))
        .await
        .assert_status(StatusCode::OK);

    let deleted = delete_me(password(PASSWORD), Some(user.access.clone())).await;
    deleted.assert_status(StatusCode::OK);
    assert_eq!(deleted.body["id"], id);
    assert_eq!(deleted.body["email"], "leaving@example.com");
    assert!(deleted.body.get("password_hash").is_none());
    // Every session of the account ended with it.
    for tokens in [&user, &other_device] {
        app.get("/api/v1/users/me", Some(&tokens.access))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
        app.refresh(&tokens.refresh)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    app.login_response("leaving@example.com", PASSWORD)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
    app.get(&format!("/api/v1/users/{id}"), Some(&admin.access))
        .await
        .assert_error(StatusCode::NOT_FOUND, "User not found");
    // Audited as the profile page's deletion: by the user themselves.
    let events = app
        .audit_events(&admin, &format!("type=user_deleted&user_id={id}"))
        .await;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["actor_user_id"], id);
    assert_eq!(events[0]["subject_user_id"], id);
    assert_eq!(events[0]["details"]["by"], "self");
    assert_eq!(events[0]["details"]["email"], "leaving@example.com");
    assert_eq!(events[0]["by_administrator"], false);
}

async fn the_last_active_admin_cannot_delete_their_own_account(app: TestApp) {
    let (root_id, root) = app.admin("root@example.com").await;
    let body = json!({ "current_password": PASSWORD });
    app.call(
        Method::DELETE,
        "/api/v1/users/me",
        Some(body.clone()),
        Some(&root.access),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "Cannot remove the last active admin");
    app.get("/api/v1/users/me", Some(&root.access))
        .await
        .assert_status(StatusCode::OK);
    // With another active admin, they may go.
    app.admin("second@example.com").await;
    let deleted = app
        .call(
            Method::DELETE,
            "/api/v1/users/me",
            Some(body),
            Some(&root.access),
        )
        .await;
    deleted.assert_status(StatusCode::OK);
    assert_eq!(deleted.body["id"], root_id);
}

both_backends!(
    registration_creates_an_active_regular_user,
    anonymous_callers_cannot_sign_up_as_admin_or_inactive,
    admins_create_users_with_any_role,
    duplicate_emails_in_any_letter_case_are_refused,
    registration_validates_email_and_password,
    closed_registration_only_lets_admins_create_users,
    concurrent_registrations_of_one_email_create_one_user,
    me_requires_a_token,
    changing_my_email_needs_the_current_password,
    my_email_cannot_take_another_users_address,
    changing_my_password_signs_out_my_other_sessions,
    nobody_changes_their_own_role,
    regular_users_cannot_use_admin_routes,
    admins_list_users_with_filters_paging_and_a_total,
    the_user_search_follows_email_changes_and_deletions,
    list_paging_out_of_range_is_a_422,
    admins_read_one_user,
    admins_update_users,
    deactivation_ends_the_users_tokens_at_once,
    an_admin_password_reset_ends_all_of_the_users_sessions,
    deleting_a_user_ends_their_tokens,
    the_last_active_admin_cannot_be_removed,
    deleting_my_account_needs_my_password_and_ends_my_tokens,
    the_last_active_admin_cannot_delete_their_own_account,
);

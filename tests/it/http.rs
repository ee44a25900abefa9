//! HTTP-level behaviour: health, limits, malformed input, token attacks, the
//! home page.

use crate::common::{Backend, TestApp, JWT_SECRET, PASSWORD};
use axum::{
    body::Body,
    http::{Method, Request, StatusCode},
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use serde_json::json;

async fn health_and_readiness_answer(app: TestApp) {
    let health = app.get("/health", None).await;
    health.assert_status(StatusCode::OK);
    assert_eq!(health.body, json!({ "status": "healthy" }));
    app.get("/health/ready", None)
        .await
        .assert_status(StatusCode::OK);
}

async fn oversized_bodies_are_refused_with_413(app: TestApp) {
    let huge_password = "p".repeat(20 * 1024);
    let response = app
        .post(
            "/api/v1/users",
            json!({ "email": "big@example.com", "password": huge_password }),
            None,
        )
        .await;
    response.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    let megabyte = format!(
        "{{\"email\":\"a@example.com\",\"password\":\"{}\"}}",
        "x".repeat(1024 * 1024)
    );
    app.post_raw("/api/v1/auth/login", Some("application/json"), megabyte)
        .await
        .assert_status(StatusCode::PAYLOAD_TOO_LARGE);
    app.post_raw(
        "/api/v1/auth/refresh",
        Some("application/json"),
        "{\"refresh_token\":\"".to_owned() + &"r".repeat(100_000) + "\"}",
    )
    .await
    .assert_status(StatusCode::PAYLOAD_TOO_LARGE);
}

async fn malformed_json_and_wrong_types_are_4xx(app: TestApp) {
    for body in [
        "{",
        "{\"email\": \"a@example.com\",",
        "null",
        "[]",
        "\"text\"",
        "{\"email\": 5, \"password\": []}",
        "{\"email\": \"a\\u0000@example.com\", \"password\": \"x\"}",
    ] {
        let response = app
            .post_raw("/api/v1/users", Some("application/json"), body.to_owned())
            .await;
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            response.text
        );
        assert!(
            response.body["detail"].is_array(),
            "{body}: {}",
            response.text
        );
    }
    app.post_raw("/api/v1/users", Some("application/xml"), "<user/>")
        .await
        .assert_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        );
    let (_, tokens) = app.user("types@example.com").await;
    let mut request = Request::builder()
        .method(Method::PATCH)
        .uri("/api/v1/users/me")
        .header("authorization", format!("Bearer {}", tokens.access))
        .header("content-type", "application/json")
        .body(Body::from("{\"email\": [1, 2]}"))
        .expect("request");
    request
        .headers_mut()
        .insert("x-extra", "1".parse().expect("header"));
    app.send(request)
        .await
        .assert_validation(&["body", "email"]);
}

async fn users_collection_answers_with_and_without_trailing_slash(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let plain = app.get("/api/v1/users", Some(&admin.access)).await;
    let slash = app.get("/api/v1/users/", Some(&admin.access)).await;
    plain.assert_status(StatusCode::OK);
    slash.assert_status(StatusCode::OK);
    assert_eq!(plain.body, slash.body);
    app.register("slash@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    app.post(
        "/api/v1/users/",
        json!({ "email": "slash2@example.com", "password": PASSWORD }),
        None,
    )
    .await
    .assert_status(StatusCode::CREATED);
}

async fn unknown_api_routes_and_methods_answer_in_json(app: TestApp) {
    app.get("/api/v1/nope", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "Not Found");
    app.call(Method::DELETE, "/api/v1/auth/login", None, None)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
}

fn forge(header: serde_json::Value, claims: serde_json::Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

fn sign(claims: &serde_json::Value, key: &[u8], alg: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(alg),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .expect("sign")
}

async fn forged_and_broken_tokens_are_401_never_5xx(app: TestApp) {
    let (id, tokens) = app.user("victim@example.com").await;
    let payload = tokens.access.split('.').nth(1).expect("payload").to_owned();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&payload).expect("b64")).expect("json");
    let now = chrono::Utc::now().timestamp();

    let mut attacks = vec![
        forge(json!({ "alg": "none", "typ": "JWT" }), claims.clone(), ""),
        forge(json!({ "alg": "NoNe", "typ": "JWT" }), claims.clone(), ""),
        forge(
            json!({ "alg": "HS256", "typ": "JWT", "jwk": { "kty": "oct", "k": "c2VjcmV0" } }),
            claims.clone(),
            "x",
        ),
        sign(&claims, b"secret", jsonwebtoken::Algorithm::HS256),
        sign(&claims, b"", jsonwebtoken::Algorithm::HS256),
        sign(
            &claims,
            JWT_SECRET.as_bytes(),
            jsonwebtoken::Algorithm::HS512,
        ),
        format!(
            "{}.{}",
            tokens.access.split('.').next().expect("header"),
            payload
        ),
        format!("{}.x", tokens.access),
        format!("{}.", tokens.access.rsplit_once('.').expect("sig").0),
        "a".repeat(100_000),
    ];
    let mut tampered = claims.clone();
    tampered["sub"] = json!((id + 1).to_string());
    let parts: Vec<&str> = tokens.access.split('.').collect();
    attacks.push(format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(tampered.to_string()),
        parts[2]
    ));
    for (field, value) in [
        ("exp", json!(now - 10)),
        ("iss", json!("evil")),
        ("aud", json!("evil")),
        ("type", json!("refresh")),
        ("sub", json!("not-a-number")),
    ] {
        let mut bad = claims.clone();
        bad[field] = value;
        attacks.push(sign(
            &bad,
            JWT_SECRET.as_bytes(),
            jsonwebtoken::Algorithm::HS256,
        ));
    }
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    attacks.push(sign(
        &no_exp,
        JWT_SECRET.as_bytes(),
        jsonwebtoken::Algorithm::HS256,
    ));

    for token in &attacks {
        let response = app.get("/api/v1/users/me", Some(token)).await;
        response.assert_error(StatusCode::UNAUTHORIZED, "Could not validate credentials");
    }
    // The genuine token still works: the attacks above were refused for what they are.
    app.get("/api/v1/users/me", Some(&tokens.access))
        .await
        .assert_status(StatusCode::OK);
    // A validly signed token for a session that does not exist.
    let mut ghost = claims.clone();
    ghost["sid"] = json!(987654);
    app.get(
        "/api/v1/users/me",
        Some(&sign(
            &ghost,
            JWT_SECRET.as_bytes(),
            jsonwebtoken::Algorithm::HS256,
        )),
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
}

async fn tokens_in_the_query_string_are_ignored(app: TestApp) {
    let (_, tokens) = app.user("query@example.com").await;
    app.get(
        &format!("/api/v1/users/me?access_token={}", tokens.access),
        None,
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "Not authenticated");
}

async fn the_home_page_is_rendered_on_the_server(app: TestApp) {
    let response = app.get("/", None).await;
    response.assert_status(StatusCode::OK);
    assert!(response.headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/html"));
    assert!(
        response.text.contains("Authentication that is done right"),
        "{}",
        response.text
    );
    assert!(
        response.text.contains("/pkg/leptos-auth"),
        "hydration scripts are linked"
    );
    assert!(
        response.text.contains("leptos-auth.css"),
        "the stylesheet is linked"
    );
    let missing = app.get("/no-such-page", None).await;
    missing.assert_status(StatusCode::NOT_FOUND);
    assert!(missing.text.contains("Page not found"));
}

async fn the_openapi_document_describes_every_route(app: TestApp) {
    let response = app.get("/api/v1/openapi.json", None).await;
    response.assert_status(StatusCode::OK);
    let spec = &response.body;
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        spec["openapi"]
    );
    let expected = [
        ("/api/v1/auth/login", vec!["post"]),
        ("/api/v1/auth/refresh", vec!["post"]),
        ("/api/v1/auth/logout", vec!["post"]),
        ("/api/v1/auth/mfa", vec!["post"]),
        ("/api/v1/auth/confirm", vec!["post"]),
        ("/api/v1/users/me/mfa", vec!["get"]),
        ("/api/v1/users/me/mfa/totp", vec!["post", "delete"]),
        ("/api/v1/users/me/mfa/totp/confirm", vec!["post"]),
        ("/api/v1/users/me/mfa/recovery-codes", vec!["post"]),
        ("/api/v1/users/{user_id}/mfa", vec!["delete"]),
        ("/api/v1/users/me/passkeys", vec!["get"]),
        ("/api/v1/users/me/passkeys/register/start", vec!["post"]),
        ("/api/v1/users/me/passkeys/register/finish", vec!["post"]),
        (
            "/api/v1/users/me/passkeys/{passkey_id}",
            vec!["patch", "delete"],
        ),
        ("/api/v1/auth/passkey/start", vec!["post"]),
        ("/api/v1/auth/passkey/finish", vec!["post"]),
        ("/api/v1/auth/password-recovery", vec!["post"]),
        ("/api/v1/auth/reset-password", vec!["post"]),
        ("/api/v1/auth/verify-email", vec!["post"]),
        ("/api/v1/auth/resend-verification", vec!["post"]),
        ("/api/v1/users/me/resend-verification", vec!["post"]),
        ("/api/v1/users/{user_id}/resend-verification", vec!["post"]),
        ("/api/v1/users", vec!["get", "post"]),
        ("/api/v1/users/me", vec!["get", "put", "patch", "delete"]),
        (
            "/api/v1/users/{user_id}",
            vec!["get", "put", "patch", "delete"],
        ),
        ("/api/v1/users/me/sessions", vec!["get", "delete"]),
        ("/api/v1/users/me/sessions/{session_id}", vec!["delete"]),
        ("/api/v1/users/{user_id}/sessions", vec!["get", "delete"]),
        ("/api/v1/audit", vec!["get"]),
        ("/api/v1/users/me/audit", vec!["get"]),
        ("/health", vec!["get"]),
        ("/health/ready", vec!["get"]),
    ];
    let mut ids = std::collections::HashSet::new();
    for (path, methods) in &expected {
        for method in methods {
            let operation = &spec["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            // Operation ids must be unique (PUT and PATCH share handlers): a
            // validator refused the first version of this document for it.
            let id = operation["operationId"]
                .as_str()
                .expect("operationId")
                .to_owned();
            assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            assert!(operation["responses"]
                .as_object()
                .is_some_and(|r| !r.is_empty()));
        }
    }
    assert_eq!(
        spec["paths"].as_object().map(|p| p.len()),
        Some(expected.len())
    );
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(
        schemes["oauth2"]["flows"]["password"]["tokenUrl"],
        "/api/v1/auth/login"
    );
    let list = &spec["paths"]["/api/v1/users"]["get"];
    assert!(list["responses"]["200"]["headers"]["X-Total-Count"].is_object());
    let limit = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "limit")
        .expect("limit");
    assert_eq!(limit["schema"]["maximum"], 100);
    assert_eq!(limit["schema"]["minimum"], 1);
    // Throttled endpoints document the 429 and its Retry-After.
    for (path, method) in [
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/users", "post"),
    ] {
        let throttled = &spec["paths"][path][method]["responses"]["429"];
        assert!(
            throttled["headers"]["Retry-After"].is_object(),
            "{method} {path}: {throttled}"
        );
    }
    let audit = &spec["paths"]["/api/v1/audit"]["get"];
    let names: Vec<&str> = audit["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["user_id", "type", "since", "until", "skip", "limit"]
    );
    assert!(audit["responses"]["200"]["headers"]["X-Total-Count"].is_object());
    let login = &spec["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"];
    assert!(
        login["application/json"].is_object()
            && login["application/x-www-form-urlencoded"].is_object()
    );
}

async fn the_docs_page_is_served_without_a_cdn(app: TestApp) {
    let response = app.get("/docs", None).await;
    response.assert_status(StatusCode::OK);
    assert!(response.text.contains("/docs/swagger-ui-bundle.js"));
    assert!(!response.text.contains("https://"), "no external assets");
    let csp = response.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("script-src 'self';") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
}

/// The `minLength`/`maxLength` of a password property of a body schema.
fn password_bounds(spec: &serde_json::Value, schema: &str, property: &str) -> (u64, u64) {
    let field = &spec["components"]["schemas"][schema]["properties"][property];
    let bound = |key: &str| {
        field[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{schema}.{property} has no {key}: {field}"))
    };
    (bound("minLength"), bound("maxLength"))
}

async fn the_openapi_password_bounds_are_the_configured_policy(backend: Backend) {
    for (setting, min) in [(None, 12), (Some("16"), 16), (Some("8"), 8)] {
        let overrides: Vec<(&str, &str)> = setting
            .map(|s| vec![("PASSWORD_MIN_LENGTH", s)])
            .unwrap_or_default();
        let app = TestApp::start(backend, &overrides).await;
        let spec = app.get("/api/v1/openapi.json", None).await.body;
        for (schema, property) in [
            ("CreateUserBody", "password"),
            ("UpdateMeBody", "password"),
            ("UpdateUserBody", "password"),
            ("ResetPasswordBody", "new_password"),
        ] {
            assert_eq!(
                password_bounds(&spec, schema, property),
                (min, 128),
                "{schema}.{property} with PASSWORD_MIN_LENGTH={setting:?}"
            );
        }
        // A current password is whatever it is: no bounds.
        let current =
            &spec["components"]["schemas"]["DeleteMeBody"]["properties"]["current_password"];
        assert!(
            current.is_object() && current["minLength"].is_null(),
            "{current}"
        );
        // And the policy the document states is the one the API applies.
        let short = "k".repeat(usize::try_from(min).expect("small") - 1);
        let refused = app.register("bounds@example.com", &short).await;
        refused.assert_validation(&["body", "password"]);
        assert_eq!(
            refused.body["detail"][0]["msg"],
            format!("Password must be at least {min} characters long")
        );
    }
}

async fn the_docs_carry_the_pages_security_headers(app: TestApp) {
    for path in ["/docs", "/api/v1/openapi.json"] {
        let response = app.get(path, None).await;
        response.assert_status(StatusCode::OK);
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "same-origin"),
        ] {
            assert_eq!(
                response.headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{path}: {name}"
            );
        }
    }
    // The docs page keeps its own policy (Swagger UI's inline styles).
    let docs = app.get("/docs", None).await;
    let csp = docs.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(csp.contains("style-src 'self' 'unsafe-inline'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

both_backends!(
    health_and_readiness_answer,
    oversized_bodies_are_refused_with_413,
    malformed_json_and_wrong_types_are_4xx,
    users_collection_answers_with_and_without_trailing_slash,
    unknown_api_routes_and_methods_answer_in_json,
    forged_and_broken_tokens_are_401_never_5xx,
    tokens_in_the_query_string_are_ignored,
    the_home_page_is_rendered_on_the_server,
    the_openapi_document_describes_every_route,
    the_docs_page_is_served_without_a_cdn,
    the_docs_carry_the_pages_security_headers,
);

each_backend!(the_openapi_password_bounds_are_the_configured_policy);

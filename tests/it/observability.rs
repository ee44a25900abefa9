//! Logs and metrics of the real binary: one JSON object per line carrying the
//! request's fields, request ids echoed or replaced, nothing secret in the
//! logs, and Prometheus metrics on their own port only.

use crate::{
    cli::{http, metric, scrape, Server},
    common::{test_settings, PASSWORD},
};
use leptos_auth::{config::Config, startup::Application};
use reqwest::{header, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const REQUEST_ID: &str = "x-request-id";

/// `POST` a JSON body; returns the status, the request id and the body.
async fn post_json(
    server: &Server,
    path: &str,
    body: Value,
    token: Option<&str>,
) -> (StatusCode, String, Value) {
    let mut request = http().post(server.url(path)).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    answer(request.send().await.expect("response")).await
}

async fn get_json(server: &Server, path: &str, token: &str) -> (StatusCode, String, Value) {
    let response = http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    answer(response).await
}

async fn answer(response: reqwest::Response) -> (StatusCode, String, Value) {
    let status = response.status();
    let id = request_id(&response);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, id, body)
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(REQUEST_ID)
        .expect("every response has an x-request-id")
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// A generated request id: a UUID.
fn is_generated(id: &str) -> bool {
    id.len() == 36
        && id
            .chars()
            .all(|c| (c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) || c == '-')
}

/// A plain (no JavaScript) form post to a server function, as a browser
/// sends it; returns the response and the cookies it sets (name -> value).
async fn form_post(
    server: &Server,
    function: &str,
    form: &[(&str, &str)],
) -> (StatusCode, BTreeMap<String, String>) {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = http()
        .post(server.url(&format!("/fn/{function}")))
        .header(header::ORIGIN, server.url(""))
        .header(header::ACCEPT, "text/html")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("response");
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| {
            let pair = value.to_str().ok()?.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            (!value.is_empty()).then(|| (name.to_owned(), value.to_owned()))
        })
        .collect();
    (response.status(), cookies)
}

/// Signs up and in through the API; returns (user id, access, refresh).
async fn signed_in(server: &Server, email: &str) -> (i64, String, String) {
    let (status, _, user) = post_json(
        server,
        "/api/v1/users",
        json!({ "email": email, "password": PASSWORD }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let (status, _, tokens) = post_json(
        server,
        "/api/v1/auth/login",
        json!({ "email": email, "password": PASSWORD }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (
        user["id"].as_i64().expect("id"),
        tokens["access_token"].as_str().expect("access").to_owned(),
        tokens["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned(),
    )
}

/// The JSON request line of the request with this id.
fn request_line<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|line| line["message"] == "request" && line["span"]["request_id"] == id)
        .unwrap_or_else(|| panic!("no request line for {id} in {lines:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let mut server = Server::start(&[("LOG_FORMAT", "json")]).await;
    let (user_id, access, _) = signed_in(&server, "fields@example.com").await;
    let (status, me_id, _) = get_json(&server, "/api/v1/users/me", &access).await;
    assert_eq!(status, StatusCode::OK);
    let path = format!("/api/v1/users/{user_id}?fields=query-never-logged");
    let (status, by_id, _) = get_json(&server, &path, &access).await;
    let by_id_status = status.as_u16();
    let (status, anonymous_id, _) = post_json(
        &server,
        "/api/v1/auth/login",
        json!({ "email": "nobody@example.com", "password": PASSWORD }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let page = http()
        .get(server.url("/no-such-page"))
        .send()
        .await
        .expect("page");
    let page_id = request_id(&page);
    server.stop().await;

    assert!(server.stderr().is_empty(), "{:?}", server.stderr());
    let lines: Vec<Value> = server
        .stdout()
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
        assert!(line["message"].is_string(), "{line}");
    }
    assert!(lines.iter().any(|line| line["message"] == "stopped"));

    let me = request_line(&lines, &me_id);
    assert_eq!(me["level"], "INFO");
    assert_eq!(me["span"]["method"], "GET");
    assert_eq!(me["span"]["route"], "/api/v1/users/me");
    assert_eq!(me["span"]["user_id"], user_id);
    assert_eq!(me["status"], 200);
    assert!(
        me["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{me}"
    );

    // The route pattern, never the id or the query string.
    let by_id = request_line(&lines, &by_id);
    assert_eq!(by_id["span"]["route"], "/api/v1/users/{user_id}");
    assert_eq!(by_id["span"]["user_id"], user_id);
    assert_eq!(by_id["status"], by_id_status);
    assert!(!server.logs().contains("query-never-logged"));

    let anonymous = request_line(&lines, &anonymous_id);
    assert_eq!(anonymous["span"]["method"], "POST");
    assert_eq!(anonymous["span"]["route"], "/api/v1/auth/login");
    assert_eq!(anonymous["status"], 401);
    assert!(anonymous["span"].get("user_id").is_none(), "{anonymous}");

    // No route matched: the path.
    let page = request_line(&lines, &page_id);
    assert_eq!(page["span"]["route"], "/no-such-page");
    assert_eq!(page["status"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_when_usable_and_replaced_otherwise() {
    let mut server = Server::start(&[("LOG_FORMAT", "json")]).await;
    let health = |id: Option<header::HeaderValue>| {
        let mut request = http().get(server.url("/health"));
        if let Some(id) = id {
            request = request.header(REQUEST_ID, id);
        }
        async move {
            let response = request.send().await.expect("response");
            assert_eq!(response.status(), StatusCode::OK);
            request_id(&response)
        }
    };

    let given = "edge-7f3a9c21/req:42";
    assert_eq!(
        health(Some(header::HeaderValue::from_static(given))).await,
        given
    );

    let first = health(None).await;
    let second = health(None).await;
    assert!(
        is_generated(&first) && is_generated(&second),
        "{first} {second}"
    );
    assert_ne!(first, second);

    let too_long = "a".repeat(129);
    let unusable = [
        header::HeaderValue::from_str(&too_long).expect("value"),
        header::HeaderValue::from_static("two words"),
        header::HeaderValue::from_static("tab\there"),
        header::HeaderValue::from_bytes(b"menu-caf\xe9").expect("obs-text"),
    ];
    for id in unusable {
        let shown = format!("{id:?}");
        let replaced = health(Some(id)).await;
        assert!(is_generated(&replaced), "{shown} gave {replaced}");
    }
    // Two ids in one request: neither is believed.
    let response = http()
        .get(server.url("/health"))
        .header(REQUEST_ID, "one")
        .header(REQUEST_ID, "two")
        .send()
        .await
        .expect("response");
    assert!(is_generated(&request_id(&response)));
    server.stop().await;

    let lines: Vec<Value> = server
        .stdout()
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .collect();
    assert_eq!(request_line(&lines, given)["span"]["route"], "/health");
    request_line(&lines, &first);
    let logs = server.logs();
    for never in [
        too_long.as_str(),
        "two words",
        "tab\there",
        "tab\\there",
        // Not "caf" alone: generated ids are hex and may contain it.
        "menu-caf",
    ] {
        assert!(!logs.contains(never), "{never:?} was logged");
    }
}

/// Everything a client sends or receives that must stay out of the logs,
/// across the API and the pages, in both formats.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_cookie_or_email_reaches_the_logs() {
    for format in ["pretty", "json"] {
        let mut server = Server::start(&[("LOG_FORMAT", format)]).await;
        let api_email = "api.user-private@example.com";
        let form_email = "form.user-private@example.com";
        let unknown_email = "unknown.person-private@example.com";
        let mut secrets: Vec<String> = vec![
            PASSWORD.to_owned(),
            api_email.to_owned(),
            form_email.to_owned(),
            unknown_email.to_owned(),
        ];

        // Sign up and in through the API, refresh, call /users/me.
        let (user_id, access, refresh) = signed_in(&server, api_email).await;
        let (status, _, rotated) = post_json(
            &server,
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh }),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rotated}");
        let new_access = rotated["access_token"].as_str().expect("access").to_owned();
        let new_refresh = rotated["refresh_token"]
            .as_str()
            .expect("refresh")
            .to_owned();
        let (status, me_id, me) = get_json(&server, "/api/v1/users/me", &new_access).await;
        assert_eq!(status, StatusCode::OK, "{me}");
        secrets.extend([access, refresh, new_access, new_refresh]);

        // Sign up and in with the pages' forms, then load a page with the cookies.
        let (status, signup_cookies) = form_post(
            &server,
            "register",
            &[
                ("email", form_email),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .await;
        assert!(status.is_redirection(), "{status}");
        let (status, cookies) = form_post(
            &server,
            "login",
            &[("email", api_email), ("password", PASSWORD)],
        )
        .await;
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(cookies.len(), 2, "{cookies:?}");
        let cookie_header = cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        let page = http()
            .get(server.url("/profile"))
            .header(header::COOKIE, cookie_header)
            .send()
            .await
            .expect("page");
        assert_eq!(page.status(), StatusCode::OK);
        let page_id = request_id(&page);
        secrets.extend(signup_cookies.into_values());
        secrets.extend(cookies.into_values());

        // A failed sign-in with an address that has no account.
        let (status, _, _) = post_json(
            &server,
            "/api/v1/auth/login",
            json!({ "email": unknown_email, "password": PASSWORD }),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        server.stop().await;

        let logs = server.logs();
        // The requests were logged, with the user where known...
        assert!(logs.contains(&me_id) && logs.contains(&page_id), "{logs}");
        let user_field = match format {
            "json" => format!("\"user_id\":{user_id}"),
            _ => format!("user_id={user_id}"),
        };
        let page_line = logs
            .lines()
            .find(|line| line.contains(&page_id) && line.contains("status"))
            .expect("page request line");
        assert!(page_line.contains(&user_field), "{page_line}");
        // ...and nothing secret.
        for secret in &secrets {
            assert!(
                !logs.contains(secret.as_str()),
                "{format}: {secret} logged:\n{logs}"
            );
        }
    }
}

/// In production, mail goes over SMTP and its links never reach the logs;
/// addresses appear masked only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emailed_links_and_addresses_stay_out_of_production_logs() {
    let sink = crate::common::smtp::SmtpSink::start().await;
    let smtp_url = sink.url();
    let mut server = Server::start(&[
        ("APP_ENV", "production"),
        ("DATA_ENCRYPTION_KEY", crate::common::DATA_ENCRYPTION_KEY),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
        ("PUBLIC_URL", "https://auth.example.test"),
        ("SMTP_URL", &smtp_url),
        ("MAIL_FROM", "no-reply@example.com"),
    ])
    .await;
    let email = "mail.user-private@example.com";
    signed_in(&server, email).await;
    let (status, _, _) = post_json(
        &server,
        "/api/v1/auth/password-recovery",
        json!({ "email": email }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sink.messages_to(email).len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "messages not delivered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let messages = sink.messages_to(email);
    let verify = messages[0].token("https://auth.example.test", "/verify-email");
    let reset = messages[1].token("https://auth.example.test", "/reset-password");
    let (status, _, _) = post_json(
        &server,
        "/api/v1/auth/reset-password",
        json!({ "token": reset, "new_password": "violet tundra lantern orbit" }),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
    let logs = server.logs();
    assert!(
        logs.contains("m***@example.com"),
        "sends are logged, masked:\n{logs}"
    );
    for secret in [verify.as_str(), reset.as_str(), email, "violet tundra"] {
        assert!(!logs.contains(secret), "{secret} logged:\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_sign_ins_and_refreshes_on_their_own_port() {
    let mut server = Server::start(&[
        ("METRICS_ADDR", "127.0.0.1:0"),
        // The second wrong password for an account is throttled.
        ("LOGIN_MAX_FAILURES", "1"),
        // A reused refresh token is refused at once.
        ("REFRESH_REUSE_GRACE_SECONDS", "0"),
    ])
    .await;
    let email = "metrics@example.com";
    let (_, _, refresh) = signed_in(&server, email).await;
    let login = |password: &'static str| {
        post_json(
            &server,
            "/api/v1/auth/login",
            json!({ "email": email, "password": password }),
            None,
        )
    };
    assert_eq!(
        login("wrong password entirely").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login("wrong password again").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let refresh_with = |token: String| {
        post_json(
            &server,
            "/api/v1/auth/refresh",
            json!({ "refresh_token": token }),
            None,
        )
    };
    assert_eq!(refresh_with(refresh.clone()).await.0, StatusCode::OK);
    assert_eq!(refresh_with(refresh).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh_with("not-a-refresh-token".to_owned()).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The site's port has no /metrics.
    let site = http()
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("site");
    assert_eq!(site.status(), StatusCode::NOT_FOUND);

    let text = scrape(&server).await;
    let value =
        |series: &str| metric(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    for (series, expected) in [
        (r#"auth_login_attempts_total{outcome="success"}"#, 1.0),
        (r#"auth_login_attempts_total{outcome="failure"}"#, 1.0),
        (r#"auth_login_attempts_total{outcome="throttled"}"#, 1.0),
        (r#"auth_refresh_attempts_total{outcome="rotated"}"#, 1.0),
        (
            r#"auth_refresh_attempts_total{outcome="reuse_detected"}"#,
            1.0,
        ),
        (r#"auth_refresh_attempts_total{outcome="invalid"}"#, 1.0),
        (
            r#"http_requests_total{method="POST",route="/api/v1/users",status="201"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="200"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="401"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="429"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="POST",route="/api/v1/auth/refresh",status="200"}"#,
            1.0,
        ),
        (
            r#"http_requests_total{method="POST",route="/api/v1/auth/refresh",status="401"}"#,
            2.0,
        ),
        (
            r#"http_requests_total{method="GET",route="unmatched",status="404"}"#,
            1.0,
        ),
        (
            r#"http_request_duration_seconds_count{method="POST",route="/api/v1/auth/login",status="200"}"#,
            1.0,
        ),
        (
            r#"http_request_duration_seconds_bucket{method="POST",route="/api/v1/auth/login",status="200",le="+Inf"}"#,
            1.0,
        ),
        // Sign-up hash, then two verifications; the throttled attempt hashes nothing.
        ("argon2_queue_wait_seconds_count", 3.0),
        ("http_requests_in_flight", 0.0),
        // The only session was revoked when its old refresh token came back.
        ("auth_active_sessions", 0.0),
    ] {
        assert_eq!(value(series), expected, "{series}");
    }
    assert!(value("db_pool_connections") >= 1.0);
    assert!(value("db_pool_idle_connections") <= value("db_pool_connections"));
    for family in [
        "# TYPE http_requests_total counter",
        "# TYPE http_request_duration_seconds histogram",
        "# TYPE argon2_queue_wait_seconds histogram",
        "# TYPE auth_login_attempts_total counter",
        "# TYPE db_pool_connections gauge",
        "# TYPE auth_active_sessions gauge",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    // Only /metrics on the metrics port.
    let other = http()
        .get(server.metrics_url().replace("/metrics", "/health"))
        .send()
        .await
        .expect("metrics port");
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    server.stop().await;
}

/// Tests start many instances in one process: the global recorder is
/// installed once and shared, never a panic on the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_in_one_process_share_the_metrics_recorder() {
    let mut addresses = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let mut vars = test_settings(&url, dir.path());
        vars.insert("LEPTOS_SITE_ADDR".into(), "127.0.0.1:0".into());
        vars.insert("METRICS_ADDR".into(), "127.0.0.1:0".into());
        let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("valid");
        let app = Application::build(config).await.expect("builds");
        let addr = app.metrics_addr().expect("metrics on").expect("bound");
        addresses.push(addr);
    }
    assert_ne!(addresses[0], addresses[1]);
    assert!(leptos_auth::metrics::recorder().is_ok());
}

//! The browser side through the real router, without a browser: server
//! functions, cookie sessions, CSRF defence, page guards and headers.

use crate::common::{Backend, TestApp, TestResponse, MAIL_PUBLIC_URL, OTHER_PASSWORD, PASSWORD};
use axum::{
    body::Body,
    http::{header, Method, Request, StatusCode},
};
use serde_json::json;
use std::collections::BTreeMap;

const ORIGIN: &str = "http://localhost";
const ACCESS: &str = "__Host-leptos-auth-access";
const REFRESH: &str = "__Host-leptos-auth-refresh";

/// The cookies a browser would hold.
#[derive(Debug, Clone, Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    /// Applies the `Set-Cookie` headers of a response (Max-Age=0 deletes).
    fn update(&mut self, response: &TestResponse) {
        for value in response.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().expect("ascii");
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if attributes.contains("Max-Age=0") || value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> Option<&String> {
        self.0.get(name)
    }
}

fn set_cookies(response: &TestResponse) -> Vec<String> {
    response
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// A server-function call as the hydrated app makes it (JSON answer).
async fn call_fn(
    app: &TestApp,
    name: &str,
    form: &[(&str, &str)],
    jar: &Jar,
    origin: Option<&str>,
) -> TestResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut request = Request::builder()
        .method(Method::POST)
        .uri(format!("/fn/{name}"))
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    if !jar.0.is_empty() {
        request = request.header(header::COOKIE, jar.header());
    }
    app.send(request.body(Body::from(body)).expect("request"))
        .await
}

/// A page load.
async fn page(app: &TestApp, path: &str, jar: &Jar) -> TestResponse {
    let mut request = Request::builder()
        .uri(path)
        .header(header::HOST, "localhost")
        .header(header::ACCEPT, "text/html");
    if !jar.0.is_empty() {
        request = request.header(header::COOKIE, jar.header());
    }
    app.send(request.body(Body::empty()).expect("request"))
        .await
}

/// Signs in through the login server function and returns the cookies.
async fn browser_login(app: &TestApp, email: &str, password: &str) -> Jar {
    let mut jar = Jar::default();
    let response = call_fn(
        app,
        "login",
        &[("email", email), ("password", password), ("next", "")],
        &jar,
        Some(ORIGIN),
    )
    .await;
    response.assert_status(StatusCode::OK);
    jar.update(&response);
    assert!(
        jar.get(ACCESS).is_some() && jar.get(REFRESH).is_some(),
        "{:?}",
        set_cookies(&response)
    );
    jar
}

fn location(response: &TestResponse) -> &str {
    response
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn signing_in_sets_http_only_host_cookies(app: TestApp) {
    app.user("cookie@example.com").await;
    let response = call_fn(
        &app,
        "login",
        &[
            ("email", "cookie@example.com"),
            ("password", PASSWORD),
            ("next", ""),
        ],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    response.assert_status(StatusCode::OK);
    let cookies = set_cookies(&response);
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in &cookies {
        assert!(
            cookie.starts_with(ACCESS) || cookie.starts_with(REFRESH),
            "{cookie}"
        );
        for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.contains("Domain"), "{cookie}");
    }
    // The tokens are not in the body.
    assert!(!response.text.contains("eyJ"), "{}", response.text);
    // The session is a real one: the API accepts the access cookie's token.
    let mut jar = Jar::default();
    jar.update(&response);
    app.get("/api/v1/users/me", jar.get(ACCESS).map(String::as_str))
        .await
        .assert_status(StatusCode::OK);
}

async fn without_secure_cookies_the_names_lose_the_host_prefix(default_app: TestApp) {
    let app = TestApp::start(default_app.backend, &[("COOKIE_SECURE", "false")]).await;
    app.user("plain@example.com").await;
    let response = call_fn(
        &app,
        "login",
        &[
            ("email", "plain@example.com"),
            ("password", PASSWORD),
            ("next", ""),
        ],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    for cookie in set_cookies(&response) {
        assert!(cookie.starts_with("leptos-auth-"), "{cookie}");
        assert!(!cookie.contains("Secure"), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
    }
}

async fn a_plain_form_post_is_redirected_to_next_or_back_with_the_error(app: TestApp) {
    app.user("form@example.com").await;
    let post = |password: &'static str, next: &'static str| {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("email", "form@example.com"),
                ("password", password),
                ("next", next),
            ])
            .finish();
        Request::builder()
            .method(Method::POST)
            .uri("/fn/login")
            .header(header::HOST, "localhost")
            .header(header::ORIGIN, ORIGIN)
            .header(
                header::REFERER,
                "http://localhost/login?next=%2Fadmin%2Fusers",
            )
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body))
            .expect("request")
    };
    let ok = app.send(post(PASSWORD, "/admin/users")).await;
    assert_eq!(ok.status, StatusCode::FOUND, "{}", ok.text);
    assert_eq!(location(&ok), "/admin/users");
    let external = app.send(post(PASSWORD, "https://evil.example/")).await;
    assert_eq!(location(&external), "/profile");
    let failed = app.send(post(OTHER_PASSWORD, "/admin/users")).await;
    assert!(failed.status.is_redirection(), "{}", failed.status);
    assert!(location(&failed)
        .starts_with("http://localhost/login?next=%2Fadmin%2Fusers&__path=%2Ffn%2Flogin&__err="));
    assert!(set_cookies(&failed).is_empty());
}

async fn cross_origin_posts_are_refused(app: TestApp) {
    app.user("csrf@example.com").await;
    let jar = browser_login(&app, "csrf@example.com", PASSWORD).await;
    let evil = call_fn(&app, "logout", &[], &jar, Some("https://evil.example")).await;
    evil.assert_error(StatusCode::FORBIDDEN, "Cross-site request refused");
    let subdomain = call_fn(
        &app,
        "logout",
        &[],
        &jar,
        Some("http://localhost.evil.example"),
    )
    .await;
    subdomain.assert_status(StatusCode::FORBIDDEN);
    let null = call_fn(&app, "logout", &[], &jar, Some("null")).await;
    null.assert_status(StatusCode::FORBIDDEN);
    // Without Origin, Sec-Fetch-Site decides.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/fn/logout")
        .header(header::HOST, "localhost")
        .header("sec-fetch-site", "cross-site")
        .header(header::COOKIE, jar.header())
        .body(Body::empty())
        .expect("request");
    app.send(request).await.assert_status(StatusCode::FORBIDDEN);
    // The session survived all of that.
    app.get("/api/v1/users/me", jar.get(ACCESS).map(String::as_str))
        .await
        .assert_status(StatusCode::OK);
    let mine = page(&app, "/profile", &jar).await;
    mine.assert_status(StatusCode::OK);
    assert!(mine.text.contains("csrf@example.com"));
}

async fn a_regular_user_calling_an_admin_function_gets_403(app: TestApp) {
    app.admin("root@example.com").await;
    let (id, _) = app.user("plain@example.com").await;
    let jar = browser_login(&app, "plain@example.com", PASSWORD).await;
    let list = call_fn(&app, "list_users", &[], &jar, Some(ORIGIN)).await;
    list.assert_status(StatusCode::FORBIDDEN);
    assert_eq!(list.body, json!("Forbidden"));
    let id = id.to_string();
    let promote = call_fn(
        &app,
        "update_user",
        &[
            ("id", &id),
            ("email", "plain@example.com"),
            ("role", "admin"),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    promote.assert_status(StatusCode::FORBIDDEN);
    call_fn(&app, "user_sessions", &[("id", &id)], &jar, Some(ORIGIN))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    call_fn(&app, "sign_out_user", &[("id", &id)], &jar, Some(ORIGIN))
        .await
        .assert_status(StatusCode::FORBIDDEN);
    let me = call_fn(&app, "my_account", &[], &jar, Some(ORIGIN)).await;
    assert_eq!(me.body["role"], "regular");
    // The admin page is a 403 page for them, and a sign-in redirect for anonymous visitors.
    let forbidden = page(&app, "/admin/users", &jar).await;
    forbidden.assert_status(StatusCode::FORBIDDEN);
    assert!(forbidden.text.contains("Access denied"));
    let anonymous = page(&app, "/admin/users?q=x", &Jar::default()).await;
    assert_eq!(anonymous.status, StatusCode::FOUND);
    assert_eq!(location(&anonymous), "/login?next=%2Fadmin%2Fusers%3Fq%3Dx");
}

async fn admins_manage_users_through_server_functions(app: TestApp) {
    app.admin("root@example.com").await;
    let jar = browser_login(&app, "root@example.com", PASSWORD).await;
    let created = call_fn(
        &app,
        "create_user",
        &[
            ("email", "made@example.com"),
            ("password", OTHER_PASSWORD),
            ("role", "regular"),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    created.assert_status(StatusCode::OK);
    let list = call_fn(
        &app,
        "list_users",
        &[("q", "made"), ("per_page", "10")],
        &jar,
        Some(ORIGIN),
    )
    .await;
    list.assert_status(StatusCode::OK);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["limit"], 10);
    let id = list.body["users"][0]["id"]
        .as_i64()
        .expect("id")
        .to_string();
    let page_view = page(&app, &format!("/admin/users/{id}"), &jar).await;
    page_view.assert_status(StatusCode::OK);
    assert!(page_view.text.contains("made@example.com"));
    let weak = call_fn(
        &app,
        "set_user_password",
        &[("id", &id), ("password", "weak"), ("confirm", "weak")],
        &jar,
        Some(ORIGIN),
    )
    .await;
    weak.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.body["Invalid"]["field"], "password");
    let unconfirmed = call_fn(&app, "delete_user", &[("id", &id)], &jar, Some(ORIGIN)).await;
    assert_eq!(unconfirmed.body["Invalid"]["field"], "confirm");
    call_fn(
        &app,
        "delete_user",
        &[("id", &id), ("confirm", "yes")],
        &jar,
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::OK);
    let gone = page(&app, &format!("/admin/users/{id}"), &jar).await;
    gone.assert_status(StatusCode::NOT_FOUND);
}

async fn a_user_deactivated_through_the_api_loses_their_browser_session(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    let (id, _) = app.user("soon-gone@example.com").await;
    let mut jar = browser_login(&app, "soon-gone@example.com", PASSWORD).await;
    page(&app, "/profile", &jar)
        .await
        .assert_status(StatusCode::OK);
    app.deactivate(&admin, id).await;
    let after = page(&app, "/profile", &jar).await;
    assert_eq!(after.status, StatusCode::FOUND, "{}", after.text);
    assert_eq!(location(&after), "/login?next=%2Fprofile");
    jar.update(&after);
    assert!(
        jar.get(ACCESS).is_none() && jar.get(REFRESH).is_none(),
        "cookies cleared: {jar:?}"
    );
    call_fn(&app, "my_account", &[], &jar, Some(ORIGIN))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn an_expired_access_cookie_is_refreshed_and_a_reused_refresh_cookie_ends_the_session(
    app: TestApp,
) {
    app.user("rotate@example.com").await;
    let jar = browser_login(&app, "rotate@example.com", PASSWORD).await;
    // The browser dropped the expired access cookie; only the refresh cookie is left.
    let mut stale = Jar::default();
    stale.0.insert(
        REFRESH.to_owned(),
        jar.get(REFRESH).expect("refresh").clone(),
    );
    let refreshed = page(&app, "/profile", &stale).await;
    refreshed.assert_status(StatusCode::OK);
    assert!(refreshed.text.contains("rotate@example.com"));
    let mut fresh = stale.clone();
    fresh.update(&refreshed);
    assert!(fresh.get(ACCESS).is_some());
    assert_ne!(
        fresh.get(REFRESH),
        stale.get(REFRESH),
        "the refresh token was rotated"
    );
    page(&app, "/profile", &fresh)
        .await
        .assert_status(StatusCode::OK);

    // Someone replays the old refresh cookie: reuse. The session is over for everyone.
    let replay = page(&app, "/profile", &stale).await;
    assert_eq!(replay.status, StatusCode::FOUND);
    assert!(location(&replay).starts_with("/login"));
    let mut newest_refresh_only = Jar::default();
    newest_refresh_only.0.insert(
        REFRESH.to_owned(),
        fresh.get(REFRESH).expect("refresh").clone(),
    );
    let after_reuse = page(&app, "/profile", &newest_refresh_only).await;
    assert_eq!(after_reuse.status, StatusCode::FOUND);
    let with_access = page(&app, "/profile", &fresh).await;
    assert_eq!(
        with_access.status,
        StatusCode::FOUND,
        "the access cookie of a revoked session is refused"
    );
}

async fn signing_out_revokes_the_session_and_clears_the_cookies(app: TestApp) {
    app.user("out@example.com").await;
    let jar = browser_login(&app, "out@example.com", PASSWORD).await;
    let response = call_fn(&app, "logout", &[], &jar, Some(ORIGIN)).await;
    response.assert_status(StatusCode::OK);
    let mut after = jar.clone();
    after.update(&response);
    assert!(after.0.is_empty(), "{after:?}");
    // Even a client that kept the old cookies is signed out.
    assert_eq!(page(&app, "/profile", &jar).await.status, StatusCode::FOUND);
    app.refresh(jar.get(REFRESH).expect("refresh"))
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
}

async fn browser_registration_follows_the_same_rules_as_the_api(app: TestApp) {
    let jar = Jar::default();
    let weak = call_fn(
        &app,
        "register",
        &[
            ("email", "new@example.com"),
            ("password", "password1234"),
            ("confirm", "password1234"),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    weak.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(weak.body["Invalid"]["field"], "password");
    assert!(weak.body["Invalid"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("too weak")));
    let differ = call_fn(
        &app,
        "register",
        &[
            ("email", "new@example.com"),
            ("password", PASSWORD),
            ("confirm", OTHER_PASSWORD),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    assert_eq!(differ.body["Invalid"]["field"], "confirm");
    let ok = call_fn(
        &app,
        "register",
        &[
            ("email", "New@Example.com"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    ok.assert_status(StatusCode::OK);
    assert_eq!(set_cookies(&ok).len(), 2, "signed in at once");
    let taken = call_fn(
        &app,
        "register",
        &[
            ("email", "NEW@example.com"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    assert_eq!(taken.body["Invalid"]["field"], "email");
    // The account is the same one the API sees.
    app.login("new@example.com", PASSWORD).await;
    let strength = call_fn(
        &app,
        "password_strength",
        &[
            ("password", "new@example.com-123"),
            ("email", "new@example.com"),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    assert_eq!(strength.body["acceptable"], false);
}

async fn closed_registration_is_refused_by_the_page_too(default_app: TestApp) {
    let app = TestApp::start(default_app.backend, &[("ALLOW_REGISTRATION", "false")]).await;
    let refused = call_fn(
        &app,
        "register",
        &[
            ("email", "x@example.com"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    refused.assert_status(StatusCode::FORBIDDEN);
    let register_page = page(&app, "/register", &Jar::default()).await;
    assert!(
        register_page.text.contains("Registration is closed"),
        "{}",
        register_page.text
    );
}

async fn pages_carry_security_headers_and_no_tokens(app: TestApp) {
    app.user("headers@example.com").await;
    let jar = browser_login(&app, "headers@example.com", PASSWORD).await;
    let profile = page(&app, "/profile", &jar).await;
    profile.assert_status(StatusCode::OK);
    let csp = profile.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'self'"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("nonce");
    assert!(
        profile.text.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the nonce"
    );
    assert_eq!(profile.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(profile.headers[header::REFERRER_POLICY], "same-origin");
    assert_eq!(profile.headers[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(profile.headers[header::CACHE_CONTROL], "no-store");
    for token in jar.0.values() {
        assert!(
            !profile.text.contains(token.as_str()),
            "a token is in the HTML"
        );
    }
    let other = page(&app, "/", &Jar::default()).await;
    let other_csp = other.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert_ne!(csp, other_csp, "a fresh nonce per response");
}

async fn devices_are_listed_and_signed_out_from_the_profile(app: TestApp) {
    app.user("two@example.com").await;
    let here = browser_login(&app, "two@example.com", PASSWORD).await;
    let there = browser_login(&app, "two@example.com", PASSWORD).await;
    let list = call_fn(&app, "my_sessions", &[], &here, Some(ORIGIN)).await;
    list.assert_status(StatusCode::OK);
    let sessions = list.body.as_array().expect("array");
    // The API's own login in `app.user` is a third session.
    assert_eq!(sessions.len(), 3, "{}", list.text);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let other_id = sessions[0]["id"].as_i64().expect("id");
    assert_eq!(
        sessions[0]["current"], false,
        "the newest is the other browser"
    );
    let other_id = other_id.to_string();
    // Nobody else can end it.
    app.user("stranger@example.com").await;
    let stranger = browser_login(&app, "stranger@example.com", PASSWORD).await;
    call_fn(
        &app,
        "end_session",
        &[("id", &other_id)],
        &stranger,
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::NOT_FOUND);
    page(&app, "/profile", &there)
        .await
        .assert_status(StatusCode::OK);
    call_fn(
        &app,
        "end_session",
        &[("id", &other_id)],
        &here,
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::OK);
    assert_eq!(
        page(&app, "/profile", &there).await.status,
        StatusCode::FOUND
    );
    call_fn(&app, "end_other_sessions", &[], &here, Some(ORIGIN))
        .await
        .assert_status(StatusCode::OK);
    let left = call_fn(&app, "my_sessions", &[], &here, Some(ORIGIN)).await;
    assert_eq!(left.body.as_array().map(Vec::len), Some(1));
    let profile = page(&app, "/profile", &here).await;
    assert!(profile.text.contains("This device"), "{}", profile.text);
}

async fn the_login_page_is_told_how_long_to_wait(default_app: TestApp) {
    let app = TestApp::start(default_app.backend, &[("LOGIN_MAX_FAILURES", "5")]).await;
    app.user("slow@example.com").await;
    let jar = Jar::default();
    let form = |password| {
        [
            ("email", "slow@example.com"),
            ("password", password),
            ("next", ""),
        ]
    };
    for _ in 0..5 {
        call_fn(&app, "login", &form(OTHER_PASSWORD), &jar, Some(ORIGIN))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    let throttled = call_fn(&app, "login", &form(PASSWORD), &jar, Some(ORIGIN)).await;
    throttled.assert_status(StatusCode::TOO_MANY_REQUESTS);
    assert!(
        throttled
            .text
            .contains("Too many attempts, try again in 30 seconds")
            || throttled
                .text
                .contains("Too many attempts, try again in 29 seconds"),
        "{}",
        throttled.text
    );
    assert!(set_cookies(&throttled).is_empty(), "no session");
}

/// The HTML of a page with its entities decoded enough to search text in it.
fn text_of(response: &TestResponse) -> String {
    response.text.replace("&#x27;", "'").replace("&#39;", "'")
}

async fn password_reset_and_verification_work_through_the_pages(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[]).await;
    app.user("pat@example.com").await;
    let jar = browser_login(&app, "pat@example.com", PASSWORD).await;
    let old_access = jar.get(ACCESS).cloned();

    // Confirming the address: opening the link is enough.
    app.flush_mail().await;
    let verification =
        sink.messages_to("pat@example.com")[0].token(MAIL_PUBLIC_URL, "/verify-email");
    let profile = page(&app, "/profile", &jar).await;
    assert!(
        profile.text.contains("Not yet"),
        "unverified on the profile"
    );
    let confirmed = page(
        &app,
        &format!("/verify-email?token={verification}"),
        &Jar::default(),
    )
    .await;
    confirmed.assert_status(StatusCode::OK);
    assert!(
        text_of(&confirmed).contains("pat@example.com is confirmed"),
        "{}",
        confirmed.text
    );
    let again = page(
        &app,
        &format!("/verify-email?token={verification}"),
        &Jar::default(),
    )
    .await;
    assert!(
        text_of(&again).contains("This link has already been used"),
        "{}",
        again.text
    );

    // Forgot password -> link -> new password.
    call_fn(
        &app,
        "forgot_password",
        &[("email", "pat@example.com")],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::OK);
    call_fn(
        &app,
        "forgot_password",
        &[("email", "nobody@example.com")],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::OK);
    app.flush_mail().await;
    let reset = sink
        .messages_to("pat@example.com")
        .into_iter()
        .find(|m| m.header("Subject").as_deref() == Some("Reset your password"))
        .expect("reset message")
        .token(MAIL_PUBLIC_URL, "/reset-password");
    let bad = page(&app, "/reset-password?token=forged", &Jar::default()).await;
    assert!(
        text_of(&bad).contains("This link is not valid"),
        "{}",
        bad.text
    );
    let form = page(
        &app,
        &format!("/reset-password?token={reset}"),
        &Jar::default(),
    )
    .await;
    assert!(form.text.contains("name=\"token\""), "{}", form.text);
    call_fn(
        &app,
        "reset_password",
        &[
            ("token", &reset),
            ("password", OTHER_PASSWORD),
            ("confirm", "something else"),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let weak = call_fn(
        &app,
        "reset_password",
        &[
            ("token", &reset),
            ("password", "password"),
            ("confirm", "password"),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    assert!(
        weak.text.contains("\"password\""),
        "the policy speaks of the form's field: {}",
        weak.text
    );
    let done = call_fn(
        &app,
        "reset_password",
        &[
            ("token", &reset),
            ("password", OTHER_PASSWORD),
            ("confirm", OTHER_PASSWORD),
        ],
        &jar,
        Some(ORIGIN),
    )
    .await;
    done.assert_status(StatusCode::OK);
    let mut after = jar.clone();
    after.update(&done);
    assert!(
        after.get(ACCESS).is_none(),
        "this browser's cookies are cleared"
    );
    app.get("/api/v1/users/me", old_access.as_deref())
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    browser_login(&app, "pat@example.com", OTHER_PASSWORD).await;
}

async fn sign_in_waits_for_a_confirmed_address_when_required(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, &[("REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let registered = call_fn(
        &app,
        "register",
        &[
            ("email", "quinn@example.com"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    registered.assert_status(StatusCode::OK);
    assert!(
        set_cookies(&registered).is_empty(),
        "no session before verification"
    );
    let refused = call_fn(
        &app,
        "login",
        &[
            ("email", "quinn@example.com"),
            ("password", PASSWORD),
            ("next", ""),
        ],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    refused.assert_status(StatusCode::FORBIDDEN);
    assert!(
        refused
            .text
            .contains("Please confirm your email address first"),
        "{}",
        refused.text
    );
    call_fn(
        &app,
        "request_verification",
        &[("email", "quinn@example.com")],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::OK);
    app.flush_mail().await;
    let links = sink.messages_to("quinn@example.com");
    assert_eq!(links.len(), 2);
    // The newer link replaced the older one; both are sent after their
    // request was answered, so the inbox may hold them in either order.
    let mut confirmed = Vec::new();
    for link in links.iter().rev() {
        let token = link.token(MAIL_PUBLIC_URL, "/verify-email");
        let opened = page(
            &app,
            &format!("/verify-email?token={token}"),
            &Jar::default(),
        )
        .await;
        confirmed.push(opened.status);
    }
    confirmed.sort();
    assert_eq!(
        confirmed,
        [StatusCode::OK, StatusCode::BAD_REQUEST],
        "one link confirms, the replaced one is refused"
    );
    let jar = browser_login(&app, "quinn@example.com", PASSWORD).await;
    let resend = call_fn(&app, "resend_my_verification", &[], &jar, Some(ORIGIN)).await;
    resend.assert_status(StatusCode::BAD_REQUEST);
    assert!(
        resend.text.contains("Email already verified"),
        "{}",
        resend.text
    );
    let me = call_fn(&app, "my_account", &[], &jar, Some(ORIGIN)).await;
    assert_eq!(me.body["email_verified"], true);
    // Admin functions stay admin-only.
    call_fn(
        &app,
        "resend_user_verification",
        &[("id", "1")],
        &jar,
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::FORBIDDEN);
    // An admin resends a link to an unverified user from their page.
    let created = app.register("ray@example.com", PASSWORD).await;
    let id = created.body["id"].as_i64().expect("id").to_string();
    app.admin("root@example.com").await;
    let admin = browser_login(&app, "root@example.com", PASSWORD).await;
    let user_page = page(&app, &format!("/admin/users/{id}"), &admin).await;
    assert!(
        user_page.text.contains("Resend the verification email"),
        "{}",
        user_page.text
    );
    call_fn(
        &app,
        "resend_user_verification",
        &[("id", &id)],
        &admin,
        Some(ORIGIN),
    )
    .await
    .assert_status(StatusCode::OK);
    app.flush_mail().await;
    assert_eq!(sink.messages_to("ray@example.com").len(), 2);
}

/// Every registered server function, as (path, method).
fn server_functions() -> Vec<(&'static str, Method)> {
    let mut all: Vec<_> = leptos::server_fn::axum::server_fn_paths().collect();
    all.sort_by_key(|(path, _)| *path);
    assert!(all.len() >= 30, "the server functions: {all:?}");
    all
}

/// A server-function call with a body as given (a form's content type).
async fn raw_fn_call(
    app: &TestApp,
    path: &str,
    method: Method,
    body: impl Into<Body>,
    jar: &Jar,
) -> TestResponse {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, ORIGIN)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if !jar.0.is_empty() {
        request = request.header(header::COOKIE, jar.header());
    }
    app.send(request.body(body.into()).expect("request")).await
}

/// Asserts the 400 of arguments that could not be read, in the typed body.
#[track_caller]
fn assert_unreadable(response: &TestResponse, what: &str) {
    assert_eq!(
        response.status,
        StatusCode::BAD_REQUEST,
        "{what}: {}",
        response.text
    );
    assert_eq!(response.body["Refused"]["status"], 400, "{what}");
    assert!(
        response.body["Refused"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("The form could not be read")),
        "{what}: {}",
        response.text
    );
}

async fn every_server_function_answers_unreadable_arguments_with_a_400(app: TestApp) {
    app.admin("root@example.com").await;
    let jar = browser_login(&app, "root@example.com", PASSWORD).await;
    for (path, method) in server_functions() {
        // Not UTF-8: no server function can read its arguments from that.
        for jar in [&jar, &Jar::default()] {
            let response =
                raw_fn_call(&app, path, method.clone(), &b"\xff\xfe=\xff"[..], jar).await;
            assert_unreadable(&response, path);
        }
    }
    // None of that ran anything: the session is still there.
    call_fn(&app, "my_account", &[], &jar, Some(ORIGIN))
        .await
        .assert_status(StatusCode::OK);
}

async fn missing_malformed_and_out_of_range_arguments_are_a_400(app: TestApp) {
    app.admin("root@example.com").await;
    let admin = browser_login(&app, "root@example.com", PASSWORD).await;
    let (id, _) = app.user("plain@example.com").await;
    let user = browser_login(&app, "plain@example.com", PASSWORD).await;
    let id = id.to_string();
    let cases = [
        ("end_session", vec![("id", "9223372036854775808")], &user),
        ("end_session", vec![("id", "-9223372036854775809")], &user),
        ("end_session", vec![], &user),
        ("login", vec![], &Jar::default()),
        (
            "login",
            vec![("email", "plain@example.com")],
            &Jar::default(),
        ),
        ("get_user", vec![("id", "abc")], &admin),
        (
            "set_user_active",
            vec![("id", &id), ("active", "maybe")],
            &admin,
        ),
        (
            "list_users",
            vec![("page", "99999999999999999999999")],
            &admin,
        ),
        ("list_audit_events", vec![("per_page", "1e3")], &admin),
    ];
    for (name, form, jar) in cases {
        let response = call_fn(&app, name, &form, jar, Some(ORIGIN)).await;
        assert_unreadable(&response, &format!("{name} {form:?}"));
    }
    // An empty body, as curl sends it.
    let empty = raw_fn_call(
        &app,
        "/fn/login",
        Method::POST,
        Body::empty(),
        &Jar::default(),
    )
    .await;
    assert_unreadable(&empty, "an empty login");
    // A plain HTML form post is still sent back to its form, with the error.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/fn/end_session")
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, ORIGIN)
        .header(header::REFERER, "http://localhost/profile")
        .header(header::ACCEPT, "text/html,application/xhtml+xml")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, user.header())
        .body(Body::from("id=9223372036854775808"))
        .expect("request");
    let form_post = app.send(request).await;
    assert_eq!(form_post.status, StatusCode::FOUND, "{}", form_post.text);
    assert!(
        location(&form_post)
            .starts_with("http://localhost/profile?__path=%2Ffn%2Fend_session&__err="),
        "{}",
        location(&form_post)
    );
    // The user's devices are all still signed in.
    let sessions = call_fn(&app, "my_sessions", &[], &user, Some(ORIGIN)).await;
    sessions.assert_status(StatusCode::OK);
    assert_eq!(sessions.body.as_array().map(Vec::len), Some(2));
}

async fn page_and_server_function_bodies_are_capped_like_the_api(app: TestApp) {
    app.user("big@example.com").await;
    let three_megabytes = format!(
        "email=big%40example.com&password={}&next=",
        "p".repeat(3 * 1024 * 1024)
    );
    raw_fn_call(
        &app,
        "/fn/login",
        Method::POST,
        three_megabytes,
        &Jar::default(),
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    // Without a Content-Length, the cap is met while reading.
    let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(vec![b'p'; 4096]));
    let streamed = Body::from_stream(futures::stream::iter(chunks));
    raw_fn_call(&app, "/fn/login", Method::POST, streamed, &Jar::default())
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    // Page routes too.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/login")
        .header(header::HOST, "localhost")
        .header(header::ORIGIN, ORIGIN)
        .body(Body::from(vec![b'x'; 17 * 1024]))
        .expect("request");
    app.send(request)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
    // Under the cap, a form is read as before (this password is merely wrong).
    let under = format!(
        "email=big%40example.com&password={}&next=",
        "p".repeat(15 * 1024)
    );
    let refused = raw_fn_call(&app, "/fn/login", Method::POST, under, &Jar::default()).await;
    refused.assert_status(StatusCode::UNAUTHORIZED);
    browser_login(&app, "big@example.com", PASSWORD).await;
}

/// A browser user agent, used only by the admin below.
const ADMIN_BROWSER: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

async fn the_profile_shows_an_administrators_actions_without_their_device(app: TestApp) {
    app.admin("root@example.com").await;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/auth/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, ADMIN_BROWSER)
        .body(Body::from(
            json!({ "email": "root@example.com", "password": PASSWORD }).to_string(),
        ))
        .expect("request");
    let admin = crate::common::tokens_of(&app.send(request).await);
    let (id, _) = app.user("watched@example.com").await;
    let jar = browser_login(&app, "watched@example.com", PASSWORD).await;
    let with_agent = |method: Method, uri: String, body: serde_json::Value| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", admin.access))
            .header(header::USER_AGENT, ADMIN_BROWSER)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    app.send(with_agent(
        Method::DELETE,
        format!("/api/v1/users/{id}/sessions"),
        json!({}),
    ))
    .await
    .assert_status(StatusCode::NO_CONTENT);
    for active in [false, true] {
        app.send(with_agent(
            Method::PATCH,
            format!("/api/v1/users/{id}"),
            json!({ "is_active": active }),
        ))
        .await
        .assert_status(StatusCode::OK);
    }
    assert_eq!(page(&app, "/profile", &jar).await.status, StatusCode::FOUND);
    let jar = browser_login(&app, "watched@example.com", PASSWORD).await;

    let profile = page(&app, "/profile", &jar).await;
    profile.assert_status(StatusCode::OK);
    let html = text_of(&profile);
    for summary in [
        "Signed out everywhere by an admin",
        "Account deactivated by an administrator",
        "Account activated by an administrator",
    ] {
        assert!(html.contains(summary), "{summary}: {html}");
    }
    assert!(!html.contains("Firefox"), "the admin's device: {html}");
    let events = call_fn(&app, "my_audit_events", &[], &jar, Some(ORIGIN)).await;
    events.assert_status(StatusCode::OK);
    let by_admin: Vec<&serde_json::Value> = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["by_administrator"] == true)
        .collect();
    assert_eq!(by_admin.len(), 3, "{}", events.text);
    for event in by_admin {
        assert!(
            event["ip"].is_null()
                && event["user_agent"].is_null()
                && event["actor_user_id"].is_null(),
            "{event}"
        );
    }
    // The admin's audit page still shows the device.
    let root = browser_login(&app, "root@example.com", PASSWORD).await;
    let audit = page(&app, &format!("/admin/audit?user_id={id}"), &root).await;
    audit.assert_status(StatusCode::OK);
    assert!(audit.text.contains("Firefox"), "{}", audit.text);
}

async fn control_characters_in_the_user_search_find_nobody(app: TestApp) {
    app.admin("root@example.com").await;
    app.user("abc@example.com").await;
    let admin = browser_login(&app, "root@example.com", PASSWORD).await;
    for q in ["%00ab", "%00%00%00", "ab%00", "a%0Db", "%1B%5B0m", "%7F"] {
        let listing = page(&app, &format!("/admin/users?q={q}"), &admin).await;
        listing.assert_status(StatusCode::OK);
        assert!(
            !listing.text.contains("abc@example.com"),
            "{q}: {}",
            listing.text
        );
    }
    for q in ["\0ab", "\0\0\0", "ab\u{1b}"] {
        let list = call_fn(&app, "list_users", &[("q", q)], &admin, Some(ORIGIN)).await;
        list.assert_status(StatusCode::OK);
        assert_eq!(list.body["total"], 0, "{q:?}: {}", list.text);
        assert_eq!(list.body["users"], json!([]), "{q:?}");
    }
    // The same search without them finds the user.
    let found = page(&app, "/admin/users?q=ab", &admin).await;
    assert!(found.text.contains("abc@example.com"), "{}", found.text);
}

const MFA: &str = "__Host-leptos-auth-mfa";
const CODES: &str = "__Host-leptos-auth-codes";

/// The text between `start` (after its first occurrence) and `end`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .split_once(start)
        .unwrap_or_else(|| panic!("{start} not in the page ({} bytes)", text.len()))
        .1;
    from.split_once(end).map_or(from, |(inside, _)| inside)
}

async fn two_factor_works_through_the_pages(app: TestApp) {
    use crate::common::{base32_decode, now_step, totp};
    app.user("pages2fa@example.com").await;
    let mut jar = browser_login(&app, "pages2fa@example.com", PASSWORD).await;
    let profile = page(&app, "/profile", &jar).await;
    assert!(profile.text.contains("data-testid=\"two-factor\""));
    assert!(text_of(&profile).contains(">Off<"));

    // Set up: start, read the key from the page, confirm with a code.
    let started = call_fn(&app, "start_two_factor", &[], &jar, Some(ORIGIN)).await;
    started.assert_status(StatusCode::OK);
    let setup = page(&app, "/profile/two-factor", &jar).await;
    setup.assert_status(StatusCode::OK);
    assert!(
        setup.text.contains("<svg role=\"img\""),
        "an inline QR code"
    );
    let shown = between(&setup.text, "data-testid=\"totp-secret\"", "</code>");
    let shown = shown.rsplit('>').next().expect("text");
    let secret = base32_decode(&shown.replace(' ', ""));
    assert_eq!(secret.len(), 20);
    let wrong = call_fn(
        &app,
        "confirm_two_factor",
        &[("code", "000000")],
        &jar,
        Some(ORIGIN),
    )
    .await;
    assert!(wrong.status.is_client_error(), "{}", wrong.text);
    assert!(
        wrong.text.contains("That code is not right"),
        "{}",
        wrong.text
    );
    let step = now_step();
    let confirmed = call_fn(
        &app,
        "confirm_two_factor",
        &[("code", &totp(&secret, step))],
        &jar,
        Some(ORIGIN),
    )
    .await;
    confirmed.assert_status(StatusCode::OK);
    jar.update(&confirmed);
    assert!(jar.get(CODES).is_some(), "{:?}", set_cookies(&confirmed));
    let codes_cookie = set_cookies(&confirmed)
        .into_iter()
        .find(|c| c.starts_with(CODES))
        .expect("codes cookie");
    assert!(codes_cookie.contains("HttpOnly") && codes_cookie.contains("Max-Age=600"));
    // The codes are shown once.
    let codes_page = page(&app, "/profile/recovery-codes", &jar).await;
    let list = between(&codes_page.text, "data-testid=\"recovery-codes\"", "</ol>");
    let codes: Vec<&str> = list
        .split("<code>")
        .skip(1)
        .map(|item| item.split('<').next().expect("code"))
        .collect();
    assert_eq!(codes.len(), 10, "{list}");
    let again = page(&app, "/profile/recovery-codes", &jar).await;
    assert!(!again.text.contains(codes[0]));
    assert!(again.text.contains("already shown"));
    let profile = page(&app, "/profile", &jar).await;
    assert!(text_of(&profile).contains("10 recovery codes left"));

    // Sign in again: the password, then the code, with `next` kept.
    call_fn(&app, "logout", &[], &jar, Some(ORIGIN)).await;
    let mut browser = Jar::default();
    let first = call_fn(
        &app,
        "login",
        &[
            ("email", "pages2fa@example.com"),
            ("password", PASSWORD),
            ("next", "/profile?tab=1"),
        ],
        &browser,
        Some(ORIGIN),
    )
    .await;
    first.assert_status(StatusCode::OK);
    browser.update(&first);
    assert!(browser.get(ACCESS).is_none() && browser.get(REFRESH).is_none());
    assert!(browser.get(MFA).is_some(), "{:?}", set_cookies(&first));
    let second_page = page(
        &app,
        "/login/two-factor?next=%2Fprofile%3Ftab%3D1",
        &browser,
    )
    .await;
    second_page.assert_status(StatusCode::OK);
    assert!(second_page.text.contains("name=\"code\""));
    assert!(second_page.text.contains("method=recovery"));
    assert!(
        !second_page
            .text
            .contains(browser.get(MFA).expect("token").as_str()),
        "the token stays in its cookie"
    );
    let wrong = call_fn(
        &app,
        "login_second_factor",
        &[("code", "000000"), ("next", "/profile?tab=1")],
        &browser,
        Some(ORIGIN),
    )
    .await;
    assert!(wrong.status.is_client_error());
    browser.update(&wrong);
    assert!(browser.get(MFA).is_some(), "a wrong code keeps the step");
    let ok = call_fn(
        &app,
        "login_second_factor",
        &[
            ("code", &totp(&secret, step + 1)),
            ("next", "/profile?tab=1"),
        ],
        &browser,
        Some(ORIGIN),
    )
    .await;
    ok.assert_status(StatusCode::OK);
    assert_eq!(location(&ok), "/profile?tab=1");
    browser.update(&ok);
    assert!(browser.get(ACCESS).is_some() && browser.get(MFA).is_none());
    page(&app, "/profile", &browser)
        .await
        .assert_status(StatusCode::OK);

    // With a recovery code, and without the step: back to the password.
    call_fn(&app, "logout", &[], &browser, Some(ORIGIN)).await;
    let mut browser = Jar::default();
    let first = call_fn(
        &app,
        "login",
        &[
            ("email", "pages2fa@example.com"),
            ("password", PASSWORD),
            ("next", ""),
        ],
        &browser,
        Some(ORIGIN),
    )
    .await;
    browser.update(&first);
    let ok = call_fn(
        &app,
        "login_second_factor",
        &[("code", codes[4]), ("next", "")],
        &browser,
        Some(ORIGIN),
    )
    .await;
    ok.assert_status(StatusCode::OK);
    browser.update(&ok);
    assert!(browser.get(ACCESS).is_some());
    let lost = call_fn(
        &app,
        "login_second_factor",
        &[("code", codes[5]), ("next", "")],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    assert!(
        location(&lost).starts_with("/login?notice=sign-in-expired"),
        "{}",
        location(&lost)
    );
    let expired_page = page(&app, "/login/two-factor", &Jar::default()).await;
    assert!(expired_page.text.contains("Sign in again"));

    // Step-up: a stale session asks for the password or a code, inline.
    app.shift_time("sessions", "authenticated_at", -11 * 60, "TRUE")
        .await;
    let profile = page(&app, "/profile", &browser).await;
    assert!(
        profile.text.contains("name=\"confirm_secret\""),
        "the forms ask"
    );
    let refused = call_fn(&app, "disable_two_factor", &[], &browser, Some(ORIGIN)).await;
    assert!(refused.status.is_client_error());
    assert!(
        text_of(&refused).contains("confirm it is you"),
        "{}",
        refused.text
    );
    let wrong = call_fn(
        &app,
        "disable_two_factor",
        &[("confirm_secret", "not my password")],
        &browser,
        Some(ORIGIN),
    )
    .await;
    assert!(text_of(&wrong).contains("is not right"), "{}", wrong.text);
    // (The step after the one just used is outside the window: a recovery
    // code confirms too.)
    let off = call_fn(
        &app,
        "disable_two_factor",
        &[("confirm_secret", codes[6])],
        &browser,
        Some(ORIGIN),
    )
    .await;
    off.assert_status(StatusCode::OK);
    assert_eq!(location(&off), "/profile?notice=two-factor-off");
    let profile = page(&app, "/profile", &browser).await;
    assert!(
        !profile.text.contains("name=\"confirm_secret\""),
        "confirmed just now"
    );
    // The current password of a password change confirms a stale session.
    app.shift_time("sessions", "authenticated_at", -11 * 60, "TRUE")
        .await;
    let changed = call_fn(
        &app,
        "change_password",
        &[
            ("current_password", PASSWORD),
            ("password", OTHER_PASSWORD),
            ("confirm", OTHER_PASSWORD),
        ],
        &browser,
        Some(ORIGIN),
    )
    .await;
    changed.assert_status(StatusCode::OK);
}

async fn the_admin_pages_show_and_reset_second_factors(app: TestApp) {
    let (user_id, tokens) = app.user("member2fa@example.com").await;
    app.enrol_totp(&tokens).await;
    app.admin("boss@example.com").await;
    let jar = browser_login(&app, "boss@example.com", PASSWORD).await;
    let list = page(&app, "/admin/users", &jar).await;
    assert!(list.text.contains("Two-factor"));
    let detail = page(&app, &format!("/admin/users/{user_id}"), &jar).await;
    assert!(between(&detail.text, "data-testid=\"user-two-factor\"", "</dd>").ends_with(">On"));
    app.shift_time("sessions", "authenticated_at", -11 * 60, "TRUE")
        .await;
    let id = user_id.to_string();
    let refused = call_fn(
        &app,
        "reset_user_two_factor",
        &[("id", &id)],
        &jar,
        Some(ORIGIN),
    )
    .await;
    assert!(refused.status.is_client_error());
    let reset = call_fn(
        &app,
        "reset_user_two_factor",
        &[("id", &id), ("confirm_secret", PASSWORD)],
        &jar,
        Some(ORIGIN),
    )
    .await;
    reset.assert_status(StatusCode::OK);
    let detail = page(&app, &format!("/admin/users/{user_id}"), &jar).await;
    assert!(between(&detail.text, "data-testid=\"user-two-factor\"", "</dd>").ends_with(">Off"));
}

async fn admins_without_a_second_factor_are_sent_to_set_one_up(backend: Backend) {
    let app = TestApp::start(backend, &[("REQUIRE_2FA_FOR_ADMINS", "true")]).await;
    app.admin("must@example.com").await;
    let jar = browser_login(&app, "must@example.com", PASSWORD).await;
    let users = page(&app, "/admin/users", &jar).await;
    assert!(users.status.is_redirection(), "{}", users.status);
    assert_eq!(
        location(&users),
        "/profile/two-factor?notice=admins-need-2fa"
    );
    let setup = page(&app, "/profile/two-factor?notice=admins-need-2fa", &jar).await;
    setup.assert_status(StatusCode::OK);
    assert!(text_of(&setup)
        .contains("Administrators on this server must use two-factor authentication"));
}

each_backend!(
    password_reset_and_verification_work_through_the_pages,
    sign_in_waits_for_a_confirmed_address_when_required,
    admins_without_a_second_factor_are_sent_to_set_one_up,
);

async fn passkeys_work_through_the_pages(app: TestApp) {
    use crate::common::passkey::SoftDevice;
    app.register("keys@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let mut jar = browser_login(&app, "keys@example.com", PASSWORD).await;
    // The pages that offer passkeys load the script and say what needs it.
    let login = page(&app, "/login", &Jar::default()).await;
    assert!(
        login.text.contains(r#"data-passkey="sign-in""#),
        "{}",
        login.text
    );
    assert!(login
        .text
        .contains(r#"<script type="module" src="/passkeys.js"></script>"#));
    assert!(login.text.contains("autocomplete=\"email webauthn\""));
    assert!(login
        .text
        .contains("Signing in with a passkey needs JavaScript"));
    let profile = page(&app, "/profile", &jar).await;
    assert!(
        profile.text.contains("You have no passkeys yet."),
        "{}",
        profile.text
    );
    assert!(profile.text.contains(r#"data-passkey="register""#));

    // Adding one, as /passkeys.js does it.
    let options = call_fn(&app, "passkey_register_start", &[], &jar, Some(ORIGIN)).await;
    options.assert_status(StatusCode::OK);
    let mut device = SoftDevice::new();
    let credential = device.register(&options.body).to_string();
    // An unreadable answer is a clear 422 that loses nothing.
    let junk = call_fn(
        &app,
        "passkey_register_finish",
        &[("name", "Laptop"), ("credential", "{not json")],
        &jar,
        Some(ORIGIN),
    )
    .await;
    junk.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(junk.body["Invalid"]["field"], "credential");
    let added = call_fn(
        &app,
        "passkey_register_finish",
        &[("name", "Laptop"), ("credential", &credential)],
        &jar,
        Some(ORIGIN),
    )
    .await;
    added.assert_status(StatusCode::OK);
    assert_eq!(added.body["name"], "Laptop");
    let id = added.body["id"].as_i64().expect("id").to_string();
    let profile = page(&app, "/profile", &jar).await;
    assert!(profile.text.contains("Laptop"), "{}", profile.text);
    assert!(profile.text.contains("never used yet"));

    // Signing in with it sets the session cookies and says where to go.
    let started = call_fn(
        &app,
        "passkey_sign_in_start",
        &[],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    started.assert_status(StatusCode::OK);
    let challenge_id = started.body["challenge_id"]
        .as_str()
        .expect("id")
        .to_owned();
    let assertion = device.assert(&started.body["options"]).to_string();
    let mut fresh = Jar::default();
    let signed_in = call_fn(
        &app,
        "passkey_sign_in_finish",
        &[
            ("challenge_id", &challenge_id),
            ("credential", &assertion),
            ("next", "/admin"),
        ],
        &fresh,
        Some(ORIGIN),
    )
    .await;
    signed_in.assert_status(StatusCode::OK);
    assert_eq!(signed_in.body, json!("/admin"));
    fresh.update(&signed_in);
    assert!(fresh.get(ACCESS).is_some() && fresh.get(REFRESH).is_some());
    let profile = page(&app, "/profile", &fresh).await;
    assert!(profile.text.contains("keys@example.com"));
    // The same answer again is refused, and no cookie is set.
    let again = call_fn(
        &app,
        "passkey_sign_in_finish",
        &[("challenge_id", &challenge_id), ("credential", &assertion)],
        &Jar::default(),
        Some(ORIGIN),
    )
    .await;
    again.assert_status(StatusCode::BAD_REQUEST);
    assert!(set_cookies(&again).iter().all(|c| !c.starts_with(ACCESS)));

    // Renamed and removed with plain forms (no script needed).
    let renamed = call_fn(
        &app,
        "rename_passkey",
        &[("id", &id), ("name", "Desk")],
        &jar,
        Some(ORIGIN),
    )
    .await;
    renamed.assert_status(StatusCode::OK);
    app.shift_time("sessions", "authenticated_at", -11 * 60, "TRUE")
        .await;
    let refused = call_fn(&app, "remove_passkey", &[("id", &id)], &jar, Some(ORIGIN)).await;
    refused.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["Invalid"]["field"], "confirm_secret");
    let removed = call_fn(
        &app,
        "remove_passkey",
        &[("id", &id), ("confirm_secret", PASSWORD)],
        &jar,
        Some(ORIGIN),
    )
    .await;
    removed.assert_status(StatusCode::OK);
    jar.update(&removed);
    let profile = page(&app, "/profile", &jar).await;
    assert!(profile.text.contains("You have no passkeys yet."));
}

both_backends!(
    the_login_page_is_told_how_long_to_wait,
    devices_are_listed_and_signed_out_from_the_profile,
    signing_in_sets_http_only_host_cookies,
    without_secure_cookies_the_names_lose_the_host_prefix,
    a_plain_form_post_is_redirected_to_next_or_back_with_the_error,
    cross_origin_posts_are_refused,
    a_regular_user_calling_an_admin_function_gets_403,
    admins_manage_users_through_server_functions,
    a_user_deactivated_through_the_api_loses_their_browser_session,
    an_expired_access_cookie_is_refreshed_and_a_reused_refresh_cookie_ends_the_session,
    signing_out_revokes_the_session_and_clears_the_cookies,
    browser_registration_follows_the_same_rules_as_the_api,
    closed_registration_is_refused_by_the_page_too,
    pages_carry_security_headers_and_no_tokens,
    every_server_function_answers_unreadable_arguments_with_a_400,
    missing_malformed_and_out_of_range_arguments_are_a_400,
    page_and_server_function_bodies_are_capped_like_the_api,
    the_profile_shows_an_administrators_actions_without_their_device,
    control_characters_in_the_user_search_find_nobody,
    two_factor_works_through_the_pages,
    the_admin_pages_show_and_reset_second_factors,
    passkeys_work_through_the_pages,
);

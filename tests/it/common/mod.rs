//! The shared test harness: `TestApp` starts the real router on a chosen
//! backend and offers typed helpers.

pub mod passkey;
pub mod pg;
pub mod smtp;

use axum::{
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{header, HeaderMap, Method, Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use leptos_auth::{config::Config, db::Pool, startup::router, state::AppState};
use serde_json::{json, Value};
use std::{collections::HashMap, net::SocketAddr};
use tower::ServiceExt;

/// Runs each named `async fn(TestApp)` once on SQLite and once on PostgreSQL.
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestApp::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::TestApp::postgres().await).await;
                }
            )+
        }
    };
}

/// Runs each named `async fn(Backend)` once per backend: for tests that start
/// their app with their own settings (modules `*_configured`, so a file can
/// use both macros).
macro_rules! each_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite_configured {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await;
                }
            )+
        }
        mod postgres_configured {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await;
                }
            )+
        }
    };
}

/// A password the policy accepts.
pub const PASSWORD: &str = "correct horse battery staple";
/// Another password the policy accepts.
pub const OTHER_PASSWORD: &str = "violet tundra lantern orbit";
/// The JWT secret of test instances.
/// A data-encryption key for instances that must be given one (production
/// settings, several processes sharing a database).
pub const DATA_ENCRYPTION_KEY: &str =
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
pub const JWT_SECRET: &str = "integration-test-secret-integration-test-secret";

/// Which database a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running app (the real router, in-process) on a fresh database.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub backend: Backend,
    /// The app's own pool, for tests that move stored times (there is no
    /// clock to fake: rows are aged instead).
    pub pool: Pool,
    /// The instance's `DATA_DIR` (the outbox is `outbox/` in it).
    pub dir: tempfile::TempDir,
}

/// A response, with the body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl TestResponse {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) -> &Self {
        assert_eq!(
            self.status, expected,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an error status and its `{"detail": message}` body.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, message: &str) {
        self.assert_status(status);
        assert_eq!(
            self.body,
            json!({ "detail": message }),
            "body: {}",
            self.text
        );
    }

    /// Asserts a 422 whose first item is located at `loc`.
    #[track_caller]
    pub fn assert_validation(&self, loc: &[&str]) {
        self.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        let items = self.body["detail"]
            .as_array()
            .unwrap_or_else(|| panic!("422 body: {}", self.text));
        let expected: Vec<Value> = loc.iter().map(|s| json!(s)).collect();
        assert!(
            items
                .iter()
                .any(|item| item["loc"].as_array() == Some(&expected)
                    && item["msg"].is_string()
                    && item["type"].is_string()),
            "no 422 item at {loc:?}: {}",
            self.text
        );
    }
}

/// Tokens of a signed-in client.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// Settings of a test instance: cheap Argon2 so the suite is fast.
pub fn test_settings(database_url: &str, data_dir: &std::path::Path) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    vars.insert("DATABASE_URL".into(), database_url.to_owned());
    vars.insert("DATA_DIR".into(), data_dir.display().to_string());
    vars.insert("JWT_SECRET".into(), JWT_SECRET.to_owned());
    vars.insert("ARGON2_MEMORY_KIB".into(), "1024".into());
    vars.insert("ARGON2_ITERATIONS".into(), "1".into());
    vars.insert("DATABASE_MAX_CONNECTIONS".into(), "5".into());
    // Throttling off unless a test turns it on (the suite signs in and
    // registers far more often than a person would).
    for limit in [
        "LOGIN_MAX_FAILURES",
        "LOGIN_IP_MAX_FAILURES_PER_HOUR",
        "REGISTRATION_MAX_PER_IP_PER_HOUR",
        "REFRESH_IP_MAX_FAILURES_PER_HOUR",
        "EMAIL_REQUEST_INTERVAL_SECONDS",
        "EMAIL_REQUESTS_PER_IP_PER_HOUR",
    ] {
        vars.insert(limit.into(), "0".into());
    }
    // Strict refresh rotation (of concurrent refreshes exactly one wins, a
    // reused token revokes at once) unless a test turns the grace on.
    vars.insert("REFRESH_REUSE_GRACE_SECONDS".into(), "0".into());
    vars
}

/// `PUBLIC_URL` of instances made by [`TestApp::with_mail`].
pub const MAIL_PUBLIC_URL: &str = "https://auth.example.test";

/// The address the in-process router sees as the socket peer.
pub const PEER_IP: &str = "203.0.113.7";

impl TestApp {
    /// A fresh SQLite file.
    pub async fn sqlite() -> TestApp {
        TestApp::start(Backend::Sqlite, &[]).await
    }

    /// A fresh database in the throwaway PostgreSQL cluster.
    pub async fn postgres() -> TestApp {
        TestApp::start(Backend::Postgres, &[]).await
    }

    /// A fresh instance with some settings overridden.
    pub async fn start(backend: Backend, overrides: &[(&str, &str)]) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
            Backend::Postgres => pg::fresh_database().await,
        };
        let mut vars = test_settings(&url, dir.path());
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config =
            Config::from_lookup(|k| vars.get(k).cloned()).expect("valid test configuration");
        let (state, pool) = AppState::initialize(config).await.expect("app starts");
        let router = router(state.clone())
            .layer(MockConnectInfo(SocketAddr::from(([203, 0, 113, 7], 41000))));
        TestApp {
            router,
            state,
            backend,
            pool,
            dir,
        }
    }

    /// A fresh instance that sends mail over SMTP to a new sink, with links
    /// to [`MAIL_PUBLIC_URL`].
    pub async fn with_mail(
        backend: Backend,
        overrides: &[(&str, &str)],
    ) -> (TestApp, smtp::SmtpSink) {
        let sink = smtp::SmtpSink::start().await;
        let url = sink.url();
        let mut settings = vec![
            ("SMTP_URL", url.as_str()),
            ("MAIL_FROM", "leptos-auth <no-reply@example.com>"),
            ("PUBLIC_URL", MAIL_PUBLIC_URL),
        ];
        settings.extend_from_slice(overrides);
        (TestApp::start(backend, &settings).await, sink)
    }

    /// Waits until every queued message was delivered (or given up on).
    pub async fn flush_mail(&self) {
        self.state.services.outbox.flush().await;
    }

    /// Runs one SQL statement on the app's database; returns the rows
    /// affected. The instance's authentication cache is emptied afterwards,
    /// as tests use this to make time pass (see [`TestApp::exec_unannounced`]).
    pub async fn exec(&self, statement: &str) -> u64 {
        let affected = self.exec_unannounced(statement).await;
        if let Some(cache) = &self.state.services.repositories.auth_cache {
            cache.forget_all();
        }
        affected
    }

    /// Runs one SQL statement behind the instance's back (its cache is not told).
    pub async fn exec_unannounced(&self, statement: &str) -> u64 {
        self.try_exec(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"))
    }

    /// Runs one SQL statement that may fail (the instance's cache is not told).
    /// On SQLite it runs on a connection of its own: the app writes only
    /// through its writer connection, and a write that fails on one of its
    /// read connections can leave that connection reading an old snapshot.
    pub async fn try_exec(&self, statement: &str) -> Result<u64, sqlx::Error> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                use sqlx::{ConnectOptions, Connection};
                let mut own = pool.connect_options().connect().await?;
                let affected = sqlx::query(statement)
                    .execute(&mut own)
                    .await
                    .map(|r| r.rows_affected());
                own.close().await?;
                affected
            }
            Pool::Postgres(pool) => sqlx::query(statement)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
    }

    /// Rows in a table matching a condition.
    pub async fn count(&self, table: &str, condition: &str) -> i64 {
        let statement = format!("SELECT count(*) FROM {table} WHERE {condition}");
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::query_scalar(&statement).fetch_one(pool).await,
            Pool::Postgres(pool) => sqlx::query_scalar(&statement).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{statement}: {e}"))
    }

    /// Moves a timestamp column by `seconds` (negative: into the past) on the
    /// rows matching `condition`, as if that much time had passed.
    pub async fn shift_time(
        &self,
        table: &str,
        column: &str,
        seconds: i64,
        condition: &str,
    ) -> u64 {
        let moved = match self.backend {
            Backend::Postgres => format!("{column} + make_interval(secs => {seconds})"),
            // Stored as fixed-width text: keep the microseconds and the `Z`.
            Backend::Sqlite => format!(
                "strftime('%Y-%m-%dT%H:%M:%S', {column}, '{seconds:+} seconds') || substr({column}, 20)"
            ),
        };
        self.exec(&format!(
            "UPDATE {table} SET {column} = {moved} WHERE {column} IS NOT NULL AND ({condition})"
        ))
        .await
    }

    /// The audit events (as the admin API returns them) of one type, newest first.
    pub async fn audit_events(&self, admin: &Tokens, query: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/api/v1/audit?{query}"), Some(&admin.access))
            .await;
        response.assert_status(StatusCode::OK);
        response.body.as_array().expect("array").clone()
    }

    /// Sends a request through the router.
    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        send_to(self.router.clone(), request).await
    }

    /// A request with an optional JSON body and bearer token.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => builder
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => builder.body(Body::empty()),
        }
        .expect("request");
        self.send(request).await
    }

    pub async fn get(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::GET, uri, None, token).await
    }

    pub async fn post(&self, uri: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.call(Method::POST, uri, Some(body), token).await
    }

    pub async fn patch(&self, uri: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.call(Method::PATCH, uri, Some(body), token).await
    }

    pub async fn put(&self, uri: &str, body: Value, token: Option<&str>) -> TestResponse {
        self.call(Method::PUT, uri, Some(body), token).await
    }

    pub async fn delete(&self, uri: &str, token: Option<&str>) -> TestResponse {
        self.call(Method::DELETE, uri, None, token).await
    }

    /// A raw request with the given content type and body bytes.
    pub async fn post_raw(
        &self,
        uri: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut builder = Request::builder().method(Method::POST).uri(uri);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        self.send(builder.body(body.into()).expect("request")).await
    }

    /// `POST /api/v1/users` as an anonymous visitor.
    pub async fn register(&self, email: &str, password: &str) -> TestResponse {
        self.post(
            "/api/v1/users",
            json!({ "email": email, "password": password }),
            None,
        )
        .await
    }

    /// `POST /api/v1/auth/login` with JSON.
    pub async fn login_response(&self, email: &str, password: &str) -> TestResponse {
        self.post(
            "/api/v1/auth/login",
            json!({ "email": email, "password": password }),
            None,
        )
        .await
    }

    /// Signs in and returns the tokens (the sign-in must succeed).
    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        let response = self.login_response(email, password).await;
        response.assert_status(StatusCode::OK);
        tokens_of(&response)
    }

    /// Registers a regular user and signs them in; returns (id, tokens).
    pub async fn user(&self, email: &str) -> (i64, Tokens) {
        let created = self.register(email, PASSWORD).await;
        created.assert_status(StatusCode::CREATED);
        let id = created.body["id"].as_i64().expect("id");
        (id, self.login(email, PASSWORD).await)
    }

    /// Turns TOTP two-factor authentication on for the signed-in `tokens`
    /// (a code of the current step, computed here); returns the secret.
    pub async fn enrol_totp(&self, tokens: &Tokens) -> Vec<u8> {
        let started = self
            .post("/api/v1/users/me/mfa/totp", json!({}), Some(&tokens.access))
            .await;
        started.assert_status(StatusCode::OK);
        let secret = base32_decode(started.body["secret"].as_str().expect("secret"));
        self.post(
            "/api/v1/users/me/mfa/totp/confirm",
            json!({ "code": totp(&secret, now_step()) }),
            Some(&tokens.access),
        )
        .await
        .assert_status(StatusCode::OK);
        secret
    }

    /// Creates an admin the way the CLI does and signs them in; returns (id, tokens).
    pub async fn admin(&self, email: &str) -> (i64, Tokens) {
        let user = self
            .state
            .services
            .users
            .create_admin(email, PASSWORD.to_owned().into())
            .await
            .expect("create admin");
        (user.id, self.login(email, PASSWORD).await)
    }

    /// Posts every JSON body to `uri` at the same time (each on its own task)
    /// and returns the statuses in order.
    pub async fn post_concurrently(&self, uri: &str, bodies: Vec<Value>) -> Vec<StatusCode> {
        self.post_concurrently_responses(uri, bodies)
            .await
            .into_iter()
            .map(|response| response.status)
            .collect()
    }

    /// Like [`TestApp::post_concurrently`], with the whole responses.
    pub async fn post_concurrently_responses(
        &self,
        uri: &str,
        bodies: Vec<Value>,
    ) -> Vec<TestResponse> {
        let tasks: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let request = Request::post(uri)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .expect("request");
                tokio::spawn(send_to(self.router.clone(), request))
            })
            .collect();
        let mut responses = Vec::new();
        for task in tasks {
            responses.push(task.await.expect("task"));
        }
        responses
    }

    /// An admin deactivates a user through the API (must succeed).
    pub async fn deactivate(&self, admin: &Tokens, id: i64) {
        self.patch(
            &format!("/api/v1/users/{id}"),
            json!({ "is_active": false }),
            Some(&admin.access),
        )
        .await
        .assert_status(StatusCode::OK);
    }

    /// Asserts that neither token of a session works any more.
    pub async fn assert_session_over(&self, tokens: &Tokens) {
        self.get("/api/v1/users/me", Some(&tokens.access))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        self.refresh(&tokens.refresh)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }

    /// `POST /api/v1/auth/refresh`.
    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.post(
            "/api/v1/auth/refresh",
            json!({ "refresh_token": refresh_token }),
            None,
        )
        .await
    }
}

/// Sends a request through a router and reads the whole response.
pub async fn send_to(router: Router, request: Request<Body>) -> TestResponse {
    let response = router.oneshot(request).await.expect("router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    TestResponse {
        status,
        headers,
        body,
        text,
    }
}

/// The tokens of a token response.
#[track_caller]
pub fn tokens_of(response: &TestResponse) -> Tokens {
    Tokens {
        access: response.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned(),
        refresh: response.body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    }
}

/// RFC 4648 base32 (upper case, no padding), as the API writes the secret.
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .expect("base32 character") as u64;
        bits = (bits << 5) | value;
        count += 5;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}

/// RFC 6238 with HMAC-SHA1, 6 digits, 30-second steps: the code of `step`.
pub fn totp(secret: &[u8], step: u64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("key");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[19] & 0x0f) as usize;
    let number = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", number % 1_000_000)
}

/// The TOTP step of now.
pub fn now_step() -> u64 {
    (chrono::Utc::now().timestamp() as u64) / 30
}

//! Several instances of the real binary on one PostgreSQL database, as in
//! production behind a load balancer, and the database going away and
//! coming back under load.

use crate::common::{
    base32_decode, passkey::SoftDevice, pg, smtp::SmtpSink, totp, JWT_SECRET, OTHER_PASSWORD,
    PASSWORD,
};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_leptos-auth");
/// The key every instance seals second factors with (they share it, like
/// `JWT_SECRET`).
const DATA_ENCRYPTION_KEY: &str =
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const ADMIN: &str = "ops@example.com";

/// One running `leptos-auth serve` process.
struct Instance {
    child: Child,
    base: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Instance {
    /// Starts the binary on a free port; returns once it says where it listens.
    fn spawn(database_url: &str, extra: &[(&str, &str)]) -> Instance {
        let dir = tempfile::tempdir().expect("temp dir").keep();
        let mut cmd = Command::new(BIN);
        cmd.current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .env("DATABASE_URL", database_url)
            .env("DATA_DIR", dir.join("data"))
            .env("JWT_SECRET", JWT_SECRET)
            .env("DATA_ENCRYPTION_KEY", DATA_ENCRYPTION_KEY)
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
            .env("ARGON2_MEMORY_KIB", "1024")
            .env("ARGON2_ITERATIONS", "1")
            .env("ADMIN_EMAIL", ADMIN)
            .env("ADMIN_PASSWORD", PASSWORD)
            .env("REGISTRATION_MAX_PER_IP_PER_HOUR", "0")
            .env("REFRESH_IP_MAX_FAILURES_PER_HOUR", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start leptos-auth");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = log.clone();
            let addr_tx = addr_tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on http://").nth(1) {
                        let addr: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                            .collect();
                        let _ = addr_tx.send(addr);
                    }
                    log.lock().expect("log").push(line);
                }
            });
        }
        let addr = match addr_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the instance did not start: {:#?}",
                    log.lock().expect("log")
                );
            }
        };
        Instance {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_text(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

async fn login(http: &Client, at: &Instance, email: &str, password: &str) -> reqwest::Response {
    http.post(at.url("/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login request")
}

async fn tokens(http: &Client, at: &Instance, email: &str) -> (String, String) {
    let response = login(http, at, email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    (
        body["access_token"].as_str().expect("access").to_owned(),
        body["refresh_token"].as_str().expect("refresh").to_owned(),
    )
}

async fn me(http: &Client, at: &Instance, access: &str) -> StatusCode {
    http.get(at.url("/api/v1/users/me"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request")
        .status()
}

/// Sends a request and returns its status.
async fn status_of(request: reqwest::RequestBuilder) -> StatusCode {
    request.send().await.expect("request").status()
}

/// Polls `users/me` on `at` until the token is refused; fails if that takes
/// a second or more (the bound for changes made on another instance).
/// Returns how long it took.
async fn refused_within_a_second(http: &Client, at: &Instance, access: &str) -> Duration {
    let start = Instant::now();
    loop {
        let status = me(http, at, access).await;
        if status == StatusCode::UNAUTHORIZED {
            return start.elapsed();
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still accepted after {:?}:\n{}",
            start.elapsed(),
            at.log_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn register(http: &Client, at: &Instance, email: &str) -> reqwest::Response {
    http.post(at.url("/api/v1/users"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("register request")
}

/// Starts instances at the same moment (so they race to migrate) and waits
/// until all are ready.
async fn start_together(url: &str, count: usize, extra: &[(&str, &str)]) -> Vec<Instance> {
    let handles: Vec<_> = (0..count)
        .map(|_| {
            let url = url.to_owned();
            let extra: Vec<(String, String)> = extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            std::thread::spawn(move || {
                let extra: Vec<(&str, &str)> = extra
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                Instance::spawn(&url, &extra)
            })
        })
        .collect();
    let instances: Vec<Instance> = handles
        .into_iter()
        .map(|h| h.join().expect("instance thread"))
        .collect();
    let http = client();
    for instance in &instances {
        let ready = http
            .get(instance.url("/health/ready"))
            .send()
            .await
            .expect("ready request");
        assert_eq!(ready.status(), StatusCode::OK, "{}", instance.log_text());
    }
    instances
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_started_together_on_an_empty_database_all_come_up() {
    let url = pg::fresh_database().await;
    let instances = start_together(&url, 3, &[]).await;
    // One set of migrations and one admin, however the race went.
    let http = client();
    let (admin, _) = tokens(&http, &instances[2], ADMIN).await;
    let users = http
        .get(instances[0].url("/api/v1/users"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list");
    assert_eq!(users.headers()["x-total-count"], "1");
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    let (applied,): (i64,) = sqlx::query_as("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .expect("migrations table");
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
        .expect("migrations folder")
        .count() as i64;
    assert_eq!(applied, files);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_revocations_and_throttling() {
    let url = pg::fresh_database().await;
    // Strict rotation: racing refreshes have exactly one winner.
    let instances = start_together(
        &url,
        2,
        &[
            ("LOGIN_MAX_FAILURES", "3"),
            ("REFRESH_REUSE_GRACE_SECONDS", "0"),
        ],
    )
    .await;
    let (a, b) = (&instances[0], &instances[1]);
    let http = client();

    // A sign-in on A works on B.
    assert_eq!(
        register(&http, a, "roamer@example.com").await.status(),
        StatusCode::CREATED
    );
    let (access, refresh) = tokens(&http, a, "roamer@example.com").await;
    assert_eq!(me(&http, b, &access).await, StatusCode::OK);

    // Sign-out on A is refused on B (whose cache holds the session) within a second.
    let logout = http
        .post(a.url("/api/v1/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), StatusCode::OK);
    refused_within_a_second(&http, b, &access).await;
    let refreshed = http
        .post(b.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("refresh");
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);

    // A deactivation on B ends the session used on A.
    let (admin, _) = tokens(&http, b, ADMIN).await;
    let (access, refresh) = tokens(&http, a, "roamer@example.com").await;
    assert_eq!(me(&http, a, &access).await, StatusCode::OK);
    let users: Value = http
        .get(b.url("/api/v1/users?q=roamer"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = users[0]["id"].as_i64().expect("id");
    let deactivated = http
        .patch(b.url(&format!("/api/v1/users/{id}")))
        .bearer_auth(&admin)
        .json(&json!({ "is_active": false }))
        .send()
        .await
        .expect("patch");
    assert_eq!(deactivated.status(), StatusCode::OK);
    refused_within_a_second(&http, a, &access).await;
    let refreshed = http
        .post(a.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .expect("refresh");
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);

    // One refresh token presented to A and B at once: exactly one winner.
    assert_eq!(
        register(&http, b, "racer@example.com").await.status(),
        StatusCode::CREATED
    );
    let (_, refresh) = tokens(&http, b, "racer@example.com").await;
    let attempts: Vec<_> = (0..10)
        .map(|i| {
            let http = http.clone();
            let url = [a, b][i % 2].url("/api/v1/auth/refresh");
            let body = json!({ "refresh_token": refresh });
            tokio::spawn(async move {
                http.post(url)
                    .json(&body)
                    .send()
                    .await
                    .expect("refresh")
                    .status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.expect("task"));
    }
    let winners = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(winners, 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::OK || *s == StatusCode::UNAUTHORIZED));

    // Failed sign-ins on both instances count together.
    assert_eq!(
        register(&http, a, "guarded@example.com").await.status(),
        StatusCode::CREATED
    );
    for at in [a, b, a] {
        let failed = login(&http, at, "guarded@example.com", "wrong password entirely").await;
        assert_eq!(failed.status(), StatusCode::UNAUTHORIZED);
    }
    for at in [b, a] {
        let throttled = login(&http, at, "guarded@example.com", PASSWORD).await;
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(throttled.headers().contains_key("retry-after"));
    }

    // And the audit log written by both is one log.
    let events: Value = http
        .get(a.url(&format!("/api/v1/audit?type=user_deactivated&user_id={id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("audit")
        .json()
        .await
        .expect("json");
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_is_survived_without_losing_acknowledged_writes() {
    let cluster = pg::Cluster::start().expect("a private PostgreSQL cluster");
    let url = format!("{}/postgres", cluster.url());
    let mut instance = Instance::spawn(&url, &[]);
    let http = client();
    let base = instance.base.clone();

    // Load: sign-ups one after another, remembering which were acknowledged.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let http = http.clone();
        let base = base.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let email = format!("load{i}@example.com");
                i += 1;
                let response = http
                    .post(format!("{base}/api/v1/users"))
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send()
                    .await;
                if let Ok(response) = response {
                    *statuses.entry(response.status().as_u16()).or_default() += 1;
                    if response.status() == StatusCode::CREATED {
                        acknowledged.push(email);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acknowledged, statuses)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    cluster.stop().expect("stop PostgreSQL");
    // While it is down: fast 503s with the documented body, and not ready.
    for _ in 0..3 {
        let started = Instant::now();
        let register = http
            .post(format!("{base}/api/v1/users"))
            .json(&json!({ "email": "during@example.com", "password": PASSWORD }))
            .send()
            .await
            .expect("request");
        assert_eq!(register.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            register.json::<Value>().await.expect("json"),
            json!({ "detail": "Service temporarily unavailable" })
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "answers while the database is down must be prompt, took {:?}",
            started.elapsed()
        );
        let ready = http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .expect("ready");
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    assert!(instance.still_running(), "{}", instance.log_text());

    cluster.resume().expect("start PostgreSQL again");
    let back = Instant::now();
    loop {
        let ready = http
            .get(format!("{base}/health/ready"))
            .send()
            .await
            .expect("ready");
        if ready.status() == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not recovered within 5 s: {}",
            instance.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes flow again.
    let after = register(&http, &instance, "after@example.com").await;
    assert_eq!(after.status(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acknowledged, statuses) = writer.await.expect("writer");
    assert!(
        statuses.keys().all(|s| [201, 503].contains(s)),
        "only successes and 503s under the outage: {statuses:?}\n{}",
        instance.log_text()
    );
    assert!(acknowledged.len() > 5, "{statuses:?}");

    // Every acknowledged sign-up is there.
    for email in acknowledged
        .iter()
        .chain(std::iter::once(&"after@example.com".to_owned()))
    {
        let response = login(&http, &instance, email, PASSWORD).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{email} was acknowledged but is lost"
        );
    }
    assert!(instance.still_running());
}

/// The instance's `/metrics` URL (started with `METRICS_ADDR=127.0.0.1:0`).
fn metrics_url(at: &Instance) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(url) = at
            .log_text()
            .split("serving metrics on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            return url.trim_end_matches(['"', ',']).to_owned();
        }
        assert!(Instant::now() < deadline, "no metrics address in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One sample of a Prometheus text exposition (0 when absent).
async fn metric(http: &Client, url: &str, series: &str) -> f64 {
    let text = http
        .get(url)
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

const CACHE_HITS: &str = r#"auth_cache_lookups_total{result="hit"}"#;
const FEED_UP: &str = "auth_cache_change_feed_up";

/// Signs `email` in on `signed_in_at`, then uses the session on `cached_at`
/// until that instance answers from its cache (its hit counter moves) with
/// an entry older than the feed-less limit.
async fn cached_session(
    http: &Client,
    signed_in_at: &Instance,
    cached_at: &Instance,
    metrics: &str,
    email: &str,
) -> String {
    let (access, _) = tokens(http, signed_in_at, email).await;
    for _ in 0..2 {
        assert_eq!(me(http, cached_at, &access).await, StatusCode::OK);
    }
    // Past the half second an entry lives without the change feed: a hit now
    // means the feed vouches for the entry, so only a notification can
    // make this instance drop it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hits = metric(http, metrics, CACHE_HITS).await;
    assert_eq!(me(http, cached_at, &access).await, StatusCode::OK);
    assert!(
        metric(http, metrics, CACHE_HITS).await > hits,
        "the session is served from the cache"
    );
    access
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revocation_reaches_the_other_instances_cache_within_a_second() {
    let url = pg::fresh_database().await;
    // Entries may live five minutes: only the change feed can make B notice.
    let settings = [
        ("AUTH_CACHE_SECONDS", "300"),
        ("METRICS_ADDR", "127.0.0.1:0"),
    ];
    let instances = start_together(&url, 2, &settings).await;
    let (a, b) = (&instances[0], &instances[1]);
    let b_metrics = metrics_url(b);
    let http = client();
    let (admin, _) = tokens(&http, a, ADMIN).await;
    let user_id = |email: &'static str| {
        let http = http.clone();
        async move {
            let created = register(&http, a, email).await;
            assert_eq!(created.status(), StatusCode::CREATED);
            created.json::<Value>().await.expect("json")["id"]
                .as_i64()
                .expect("id")
        }
    };
    let mut took = Vec::new();

    // Sign-out on A.
    user_id("one@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "one@example.com").await;
    assert_eq!(
        status_of(http.post(a.url("/api/v1/auth/logout")).bearer_auth(&access)).await,
        StatusCode::OK
    );
    took.push(refused_within_a_second(&http, b, &access).await);

    // The user ends their other sessions from A.
    user_id("two@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "two@example.com").await;
    let (other, _) = tokens(&http, a, "two@example.com").await;
    assert_eq!(
        status_of(
            http.delete(a.url("/api/v1/users/me/sessions"))
                .bearer_auth(&other)
        )
        .await,
        StatusCode::NO_CONTENT
    );
    took.push(refused_within_a_second(&http, b, &access).await);

    // A password change on A.
    user_id("three@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "three@example.com").await;
    let (other, _) = tokens(&http, a, "three@example.com").await;
    assert_eq!(
        status_of(
            http.patch(a.url("/api/v1/users/me"))
                .bearer_auth(&other)
                .json(&json!({
                    "password": crate::common::OTHER_PASSWORD,
                    "current_password": PASSWORD,
                }))
        )
        .await,
        StatusCode::OK
    );
    took.push(refused_within_a_second(&http, b, &access).await);

    // An admin on A ends every session of the user.
    let id = user_id("four@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "four@example.com").await;
    assert_eq!(
        status_of(
            http.delete(a.url(&format!("/api/v1/users/{id}/sessions")))
                .bearer_auth(&admin)
        )
        .await,
        StatusCode::NO_CONTENT
    );
    took.push(refused_within_a_second(&http, b, &access).await);

    // Deactivation on A.
    let id = user_id("five@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "five@example.com").await;
    assert_eq!(
        status_of(
            http.patch(a.url(&format!("/api/v1/users/{id}")))
                .bearer_auth(&admin)
                .json(&json!({ "is_active": false }))
        )
        .await,
        StatusCode::OK
    );
    took.push(refused_within_a_second(&http, b, &access).await);

    // A role change on A shows on B (the cached user is dropped too).
    let id = user_id("six@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "six@example.com").await;
    assert_eq!(
        status_of(
            http.patch(a.url(&format!("/api/v1/users/{id}")))
                .bearer_auth(&admin)
                .json(&json!({ "role": "admin" }))
        )
        .await,
        StatusCode::OK
    );
    let start = Instant::now();
    loop {
        let listed = http
            .get(b.url("/api/v1/users"))
            .bearer_auth(&access)
            .send()
            .await
            .expect("list");
        if listed.status() == StatusCode::OK {
            break;
        }
        assert_eq!(listed.status(), StatusCode::FORBIDDEN);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still a regular user on B"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A change made with plain SQL (no instance involved) reaches B too.
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(&url).await.expect("connect");
    let access = cached_session(&http, a, b, &b_metrics, "six@example.com").await;
    sqlx::query(
        "UPDATE sessions SET revoked_at = now() WHERE revoked_at IS NULL \
         AND user_id = (SELECT id FROM users WHERE email = 'six@example.com')",
    )
    .execute(&mut db)
    .await
    .expect("revoke with SQL");
    took.push(refused_within_a_second(&http, b, &access).await);

    // The listening connection is killed, and a session revoked right away:
    // B must not keep trusting its cache while it reconnects.
    assert_eq!(metric(&http, &b_metrics, FEED_UP).await, 1.0);
    user_id("seven@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "seven@example.com").await;
    let (killed,): (i64,) = sqlx::query_as(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE pid <> pg_backend_pid() \
         AND (query LIKE 'LISTEN %' OR query LIKE '%leptos-auth change feed%')",
    )
    .fetch_one(&mut db)
    .await
    .expect("terminate the listeners");
    assert!(killed >= 2, "both instances listen ({killed} found)");
    sqlx::query(
        "UPDATE sessions SET revoked_at = now() WHERE revoked_at IS NULL \
         AND user_id = (SELECT id FROM users WHERE email = 'seven@example.com')",
    )
    .execute(&mut db)
    .await
    .expect("revoke with SQL");
    took.push(refused_within_a_second(&http, b, &access).await);

    // The feed comes back by itself, and the cache with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&http, &b_metrics, FEED_UP).await != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the change feed did not come back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    user_id("eight@example.com").await;
    let access = cached_session(&http, a, b, &b_metrics, "eight@example.com").await;
    assert_eq!(
        status_of(http.post(a.url("/api/v1/auth/logout")).bearer_auth(&access)).await,
        StatusCode::OK
    );
    took.push(refused_within_a_second(&http, b, &access).await);
    println!("revocations seen on the other instance after: {took:?}");
}

/// Refreshes one token on several instances at once; the responses in order.
async fn refresh_everywhere(
    http: &Client,
    instances: &[Instance],
    refresh: &str,
    per_instance: usize,
) -> Vec<(StatusCode, Value)> {
    let requests: Vec<_> = (0..per_instance)
        .flat_map(|_| instances.iter())
        .map(|at| {
            http.post(at.url("/api/v1/auth/refresh"))
                .json(&json!({ "refresh_token": refresh }))
                .send()
        })
        .collect();
    let mut answers = Vec::new();
    for response in futures::future::join_all(requests).await {
        let response = response.expect("refresh request");
        let status = response.status();
        answers.push((status, response.json().await.unwrap_or(Value::Null)));
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_refreshes_on_two_instances_keep_the_session_within_the_grace() {
    let url = pg::fresh_database().await;
    // The shipped default: a 10-second grace.
    let instances = start_together(&url, 2, &[]).await;
    let http = client();
    let (_, refresh) = tokens(&http, &instances[0], ADMIN).await;
    let answers = refresh_everywhere(&http, &instances, &refresh, 4).await;
    assert!(
        answers.iter().all(|(status, _)| *status == StatusCode::OK),
        "{answers:?}"
    );
    let successor = answers[0].1["refresh_token"].as_str().expect("refresh");
    assert!(answers
        .iter()
        .all(|(_, body)| body["refresh_token"] == successor));
    for ((_, body), at) in answers.iter().zip(instances.iter().cycle()) {
        let access = body["access_token"].as_str().expect("access");
        assert_eq!(me(&http, at, access).await, StatusCode::OK);
    }
    // The chain goes on, on either instance.
    let next = http
        .post(instances[1].url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": successor }))
        .send()
        .await
        .expect("refresh");
    assert_eq!(next.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_grace_racing_refreshes_on_two_instances_have_one_winner() {
    let url = pg::fresh_database().await;
    let instances = start_together(&url, 2, &[("REFRESH_REUSE_GRACE_SECONDS", "0")]).await;
    let http = client();
    let (_, refresh) = tokens(&http, &instances[0], ADMIN).await;
    let answers = refresh_everywhere(&http, &instances, &refresh, 4).await;
    let winners: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|(status, _)| *status == StatusCode::OK || *status == StatusCode::UNAUTHORIZED));
}

/// Asks for a password reset on an instance whose mail server is down,
/// kills it (SIGKILL) before any message went out, starts another instance
/// on the same database with a working mail server: exactly one message
/// arrives, and its link works.
async fn a_queued_message_outlives_its_killed_instance(database_url: &str) {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let down = format!("smtp://127.0.0.1:{closed_port}");
    let mail = |smtp: &str| {
        vec![
            ("SMTP_URL".to_owned(), smtp.to_owned()),
            ("MAIL_FROM".to_owned(), "no-reply@example.com".to_owned()),
            (
                "PUBLIC_URL".to_owned(),
                "https://auth.example.test".to_owned(),
            ),
        ]
    };
    let mut first_env = mail(&down);
    first_env.push(("METRICS_ADDR".to_owned(), "127.0.0.1:0".to_owned()));
    let first_env: Vec<(&str, &str)> = first_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut first = Instance::spawn(database_url, &first_env);
    let http = client();
    let asked = http
        .post(first.url("/api/v1/auth/password-recovery"))
        .json(&json!({ "email": ADMIN }))
        .send()
        .await
        .expect("recovery request");
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    // The worker tried, failed, and keeps the message for later: the
    // metrics show a retry and one message waiting.
    let metrics = metrics_url(&first);
    let start = Instant::now();
    while metric(&http, &metrics, r#"mail_messages_total{outcome="retried"}"#).await < 1.0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no failed attempt:\n{}",
            first.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&http, &metrics, "mail_outbox_pending").await, 1.0);
    first.child.kill().expect("kill -9");
    first.child.wait().expect("reaped");
    assert!(!first.still_running());

    let sink = SmtpSink::start().await;
    let second_env = mail(&sink.url());
    let second_env: Vec<(&str, &str)> = second_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let second = Instance::spawn(database_url, &second_env);
    let start = Instant::now();
    while sink.messages_to(ADMIN).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the queued message never arrived:\n{}",
            second.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Several more polls of the worker: still exactly one.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let messages = sink.messages_to(ADMIN);
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert!(messages[0]
        .header("Message-ID")
        .is_some_and(|id| id.ends_with("@example.com>")));
    let token = messages[0].token("https://auth.example.test", "/reset-password");
    let reset = http
        .post(second.url("/api/v1/auth/reset-password"))
        .json(&json!({ "token": token, "new_password": OTHER_PASSWORD }))
        .send()
        .await
        .expect("reset");
    assert_eq!(reset.status(), StatusCode::OK);
    let signed_in = login(&http, &second, ADMIN, OTHER_PASSWORD).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_outlives_its_killed_instance_on_postgres() {
    a_queued_message_outlives_its_killed_instance(&pg::fresh_database().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_message_outlives_its_killed_instance_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("shared.db").display());
    a_queued_message_outlives_its_killed_instance(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_two_steps_of_a_sign_in_may_land_on_two_instances() {
    let url = pg::fresh_database().await;
    let instances = start_together(&url, 2, &[]).await;
    let (a, b) = (&instances[0], &instances[1]);
    let http = client();
    assert_eq!(
        register(&http, a, "two@example.com").await.status(),
        StatusCode::CREATED
    );
    let (access, _) = tokens(&http, a, "two@example.com").await;
    // Enrolled on A, confirmed on B: the pending secret is in the database.
    let started: Value = http
        .post(a.url("/api/v1/users/me/mfa/totp"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let secret = base32_decode(started["secret"].as_str().expect("secret"));
    let step = chrono::Utc::now().timestamp() as u64 / 30;
    let confirmed = http
        .post(b.url("/api/v1/users/me/mfa/totp/confirm"))
        .bearer_auth(&access)
        .json(&json!({ "code": totp(&secret, step) }))
        .send()
        .await
        .expect("confirm");
    assert_eq!(confirmed.status(), StatusCode::OK);

    // The password on A, the code on B.
    let first = login(&http, a, "two@example.com", PASSWORD).await;
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let body: Value = first.json().await.expect("json");
    let mfa_token = body["mfa_token"].as_str().expect("mfa_token").to_owned();
    let code = totp(&secret, step + 1);
    let second = http
        .post(b.url("/api/v1/auth/mfa"))
        .json(&json!({ "mfa_token": mfa_token, "code": code }))
        .send()
        .await
        .expect("mfa");
    assert_eq!(second.status(), StatusCode::OK);
    let pair: Value = second.json().await.expect("json");
    let new_access = pair["access_token"].as_str().expect("access");
    assert_eq!(me(&http, a, new_access).await, StatusCode::OK);
    // The code and the token are used up for every instance.
    let again = login(&http, b, "two@example.com", PASSWORD).await;
    let token: Value = again.json().await.expect("json");
    let replay = http
        .post(a.url("/api/v1/auth/mfa"))
        .json(&json!({ "mfa_token": token["mfa_token"], "code": code }))
        .send()
        .await
        .expect("replay");
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
    let reused = http
        .post(a.url("/api/v1/auth/mfa"))
        .json(&json!({ "mfa_token": mfa_token, "code": totp(&secret, step + 2) }))
        .send()
        .await
        .expect("reuse");
    assert_eq!(reused.status(), StatusCode::UNAUTHORIZED);
    let reused: Value = reused.json().await.expect("json");
    assert_eq!(
        reused["detail"],
        "Two-factor sign-in expired or invalid: sign in again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passkey_ceremonies_may_start_on_one_instance_and_finish_on_another() {
    let url = pg::fresh_database().await;
    // Both serve the same site (as behind a load balancer).
    let instances = start_together(&url, 2, &[("PUBLIC_URL", "http://localhost:3000")]).await;
    let (a, b) = (&instances[0], &instances[1]);
    let http = client();
    assert_eq!(
        register(&http, a, "keys@example.com").await.status(),
        StatusCode::CREATED
    );
    let (access, _) = tokens(&http, a, "keys@example.com").await;
    let post = |at: &Instance, path: &str, body: Value| {
        http.post(at.url(path))
            .bearer_auth(&access)
            .json(&body)
            .send()
    };
    // Registration: options from A, the answer to B.
    let options: Value = post(a, "/api/v1/users/me/passkeys/register/start", json!({}))
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let mut device = SoftDevice::new();
    let credential = device.register(&options);
    let added = post(
        b,
        "/api/v1/users/me/passkeys/register/finish",
        json!({ "name": "Roaming", "credential": credential }),
    )
    .await
    .expect("finish");
    assert_eq!(added.status(), StatusCode::CREATED);
    // Sign-in: the challenge from B, the assertion to A; once only.
    let started: Value = http
        .post(b.url("/api/v1/auth/passkey/start"))
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("json");
    let assertion = device.assert(&started["options"]);
    let body = json!({ "challenge_id": started["challenge_id"], "credential": assertion });
    let signed_in = http
        .post(a.url("/api/v1/auth/passkey/finish"))
        .json(&body)
        .send()
        .await
        .expect("finish");
    assert_eq!(signed_in.status(), StatusCode::OK);
    let pair: Value = signed_in.json().await.expect("json");
    assert_eq!(
        me(&http, b, pair["access_token"].as_str().expect("access")).await,
        StatusCode::OK
    );
    let replayed = http
        .post(b.url("/api/v1/auth/passkey/finish"))
        .json(&body)
        .send()
        .await
        .expect("replay");
    assert_eq!(replayed.status(), StatusCode::BAD_REQUEST);
}

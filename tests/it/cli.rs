//! The `leptos-auth` binary: `migrate`, `create-admin`, `config check`,
//! `serve` started with no configuration at all from a fresh working
//! directory, and graceful shutdown on SIGTERM and Ctrl-C. [`Server`] runs
//! the real binary for these tests and the observability ones.

use crate::common::{JWT_SECRET, PASSWORD};
use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

const BIN: &str = env!("CARGO_BIN_EXE_leptos-auth");

fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1");
    cmd
}

fn create_admin(dir: &std::path::Path, email: &str, password: &str) -> std::process::Output {
    let mut child = command(dir)
        .args(["create-admin", "--email", email, "--password-stdin"])
        .env("JWT_SECRET", JWT_SECRET)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start leptos-auth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n").as_bytes())
        .expect("write password");
    child.wait_with_output().expect("leptos-auth exits")
}

#[test]
fn migrate_creates_the_default_sqlite_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = command(dir.path())
        .arg("migrate")
        .env("JWT_SECRET", JWT_SECRET)
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("data/leptos-auth.db").is_file());
}

#[test]
fn create_admin_applies_the_password_policy_and_promotes_existing_users() {
    let dir = tempfile::tempdir().expect("temp dir");
    let weak = create_admin(dir.path(), "ops@example.com", "password");
    assert!(!weak.status.success());
    let message = String::from_utf8_lossy(&weak.stderr);
    assert!(
        message.contains("Password must be at least 12 characters"),
        "{message}"
    );

    let created = create_admin(dir.path(), "ops@example.com", PASSWORD);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(String::from_utf8_lossy(&created.stdout).contains("created admin ops@example.com"));

    let again = create_admin(dir.path(), "OPS@example.com", "ignored, never read");
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(String::from_utf8_lossy(&again.stdout).contains("is now an admin (password unchanged)"));
}

#[test]
fn a_bad_setting_stops_startup_with_a_message_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = command(dir.path())
        .arg("serve")
        .env("JWT_SECRET", "short")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("JWT_SECRET"), "{message}");
    let output = command(dir.path())
        .env("JWT_SECRET", JWT_SECRET)
        .env("ACCESS_TOKEN_EXPIRE_MINUTES", "soon")
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ACCESS_TOKEN_EXPIRE_MINUTES"));
}

/// With no environment at all, the binary serves on SQLite (generating a
/// development secret), creates the configured admin, and stops on SIGTERM.
#[test]
fn serve_starts_with_no_configuration_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = command(dir.path())
        .env("LEPTOS_SITE_ADDR", "127.0.0.1:0")
        .env("ADMIN_EMAIL", "boot@example.com")
        .env("ADMIN_PASSWORD", PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start leptos-auth");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut addr = None;
    let mut seen = Vec::new();
    while addr.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                addr = Some(rest.trim().to_owned());
            }
            seen.push(line);
        }
    }
    let Some(addr) = addr else {
        let _ = child.kill();
        panic!("server did not start: {seen:#?}");
    };
    assert!(dir.path().join("data/leptos-auth.db").is_file());
    assert!(dir.path().join("data/jwt-secret").is_file());
    assert!(
        seen.iter()
            .any(|l| l.contains("generated a development secret")),
        "{seen:#?}"
    );

    let health = http_get(&addr, "/health");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.contains("\"healthy\""));
    let body = format!("{{\"email\":\"boot@example.com\",\"password\":\"{PASSWORD}\"}}");
    let login = http_post(&addr, "/api/v1/auth/login", &body);
    assert!(login.starts_with("HTTP/1.1 200"), "{login}");
    // No token ever appears in the logs.
    let token = login
        .split("\"access_token\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("token")
        .to_owned();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "exit status {:?}", output.status);
    let mut logs: Vec<String> = rx.try_iter().collect();
    logs.extend(seen);
    let logs = logs.join("\n");
    assert!(
        logs.contains("route=/api/v1/auth/login") && logs.contains("status=200"),
        "{logs}"
    );
    assert!(!logs.contains(&token), "a token was logged");
    assert!(!logs.contains(PASSWORD), "a password was logged");
}

fn http_request(addr: &str, request: &str) -> String {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

fn http_get(addr: &str, path: &str) -> String {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
}

fn http_post(addr: &str, path: &str, body: &str) -> String {
    http_request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// `config check` with the environment given (on top of [`command`]'s).
fn config_check(settings: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = command(dir.path());
    cmd.args(["config", "check"]);
    for (name, value) in settings {
        cmd.env(name, value);
    }
    cmd.output().expect("run")
}

/// The variables of the README's configuration table.
fn documented_settings() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("a Configuration section");
    let mut names: Vec<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split(" |").next())
        .flat_map(|cell| cell.split(", "))
        .map(|name| name.trim_matches('`').to_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn config_check_prints_every_setting_once_with_secrets_masked() {
    let db_password = "db-password-in-the-url";
    let admin_password = "admin-password-never-shown";
    let smtp_password = "smtp-password-never-shown";
    let output = config_check(&[
        ("JWT_SECRET", JWT_SECRET),
        (
            "DATABASE_URL",
            &format!("postgres://app:{db_password}@db.internal:5432/auth"),
        ),
        ("ADMIN_EMAIL", "ops@example.com"),
        ("ADMIN_PASSWORD", admin_password),
        ("METRICS_ADDR", "127.0.0.1:9100"),
        ("SHUTDOWN_TIMEOUT_SECONDS", "45"),
        (
            "SMTP_URL",
            &format!("smtps://mailer:{smtp_password}@mail.example.com:465"),
        ),
        ("MAIL_FROM", "Accounts <accounts@example.com>"),
        ("PUBLIC_URL", "https://auth.example.com/"),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let settings: Vec<(&str, &str)> = stdout
        .lines()
        .map(|line| {
            line.split_once('=')
                .unwrap_or_else(|| panic!("not NAME=value: {line:?}"))
        })
        .collect();
    let value = |name: &str| {
        let found: Vec<&str> = settings
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name} printed {} times:\n{stdout}",
            found.len()
        );
        found[0]
    };
    // Exactly the documented settings, each once.
    let mut printed: Vec<String> = settings.iter().map(|(name, _)| name.to_string()).collect();
    printed.sort();
    assert_eq!(printed, documented_settings());
    printed.dedup();
    assert_eq!(printed.len(), settings.len(), "{stdout}");
    assert_eq!(value("JWT_SECRET"), "***");
    assert_eq!(value("ADMIN_PASSWORD"), "***");
    assert_eq!(
        value("DATABASE_URL"),
        "postgres://app:***@db.internal:5432/auth"
    );
    assert_eq!(value("ADMIN_EMAIL"), "ops@example.com");
    assert_eq!(value("METRICS_ADDR"), "127.0.0.1:9100");
    assert_eq!(value("SHUTDOWN_TIMEOUT_SECONDS"), "45");
    assert_eq!(value("LOG_FORMAT"), "pretty");
    assert_eq!(value("APP_ENV"), "development");
    assert_eq!(value("SMTP_URL"), "smtps://mailer:***@mail.example.com:465");
    assert_eq!(value("MAIL_FROM"), "Accounts <accounts@example.com>");
    assert_eq!(value("PUBLIC_URL"), "https://auth.example.com");
    for secret in [JWT_SECRET, db_password, admin_password, smtp_password] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} shown"
        );
    }
}

#[test]
fn config_check_fails_naming_the_invalid_variable_without_showing_secrets() {
    let short_secret = "short-jwt-secret";
    let db_password = "db-password-in-the-url";
    for (variable, settings) in [
        ("JWT_SECRET", vec![("JWT_SECRET", short_secret)]),
        (
            "JWT_SECRET",
            vec![("APP_ENV", "production"), ("LOG_FORMAT", "json")],
        ),
        (
            "DATABASE_URL",
            vec![
                ("JWT_SECRET", JWT_SECRET),
                ("DATABASE_URL", "mysql://app:db-password-in-the-url@db/auth"),
            ],
        ),
        (
            "SHUTDOWN_TIMEOUT_SECONDS",
            vec![
                ("JWT_SECRET", JWT_SECRET),
                ("SHUTDOWN_TIMEOUT_SECONDS", "0"),
            ],
        ),
        (
            "METRICS_ADDR",
            vec![
                ("JWT_SECRET", JWT_SECRET),
                ("METRICS_ADDR", "localhost:9100"),
            ],
        ),
        (
            "LOG_FORMAT",
            vec![("JWT_SECRET", JWT_SECRET), ("LOG_FORMAT", "xml")],
        ),
        (
            "RUST_LOG",
            vec![("JWT_SECRET", JWT_SECRET), ("RUST_LOG", "info,sqlx=loud")],
        ),
        (
            "PUBLIC_URL",
            vec![
                ("APP_ENV", "production"),
                ("JWT_SECRET", JWT_SECRET),
                ("LOG_FORMAT", "json"),
            ],
        ),
        (
            "MAIL_FROM",
            vec![
                ("JWT_SECRET", JWT_SECRET),
                (
                    "SMTP_URL",
                    "smtps://mailer:db-password-in-the-url@mail.example.com",
                ),
            ],
        ),
        (
            "SMTP_URL",
            vec![
                ("JWT_SECRET", JWT_SECRET),
                (
                    "SMTP_URL",
                    "https://mailer:db-password-in-the-url@mail.example.com",
                ),
            ],
        ),
        (
            "PUBLIC_URL",
            vec![
                ("JWT_SECRET", JWT_SECRET),
                ("PUBLIC_URL", "auth.example.com"),
            ],
        ),
    ] {
        let output = config_check(&settings);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}: {stdout}");
        assert!(stdout.is_empty(), "{variable}: printed {stdout}");
        assert!(
            stderr.contains(&format!("invalid configuration: {variable}")),
            "{variable}: {stderr}"
        );
        for secret in [short_secret, db_password] {
            assert!(!stderr.contains(secret), "{secret} shown: {stderr}");
        }
    }
}

/// The real binary serving on free ports, its output collected line by line.
pub struct Server {
    child: Child,
    /// `host:port` of the site.
    pub addr: String,
    /// `host:port` of `/metrics` (when `METRICS_ADDR` was given).
    pub metrics_addr: Option<String>,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

fn collect_lines(stream: impl Read + Send + 'static) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            sink.lock().expect("log lines").push(line);
        }
    });
    (lines, reader)
}

/// The `host:port` logged right after `needle` (in either log format).
fn address_after(line: &str, needle: &str) -> Option<String> {
    let rest = line.split(needle).nth(1)?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    (!addr.is_empty()).then_some(addr)
}

impl Server {
    /// Starts `leptos-auth serve` in a fresh folder (SQLite) with these
    /// settings on top of cheap test ones, and waits until it listens.
    pub async fn start(settings: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cmd = command(dir.path());
        cmd.arg("serve")
            .env("JWT_SECRET", JWT_SECRET)
            .env("LEPTOS_SITE_ADDR", "127.0.0.1:0");
        for (name, value) in settings {
            cmd.env(name, value);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start leptos-auth");
        let (stdout, out_reader) = collect_lines(child.stdout.take().expect("stdout"));
        let (stderr, err_reader) = collect_lines(child.stderr.take().expect("stderr"));
        let mut server = Server {
            child,
            addr: String::new(),
            metrics_addr: None,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = server.find_address("listening on http://") {
                server.addr = addr;
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("leptos-auth exited ({status}):\n{}", server.logs());
            }
            assert!(
                Instant::now() < deadline,
                "not listening:\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if settings.iter().any(|(name, _)| *name == "METRICS_ADDR") {
            // Logged before the site's address.
            server.metrics_addr = server.find_address("serving metrics on http://");
            assert!(server.metrics_addr.is_some(), "{}", server.logs());
        }
        server
    }

    fn find_address(&self, needle: &str) -> Option<String> {
        self.stdout()
            .iter()
            .find_map(|line| address_after(line, needle))
    }

    /// A URL of the site.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The URL of the metrics.
    pub fn metrics_url(&self) -> String {
        let addr = self.metrics_addr.as_deref().expect("METRICS_ADDR given");
        format!("http://{addr}/metrics")
    }

    /// Standard output so far, one entry per line.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().expect("log lines").clone()
    }

    /// Standard error so far.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().expect("log lines").clone()
    }

    /// Everything written so far.
    pub fn logs(&self) -> String {
        let mut all = self.stdout();
        all.extend(self.stderr());
        all.join("\n")
    }

    /// Waits until a line containing `needle` is written.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.stdout().iter().any(|line| line.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// Sends a signal (`TERM`, `INT`...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to end (killing it and failing after `limit`)
    /// and for its last lines.
    pub async fn wait_for_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("still running after {limit:?}:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        for reader in self.readers.drain(..) {
            reader.join().expect("reader");
        }
        status
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_for_exit(Duration::from_secs(30)).await;
        assert!(status.success(), "exit status {status}:\n{}", self.logs());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP client for [`Server`]: one connection per request (so a request
/// never rides a connection the server is closing), no redirects followed.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// The value of one series (`name{labels}` exactly as rendered) in a scrape.
pub fn metric(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|line| {
        line.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
    })
}

/// `GET /metrics`.
pub async fn scrape(server: &Server) -> String {
    let response = http()
        .get(server.metrics_url())
        .send()
        .await
        .expect("scrape");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    response.text().await.expect("metrics text")
}

/// Settings under which one password hash takes a noticeable time (about a
/// second here; measured by the tests that rely on it) and hashes run one at
/// a time, with metrics on to see when a hash starts.
const SLOW_HASHING: &[(&str, &str)] = &[
    ("ARGON2_MEMORY_KIB", "19456"),
    ("ARGON2_ITERATIONS", "150"),
    ("ARGON2_MAX_CONCURRENT", "1"),
    ("METRICS_ADDR", "127.0.0.1:0"),
    ("ADMIN_EMAIL", "slow@example.com"),
    ("ADMIN_PASSWORD", PASSWORD),
];

async fn sign_in(http: reqwest::Client, url: String) -> Result<reqwest::Response, reqwest::Error> {
    http.post(url)
        .json(&serde_json::json!({ "email": "slow@example.com", "password": PASSWORD }))
        .send()
        .await
}

/// Signs in once and returns how long that took (one password hash, nearly all of it).
async fn measure_sign_in(server: &Server) -> Duration {
    let started = Instant::now();
    let response = sign_in(http(), server.url("/api/v1/auth/login"))
        .await
        .expect("sign in");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let took = started.elapsed();
    // Shorter, and "in flight" could not be told apart from "done".
    assert!(
        took >= Duration::from_millis(300),
        "one sign-in took only {took:?}: raise ARGON2_ITERATIONS in SLOW_HASHING"
    );
    took
}

/// How many password hashes have started (left the queue) so far.
async fn hashes_started(server: &Server) -> f64 {
    metric(&scrape(server).await, "argon2_queue_wait_seconds_count").unwrap_or(0.0)
}

/// Waits until `count` password hashes have started.
async fn wait_for_hashes(server: &Server, count: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if hashes_started(server).await >= count {
            return;
        }
        assert!(Instant::now() < deadline, "{count} hashes never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_0() {
    let mut server = Server::start(SLOW_HASHING).await;
    let one_hash = measure_sign_in(&server).await;

    let before = hashes_started(&server).await;
    let in_flight = tokio::spawn(sign_in(http(), server.url("/api/v1/auth/login")));
    wait_for_hashes(&server, before + 1.0).await;
    assert!(!in_flight.is_finished());
    let signalled = Instant::now();
    server.signal("TERM");
    assert!(
        server
            .wait_for_log("no longer accepting connections", Duration::from_secs(10))
            .await,
        "{}",
        server.logs()
    );
    if !in_flight.is_finished() {
        // The listener is closed while the request is still being served.
        let refused = http().get(server.url("/health")).send().await;
        assert!(refused.is_err(), "a new request was accepted: {refused:?}");
    }
    let response = in_flight
        .await
        .expect("task")
        .expect("the request completes");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(body["access_token"].is_string(), "{body}");

    let status = server.wait_for_exit(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    assert!(signalled.elapsed() < one_hash + Duration::from_secs(10));
    let logs = server.stdout();
    let position = |needle: &str| {
        logs.iter()
            .rposition(|line| line.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", logs.join("\n")))
    };
    // The in-flight sign-in was answered after the signal, then the server stopped.
    assert!(position("shutting down (SIGTERM)") < position("route=/api/v1/auth/login"));
    assert!(position("route=/api/v1/auth/login") < position("stopped"));
    assert!(!server.logs().contains("stopping anyway"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_waiting_for_requests_after_the_shutdown_timeout() {
    let mut settings = SLOW_HASHING.to_vec();
    settings.push(("SHUTDOWN_TIMEOUT_SECONDS", "1"));
    let mut server = Server::start(&settings).await;
    let one_hash = measure_sign_in(&server).await;
    let timeout = Duration::from_secs(1);

    // Enough sign-ins queued behind one hashing slot to outlast the timeout
    // by far: draining them all would take several seconds more than the
    // bound checked below.
    let queued = ((timeout + one_hash * 2 + Duration::from_secs(7)).as_secs_f64()
        / one_hash.as_secs_f64())
    .ceil() as usize;
    let before = hashes_started(&server).await;
    let requests: Vec<_> = (0..queued)
        .map(|_| tokio::spawn(sign_in(http(), server.url("/api/v1/auth/login"))))
        .collect();
    wait_for_hashes(&server, before + 1.0).await;
    let signalled = Instant::now();
    server.signal("INT");
    let status = server.wait_for_exit(Duration::from_secs(60)).await;
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.logs());
    // The timeout, then at most the hash that was running (the process waits
    // for it; counted twice, as the machine may be slower now than when
    // measured), and slack for closing.
    assert!(
        took < timeout + one_hash * 2 + Duration::from_secs(3),
        "took {took:?} with one hash taking {one_hash:?}"
    );
    let mut answered = 0;
    for request in requests {
        if let Ok(Ok(response)) = request.await {
            if response.status() == reqwest::StatusCode::OK {
                answered += 1;
            }
        }
    }
    assert!(
        answered < queued,
        "all {queued} queued sign-ins were answered"
    );
    let logs = server.logs();
    assert!(logs.contains("shutting down (Ctrl-C)"), "{logs}");
    assert!(
        logs.contains("requests still in flight after SHUTDOWN_TIMEOUT_SECONDS: stopping anyway"),
        "{logs}"
    );
    assert!(logs.contains("stopped"), "{logs}");
}

/// `leptos-auth reseal` after a key rotation: secrets sealed with the old
/// key are sealed again with the new one, after which the old key can go,
/// and the users' codes keep working throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reseal_moves_every_secret_to_the_new_key() {
    use crate::common::{now_step, totp, Backend, TestApp};
    let old_key = "11".repeat(32);
    let new_key = "22".repeat(32);
    let app = TestApp::start(Backend::Sqlite, &[("DATA_ENCRYPTION_KEY", &old_key)]).await;
    let mut secrets = Vec::new();
    for email in ["one@example.com", "two@example.com"] {
        let (_, tokens) = app.user(email).await;
        let secret = app.enrol_totp(&tokens).await;
        secrets.push((email, secret));
    }
    let url = format!("sqlite://{}", app.dir.path().join("test.db").display());
    let run = |key: &str, old: &str| {
        command(app.dir.path())
            .arg("reseal")
            .env("DATABASE_URL", &url)
            .env("DATA_DIR", app.dir.path())
            .env("JWT_SECRET", JWT_SECRET)
            .env("DATA_ENCRYPTION_KEY", key)
            .env("DATA_ENCRYPTION_OLD_KEYS", old)
            .output()
            .expect("run reseal")
    };
    // Without the old key the secrets cannot be opened: it says so and fails.
    let blind = run(&new_key, "");
    assert!(!blind.status.success());
    assert!(
        String::from_utf8_lossy(&blind.stderr).contains("2 secrets open with no configured key")
    );
    let moved = run(&new_key, &old_key);
    let stdout = String::from_utf8_lossy(&moved.stdout);
    assert!(
        moved.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(stdout.contains("resealed 2 TOTP secrets"), "{stdout}");
    let again = run(&new_key, &old_key);
    assert!(String::from_utf8_lossy(&again.stdout)
        .contains("resealed 0 TOTP secrets with the current key (2 were already"));
    drop(app.pool);
    // An instance with the new key alone still checks every user's codes.
    let (state, _pool) = leptos_auth::state::AppState::initialize(
        leptos_auth::config::Config::from_lookup(|name| match name {
            "DATABASE_URL" => Some(url.clone()),
            "DATA_DIR" => Some(app.dir.path().display().to_string()),
            "JWT_SECRET" => Some(JWT_SECRET.to_owned()),
            "DATA_ENCRYPTION_KEY" => Some(new_key.clone()),
            _ => None,
        })
        .expect("config"),
    )
    .await
    .expect("starts");
    for (email, secret) in secrets {
        let user = state
            .services
            .repositories
            .users
            .find_by_email(&leptos_auth::domain::Email::parse(email).expect("email"))
            .await
            .expect("find")
            .expect("user");
        let method = state
            .services
            .second_factors
            .verify(&user, &totp(&secret, now_step() + 1), &Default::default())
            .await
            .expect("the code passes with the new key");
        assert_eq!(method.as_str(), "totp");
    }
}

/// A PostgreSQL server that does not answer (yet) is waited for at startup,
/// for a bounded time, and then named in the error.
#[test]
fn a_database_that_does_not_answer_is_waited_for_then_reported() {
    let dir = tempfile::tempdir().expect("temp dir");
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let started = Instant::now();
    let output = command(dir.path())
        .arg("migrate")
        .env(
            "DATABASE_URL",
            format!("postgres://app@127.0.0.1:{port}/app"),
        )
        .env("JWT_SECRET", JWT_SECRET)
        .output()
        .expect("run migrate");
    let waited = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("could not connect to the database"),
        "{stderr}"
    );
    assert!(
        stderr.contains("not answering yet; trying again"),
        "{stderr}"
    );
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(40),
        "{waited:?}"
    );
}

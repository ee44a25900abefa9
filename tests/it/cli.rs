//! The `leptos-auth` binary: `migrate`, `create-admin`, and `serve` started
//! with no configuration at all from a fresh working directory.

use crate::common::{JWT_SECRET, PASSWORD};
use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
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
        logs.contains("path=/api/v1/auth/login") && logs.contains("status=200"),
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

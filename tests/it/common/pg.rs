//! A throwaway PostgreSQL cluster for the tests.
//!
//! With `TEST_DATABASE_URL` set (a superuser URL), that server is used.
//! Otherwise the local server binaries (`initdb`, `pg_ctl`; on PATH or under
//! `/usr/lib/postgresql/*/bin`) start a cluster in a temp dir on a free port,
//! run as the `postgres` system user when the tests run as root. A detached
//! watchdog stops it and removes the folder once the test process exits.
//! Each test gets its own fresh database in that cluster.
//!
//! Tests that stop and restart the database get a private [`Cluster`] of
//! their own, so the shared one never goes away under other tests.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        OnceLock,
    },
};

static CLUSTER: OnceLock<Result<String, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A superuser URL of the cluster (without a database name).
pub fn server_url() -> String {
    match CLUSTER.get_or_init(start) {
        Ok(url) => url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Creates a fresh, empty database and returns its URL.
pub async fn fresh_database() -> String {
    use sqlx::Connection;
    let server = server_url();
    let name = format!(
        "test_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let _ = conn.close().await;
    format!("{server}/{name}")
}

fn start() -> Result<String, String> {
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        if !url.trim().is_empty() {
            // Keep scheme, credentials and host; tests create their own databases.
            let url = url.trim();
            let host_start = url.find("://").map(|i| i + 3).unwrap_or(0);
            let base = match url[host_start..].find('/') {
                Some(slash) => url[..host_start + slash].to_owned(),
                None => url.to_owned(),
            };
            return Ok(base);
        }
    }
    let cluster = Cluster::start()?;
    let url = cluster.url();
    // The shared cluster lives as long as the process (the watchdog stops it).
    std::mem::forget(cluster);
    Ok(url)
}

/// A PostgreSQL cluster of the local server binaries, in its own temp dir.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    as_root: bool,
}

impl Cluster {
    /// Initialises and starts a cluster on a free port.
    pub fn start() -> Result<Cluster, String> {
        let bin = find_bin_dir().ok_or_else(|| {
            "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or under /usr/lib/postgresql/*/bin. \
             Install them (Debian/Ubuntu: `apt-get install postgresql`) or set TEST_DATABASE_URL to a superuser URL \
             of a running server."
                .to_owned()
        })?;
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let dir = tempfile::Builder::new()
            .prefix("leptos-auth-pg-")
            .tempdir()
            .map_err(|e| format!("creating a temp dir for PostgreSQL: {e}"))?
            .keep();
        if as_root {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir))?;
        }
        let data = dir.join("data");
        run(pg_command(&bin, "initdb", as_root)
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]))?;
        let cluster = Cluster {
            bin,
            dir,
            data,
            port: free_port()?,
            as_root,
        };
        cluster.resume()?;
        spawn_watchdog(&cluster.bin, &cluster.dir, &cluster.data, as_root);
        Ok(cluster)
    }

    /// A superuser URL (without a database name).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// Starts the (stopped) server again on the same port and data.
    pub fn resume(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.display()
        );
        run(pg_command(&self.bin, "pg_ctl", self.as_root)
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &options, "-w", "-t", "60", "start"]))
    }

    /// Stops the server the way an operator restarting it would ("fast":
    /// open connections are terminated, committed data is kept).
    pub fn stop(&self) -> Result<(), String> {
        run(pg_command(&self.bin, "pg_ctl", self.as_root)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"]))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl", self.as_root)
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    candidates.pop()
}

/// `initdb`/`pg_ctl` refuse to run as root: run them as `postgres` then.
fn pg_command(bin: &Path, tool: &str, as_root: bool) -> Command {
    let program = bin.join(tool);
    if as_root {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("finding a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Stops the cluster and removes its folder after this process exits, even
/// when the tests fail or are interrupted.
fn spawn_watchdog(bin: &Path, dir: &Path, data: &Path, as_root: bool) {
    let stop = if as_root {
        format!(
            "runuser -u postgres -- '{}' -D '{}' stop -m immediate",
            bin.join("pg_ctl").display(),
            data.display()
        )
    } else {
        format!(
            "'{}' -D '{}' stop -m immediate",
            bin.join("pg_ctl").display(),
            data.display()
        )
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

//! The database: which one (`DATABASE_URL`), its pool, and the per-instance
//! cache of the authentication check in front of it. [`DatabaseSettings`]
//! owns the conversion into sqlx's connection and pool options, so opening
//! the pool (`db::Pool::connect`) needs nothing else.

use super::setting::{declare, read_and_default, Env, Setting, UNBOUNDED};
use super::{default_parallelism, ConfigError, DatabaseUrl};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use std::{path::Path, str::FromStr, time::Duration};

/// Which database a URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite://path` or `sqlite:path`: the embedded default.
    Sqlite,
    /// `postgres://` or `postgresql://`: production.
    Postgres,
}

/// A URL with a scheme we do not support.
#[derive(Debug, thiserror::Error)]
#[error("unsupported database URL scheme (expected sqlite://, postgres:// or postgresql://)")]
pub struct UnsupportedScheme;

impl Backend {
    /// Picks the backend from the URL scheme.
    pub fn from_url(url: &str) -> Result<Backend, UnsupportedScheme> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(UnsupportedScheme)
        }
    }
}

/// How long a request may wait for a PostgreSQL connection.
pub const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long SQLite work waits: for the write lock, and for a connection.
const SQLITE_WAIT: Duration = Duration::from_secs(10);

declare! {
    /// `sqlite://path` or `postgres://user:password@host/db`; the default,
    /// `sqlite://<DATA_DIR>/leptos-auth.db`, follows `DATA_DIR` (see
    /// [`DatabaseSettings::read`]).
    DATABASE_URL: DatabaseUrl = Setting::text(
        None,
        |raw| {
            Backend::from_url(raw)
                .map(|_| DatabaseUrl::new(raw))
                .map_err(|e| e.to_string())
        },
        DatabaseUrl::masked,
    );
    /// Pool size; the default follows the backend (see `default_max_connections`).
    DATABASE_MAX_CONNECTIONS: u32 = Setting::derived_count(1..=UNBOUNDED);
    /// How long an authentication check may be answered from memory while
    /// PostgreSQL's change feed is confirmed.
    AUTH_CACHE_SECONDS: Duration =
        Setting::seconds(30, 0..=3600).zero_means("turns the cache off");
    /// How many sessions each instance keeps in the authentication cache.
    AUTH_CACHE_ENTRIES: usize = Setting::count(10_000, 1..=10_000_000);
}

/// The database and its pool.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// `DATABASE_URL`: `sqlite://...` or `postgres://...`
    /// (default `sqlite://<DATA_DIR>/leptos-auth.db`).
    pub url: DatabaseUrl,
    /// The backend the URL's scheme names.
    pub backend: Backend,
    /// `DATABASE_MAX_CONNECTIONS`: pool size (default 10 on PostgreSQL, 2 per
    /// core on SQLite, whose writes use one more connection).
    pub max_connections: u32,
}

impl DatabaseSettings {
    /// `DATABASE_URL` and `DATABASE_MAX_CONNECTIONS`; the default database
    /// is a file in `data_dir`.
    pub fn read(env: &Env<'_>, data_dir: &Path) -> Result<DatabaseSettings, ConfigError> {
        let url = DATABASE_URL.get(env)?.unwrap_or_else(|| {
            DatabaseUrl::new(format!("sqlite://{}/leptos-auth.db", data_dir.display()))
        });
        let backend = Backend::from_url(url.expose())
            .map_err(|e| ConfigError::new(DATABASE_URL.name, e.to_string()))?;
        let max_connections = DATABASE_MAX_CONNECTIONS
            .get(env)?
            .unwrap_or_else(|| default_max_connections(backend));
        Ok(DatabaseSettings {
            url,
            backend,
            max_connections,
        })
    }

    /// How SQLite connections are opened: the file is created when
    /// missing; WAL lets readers run while one writer writes; writers queue
    /// for the lock instead of failing with "database is locked".
    pub fn sqlite_connect_options(&self) -> Result<SqliteConnectOptions, sqlx::Error> {
        Ok(SqliteConnectOptions::from_str(self.url.expose())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_WAIT)
            .foreign_keys(true))
    }

    /// The SQLite pool of read connections.
    pub fn sqlite_pool_options(&self) -> SqlitePoolOptions {
        SqlitePoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(SQLITE_WAIT)
    }

    /// How PostgreSQL connections are opened: as the URL says.
    pub fn postgres_connect_options(&self) -> Result<PgConnectOptions, sqlx::Error> {
        PgConnectOptions::from_str(self.url.expose())
    }

    /// The PostgreSQL pool. Queries take milliseconds, so a request waits
    /// for a connection only briefly under load; when the server is down
    /// (connecting is refused and retried until [`PG_ACQUIRE_TIMEOUT`]),
    /// requests fail fast with 503 instead of hanging.
    pub fn postgres_pool_options(&self) -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(PG_ACQUIRE_TIMEOUT)
    }
}

/// The default pool size of a backend. PostgreSQL: 10 per instance. SQLite:
/// 2 read connections per core; its reads run in this process and are
/// CPU-bound, so more connections add no throughput, only memory (each keeps
/// a page cache of up to 2 MiB and a thread): see BENCHMARKS.md, section
/// "Analysis", item "SQLite read connections: 2 per core by default".
fn default_max_connections(backend: Backend) -> u32 {
    match backend {
        Backend::Postgres => 10,
        Backend::Sqlite => u32::try_from(2 * default_parallelism()).unwrap_or(u32::MAX),
    }
}

/// The per-instance cache of the authentication check
/// (`repositories::cache`): `AUTH_CACHE_SECONDS` and `AUTH_CACHE_ENTRIES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthCacheSettings {
    /// How long a checked session may be reused while the change feed is
    /// confirmed (PostgreSQL). Zero turns the cache off.
    pub max_age: Duration,
    /// At most this many sessions are kept (least useful ones are evicted).
    pub capacity: usize,
}

read_and_default! {
    AuthCacheSettings {
        max_age: AUTH_CACHE_SECONDS,
        capacity: AUTH_CACHE_ENTRIES,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_follows_the_url_scheme() {
        for (url, backend) in [
            ("sqlite://data/x.db", Some(Backend::Sqlite)),
            ("sqlite::memory:", Some(Backend::Sqlite)),
            ("postgres://u@h/db", Some(Backend::Postgres)),
            ("postgresql://u@h/db", Some(Backend::Postgres)),
            ("mysql://u@h/db", None),
        ] {
            assert_eq!(Backend::from_url(url).ok(), backend, "{url}");
        }
    }
}

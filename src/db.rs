//! Opens the database that `DATABASE_URL` names and runs the embedded
//! migrations for its backend.

use crate::config::Config;
use crate::repositories::{
    cache::{AuthCache, AuthCacheSettings},
    change_feed,
    postgres::PostgresStore,
    sqlite::SqliteStore,
    Repositories,
};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    PgPool, SqlitePool,
};
use std::{str::FromStr, time::Duration};

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

/// An open pool of either backend.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Errors while opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Scheme(#[from] UnsupportedScheme),
    #[error("could not create the database folder {path}: {source}")]
    Folder {
        path: String,
        source: std::io::Error,
    },
    #[error("could not connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("could not apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Pool {
    /// Connections open, and how many of them are idle (for `/metrics`).
    pub fn connections(&self) -> (u32, usize) {
        match self {
            Pool::Sqlite(pool) => (pool.size(), pool.num_idle()),
            Pool::Postgres(pool) => (pool.size(), pool.num_idle()),
        }
    }
}

/// How long a request may wait for a PostgreSQL connection.
pub const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

impl Pool {
    /// Connects (creating the SQLite file and its folder when missing).
    pub async fn connect(config: &Config) -> Result<Pool, DbError> {
        let url = config.database_url.expose();
        match Backend::from_url(url)? {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(DbError::Connect)?
                    .create_if_missing(true)
                    // WAL lets readers run while one writer writes.
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    // Writers queue for the lock instead of failing with "database is locked".
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                let folder = options.get_filename().parent().map(|p| p.to_path_buf());
                if let Some(folder) = folder.filter(|f| !f.as_os_str().is_empty()) {
                    std::fs::create_dir_all(&folder).map_err(|source| DbError::Folder {
                        path: folder.display().to_string(),
                        source,
                    })?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.database_max_connections)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Pool::Sqlite(pool))
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url).map_err(DbError::Connect)?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.database_max_connections)
                    // Queries take milliseconds, so a request waits for a
                    // connection only briefly under load; when the server is
                    // down (connecting is refused and retried until this
                    // timeout), requests fail fast with 503 instead of hanging.
                    .acquire_timeout(PG_ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Pool::Postgres(pool))
            }
        }
    }

    /// Applies the embedded migrations of this backend. On PostgreSQL the
    /// migrator holds an advisory lock, so instances starting together are safe.
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Pool::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    /// The repositories over this pool.
    pub fn repositories(&self) -> Repositories {
        match self {
            Pool::Sqlite(pool) => SqliteStore::repositories(pool.clone()),
            Pool::Postgres(pool) => PostgresStore::repositories(pool.clone()),
        }
    }

    /// The repositories a serving instance uses: with the authentication
    /// cache unless `settings` turn it off, kept in step with other instances
    /// by the PostgreSQL change feed (started here, stopped by [`Pool::close`]).
    pub fn serving_repositories(&self, settings: AuthCacheSettings) -> Repositories {
        let repositories = self.repositories();
        if settings.max_age.is_zero() {
            return repositories;
        }
        let cache = AuthCache::new(settings);
        if let Pool::Postgres(pool) = self {
            change_feed::spawn(pool.clone(), cache.clone());
        }
        repositories.with_auth_cache(cache)
    }

    /// Closes every connection (at shutdown).
    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://data/x.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("sqlite::memory:").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://u@h/db").is_err());
    }
}

//! Opens the database that `DATABASE_URL` names and runs the embedded
//! migrations for its backend.

use crate::config::{AuthCacheSettings, Backend, DatabaseSettings};
use crate::repositories::{
    cache::AuthCache, change_feed, postgres::PostgresStore, sqlite::SqliteStore, Repositories,
};
use sqlx::{PgPool, SqlitePool};

/// An open pool of either backend.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Errors while opening or migrating the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
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

/// How long a starting instance waits for PostgreSQL to accept its first
/// connection.
const STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A connection failure that may pass (the server starting, refusing for a
/// moment, or too busy to answer within the acquire timeout), rather than a
/// wrong URL, password or database name.
fn worth_waiting_for(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| matches!(code.as_ref(), "57P03" | "53300")),
        _ => false,
    }
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

impl Pool {
    /// Connects (creating the SQLite file and its folder when missing),
    /// with the options `settings` describe.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Pool, DbError> {
        match settings.backend {
            Backend::Sqlite => {
                let options = settings
                    .sqlite_connect_options()
                    .map_err(DbError::Connect)?;
                let folder = options.get_filename().parent().map(|p| p.to_path_buf());
                if let Some(folder) = folder.filter(|f| !f.as_os_str().is_empty()) {
                    std::fs::create_dir_all(&folder).map_err(|source| DbError::Folder {
                        path: folder.display().to_string(),
                        source,
                    })?;
                }
                let pool = settings
                    .sqlite_pool_options()
                    .connect_with(options)
                    .await
                    .map_err(DbError::Connect)?;
                Ok(Pool::Sqlite(pool))
            }
            Backend::Postgres => {
                let options = settings
                    .postgres_connect_options()
                    .map_err(DbError::Connect)?;
                // A request waits at most a second for a connection; an
                // instance starting while the server is still coming up, or
                // busy, waits longer before it gives up.
                let deadline = std::time::Instant::now() + STARTUP_WAIT;
                loop {
                    match settings
                        .postgres_pool_options()
                        .connect_with(options.clone())
                        .await
                    {
                        Ok(pool) => return Ok(Pool::Postgres(pool)),
                        Err(err)
                            if worth_waiting_for(&err) && std::time::Instant::now() < deadline =>
                        {
                            tracing::warn!(error = %err, "the database is not answering yet; trying again");
                            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        }
                        Err(err) => return Err(DbError::Connect(err)),
                    }
                }
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
        let cache = AuthCache::new(settings.max_age, settings.capacity);
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
mod startup_tests {
    use super::worth_waiting_for;

    #[test]
    fn only_passing_failures_are_waited_for() {
        assert!(worth_waiting_for(&sqlx::Error::PoolTimedOut));
        assert!(worth_waiting_for(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(!worth_waiting_for(&sqlx::Error::Configuration(
            "bad url".into()
        )));
        assert!(!worth_waiting_for(&sqlx::Error::PoolClosed));
    }
}

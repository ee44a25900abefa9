//! PostgreSQL change feed: keeps this instance's [`AuthCache`] in step with
//! changes made by other instances (or by anyone writing to the database).
//!
//! Triggers (migration 0005) call `pg_notify('leptos_auth_changes', ...)`
//! when a session stops being valid or a user changes; this task `LISTEN`s on
//! one connection of the pool and drops the named entries. The cache trusts
//! its entries beyond [`super::cache::UNCONFIRMED_MAX_AGE`] only while this
//! feed proves it delivers: each notification, and a heartbeat query on the
//! listening connection whenever it has been quiet for [`HEARTBEAT`],
//! confirms it for one second. A lost connection is re-established; the
//! cache is then emptied, since notifications sent meanwhile are lost.

use super::cache::AuthCache;
use sqlx::{
    postgres::{PgListener, PgPool},
    Executor,
};
use std::time::Duration;
use tokio::time::timeout;

/// The channel the triggers notify.
pub const CHANNEL: &str = "leptos_auth_changes";

/// After this long without a notification, the feed proves itself with a
/// heartbeat query (and gives up on the connection if it takes longer).
pub const HEARTBEAT: Duration = Duration::from_millis(400);

/// The heartbeat, recognisable in `pg_stat_activity`.
pub const HEARTBEAT_SQL: &str = "SELECT 1 /* leptos-auth change feed */";

/// Follows the feed until the pool is closed.
pub fn spawn(pool: PgPool, cache: AuthCache) -> tokio::task::JoinHandle<()> {
    tokio::spawn(follow(pool, cache))
}

async fn follow(pool: PgPool, cache: AuthCache) {
    let mut backoff = Duration::from_millis(100);
    while !pool.is_closed() {
        match listen(&pool).await {
            Ok(mut listener) => {
                backoff = Duration::from_millis(100);
                // Anything changed before LISTEN took effect was not announced to us.
                cache.forget_all();
                cache.confirm_feed();
                metrics::gauge!("auth_cache_change_feed_up").set(1.0);
                tracing::debug!("following database changes for the authentication cache");
                let ended = deliver(&mut listener, &cache).await;
                cache.distrust_feed();
                metrics::gauge!("auth_cache_change_feed_up").set(0.0);
                if let Err(err) = ended {
                    if pool.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %err, "lost the database change feed; reconnecting");
                }
            }
            Err(err) => {
                if pool.is_closed() {
                    return;
                }
                tracing::warn!(error = %err, "could not follow database changes; retrying");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Applies notifications until the connection fails.
async fn deliver(listener: &mut PgListener, cache: &AuthCache) -> Result<(), sqlx::Error> {
    loop {
        // `try_recv` is cancel-safe: a timeout loses no notification.
        match timeout(HEARTBEAT, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                cache.apply_notification(notification.payload());
                cache.confirm_feed();
            }
            Ok(Ok(None)) => {
                // The connection dropped and was re-established (LISTEN
                // included): whatever was announced in between is lost.
                cache.forget_all();
                cache.confirm_feed();
            }
            Ok(Err(err)) => return Err(err),
            Err(_quiet) => match timeout(HEARTBEAT, listener.execute(HEARTBEAT_SQL)).await {
                Ok(Ok(_)) => cache.confirm_feed(),
                Ok(Err(err)) => return Err(err),
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
            },
        }
    }
}

//! A per-instance cache of the authentication check.
//!
//! Every authenticated request needs its session and user
//! ([`SessionRepository::find_with_user`]); without a cache that is one
//! database round trip per request. [`AuthCache`] keeps recently checked,
//! valid sessions in memory, and the [`CachedSessions`] / [`CachedUsers`]
//! decorators keep it honest:
//!
//! - **This instance's changes apply at once.** Every write that can end a
//!   session or change a user (revocation, rotation reuse, deactivation,
//!   role, email or password change, deletion) goes through the decorators,
//!   which drop the affected entries as soon as the write has committed.
//! - **Other instances' changes apply within a second.** On PostgreSQL,
//!   triggers announce every such change on commit (`pg_notify`, migration
//!   0005) and [`crate::repositories::change_feed`] drops the entries on each
//!   instance. Entries may live `max_age` ([`AuthCache::new`]) only while the
//!   feed has proved in the last second that it delivers (a notification or
//!   a heartbeat); otherwise, and always on SQLite (whose only other writer is
//!   the CLI), an entry is trusted for at most [`UNCONFIRMED_MAX_AGE`].
//! - **No stale refill.** A lookup that started before an invalidation does not
//!   store its (possibly older) answer: every invalidation bumps a generation
//!   counter, and a fill that sees a newer generation removes itself.
//!
//! Only live sessions of active users are cached; anything else is read from
//! the database every time, so refusals never come from memory.

use super::{
    ChallengePurpose, ChallengeRecord, NewChallenge, NewSession, NewUser, RepoResult,
    RevokeSessions, Rotation, RotationRequest, SecondFactorRepository, SessionRecord,
    SessionRepository, SessionWithUser, TotpRecord, User, UserChanges, UserFilter, UserRepository,
};
use crate::domain::Email;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::{
    future::Future,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// How long an entry is trusted when no change feed confirms delivery
/// (always on SQLite; on PostgreSQL while the feed is down or unconfirmed).
pub const UNCONFIRMED_MAX_AGE: Duration = Duration::from_millis(500);

/// How long one confirmation of the change feed (a notification received, or
/// a heartbeat answered on the listening connection) keeps it trusted.
pub const FEED_CONFIRMATION: Duration = Duration::from_secs(1);

/// The cache shared by the decorators and the change feed of one instance.
#[derive(Clone)]
pub struct AuthCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: quick_cache::sync::Cache<i64, Entry>,
    generation: AtomicU64,
    max_age: Duration,
    started: Instant,
    /// Nanoseconds since `started` until which the change feed is trusted.
    feed_trusted_until: AtomicU64,
    hits: metrics::Counter,
    misses: metrics::Counter,
}

#[derive(Clone)]
struct Entry {
    found: Arc<SessionWithUser>,
    stored_at: Instant,
}

/// Taken before a database lookup; the answer is stored only if nothing was
/// invalidated meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct FillTicket(u64);

impl AuthCache {
    /// An empty cache of at most `capacity` sessions, each reused for up
    /// to `max_age` while the change feed is confirmed (PostgreSQL).
    pub fn new(max_age: Duration, capacity: usize) -> AuthCache {
        AuthCache {
            inner: Arc::new(Inner {
                entries: quick_cache::sync::Cache::new(capacity.max(1)),
                generation: AtomicU64::new(0),
                max_age,
                started: Instant::now(),
                feed_trusted_until: AtomicU64::new(0),
                hits: metrics::counter!("auth_cache_lookups_total", "result" => "hit"),
                misses: metrics::counter!("auth_cache_lookups_total", "result" => "miss"),
            }),
        }
    }

    /// The cached check of `session_id` for `user_id`, if still trusted.
    pub fn get(&self, session_id: i64, user_id: i64) -> Option<SessionWithUser> {
        let hit = self.inner.entries.get(&session_id).filter(|entry| {
            entry.found.user.id == user_id
                && entry.stored_at.elapsed() < self.trusted_age()
                && entry.found.session_expires_at > Utc::now()
        });
        match hit {
            Some(entry) => {
                self.inner.hits.increment(1);
                Some(SessionWithUser::clone(&entry.found))
            }
            None => {
                self.inner.misses.increment(1);
                None
            }
        }
    }

    /// Call before reading the database for [`AuthCache::fill`].
    pub fn ticket(&self) -> FillTicket {
        FillTicket(self.inner.generation.load(Ordering::SeqCst))
    }

    /// Stores a lookup's answer (live sessions of active users only), unless
    /// something was invalidated since `ticket` was taken.
    pub fn fill(&self, ticket: FillTicket, session_id: i64, found: &SessionWithUser) {
        if found.session_revoked_at.is_some() || !found.user.is_active {
            return;
        }
        let stored_at = Instant::now();
        self.inner.entries.insert(
            session_id,
            Entry {
                found: Arc::new(found.clone()),
                stored_at,
            },
        );
        // An invalidation that ran after the ticket either sees this entry
        // (and removes it) or bumped the generation before this check.
        if self.inner.generation.load(Ordering::SeqCst) != ticket.0 {
            self.inner
                .entries
                .remove_if(&session_id, |entry| entry.stored_at == stored_at);
        }
    }

    /// Drops one session.
    pub fn forget_session(&self, session_id: i64) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.entries.remove(&session_id);
    }

    /// Drops every session of one user.
    pub fn forget_user(&self, user_id: i64) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner
            .entries
            .retain(|_, entry| entry.found.user.id != user_id);
    }

    /// Drops everything (the change feed reconnected and may have missed changes).
    pub fn forget_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.entries.clear();
    }

    /// Applies a change-feed payload: `s<id>` and `u<id>` items separated by
    /// commas, or `*`. Anything unparseable forgets everything.
    pub fn apply_notification(&self, payload: &str) {
        for item in payload.split(',') {
            let id = item.get(1..).and_then(|id| id.parse::<i64>().ok());
            match (item.get(..1), id) {
                (Some("s"), Some(id)) => self.forget_session(id),
                (Some("u"), Some(id)) => self.forget_user(id),
                _ => {
                    self.forget_all();
                    return;
                }
            }
        }
    }

    /// The change feed is known to deliver every change for the next
    /// [`FEED_CONFIRMATION`].
    pub fn confirm_feed(&self) {
        let until = self.inner.started.elapsed() + FEED_CONFIRMATION;
        self.inner
            .feed_trusted_until
            .fetch_max(until.as_nanos() as u64, Ordering::SeqCst);
    }

    /// The change feed stopped delivering: entries are trusted only for
    /// [`UNCONFIRMED_MAX_AGE`] from now on.
    pub fn distrust_feed(&self) {
        self.inner.feed_trusted_until.store(0, Ordering::SeqCst);
    }

    /// Whether the change feed is trusted right now.
    pub fn feed_trusted(&self) -> bool {
        (self.inner.started.elapsed().as_nanos() as u64)
            < self.inner.feed_trusted_until.load(Ordering::SeqCst)
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// Runs a write that can end `session_id`, then forgets the session,
    /// whatever the outcome: a write that reports an error may still have
    /// committed.
    async fn forget_session_after<T>(&self, session_id: i64, write: impl Future<Output = T>) -> T {
        let outcome = write.await;
        self.forget_session(session_id);
        outcome
    }

    /// Runs a write that can change `user_id` or end their sessions, then
    /// forgets the user's sessions, whatever the outcome.
    async fn forget_user_after<T>(&self, user_id: i64, write: impl Future<Output = T>) -> T {
        let outcome = write.await;
        self.forget_user(user_id);
        outcome
    }

    fn trusted_age(&self) -> Duration {
        if self.feed_trusted() {
            self.inner.max_age
        } else {
            self.inner.max_age.min(UNCONFIRMED_MAX_AGE)
        }
    }
}

/// [`SessionRepository`] with the authentication check served from an
/// [`AuthCache`] and every revocation applied to it.
pub struct CachedSessions {
    pub(super) inner: Arc<dyn SessionRepository>,
    pub(super) cache: AuthCache,
}

#[async_trait]
impl SessionRepository for CachedSessions {
    async fn create(&self, new: NewSession<'_>) -> RepoResult<i64> {
        self.inner.create(new).await
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> RepoResult<Rotation> {
        let rotation = self.inner.rotate(request).await?;
        if let Rotation::ReuseDetected { session_id, .. } = rotation {
            self.cache.forget_session(session_id);
        }
        Ok(rotation)
    }

    async fn find_with_user(
        &self,
        session_id: i64,
        user_id: i64,
    ) -> RepoResult<Option<SessionWithUser>> {
        if let Some(hit) = self.cache.get(session_id, user_id) {
            return Ok(Some(hit));
        }
        let ticket = self.cache.ticket();
        let found = self.inner.find_with_user(session_id, user_id).await?;
        if let Some(found) = &found {
            self.cache.fill(ticket, session_id, found);
        }
        Ok(found)
    }

    /// Always from the database: a confirmation on another instance counts
    /// at once.
    async fn authenticated_at(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<DateTime<Utc>>> {
        self.inner.authenticated_at(session_id, user_id, now).await
    }

    async fn mark_authenticated(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        self.inner
            .mark_authenticated(session_id, user_id, now)
            .await
    }

    async fn revoke(&self, session_id: i64, now: DateTime<Utc>) -> RepoResult<bool> {
        let revoke = self.inner.revoke(session_id, now);
        self.cache.forget_session_after(session_id, revoke).await
    }

    async fn revoke_for_user(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let revoke = self.inner.revoke_for_user(session_id, user_id, now);
        self.cache.forget_session_after(session_id, revoke).await
    }

    async fn list_live(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<Vec<SessionRecord>> {
        self.inner.list_live(user_id, now).await
    }

    async fn revoke_all_for_user(
        &self,
        user_id: i64,
        except: Option<i64>,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let revoke = self.inner.revoke_all_for_user(user_id, except, now);
        self.cache.forget_user_after(user_id, revoke).await
    }

    async fn count_live(&self, now: DateTime<Utc>) -> RepoResult<i64> {
        self.inner.count_live(now).await
    }

    async fn purge(
        &self,
        expired_before: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        // Only expired or already revoked sessions go: none is cached.
        self.inner.purge(expired_before, revoked_before).await
    }
}

/// [`UserRepository`] that drops a user's cached sessions whenever the user
/// changes (role, status, email, password) or is deleted.
pub struct CachedUsers {
    pub(super) inner: Arc<dyn UserRepository>,
    pub(super) cache: AuthCache,
}

#[async_trait]
impl UserRepository for CachedUsers {
    async fn create(&self, new: NewUser<'_>) -> RepoResult<User> {
        self.inner.create(new).await
    }

    async fn find_by_id(&self, id: i64) -> RepoResult<Option<User>> {
        self.inner.find_by_id(id).await
    }

    async fn find_by_email(&self, email: &Email) -> RepoResult<Option<User>> {
        self.inner.find_by_email(email).await
    }

    async fn list(
        &self,
        filter: &UserFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<User>, i64)> {
        self.inner.list(filter, offset, limit).await
    }

    async fn update(
        &self,
        id: i64,
        changes: &UserChanges,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> RepoResult<User> {
        let update = self.inner.update(id, changes, revoke, now);
        self.cache.forget_user_after(id, update).await
    }

    async fn mark_email_verified(
        &self,
        id: i64,
        email: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mark = self.inner.mark_email_verified(id, email, now);
        self.cache.forget_user_after(id, mark).await
    }

    async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        let set = self.inner.set_password_hash(id, password_hash, now);
        self.cache.forget_user_after(id, set).await
    }

    async fn delete(&self, id: i64) -> RepoResult<User> {
        self.cache
            .forget_user_after(id, self.inner.delete(id))
            .await
    }
}

/// [`SecondFactorRepository`] that drops a user's cached sessions when
/// their second factor is turned on or off (the user's `mfa_enabled`).
pub struct CachedSecondFactors {
    pub(super) inner: Arc<dyn SecondFactorRepository>,
    pub(super) cache: AuthCache,
}

#[async_trait]
impl SecondFactorRepository for CachedSecondFactors {
    async fn totp(&self, user_id: i64) -> RepoResult<Option<TotpRecord>> {
        self.inner.totp(user_id).await
    }

    async fn start_totp(
        &self,
        user_id: i64,
        secret_sealed: &[u8],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        self.inner.start_totp(user_id, secret_sealed, now).await
    }

    async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let confirm = self
            .inner
            .confirm_totp(user_id, step, recovery_code_hashes, now);
        self.cache.forget_user_after(user_id, confirm).await
    }

    async fn use_totp_step(&self, user_id: i64, step: i64) -> RepoResult<bool> {
        self.inner.use_totp_step(user_id, step).await
    }

    async fn disable(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<bool> {
        let disable = self.inner.disable(user_id, now);
        self.cache.forget_user_after(user_id, disable).await
    }

    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        self.inner
            .replace_recovery_codes(user_id, code_hashes, now)
            .await
    }

    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        self.inner.use_recovery_code(user_id, code_hash, now).await
    }

    async fn recovery_codes_left(&self, user_id: i64) -> RepoResult<i64> {
        self.inner.recovery_codes_left(user_id).await
    }

    async fn create_challenge(&self, new: NewChallenge<'_>) -> RepoResult<()> {
        self.inner.create_challenge(new).await
    }

    async fn find_challenge(
        &self,
        token_hash: &str,
        purpose: ChallengePurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<ChallengeRecord>> {
        self.inner.find_challenge(token_hash, purpose, now).await
    }

    async fn use_challenge(
        &self,
        token_hash: &str,
        purpose: ChallengePurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<ChallengeRecord>> {
        self.inner.use_challenge(token_hash, purpose, now).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        self.inner.purge(before).await
    }

    async fn totp_page(&self, after_user_id: i64, limit: i64) -> RepoResult<Vec<TotpRecord>> {
        self.inner.totp_page(after_user_id, limit).await
    }

    async fn reseal_totp(&self, user_id: i64, old: &[u8], new: &[u8]) -> RepoResult<bool> {
        self.inner.reseal_totp(user_id, old, new).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn found(session_user: i64, expires_in: chrono::Duration) -> SessionWithUser {
        let now = Utc::now();
        SessionWithUser {
            user: User {
                id: session_user,
                email: format!("u{session_user}@example.com"),
                password_hash: String::new(),
                role: Role::Regular,
                is_active: true,
                email_verified: false,
                mfa_enabled: false,
                created_at: now,
                updated_at: now,
            },
            session_revoked_at: None,
            session_expires_at: now + expires_in,
        }
    }

    fn cache(max_age: Duration) -> AuthCache {
        AuthCache::new(max_age, 100)
    }

    fn filled(cache: &AuthCache, session_id: i64, user_id: i64) {
        let ticket = cache.ticket();
        cache.fill(
            ticket,
            session_id,
            &found(user_id, chrono::Duration::hours(1)),
        );
    }

    #[test]
    fn answers_only_for_the_session_and_user_it_holds() {
        let cache = cache(Duration::from_secs(30));
        assert!(cache.get(1, 10).is_none());
        filled(&cache, 1, 10);
        assert_eq!(cache.get(1, 10).map(|f| f.user.id), Some(10));
        assert!(cache.get(1, 11).is_none(), "a token naming another user");
        assert!(cache.get(2, 10).is_none());
    }

    #[test]
    fn refusals_and_inactive_users_are_never_cached() {
        let cache = cache(Duration::from_secs(30));
        let mut revoked = found(10, chrono::Duration::hours(1));
        revoked.session_revoked_at = Some(Utc::now());
        cache.fill(cache.ticket(), 1, &revoked);
        let mut inactive = found(10, chrono::Duration::hours(1));
        inactive.user.is_active = false;
        cache.fill(cache.ticket(), 2, &inactive);
        assert!(cache.is_empty());
    }

    #[test]
    fn expired_sessions_are_not_answered() {
        let cache = cache(Duration::from_secs(30));
        cache.fill(cache.ticket(), 1, &found(10, chrono::Duration::zero()));
        assert!(cache.get(1, 10).is_none());
    }

    #[test]
    fn forgetting_a_session_or_a_user_drops_exactly_that() {
        let cache = cache(Duration::from_secs(30));
        filled(&cache, 1, 10);
        filled(&cache, 2, 10);
        filled(&cache, 3, 20);
        cache.forget_session(1);
        assert!(cache.get(1, 10).is_none());
        assert!(cache.get(2, 10).is_some());
        cache.forget_user(10);
        assert!(cache.get(2, 10).is_none());
        assert!(cache.get(3, 20).is_some());
        cache.forget_all();
        assert!(cache.is_empty());
    }

    #[test]
    fn a_lookup_that_started_before_an_invalidation_does_not_fill() {
        let cache = cache(Duration::from_secs(30));
        let ticket = cache.ticket();
        // The database was read here (the session still valid), then revoked:
        cache.forget_session(1);
        cache.fill(ticket, 1, &found(10, chrono::Duration::hours(1)));
        assert!(cache.get(1, 10).is_none());
        // An invalidation of anything else also refuses the stale fill.
        let ticket = cache.ticket();
        cache.forget_user(99);
        cache.fill(ticket, 1, &found(10, chrono::Duration::hours(1)));
        assert!(cache.is_empty());
    }

    #[test]
    fn notifications_name_sessions_and_users_or_everything() {
        let cache = cache(Duration::from_secs(30));
        filled(&cache, 1, 10);
        filled(&cache, 2, 20);
        filled(&cache, 3, 30);
        filled(&cache, 4, 40);
        cache.apply_notification("s1,u20");
        assert!(cache.get(1, 10).is_none());
        assert!(cache.get(2, 20).is_none());
        assert!(cache.get(3, 30).is_some());
        cache.apply_notification("*");
        assert!(cache.is_empty());
        filled(&cache, 3, 30);
        cache.apply_notification("s3x");
        assert!(cache.is_empty(), "an unreadable payload forgets everything");
        filled(&cache, 3, 30);
        cache.apply_notification("");
        assert!(cache.is_empty());
    }

    #[test]
    fn without_a_confirmed_feed_entries_live_half_a_second() {
        let cache = cache(Duration::from_secs(30));
        assert!(!cache.feed_trusted());
        filled(&cache, 1, 10);
        std::thread::sleep(UNCONFIRMED_MAX_AGE + Duration::from_millis(50));
        assert!(cache.get(1, 10).is_none());

        filled(&cache, 1, 10);
        cache.confirm_feed();
        assert!(cache.feed_trusted());
        std::thread::sleep(UNCONFIRMED_MAX_AGE + Duration::from_millis(50));
        assert!(cache.get(1, 10).is_some(), "the feed vouches for it");
        cache.distrust_feed();
        assert!(cache.get(1, 10).is_none());
    }

    #[test]
    fn a_confirmation_lasts_one_second() {
        let cache = cache(Duration::from_secs(30));
        cache.confirm_feed();
        assert!(cache.feed_trusted());
        std::thread::sleep(FEED_CONFIRMATION + Duration::from_millis(50));
        assert!(!cache.feed_trusted());
    }

    #[test]
    fn the_configured_age_bounds_entries_even_with_a_live_feed() {
        let cache = cache(Duration::from_millis(100));
        filled(&cache, 1, 10);
        cache.confirm_feed();
        std::thread::sleep(Duration::from_millis(150));
        assert!(cache.get(1, 10).is_none());
    }

    #[test]
    fn it_holds_at_most_its_capacity() {
        let cache = cache(Duration::from_secs(30));
        for session in 0..1_000 {
            filled(&cache, session, session);
        }
        assert!(cache.len() <= 120, "{} entries", cache.len());
    }
}

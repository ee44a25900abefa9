//! PostgreSQL implementation of the repositories.

use super::{
    shared::{Dialect, ThrottleKey},
    sql::{self, Statement},
    *,
};
use sqlx::{
    postgres::{PgPool, PgQueryResult},
    Postgres,
};

/// The shared statements, on PostgreSQL.
type Queries = super::shared::Queries<Postgres>;

impl Dialect for Postgres {
    type Timestamp = DateTime<Utc>;

    fn timestamp(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Advisory-lock key that serialises changes which could remove the last active admin.
const LAST_ADMIN_LOCK: i64 = 0x006c_6561_7574_6821;

/// Waits for the last-admin lock (held until the transaction ends).
const LOCK_LAST_ADMIN: &str = "SELECT pg_advisory_xact_lock($1)";

/// Repositories over a PostgreSQL pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Wraps a pool (migrations already applied).
    pub fn new(pool: PgPool) -> Self {
        PostgresStore { pool }
    }

    /// All repositories backed by this pool.
    pub fn repositories(pool: PgPool) -> Repositories {
        let store = Arc::new(PostgresStore::new(pool));
        Repositories {
            users: store.clone(),
            sessions: store.clone(),
            throttle: store.clone(),
            audit: store.clone(),
            email_tokens: store.clone(),
            outbox: store.clone(),
            second_factors: store.clone(),
            passkeys: store.clone(),
            health: store,
            auth_cache: None,
        }
    }
}

/// The number of users, as the triggers of migration 0004 keep it (equal to
/// `SELECT count(*) FROM users` in the same snapshot, without reading them).
const COUNT_ALL_USERS: &str =
    "SELECT CAST(COALESCE(sum(users), 0) AS BIGINT) FROM user_count_slots";

impl PostgresStore {
    /// A write transaction.
    async fn begin_write(&self) -> RepoResult<sqlx::Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

/// Serialises, until `tx` ends, the changes that could remove the last
/// active admin: under READ COMMITTED, two admins demoting each other at
/// once would otherwise each see the other still active.
async fn lock_last_admin(tx: &mut sqlx::Transaction<'_, Postgres>) -> RepoResult<()> {
    sqlx::query(LOCK_LAST_ADMIN)
        .bind(LAST_ADMIN_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl UserRepository for PostgresStore {
    async fn create(&self, new: NewUser<'_>) -> RepoResult<User> {
        Queries::create_user(&self.pool, new).await
    }

    async fn find_by_id(&self, id: i64) -> RepoResult<Option<User>> {
        Queries::user_by_id(&self.pool, id).await
    }

    async fn find_by_email(&self, email: &Email) -> RepoResult<Option<User>> {
        Queries::user_by_email(&self.pool, email).await
    }

    async fn list(
        &self,
        filter: &UserFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<User>, i64)> {
        // The trigram index `users_email_trgm_idx` serves `email LIKE` for
        // the count and the page alike, when the needle is rare enough for an
        // index to pay. A search is therefore planned for its own needle
        // every time (an unnamed statement, not a cached prepared one): after
        // a few runs, a prepared statement settles on one generic plan, blind
        // to the needle, and `%member4242%` (11 rows: best read through the
        // index) and `%me%` (every row: best scanned) would then share a plan
        // that is several times too slow for one of them. Planning costs far
        // less than that (see BENCHMARKS.md, section "Measurements behind the
        // repository code").
        let prepared = filter.email_contains.is_none();
        let mut page = Statement::<Postgres>::new(sql::SELECT_USERS);
        sql::push_user_filter(&mut page, filter, sql::EmailSearch::Like);
        sql::push_user_page(&mut page, offset, limit);
        let (text, arguments) = page.into_parts()?;
        let users = sqlx::query_as_with::<_, User, _>(&text, arguments)
            .persistent(prepared)
            .fetch_all(&self.pool)
            .await?;
        let unfiltered =
            filter.email_contains.is_none() && filter.role.is_none() && filter.is_active.is_none();
        // A search for a rare needle fits one page: one trigram scan, not two.
        let total = listing_total(offset, limit, users.len(), async {
            if unfiltered {
                // Kept by triggers (migration 0004): no count of every user per page.
                sqlx::query_scalar(COUNT_ALL_USERS)
                    .fetch_one(&self.pool)
                    .await
            } else {
                let mut count = Statement::<Postgres>::new(sql::COUNT_USERS);
                sql::push_user_filter(&mut count, filter, sql::EmailSearch::Like);
                let (text, arguments) = count.into_parts()?;
                sqlx::query_scalar_with(&text, arguments)
                    .persistent(prepared)
                    .fetch_one(&self.pool)
                    .await
            }
        })
        .await?;
        Ok((users, total))
    }

    /// A change that takes admin power away first takes the last-admin lock,
    /// so two such changes cannot both see the other admin still active.
    async fn update(
        &self,
        id: i64,
        changes: &UserChanges,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> RepoResult<User> {
        let mut tx = self.begin_write().await?;
        if changes.removes_admin_power() {
            lock_last_admin(&mut tx).await?;
        }
        let user = Queries::update_user(&mut tx, id, changes, revoke, now).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn mark_email_verified(
        &self,
        id: i64,
        email: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Queries::mark_email_verified(&self.pool, id, email, now).await
    }

    async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        Queries::set_password_hash(&self.pool, id, password_hash, now).await
    }

    async fn delete(&self, id: i64) -> RepoResult<User> {
        let mut tx = self.begin_write().await?;
        lock_last_admin(&mut tx).await?;
        let user = Queries::delete_user(&mut tx, id).await?;
        tx.commit().await?;
        Ok(user)
    }
}

#[async_trait]
impl SessionRepository for PostgresStore {
    async fn create(&self, new: NewSession<'_>) -> RepoResult<i64> {
        Queries::create_session(&self.pool, new).await
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> RepoResult<Rotation> {
        Queries::rotate(&self.pool, request).await
    }

    async fn find_with_user(
        &self,
        session_id: i64,
        user_id: i64,
    ) -> RepoResult<Option<SessionWithUser>> {
        Queries::session_with_user(&self.pool, session_id, user_id).await
    }

    async fn authenticated_at(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<DateTime<Utc>>> {
        Queries::session_authenticated_at(&self.pool, session_id, user_id, now).await
    }

    async fn mark_authenticated(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Queries::mark_session_authenticated(&self.pool, session_id, user_id, now).await
    }

    async fn revoke(&self, session_id: i64, now: DateTime<Utc>) -> RepoResult<bool> {
        Queries::revoke_session(&self.pool, session_id, now).await
    }

    async fn revoke_for_user(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Queries::revoke_user_session(&self.pool, session_id, user_id, now).await
    }

    async fn list_live(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<Vec<SessionRecord>> {
        Queries::live_sessions(&self.pool, user_id, now).await
    }

    async fn revoke_all_for_user(
        &self,
        user_id: i64,
        except: Option<i64>,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let revoke = RevokeSessions::all_except(except);
        Queries::revoke_sessions(&self.pool, user_id, revoke, now).await
    }

    async fn count_live(&self, now: DateTime<Utc>) -> RepoResult<i64> {
        Queries::count_live_sessions(&self.pool, now).await
    }

    async fn purge(
        &self,
        expired_before: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        Queries::purge_sessions(&self.pool, expired_before, revoked_before).await
    }
}

#[async_trait]
impl HealthCheck for PostgresStore {
    async fn ping(&self) -> RepoResult<()> {
        Queries::ping(&self.pool).await
    }
}

#[async_trait]
impl ThrottleRepository for PostgresStore {
    async fn record(
        &self,
        kind: ThrottleKind,
        account: Option<&str>,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        Queries::record_throttle(&self.pool, kind, account, ip, at).await
    }

    async fn count_for_account(
        &self,
        kind: ThrottleKind,
        account: &str,
        since: DateTime<Utc>,
    ) -> RepoResult<ThrottleCount> {
        Queries::count_throttle(&self.pool, kind, ThrottleKey::Account(account), since).await
    }

    async fn count_for_ip(
        &self,
        kind: ThrottleKind,
        ip: &str,
        since: DateTime<Utc>,
    ) -> RepoResult<ThrottleCount> {
        Queries::count_throttle(&self.pool, kind, ThrottleKey::Ip(ip), since).await
    }

    async fn clear_account(&self, kind: ThrottleKind, account: &str) -> RepoResult<()> {
        Queries::clear_throttle_account(&self.pool, kind, account).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        Queries::purge_before(&self.pool, sql::PURGE_THROTTLE, before).await
    }
}

#[async_trait]
impl AuditRepository for PostgresStore {
    async fn append(&self, events: &[NewAuditEvent]) -> RepoResult<()> {
        Queries::append_audit(&self.pool, events).await
    }

    async fn list(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<AuditRecord>, i64)> {
        Queries::list_audit(&self.pool, filter, offset, limit).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        Queries::purge_before(&self.pool, sql::PURGE_AUDIT, before).await
    }
}

#[async_trait]
impl EmailTokenRepository for PostgresStore {
    async fn find(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> RepoResult<Option<EmailTokenRecord>> {
        Queries::find_email_token(&self.pool, token_hash, purpose).await
    }

    async fn use_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Result<UsedEmailToken, EmailTokenProblem>> {
        Queries::use_email_token(&self.pool, &self.pool, token_hash, purpose, now).await
    }

    async fn revoke_for_user(
        &self,
        user_id: i64,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        Queries::revoke_email_tokens(&self.pool, user_id, purpose, now).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        Queries::purge_before(&self.pool, sql::PURGE_EMAIL_TOKENS, before).await
    }
}

#[async_trait]
impl OutboxRepository for PostgresStore {
    async fn enqueue(
        &self,
        message: NewOutboxMessage<'_>,
        link: Option<NewEmailToken<'_>>,
    ) -> RepoResult<()> {
        let mut tx = self.begin_write().await?;
        Queries::enqueue(&mut tx, message, link).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Concurrent claims on several instances skip each other's rows.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> RepoResult<Vec<OutboxRow>> {
        Queries::claim(
            &self.pool,
            sql::CLAIM_OUTBOX_POSTGRES,
            now,
            lease_until,
            limit,
        )
        .await
    }

    async fn compose(&self, id: i64, payload: &[u8], link: NewEmailToken<'_>) -> RepoResult<()> {
        let mut tx = self.begin_write().await?;
        Queries::compose(&mut tx, id, payload, link).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove(&self, id: i64) -> RepoResult<()> {
        Queries::remove_outbox(&self.pool, id).await
    }

    async fn retry_at(
        &self,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> RepoResult<()> {
        Queries::retry_outbox(&self.pool, id, next_attempt_at, error).await
    }

    async fn pending(&self, queued_by: DateTime<Utc>) -> RepoResult<i64> {
        Queries::pending_outbox(&self.pool, queued_by).await
    }
}

#[async_trait]
impl SecondFactorRepository for PostgresStore {
    async fn totp(&self, user_id: i64) -> RepoResult<Option<TotpRecord>> {
        Queries::totp(&self.pool, user_id).await
    }

    async fn start_totp(
        &self,
        user_id: i64,
        secret_sealed: &[u8],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Queries::start_totp(&self.pool, user_id, secret_sealed, now).await
    }

    async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut tx = self.begin_write().await?;
        let confirmed =
            Queries::confirm_totp(&mut tx, user_id, step, recovery_code_hashes, now).await?;
        tx.commit().await?;
        Ok(confirmed)
    }

    async fn use_totp_step(&self, user_id: i64, step: i64) -> RepoResult<bool> {
        Queries::use_totp_step(&self.pool, user_id, step).await
    }

    async fn disable(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<bool> {
        let mut tx = self.begin_write().await?;
        let was_on = Queries::disable_second_factor(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(was_on)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let mut tx = self.begin_write().await?;
        let replaced = Queries::replace_recovery_codes(&mut tx, user_id, code_hashes, now).await?;
        tx.commit().await?;
        Ok(replaced)
    }

    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Queries::use_recovery_code(&self.pool, user_id, code_hash, now).await
    }

    async fn recovery_codes_left(&self, user_id: i64) -> RepoResult<i64> {
        Queries::recovery_codes_left(&self.pool, user_id).await
    }

    async fn create_challenge(&self, new: NewChallenge<'_>) -> RepoResult<()> {
        Queries::create_challenge(&self.pool, new).await
    }

    async fn find_challenge(
        &self,
        token_hash: &str,
        purpose: ChallengePurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<ChallengeRecord>> {
        Queries::challenge(&self.pool, token_hash, purpose, now, false).await
    }

    async fn use_challenge(
        &self,
        token_hash: &str,
        purpose: ChallengePurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<ChallengeRecord>> {
        Queries::challenge(&self.pool, token_hash, purpose, now, true).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        Queries::purge_before(&self.pool, sql::PURGE_CHALLENGES, before).await
    }

    async fn totp_page(&self, after_user_id: i64, limit: i64) -> RepoResult<Vec<TotpRecord>> {
        Queries::totp_page(&self.pool, after_user_id, limit).await
    }

    async fn reseal_totp(&self, user_id: i64, old: &[u8], new: &[u8]) -> RepoResult<bool> {
        Queries::reseal_totp(&self.pool, user_id, old, new).await
    }
}

super::passkeys::impl_passkey_repository!(PostgresStore, Postgres, pool, pool);

//! SQLite implementation of the repositories.

use super::{
    shared::{Dialect, ThrottleKey},
    sql::{self, Statement},
    *,
};
use sqlx::{
    sqlite::{SqlitePool, SqliteQueryResult},
    Sqlite,
};

/// The shared statements, on SQLite.
type Queries = super::shared::Queries<Sqlite>;

/// Write transactions take the database write lock up front, so a read
/// followed by a write can never fail on a lock upgrade, and the last-admin
/// check and the change it guards cannot interleave with another writer.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

impl Dialect for Sqlite {
    /// SQLite has no timestamp type: times are stored as fixed-width RFC 3339
    /// text (microseconds, `Z`), so comparing the text compares the instants.
    type Timestamp = String;

    fn timestamp(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Repositories over a SQLite database: reads share a pool; every write
/// goes through one dedicated connection.
///
/// SQLite lets one writer in at a time. With writes spread over the pool,
/// concurrent writers meet `SQLITE_BUSY`, and SQLite's busy handler makes
/// them sleep in steps of up to 100 ms: under load, writes wait for seconds
/// (see BENCHMARKS.md, section "Measurements behind the repository code").
/// Queued for the single writer connection instead (a fair async
/// wait in the pool), they run back to back; readers are never blocked (WAL).
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Wraps a pool (migrations already applied) and opens the writer
    /// connection with the same options, lazily.
    pub fn new(pool: SqlitePool) -> Self {
        let options = (*pool.connect_options()).clone();
        let writer = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(pool.options().get_acquire_timeout())
            .connect_lazy_with(options);
        SqliteStore { pool, writer }
    }

    /// All repositories backed by this database.
    pub fn repositories(pool: SqlitePool) -> Repositories {
        let store = Arc::new(SqliteStore::new(pool));
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

/// The shortest needle the trigram index can look up (one trigram).
const TRIGRAM_MIN_CHARS: usize = 3;

/// Above this many candidates, the trigram index costs more than the scan.
const TRIGRAM_MAX_HITS: i64 = 1000;

/// Counts the trigram index's candidates for a needle, up to `$2`.
const COUNT_TRIGRAM_HITS: &str = "SELECT count(*) FROM (SELECT 1 FROM users_email_fts \
     WHERE users_email_fts MATCH $1 LIMIT $2)";

impl SqliteStore {
    /// How the user list finds the emails containing the needle.
    ///
    /// The FTS5 trigram index (`users_email_fts`) turns a needle of 3 or more
    /// characters into a lookup instead of a scan of every email. Shorter
    /// needles have no trigram: they scan. A needle that most users contain
    /// (`example`, `.com`) scans too: the index would hand over every user as
    /// a candidate, each looked up, while the scan counts them from the email
    /// index and a page in id order stops at its last row. One bounded index
    /// query (at most [`TRIGRAM_MAX_HITS`] rows) tells which case this is.
    /// The costs of each case are in BENCHMARKS.md, section "Measurements
    /// behind the repository code". Either way the matches are the same:
    /// index candidates are confirmed with the scan's `LIKE`.
    async fn email_search(&self, filter: &UserFilter) -> RepoResult<sql::EmailSearch> {
        let Some(needle) = filter.email_contains.as_deref() else {
            return Ok(sql::EmailSearch::Like);
        };
        let needle = needle.to_lowercase();
        if needle.chars().count() < TRIGRAM_MIN_CHARS {
            return Ok(sql::EmailSearch::Like);
        }
        let hits: i64 = sqlx::query_scalar(COUNT_TRIGRAM_HITS)
            .bind(fts_phrase(&needle))
            .bind(TRIGRAM_MAX_HITS)
            .fetch_one(&self.pool)
            .await?;
        Ok(if hits < TRIGRAM_MAX_HITS {
            sql::EmailSearch::Trigram
        } else {
            sql::EmailSearch::Like
        })
    }
}

impl SqliteStore {
    /// A write transaction on the writer connection.
    async fn begin_write(&self) -> RepoResult<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with(BEGIN_WRITE).await?)
    }
}

#[async_trait]
impl UserRepository for SqliteStore {
    async fn create(&self, new: NewUser<'_>) -> RepoResult<User> {
        Queries::create_user(&self.writer, new).await
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
        let search = self.email_search(filter).await?;
        let mut page = Statement::<Sqlite>::new(sql::SELECT_USERS);
        sql::push_user_filter(&mut page, filter, search);
        sql::push_user_page(&mut page, offset, limit);
        let (text, arguments) = page.into_parts()?;
        let users = sqlx::query_as_with::<_, User, _>(&text, arguments)
            .fetch_all(&self.pool)
            .await?;
        let total = listing_total(offset, limit, users.len(), async {
            let mut count = Statement::<Sqlite>::new(sql::COUNT_USERS);
            sql::push_user_filter(&mut count, filter, search);
            let (text, arguments) = count.into_parts()?;
            sqlx::query_scalar_with(&text, arguments)
                .fetch_one(&self.pool)
                .await
        })
        .await?;
        Ok((users, total))
    }

    /// `BEGIN IMMEDIATE` holds the write lock from the start, so the
    /// last-admin guard and the change cannot interleave with another writer.
    async fn update(
        &self,
        id: i64,
        changes: &UserChanges,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> RepoResult<User> {
        let mut tx = self.begin_write().await?;
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
        Queries::mark_email_verified(&self.writer, id, email, now).await
    }

    async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        Queries::set_password_hash(&self.writer, id, password_hash, now).await
    }

    async fn delete(&self, id: i64) -> RepoResult<User> {
        let mut tx = self.begin_write().await?;
        let user = Queries::delete_user(&mut tx, id).await?;
        tx.commit().await?;
        Ok(user)
    }
}

#[async_trait]
impl SessionRepository for SqliteStore {
    async fn create(&self, new: NewSession<'_>) -> RepoResult<i64> {
        Queries::create_session(&self.writer, new).await
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> RepoResult<Rotation> {
        Queries::rotate(&self.writer, request).await
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
        Queries::mark_session_authenticated(&self.writer, session_id, user_id, now).await
    }

    async fn revoke(&self, session_id: i64, now: DateTime<Utc>) -> RepoResult<bool> {
        Queries::revoke_session(&self.writer, session_id, now).await
    }

    async fn revoke_for_user(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Queries::revoke_user_session(&self.writer, session_id, user_id, now).await
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
        Queries::revoke_sessions(&self.writer, user_id, revoke, now).await
    }

    async fn count_live(&self, now: DateTime<Utc>) -> RepoResult<i64> {
        Queries::count_live_sessions(&self.pool, now).await
    }

    async fn purge(
        &self,
        expired_before: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        Queries::purge_sessions(&self.writer, expired_before, revoked_before).await
    }
}

#[async_trait]
impl HealthCheck for SqliteStore {
    async fn ping(&self) -> RepoResult<()> {
        Queries::ping(&self.pool).await
    }
}

#[async_trait]
impl ThrottleRepository for SqliteStore {
    async fn record(
        &self,
        kind: ThrottleKind,
        account: Option<&str>,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        Queries::record_throttle(&self.writer, kind, account, ip, at).await
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
        Queries::clear_throttle_account(&self.writer, kind, account).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        Queries::purge_before(&self.writer, sql::PURGE_THROTTLE, before).await
    }
}

#[async_trait]
impl AuditRepository for SqliteStore {
    async fn append(&self, events: &[NewAuditEvent]) -> RepoResult<()> {
        Queries::append_audit(&self.writer, events).await
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
        Queries::purge_before(&self.writer, sql::PURGE_AUDIT, before).await
    }
}

#[async_trait]
impl EmailTokenRepository for SqliteStore {
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
        Queries::use_email_token(&self.writer, &self.pool, token_hash, purpose, now).await
    }

    async fn revoke_for_user(
        &self,
        user_id: i64,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        Queries::revoke_email_tokens(&self.writer, user_id, purpose, now).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        Queries::purge_before(&self.writer, sql::PURGE_EMAIL_TOKENS, before).await
    }
}

#[async_trait]
impl OutboxRepository for SqliteStore {
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

    /// The single writer connection serialises claims.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> RepoResult<Vec<OutboxRow>> {
        Queries::claim(
            &self.writer,
            sql::CLAIM_OUTBOX_SQLITE,
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
        Queries::remove_outbox(&self.writer, id).await
    }

    async fn retry_at(
        &self,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> RepoResult<()> {
        Queries::retry_outbox(&self.writer, id, next_attempt_at, error).await
    }

    async fn pending(&self, queued_by: DateTime<Utc>) -> RepoResult<i64> {
        Queries::pending_outbox(&self.writer, queued_by).await
    }
}

#[async_trait]
impl SecondFactorRepository for SqliteStore {
    async fn totp(&self, user_id: i64) -> RepoResult<Option<TotpRecord>> {
        Queries::totp(&self.pool, user_id).await
    }

    async fn start_totp(
        &self,
        user_id: i64,
        secret_sealed: &[u8],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        Queries::start_totp(&self.writer, user_id, secret_sealed, now).await
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
        Queries::use_totp_step(&self.writer, user_id, step).await
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
        Queries::use_recovery_code(&self.writer, user_id, code_hash, now).await
    }

    async fn recovery_codes_left(&self, user_id: i64) -> RepoResult<i64> {
        Queries::recovery_codes_left(&self.pool, user_id).await
    }

    async fn create_challenge(&self, new: NewChallenge<'_>) -> RepoResult<()> {
        Queries::create_challenge(&self.writer, new).await
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
        Queries::challenge(&self.writer, token_hash, purpose, now, true).await
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        Queries::purge_before(&self.writer, sql::PURGE_CHALLENGES, before).await
    }

    async fn totp_page(&self, after_user_id: i64, limit: i64) -> RepoResult<Vec<TotpRecord>> {
        Queries::totp_page(&self.pool, after_user_id, limit).await
    }

    async fn reseal_totp(&self, user_id: i64, old: &[u8], new: &[u8]) -> RepoResult<bool> {
        Queries::reseal_totp(&self.writer, user_id, old, new).await
    }
}

super::passkeys::impl_passkey_repository!(SqliteStore, Sqlite, pool, writer);

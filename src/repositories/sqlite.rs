//! SQLite implementation of the repositories.

use super::{sql, *};
use sqlx::{sqlite::SqlitePool, QueryBuilder};

/// Write transactions take the database write lock up front, so a read
/// followed by a write can never fail on a lock upgrade, and the last-admin
/// check and the change it guards cannot interleave with another writer.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// SQLite has no timestamp type: times are stored as fixed-width RFC 3339 text
/// (microseconds, `Z`), so comparing the text compares the instants.
fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Repositories over a SQLite database: reads share a pool; every write
/// goes through one dedicated connection.
///
/// SQLite lets one writer in at a time. With writes spread over the pool,
/// concurrent writers meet `SQLITE_BUSY` and SQLite's busy handler makes
/// them sleep in steps of up to 100 ms: under load, a few hundred writes
/// per second at seconds of latency. Queued for the single writer
/// connection instead (a fair async wait in the pool), they run back to
/// back; readers are never blocked (WAL).
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
    /// characters into a lookup: with 100k users, about 0.5 ms for the count
    /// and as much for the page, instead of scans of 8 and 15 ms. Shorter
    /// needles have no trigram: they scan, as before. A needle that most
    /// users contain (`example`, `.com`) scans too: the index would hand
    /// over every user as a candidate, each looked up (50 ms to count 100k,
    /// 30 ms for a page), while the scan counts them from the email index
    /// (8 ms) and a page in id order stops at its last row. One bounded index
    /// query (at most [`TRIGRAM_MAX_HITS`] rows, about 0.5 ms) tells which
    /// case this is. Either way the matches are the same: index candidates
    /// are confirmed with the scan's `LIKE`.
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

fn map_unique(err: sqlx::Error) -> RepoError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => RepoError::EmailTaken,
        _ => RepoError::Database(err),
    }
}

#[async_trait]
impl UserRepository for SqliteStore {
    async fn create(&self, new: NewUser<'_>) -> RepoResult<User> {
        sqlx::query_as::<_, User>(sql::INSERT_USER)
            .bind(new.email.as_str())
            .bind(new.password_hash)
            .bind(new.role.as_str())
            .bind(new.is_active)
            .bind(ts(new.now))
            .bind(new.email_verified)
            .fetch_one(&self.writer)
            .await
            .map_err(map_unique)
    }

    async fn find_by_id(&self, id: i64) -> RepoResult<Option<User>> {
        Ok(sqlx::query_as::<_, User>(sql::USER_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn find_by_email(&self, email: &Email) -> RepoResult<Option<User>> {
        Ok(sqlx::query_as::<_, User>(sql::USER_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn list(
        &self,
        filter: &UserFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<User>, i64)> {
        let search = self.email_search(filter).await?;
        let mut page = QueryBuilder::new(sql::SELECT_USERS);
        sql::push_user_filter(&mut page, filter, search);
        sql::push_user_page(&mut page, offset, limit);
        let users = page.build_query_as::<User>().fetch_all(&self.pool).await?;
        let total = listing_total(offset, limit, users.len(), async {
            let mut count = QueryBuilder::new(sql::COUNT_USERS);
            sql::push_user_filter(&mut count, filter, search);
            count.build_query_scalar().fetch_one(&self.pool).await
        })
        .await?;
        Ok((users, total))
    }

    async fn update(
        &self,
        id: i64,
        changes: &UserChanges,
        revoke: RevokeSessions,
        keep_an_active_admin: bool,
        now: DateTime<Utc>,
    ) -> RepoResult<User> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let updated = sqlx::query_as::<_, User>(sql::UPDATE_USER)
            .bind(id)
            .bind(changes.email.as_ref().map(Email::as_str))
            .bind(changes.password_hash.as_deref())
            .bind(changes.role.map(Role::as_str))
            .bind(changes.is_active)
            .bind(ts(now))
            .bind(keep_an_active_admin)
            .bind(changes.email_verified)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_unique)?;
        let Some(user) = updated else {
            let exists: bool = sqlx::query_scalar(sql::USER_EXISTS)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            return Err(if exists {
                RepoError::LastAdmin
            } else {
                RepoError::NotFound
            });
        };
        if let Some(except) = revoke.sessions_to_keep() {
            revoke_all(&mut *tx, id, except, now).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    async fn mark_email_verified(
        &self,
        id: i64,
        email: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::MARK_EMAIL_VERIFIED)
            .bind(id)
            .bind(email)
            .bind(ts(now))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        sqlx::query(sql::SET_PASSWORD_HASH)
            .bind(id)
            .bind(password_hash)
            .bind(ts(now))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete(&self, id: i64) -> RepoResult<User> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        let deleted = sqlx::query_as::<_, User>(sql::DELETE_USER)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user) = deleted else {
            let exists: bool = sqlx::query_scalar(sql::USER_EXISTS)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            return Err(if exists {
                RepoError::LastAdmin
            } else {
                RepoError::NotFound
            });
        };
        tx.commit().await?;
        Ok(user)
    }
}

#[derive(sqlx::FromRow)]
struct SessionUserRow {
    #[sqlx(flatten)]
    user: User,
    session_revoked_at: Option<DateTime<Utc>>,
    session_expires_at: DateTime<Utc>,
}

#[async_trait]
impl SessionRepository for SqliteStore {
    async fn create(&self, new: NewSession<'_>) -> RepoResult<i64> {
        Ok(sqlx::query_scalar(sql::INSERT_SESSION)
            .bind(new.user_id)
            .bind(new.refresh_token_hash)
            .bind(ts(new.now))
            .bind(ts(new.expires_at))
            .bind(ts(new.max_expires_at))
            .bind(new.user_agent)
            .bind(new.ip)
            .fetch_one(&self.writer)
            .await?)
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> RepoResult<Rotation> {
        let rotated: Option<(i64, i64)> = sqlx::query_as(sql::ROTATE_SESSION)
            .bind(request.presented_hash)
            .bind(request.successor_hash)
            .bind(ts(request.now))
            .bind(ts(request.new_expires_at))
            .fetch_optional(&self.writer)
            .await?;
        if let Some((session_id, user_id)) = rotated {
            return Ok(Rotation::Rotated {
                session_id,
                user_id,
            });
        }
        if let Some(since) = request.grace_since {
            let racing: Option<(i64, i64)> = sqlx::query_as(sql::SESSION_IN_REUSE_GRACE)
                .bind(request.presented_hash)
                .bind(request.successor_hash)
                .bind(ts(since))
                .bind(ts(request.now))
                .fetch_optional(&self.writer)
                .await?;
            if let Some((session_id, user_id)) = racing {
                return Ok(Rotation::WithinGrace {
                    session_id,
                    user_id,
                });
            }
        }
        let reused: Option<(i64, i64)> = sqlx::query_as(sql::REVOKE_REUSED_SESSION)
            .bind(request.presented_hash)
            .bind(ts(request.now))
            .fetch_optional(&self.writer)
            .await?;
        Ok(match reused {
            Some((session_id, user_id)) => Rotation::ReuseDetected {
                session_id,
                user_id,
            },
            None => Rotation::Invalid,
        })
    }

    async fn find_with_user(
        &self,
        session_id: i64,
        user_id: i64,
    ) -> RepoResult<Option<SessionWithUser>> {
        let row = sqlx::query_as::<_, SessionUserRow>(sql::SESSION_WITH_USER)
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| SessionWithUser {
            user: r.user,
            session_revoked_at: r.session_revoked_at,
            session_expires_at: r.session_expires_at,
        }))
    }

    async fn revoke(&self, session_id: i64, now: DateTime<Utc>) -> RepoResult<bool> {
        let result = sqlx::query(sql::REVOKE_SESSION)
            .bind(session_id)
            .bind(ts(now))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn revoke_for_user(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::REVOKE_USER_SESSION)
            .bind(session_id)
            .bind(user_id)
            .bind(ts(now))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn list_live(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<Vec<SessionRecord>> {
        Ok(sqlx::query_as::<_, SessionRecord>(sql::LIVE_SESSIONS)
            .bind(user_id)
            .bind(ts(now))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn revoke_all_for_user(
        &self,
        user_id: i64,
        except: Option<i64>,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        revoke_all(&self.writer, user_id, except, now).await
    }

    async fn count_live(&self, now: DateTime<Utc>) -> RepoResult<i64> {
        Ok(sqlx::query_scalar(sql::COUNT_LIVE_SESSIONS)
            .bind(ts(now))
            .fetch_one(&self.pool)
            .await?)
    }

    async fn purge(
        &self,
        expired_before: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_SESSIONS)
            .bind(ts(expired_before))
            .bind(ts(revoked_before))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }
}

/// Revokes every live session of `user_id` except `except`.
async fn revoke_all<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    user_id: i64,
    except: Option<i64>,
    now: DateTime<Utc>,
) -> RepoResult<u64> {
    let result = sqlx::query(sql::REVOKE_USER_SESSIONS)
        .bind(user_id)
        .bind(ts(now))
        .bind(except)
        .execute(executor)
        .await?;
    Ok(result.rows_affected())
}

#[async_trait]
impl HealthCheck for SqliteStore {
    async fn ping(&self) -> RepoResult<()> {
        sqlx::query(sql::PING).execute(&self.pool).await?;
        Ok(())
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
        sqlx::query(sql::INSERT_THROTTLE_EVENT)
            .bind(kind.as_str())
            .bind(account)
            .bind(ip)
            .bind(ts(at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn count_for_account(
        &self,
        kind: ThrottleKind,
        account: &str,
        since: DateTime<Utc>,
    ) -> RepoResult<ThrottleCount> {
        Ok(sqlx::query_as(sql::COUNT_THROTTLE_BY_ACCOUNT)
            .bind(kind.as_str())
            .bind(account)
            .bind(ts(since))
            .fetch_one(&self.pool)
            .await?)
    }

    async fn count_for_ip(
        &self,
        kind: ThrottleKind,
        ip: &str,
        since: DateTime<Utc>,
    ) -> RepoResult<ThrottleCount> {
        Ok(sqlx::query_as(sql::COUNT_THROTTLE_BY_IP)
            .bind(kind.as_str())
            .bind(ip)
            .bind(ts(since))
            .fetch_one(&self.pool)
            .await?)
    }

    async fn clear_account(&self, kind: ThrottleKind, account: &str) -> RepoResult<()> {
        sqlx::query(sql::CLEAR_THROTTLE_ACCOUNT)
            .bind(kind.as_str())
            .bind(account)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_THROTTLE)
            .bind(ts(before))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl AuditRepository for SqliteStore {
    async fn append(&self, events: &[NewAuditEvent]) -> RepoResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut insert = QueryBuilder::new(sql::INSERT_AUDIT_EVENTS);
        insert.push_values(events, |mut row, event| {
            row.push_bind(ts(event.at))
                .push_bind(event.actor_user_id)
                .push_bind(event.subject_user_id)
                .push_bind(event.event_type.as_str())
                .push_bind(event.ip.clone())
                .push_bind(event.user_agent.clone())
                .push_bind(sqlx::types::Json(event.details.clone()));
        });
        insert.build().execute(&self.writer).await?;
        Ok(())
    }

    async fn list(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<AuditRecord>, i64)> {
        let mut page = QueryBuilder::new(sql::SELECT_AUDIT);
        sql::push_audit_filter(&mut page, filter, ts);
        sql::push_audit_page(&mut page, offset, limit);
        let events = page
            .build_query_as::<AuditRecord>()
            .fetch_all(&self.pool)
            .await?;
        let total = listing_total(offset, limit, events.len(), async {
            let mut count = QueryBuilder::new(sql::COUNT_AUDIT);
            sql::push_audit_filter(&mut count, filter, ts);
            count.build_query_scalar().fetch_one(&self.pool).await
        })
        .await?;
        Ok((events, total))
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_AUDIT)
            .bind(ts(before))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl EmailTokenRepository for SqliteStore {
    async fn find(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> RepoResult<Option<EmailTokenRecord>> {
        Ok(sqlx::query_as::<_, EmailTokenRecord>(sql::FIND_EMAIL_TOKEN)
            .bind(token_hash)
            .bind(purpose.as_str())
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn use_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Result<UsedEmailToken, EmailTokenProblem>> {
        let used = sqlx::query_as::<_, UsedEmailToken>(sql::USE_EMAIL_TOKEN)
            .bind(token_hash)
            .bind(purpose.as_str())
            .bind(ts(now))
            .fetch_optional(&self.writer)
            .await?;
        if let Some(used) = used {
            return Ok(Ok(used));
        }
        let problem = self
            .find(token_hash, purpose)
            .await?
            .and_then(|record| record.problem(now))
            .unwrap_or(EmailTokenProblem::Unknown);
        Ok(Err(problem))
    }

    async fn revoke_for_user(
        &self,
        user_id: i64,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let result = sqlx::query(sql::REVOKE_EMAIL_TOKENS)
            .bind(user_id)
            .bind(purpose.as_str())
            .bind(ts(now))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_EMAIL_TOKENS)
            .bind(ts(before))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }
}

/// Revokes the user's older unused links of the purpose and stores the new
/// one, inside the caller's transaction.
async fn issue_link(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    new: &NewEmailToken<'_>,
) -> RepoResult<()> {
    sqlx::query(sql::REVOKE_EMAIL_TOKENS)
        .bind(new.user_id)
        .bind(new.purpose.as_str())
        .bind(ts(new.now))
        .execute(&mut **tx)
        .await?;
    sqlx::query(sql::INSERT_EMAIL_TOKEN)
        .bind(new.user_id)
        .bind(new.purpose.as_str())
        .bind(new.token_hash)
        .bind(new.email)
        .bind(ts(new.now))
        .bind(ts(new.expires_at))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl OutboxRepository for SqliteStore {
    async fn enqueue(
        &self,
        message: NewOutboxMessage<'_>,
        link: Option<NewEmailToken<'_>>,
    ) -> RepoResult<()> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        if let Some(link) = &link {
            issue_link(&mut tx, link).await?;
        }
        sqlx::query(sql::INSERT_OUTBOX)
            .bind(message.message_id)
            .bind(message.payload)
            .bind(ts(message.now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> RepoResult<Vec<OutboxRow>> {
        let mut rows = sqlx::query_as::<_, OutboxRow>(sql::CLAIM_OUTBOX_SQLITE)
            .bind(ts(now))
            .bind(ts(lease_until))
            .bind(limit)
            .fetch_all(&self.writer)
            .await?;
        // RETURNING follows no order; callers get them in queue order.
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    async fn compose(&self, id: i64, payload: &[u8], link: NewEmailToken<'_>) -> RepoResult<()> {
        let mut tx = self.writer.begin_with(BEGIN_WRITE).await?;
        issue_link(&mut tx, &link).await?;
        let updated = sqlx::query(sql::SET_OUTBOX_PAYLOAD)
            .bind(id)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            // The row is gone (delivered or removed elsewhere): no link either.
            return Err(RepoError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn remove(&self, id: i64) -> RepoResult<()> {
        sqlx::query(sql::DELETE_OUTBOX)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn retry_at(
        &self,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> RepoResult<()> {
        sqlx::query(sql::RETRY_OUTBOX)
            .bind(id)
            .bind(ts(next_attempt_at))
            .bind(error)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn pending(&self, queued_by: DateTime<Utc>) -> RepoResult<i64> {
        Ok(sqlx::query_scalar(sql::COUNT_OUTBOX)
            .bind(ts(queued_by))
            .fetch_one(&self.writer)
            .await?)
    }
}

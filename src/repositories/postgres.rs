//! PostgreSQL implementation of the repositories.

use super::{sql, *};
use sqlx::{postgres::PgPool, QueryBuilder};

/// Advisory-lock key that serialises changes which could remove the last active admin.
const LAST_ADMIN_LOCK: i64 = 0x006c_6561_7574_6821;

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
            health: store,
            auth_cache: None,
        }
    }
}

/// The number of users, as the triggers of migration 0004 keep it (equal to
/// `SELECT count(*) FROM users` in the same snapshot, without reading them).
const COUNT_ALL_USERS: &str =
    "SELECT CAST(COALESCE(sum(users), 0) AS BIGINT) FROM user_count_slots";

fn map_unique(err: sqlx::Error) -> RepoError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => RepoError::EmailTaken,
        _ => RepoError::Database(err),
    }
}

#[async_trait]
impl UserRepository for PostgresStore {
    async fn create(&self, new: NewUser<'_>) -> RepoResult<User> {
        sqlx::query_as::<_, User>(sql::INSERT_USER)
            .bind(new.email.as_str())
            .bind(new.password_hash)
            .bind(new.role.as_str())
            .bind(new.is_active)
            .bind(new.now)
            .bind(new.email_verified)
            .fetch_one(&self.pool)
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
        // The trigram index `users_email_trgm_idx` serves `email LIKE` for
        // the count and the page alike, when the needle is rare enough for an
        // index to pay. A search is therefore planned for its own needle
        // every time (an unnamed statement, not a cached prepared one): after
        // a few runs, a prepared statement settles on one generic plan, blind
        // to the needle, and `%member4242%` (11 rows: the index, 1.5 ms) and
        // `%me%` (every row: a scan, 13 ms) would then share a plan that is
        // several times too slow for one of them (40 ms for `%me%` through
        // the index). Planning takes about 0.1 ms on a pooled connection.
        let prepared = filter.email_contains.is_none();
        let mut page = QueryBuilder::new(sql::SELECT_USERS);
        sql::push_user_filter(&mut page, filter, sql::EmailSearch::Like);
        sql::push_user_page(&mut page, offset, limit);
        let users = page
            .build_query_as::<User>()
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
                let mut count = QueryBuilder::new(sql::COUNT_USERS);
                sql::push_user_filter(&mut count, filter, sql::EmailSearch::Like);
                count
                    .build_query_scalar()
                    .persistent(prepared)
                    .fetch_one(&self.pool)
                    .await
            }
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
        let mut tx = self.pool.begin().await?;
        if keep_an_active_admin {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LAST_ADMIN_LOCK)
                .execute(&mut *tx)
                .await?;
        }
        let updated = sqlx::query_as::<_, User>(sql::UPDATE_USER)
            .bind(id)
            .bind(changes.email.as_ref().map(Email::as_str))
            .bind(changes.password_hash.as_deref())
            .bind(changes.role.map(Role::as_str))
            .bind(changes.is_active)
            .bind(now)
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
            .bind(now)
            .execute(&self.pool)
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
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete(&self, id: i64) -> RepoResult<User> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LAST_ADMIN_LOCK)
            .execute(&mut *tx)
            .await?;
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
impl SessionRepository for PostgresStore {
    async fn create(&self, new: NewSession<'_>) -> RepoResult<i64> {
        Ok(sqlx::query_scalar(sql::INSERT_SESSION)
            .bind(new.user_id)
            .bind(new.refresh_token_hash)
            .bind(new.now)
            .bind(new.expires_at)
            .bind(new.max_expires_at)
            .bind(new.user_agent)
            .bind(new.ip)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn rotate(&self, request: RotationRequest<'_>) -> RepoResult<Rotation> {
        let rotated: Option<(i64, i64)> = sqlx::query_as(sql::ROTATE_SESSION)
            .bind(request.presented_hash)
            .bind(request.successor_hash)
            .bind(request.now)
            .bind(request.new_expires_at)
            .fetch_optional(&self.pool)
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
                .bind(since)
                .bind(request.now)
                .fetch_optional(&self.pool)
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
            .bind(request.now)
            .fetch_optional(&self.pool)
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
            .bind(now)
            .execute(&self.pool)
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
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn list_live(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<Vec<SessionRecord>> {
        Ok(sqlx::query_as::<_, SessionRecord>(sql::LIVE_SESSIONS)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn revoke_all_for_user(
        &self,
        user_id: i64,
        except: Option<i64>,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        revoke_all(&self.pool, user_id, except, now).await
    }

    async fn count_live(&self, now: DateTime<Utc>) -> RepoResult<i64> {
        Ok(sqlx::query_scalar(sql::COUNT_LIVE_SESSIONS)
            .bind(now)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn purge(
        &self,
        expired_before: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_SESSIONS)
            .bind(expired_before)
            .bind(revoked_before)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

/// Revokes every live session of `user_id` except `except`.
async fn revoke_all<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: i64,
    except: Option<i64>,
    now: DateTime<Utc>,
) -> RepoResult<u64> {
    let result = sqlx::query(sql::REVOKE_USER_SESSIONS)
        .bind(user_id)
        .bind(now)
        .bind(except)
        .execute(executor)
        .await?;
    Ok(result.rows_affected())
}

#[async_trait]
impl HealthCheck for PostgresStore {
    async fn ping(&self) -> RepoResult<()> {
        sqlx::query(sql::PING).execute(&self.pool).await?;
        Ok(())
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
        sqlx::query(sql::INSERT_THROTTLE_EVENT)
            .bind(kind.as_str())
            .bind(account)
            .bind(ip)
            .bind(at)
            .execute(&self.pool)
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
            .bind(since)
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
            .bind(since)
            .fetch_one(&self.pool)
            .await?)
    }

    async fn clear_account(&self, kind: ThrottleKind, account: &str) -> RepoResult<()> {
        sqlx::query(sql::CLEAR_THROTTLE_ACCOUNT)
            .bind(kind.as_str())
            .bind(account)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_THROTTLE)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl AuditRepository for PostgresStore {
    async fn append(&self, events: &[NewAuditEvent]) -> RepoResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut insert = QueryBuilder::new(sql::INSERT_AUDIT_EVENTS);
        insert.push_values(events, |mut row, event| {
            row.push_bind(event.at)
                .push_bind(event.actor_user_id)
                .push_bind(event.subject_user_id)
                .push_bind(event.event_type.as_str())
                .push_bind(event.ip.clone())
                .push_bind(event.user_agent.clone())
                .push_bind(sqlx::types::Json(event.details.clone()));
        });
        insert.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn list(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<AuditRecord>, i64)> {
        let mut page = QueryBuilder::new(sql::SELECT_AUDIT);
        sql::push_audit_filter(&mut page, filter, |t| t);
        sql::push_audit_page(&mut page, offset, limit);
        let events = page
            .build_query_as::<AuditRecord>()
            .fetch_all(&self.pool)
            .await?;
        let total = listing_total(offset, limit, events.len(), async {
            let mut count = QueryBuilder::new(sql::COUNT_AUDIT);
            sql::push_audit_filter(&mut count, filter, |t| t);
            count.build_query_scalar().fetch_one(&self.pool).await
        })
        .await?;
        Ok((events, total))
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_AUDIT)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

#[async_trait]
impl EmailTokenRepository for PostgresStore {
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
            .bind(now)
            .fetch_optional(&self.pool)
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
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }

    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_EMAIL_TOKENS)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}

/// Revokes the user's older unused links of the purpose and stores the new
/// one, inside the caller's transaction.
async fn issue_link(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    new: &NewEmailToken<'_>,
) -> RepoResult<()> {
    sqlx::query(sql::REVOKE_EMAIL_TOKENS)
        .bind(new.user_id)
        .bind(new.purpose.as_str())
        .bind(new.now)
        .execute(&mut **tx)
        .await?;
    sqlx::query(sql::INSERT_EMAIL_TOKEN)
        .bind(new.user_id)
        .bind(new.purpose.as_str())
        .bind(new.token_hash)
        .bind(new.email)
        .bind(new.now)
        .bind(new.expires_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl OutboxRepository for PostgresStore {
    async fn enqueue(
        &self,
        message: NewOutboxMessage<'_>,
        link: Option<NewEmailToken<'_>>,
    ) -> RepoResult<()> {
        let mut tx = self.pool.begin().await?;
        if let Some(link) = &link {
            issue_link(&mut tx, link).await?;
        }
        sqlx::query(sql::INSERT_OUTBOX)
            .bind(message.message_id)
            .bind(message.payload)
            .bind(message.now)
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
        let mut rows = sqlx::query_as::<_, OutboxRow>(sql::CLAIM_OUTBOX_POSTGRES)
            .bind(now)
            .bind(lease_until)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        // RETURNING follows no order; callers get them in queue order.
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    async fn compose(&self, id: i64, payload: &[u8], link: NewEmailToken<'_>) -> RepoResult<()> {
        let mut tx = self.pool.begin().await?;
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
            .execute(&self.pool)
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
            .bind(next_attempt_at)
            .bind(error)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn pending(&self, queued_by: DateTime<Utc>) -> RepoResult<i64> {
        Ok(sqlx::query_scalar(sql::COUNT_OUTBOX)
            .bind(queued_by)
            .fetch_one(&self.pool)
            .await?)
    }
}

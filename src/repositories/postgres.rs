//! PostgreSQL implementation of the repositories.

use super::*;
use sqlx::{postgres::PgPool, QueryBuilder};

/// Advisory-lock key that serialises changes which could remove the last active admin.
const LAST_ADMIN_LOCK: i64 = 0x006c_6561_7574_6821;

const USER_COLUMNS: &str = "id, email, password_hash, role, is_active, created_at, updated_at";

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
            health: store,
        }
    }
}

fn map_unique(err: sqlx::Error) -> RepoError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => RepoError::EmailTaken,
        _ => RepoError::Database(err),
    }
}

#[async_trait]
impl UserRepository for PostgresStore {
    async fn create(&self, new: NewUser<'_>) -> RepoResult<User> {
        sqlx::query_as::<_, User>(&format!(
            "INSERT INTO users (email, password_hash, role, is_active, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {USER_COLUMNS}"
        ))
        .bind(new.email.as_str())
        .bind(new.password_hash)
        .bind(new.role.as_str())
        .bind(new.is_active)
        .bind(new.now)
        .fetch_one(&self.pool)
        .await
        .map_err(map_unique)
    }

    async fn find_by_id(&self, id: i64) -> RepoResult<Option<User>> {
        Ok(
            sqlx::query_as::<_, User>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn find_by_email(&self, email: &Email) -> RepoResult<Option<User>> {
        Ok(sqlx::query_as::<_, User>(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
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
        fn push_filter(qb: &mut QueryBuilder<'_, sqlx::Postgres>, filter: &UserFilter) {
            qb.push(" WHERE TRUE");
            if let Some(needle) = &filter.email_contains {
                qb.push(" AND email LIKE ")
                    .push_bind(like_contains(&needle.to_lowercase()))
                    .push(" ESCAPE '\\'");
            }
            if let Some(role) = filter.role {
                qb.push(" AND role = ").push_bind(role.as_str());
            }
            if let Some(active) = filter.is_active {
                qb.push(" AND is_active = ").push_bind(active);
            }
        }
        let mut count = QueryBuilder::new("SELECT count(*) FROM users");
        push_filter(&mut count, filter);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;

        let mut page = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users"));
        push_filter(&mut page, filter);
        page.push(" ORDER BY id LIMIT ")
            .push_bind(limit)
            .push(" OFFSET ")
            .push_bind(offset);
        let users = page.build_query_as::<User>().fetch_all(&self.pool).await?;
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
        let updated = sqlx::query_as::<_, User>(&format!(
            "UPDATE users SET
                email = COALESCE($2, email),
                password_hash = COALESCE($3, password_hash),
                role = COALESCE($4, role),
                is_active = COALESCE($5, is_active),
                updated_at = $6
             WHERE id = $1
               AND NOT ($7 AND role = 'admin' AND is_active AND NOT EXISTS (
                    SELECT 1 FROM users other
                    WHERE other.role = 'admin' AND other.is_active AND other.id <> $1))
             RETURNING {USER_COLUMNS}"
        ))
        .bind(id)
        .bind(changes.email.as_ref().map(Email::as_str))
        .bind(changes.password_hash.as_deref())
        .bind(changes.role.map(Role::as_str))
        .bind(changes.is_active)
        .bind(now)
        .bind(keep_an_active_admin)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_unique)?;
        let Some(user) = updated else {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
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

    async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
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
        let deleted = sqlx::query_as::<_, User>(&format!(
            "DELETE FROM users
             WHERE id = $1
               AND NOT (role = 'admin' AND is_active AND NOT EXISTS (
                    SELECT 1 FROM users other
                    WHERE other.role = 'admin' AND other.is_active AND other.id <> $1))
             RETURNING {USER_COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(user) = deleted else {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
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
        Ok(sqlx::query_scalar(
            "INSERT INTO sessions (user_id, refresh_token_hash, created_at, last_used_at, expires_at, user_agent, ip)
             VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
        )
        .bind(new.user_id)
        .bind(new.refresh_token_hash)
        .bind(new.now)
        .bind(new.expires_at)
        .bind(new.user_agent)
        .bind(new.ip)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn rotate(
        &self,
        presented_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        new_expires_at: DateTime<Utc>,
    ) -> RepoResult<Rotation> {
        let rotated: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE sessions SET
                previous_refresh_token_hash = refresh_token_hash,
                refresh_token_hash = $2,
                last_used_at = $3,
                expires_at = $4
             WHERE refresh_token_hash = $1
               AND revoked_at IS NULL
               AND expires_at > $3
               AND user_id IN (SELECT id FROM users WHERE is_active)
             RETURNING id, user_id",
        )
        .bind(presented_hash)
        .bind(new_hash)
        .bind(now)
        .bind(new_expires_at)
        .fetch_optional(&self.pool)
        .await?;
        if let Some((session_id, user_id)) = rotated {
            return Ok(Rotation::Rotated {
                session_id,
                user_id,
            });
        }
        let reused: Option<(i64, i64)> = sqlx::query_as(
            "UPDATE sessions SET revoked_at = $2
             WHERE previous_refresh_token_hash = $1 AND revoked_at IS NULL
             RETURNING id, user_id",
        )
        .bind(presented_hash)
        .bind(now)
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
        let row = sqlx::query_as::<_, SessionUserRow>(
            "SELECT u.id, u.email, u.password_hash, u.role, u.is_active, u.created_at, u.updated_at,
                    s.revoked_at AS session_revoked_at, s.expires_at AS session_expires_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.user_id = $2",
        )
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
        let result =
            sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(session_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn revoke_all_for_user(
        &self,
        user_id: i64,
        except: Option<i64>,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        revoke_all(&self.pool, user_id, except, now).await
    }
}

/// Revokes every live session of `user_id` except `except`.
async fn revoke_all<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    user_id: i64,
    except: Option<i64>,
    now: DateTime<Utc>,
) -> RepoResult<u64> {
    let result = sqlx::query(
        "UPDATE sessions SET revoked_at = $2
         WHERE user_id = $1 AND revoked_at IS NULL AND ($3::BIGINT IS NULL OR id <> $3)",
    )
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
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

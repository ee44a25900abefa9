//! The statements and rules both backends share, written once.
//!
//! The statements of [`super::sql`] are bound here, in the order of their
//! numbered parameters (only the user list, searched differently by each
//! backend, binds its own), and every decision taken on what a statement
//! returned (a refused change is the last admin or a missing user, a
//! refresh token is rotated, within its grace or reused, why a link cannot
//! be used) exists once. The backends ([`super::sqlite`], [`super::postgres`])
//! keep what really differs: how an instant is stored ([`Dialect`]), which
//! connection runs a statement, how a write transaction starts and
//! serialises, how outbox rows are locked, and how the user list is
//! searched.

use super::{
    sql::{self, Statement},
    AuditFilter, AuditRecord, ChallengePurpose, ChallengeRecord, EmailTokenProblem,
    EmailTokenPurpose, EmailTokenRecord, NewAuditEvent, NewChallenge, NewEmailToken,
    NewOutboxMessage, NewSession, NewUser, OutboxRow, RepoError, RepoResult, RevokeSessions,
    Rotation, RotationRequest, SessionRecord, SessionWithUser, ThrottleCount, ThrottleKind,
    TotpRecord, UsedEmailToken, User, UserChanges,
};
use crate::domain::{Email, Role};
use chrono::{DateTime, Utc};
use sqlx::{
    types::Json, Database, Encode, Executor, FromRow, IntoArguments, Pool, Transaction, Type,
};
use std::marker::PhantomData;

/// What the shared statements need to know about a database beyond
/// [`sqlx::Database`].
pub(super) trait Dialect: Database {
    /// How an instant is bound: PostgreSQL has `timestamptz`; SQLite stores
    /// fixed-width text, so that comparing the text compares the instants.
    type Timestamp: for<'q> Encode<'q, Self> + Type<Self> + Send + 'static;

    /// The bound form of `at`.
    fn timestamp(at: DateTime<Utc>) -> Self::Timestamp;

    /// How many rows a statement changed (each driver has its own result type).
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// A unique violation on insert or update means the email is taken (the
/// only unique constraint a caller can hit).
pub(super) fn map_unique(err: sqlx::Error) -> RepoError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => RepoError::EmailTaken,
        _ => RepoError::Database(err),
    }
}

/// Why a change or deletion guarded by "not the last active admin" matched
/// no row: the user exists (so the guard refused it), or does not.
fn refusal(user_exists: bool) -> RepoError {
    if user_exists {
        RepoError::LastAdmin
    } else {
        RepoError::NotFound
    }
}

/// Why a link that could not be used up cannot be: its stored state at
/// `now`, or unknown when there is none (or it has become usable since, which
/// only a clock going backwards does).
fn why_unusable(record: Option<EmailTokenRecord>, now: DateTime<Utc>) -> EmailTokenProblem {
    record
        .and_then(|record| record.problem(now))
        .unwrap_or(EmailTokenProblem::Unknown)
}

/// Whose throttled events are counted.
#[derive(Debug, Clone, Copy)]
pub(super) enum ThrottleKey<'a> {
    /// An account (a hash of its email).
    Account(&'a str),
    /// A client address.
    Ip(&'a str),
}

/// The shared statements of database `DB`, as associated functions: each
/// runs on the executor (a pool, or a connection inside the caller's
/// transaction) the backend chooses.
pub(super) struct Queries<DB>(PhantomData<DB>);

impl<DB> Queries<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> Option<bool>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB>,
    for<'q> Json<serde_json::Value>: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (bool,): FromRow<'r, DB::Row>,
    for<'r> (i64, i64): FromRow<'r, DB::Row>,
    for<'r> User: FromRow<'r, DB::Row>,
    for<'r> SessionWithUser: FromRow<'r, DB::Row>,
    for<'r> SessionRecord: FromRow<'r, DB::Row>,
    for<'r> ThrottleCount: FromRow<'r, DB::Row>,
    for<'r> AuditRecord: FromRow<'r, DB::Row>,
    for<'r> EmailTokenRecord: FromRow<'r, DB::Row>,
    for<'r> UsedEmailToken: FromRow<'r, DB::Row>,
    for<'r> OutboxRow: FromRow<'r, DB::Row>,
    for<'r> TotpRecord: FromRow<'r, DB::Row>,
    for<'r> ChallengeRecord: FromRow<'r, DB::Row>,
    for<'r> (Option<DateTime<Utc>>,): FromRow<'r, DB::Row>,
{
    /// Inserts a user; [`RepoError::EmailTaken`] when the email exists.
    pub(super) async fn create_user<'c>(
        executor: impl Executor<'c, Database = DB>,
        new: NewUser<'_>,
    ) -> RepoResult<User> {
        sqlx::query_as::<DB, User>(sql::INSERT_USER)
            .bind(new.email.as_str())
            .bind(new.password_hash)
            .bind(new.role.as_str())
            .bind(new.is_active)
            .bind(new.email_verified)
            .bind(DB::timestamp(new.now))
            .fetch_one(executor)
            .await
            .map_err(map_unique)
    }

    /// The user with this id.
    pub(super) async fn user_by_id<'c>(
        executor: impl Executor<'c, Database = DB>,
        id: i64,
    ) -> RepoResult<Option<User>> {
        Ok(sqlx::query_as::<DB, User>(sql::USER_BY_ID)
            .bind(id)
            .fetch_optional(executor)
            .await?)
    }

    /// The user with this (canonical) email.
    pub(super) async fn user_by_email<'c>(
        executor: impl Executor<'c, Database = DB>,
        email: &Email,
    ) -> RepoResult<Option<User>> {
        Ok(sqlx::query_as::<DB, User>(sql::USER_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(executor)
            .await?)
    }

    /// Applies `changes` and revokes sessions as asked, inside the caller's
    /// transaction. Changes that take admin power away
    /// ([`UserChanges::removes_admin_power`]) are refused for the last
    /// active admin ([`RepoError::LastAdmin`]).
    pub(super) async fn update_user(
        tx: &mut Transaction<'_, DB>,
        id: i64,
        changes: &UserChanges,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> RepoResult<User> {
        let updated = sqlx::query_as::<DB, User>(sql::UPDATE_USER)
            .bind(changes.email.as_ref().map(Email::as_str))
            .bind(changes.password_hash.as_deref())
            .bind(changes.role.map(Role::as_str))
            .bind(changes.is_active)
            .bind(changes.email_verified)
            .bind(DB::timestamp(now))
            .bind(id)
            .bind(changes.removes_admin_power())
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_unique)?;
        let Some(user) = updated else {
            return Err(Self::refused(tx, id).await);
        };
        Self::revoke_sessions(&mut **tx, id, revoke, now).await?;
        Ok(user)
    }

    /// Deletes a user (sessions go with it) inside the caller's transaction;
    /// refuses to delete the last active admin ([`RepoError::LastAdmin`]).
    pub(super) async fn delete_user(tx: &mut Transaction<'_, DB>, id: i64) -> RepoResult<User> {
        let deleted = sqlx::query_as::<DB, User>(sql::DELETE_USER)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        match deleted {
            Some(user) => Ok(user),
            None => Err(Self::refused(tx, id).await),
        }
    }

    /// The error of a guarded statement on user `id` that matched no row.
    async fn refused(tx: &mut Transaction<'_, DB>, id: i64) -> RepoError {
        let exists = sqlx::query_scalar::<DB, bool>(sql::USER_EXISTS)
            .bind(id)
            .fetch_one(&mut **tx)
            .await;
        match exists {
            Ok(exists) => refusal(exists),
            Err(err) => RepoError::Database(err),
        }
    }

    /// Marks the address verified if it is still `email`.
    pub(super) async fn mark_email_verified<'c>(
        executor: impl Executor<'c, Database = DB>,
        id: i64,
        email: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::MARK_EMAIL_VERIFIED)
            .bind(DB::timestamp(now))
            .bind(id)
            .bind(email)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// Replaces the password hash, sessions untouched.
    pub(super) async fn set_password_hash<'c>(
        executor: impl Executor<'c, Database = DB>,
        id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        sqlx::query(sql::SET_PASSWORD_HASH)
            .bind(password_hash)
            .bind(DB::timestamp(now))
            .bind(id)
            .execute(executor)
            .await?;
        Ok(())
    }

    /// Inserts a session and returns its id.
    pub(super) async fn create_session<'c>(
        executor: impl Executor<'c, Database = DB>,
        new: NewSession<'_>,
    ) -> RepoResult<i64> {
        Ok(sqlx::query_scalar::<DB, i64>(sql::INSERT_SESSION)
            .bind(new.user_id)
            .bind(new.refresh_token_hash)
            .bind(DB::timestamp(new.now))
            .bind(DB::timestamp(new.expires_at))
            .bind(DB::timestamp(new.max_expires_at))
            .bind(new.user_agent)
            .bind(new.ip)
            .fetch_one(executor)
            .await?)
    }

    /// When a live session of this user last authenticated.
    pub(super) async fn session_authenticated_at<'c>(
        executor: impl Executor<'c, Database = DB>,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<DateTime<Utc>>> {
        let row: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(sql::SESSION_AUTHENTICATED_AT)
            .bind(session_id)
            .bind(user_id)
            .bind(DB::timestamp(now))
            .fetch_optional(executor)
            .await?;
        Ok(row.and_then(|(at,)| at))
    }

    /// Records a confirmation on a live session of this user.
    pub(super) async fn mark_session_authenticated<'c>(
        executor: impl Executor<'c, Database = DB>,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::MARK_SESSION_AUTHENTICATED)
            .bind(DB::timestamp(now))
            .bind(session_id)
            .bind(user_id)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// Rotates a presented refresh token; failing that, tells a racing
    /// refresh within the grace from a replay, which revokes the session.
    /// Each step is one statement, so concurrent presentations of one token
    /// rotate it once.
    pub(super) async fn rotate(
        pool: &Pool<DB>,
        request: RotationRequest<'_>,
    ) -> RepoResult<Rotation> {
        let rotated: Option<(i64, i64)> = sqlx::query_as(sql::ROTATE_SESSION)
            .bind(request.successor_hash)
            .bind(DB::timestamp(request.now))
            .bind(DB::timestamp(request.new_expires_at))
            .bind(request.presented_hash)
            .fetch_optional(pool)
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
                .bind(DB::timestamp(since))
                .bind(DB::timestamp(request.now))
                .fetch_optional(pool)
                .await?;
            if let Some((session_id, user_id)) = racing {
                return Ok(Rotation::WithinGrace {
                    session_id,
                    user_id,
                });
            }
        }
        let reused: Option<(i64, i64)> = sqlx::query_as(sql::REVOKE_REUSED_SESSION)
            .bind(DB::timestamp(request.now))
            .bind(request.presented_hash)
            .fetch_optional(pool)
            .await?;
        Ok(match reused {
            Some((session_id, user_id)) => Rotation::ReuseDetected {
                session_id,
                user_id,
            },
            None => Rotation::Invalid,
        })
    }

    /// The session and its user.
    pub(super) async fn session_with_user<'c>(
        executor: impl Executor<'c, Database = DB>,
        session_id: i64,
        user_id: i64,
    ) -> RepoResult<Option<SessionWithUser>> {
        Ok(
            sqlx::query_as::<DB, SessionWithUser>(sql::SESSION_WITH_USER)
                .bind(session_id)
                .bind(user_id)
                .fetch_optional(executor)
                .await?,
        )
    }

    /// Revokes one session unless already revoked.
    pub(super) async fn revoke_session<'c>(
        executor: impl Executor<'c, Database = DB>,
        session_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::REVOKE_SESSION)
            .bind(DB::timestamp(now))
            .bind(session_id)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// Revokes one live session of this user.
    pub(super) async fn revoke_user_session<'c>(
        executor: impl Executor<'c, Database = DB>,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::REVOKE_USER_SESSION)
            .bind(DB::timestamp(now))
            .bind(session_id)
            .bind(user_id)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// The user's live sessions, newest first.
    pub(super) async fn live_sessions<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<Vec<SessionRecord>> {
        Ok(sqlx::query_as::<DB, SessionRecord>(sql::LIVE_SESSIONS)
            .bind(user_id)
            .bind(DB::timestamp(now))
            .fetch_all(executor)
            .await?)
    }

    /// Revokes the user's live sessions that `revoke` names; returns how many.
    pub(super) async fn revoke_sessions<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let kept_session = match revoke {
            RevokeSessions::None => return Ok(0),
            RevokeSessions::All => None,
            RevokeSessions::AllExcept(kept) => Some(kept),
        };
        let result = sqlx::query(sql::REVOKE_USER_SESSIONS)
            .bind(DB::timestamp(now))
            .bind(user_id)
            .bind(kept_session)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    /// How many sessions of all users are live.
    pub(super) async fn count_live_sessions<'c>(
        executor: impl Executor<'c, Database = DB>,
        now: DateTime<Utc>,
    ) -> RepoResult<i64> {
        Ok(sqlx::query_scalar::<DB, i64>(sql::COUNT_LIVE_SESSIONS)
            .bind(DB::timestamp(now))
            .fetch_one(executor)
            .await?)
    }

    /// Deletes expired sessions and sessions revoked long ago.
    pub(super) async fn purge_sessions<'c>(
        executor: impl Executor<'c, Database = DB>,
        expired_before: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let result = sqlx::query(sql::PURGE_SESSIONS)
            .bind(DB::timestamp(expired_before))
            .bind(DB::timestamp(revoked_before))
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    /// Pings the database.
    pub(super) async fn ping<'c>(executor: impl Executor<'c, Database = DB>) -> RepoResult<()> {
        sqlx::query(sql::PING).execute(executor).await?;
        Ok(())
    }

    /// Counts one throttled event.
    pub(super) async fn record_throttle<'c>(
        executor: impl Executor<'c, Database = DB>,
        kind: ThrottleKind,
        account: Option<&str>,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()> {
        sqlx::query(sql::INSERT_THROTTLE_EVENT)
            .bind(kind.as_str())
            .bind(account)
            .bind(ip)
            .bind(DB::timestamp(at))
            .execute(executor)
            .await?;
        Ok(())
    }

    /// Events of `kind` for one account or address after `since`.
    pub(super) async fn count_throttle<'c>(
        executor: impl Executor<'c, Database = DB>,
        kind: ThrottleKind,
        key: ThrottleKey<'_>,
        since: DateTime<Utc>,
    ) -> RepoResult<ThrottleCount> {
        let (statement, key) = match key {
            ThrottleKey::Account(account) => (sql::COUNT_THROTTLE_BY_ACCOUNT, account),
            ThrottleKey::Ip(ip) => (sql::COUNT_THROTTLE_BY_IP, ip),
        };
        Ok(sqlx::query_as::<DB, ThrottleCount>(statement)
            .bind(kind.as_str())
            .bind(key)
            .bind(DB::timestamp(since))
            .fetch_one(executor)
            .await?)
    }

    /// Forgets an account's events of `kind`.
    pub(super) async fn clear_throttle_account<'c>(
        executor: impl Executor<'c, Database = DB>,
        kind: ThrottleKind,
        account: &str,
    ) -> RepoResult<()> {
        sqlx::query(sql::CLEAR_THROTTLE_ACCOUNT)
            .bind(kind.as_str())
            .bind(account)
            .execute(executor)
            .await?;
        Ok(())
    }

    /// Runs a purge statement whose one parameter is the cut-off instant.
    pub(super) async fn purge_before<'c>(
        executor: impl Executor<'c, Database = DB>,
        statement: &'static str,
        before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let result = sqlx::query(statement)
            .bind(DB::timestamp(before))
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    /// Stores audit events in one statement.
    pub(super) async fn append_audit<'c>(
        executor: impl Executor<'c, Database = DB>,
        events: &[NewAuditEvent],
    ) -> RepoResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let statement = sql::insert_audit_events(events.len());
        let mut insert = sqlx::query(&statement);
        for event in events {
            insert = insert
                .bind(DB::timestamp(event.at))
                .bind(event.actor_user_id)
                .bind(event.subject_user_id)
                .bind(event.event_type.as_str())
                .bind(event.ip.as_deref())
                .bind(event.user_agent.as_deref())
                .bind(Json(event.details.clone()));
        }
        insert.execute(executor).await?;
        Ok(())
    }

    /// One page of the audit log, newest first, and the number of matches.
    pub(super) async fn list_audit(
        pool: &Pool<DB>,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<AuditRecord>, i64)> {
        let mut page = Statement::<DB>::new(sql::SELECT_AUDIT);
        sql::push_audit_filter(&mut page, filter, DB::timestamp);
        sql::push_audit_page(&mut page, offset, limit);
        let (text, arguments) = page.into_parts()?;
        let events = sqlx::query_as_with::<DB, AuditRecord, _>(&text, arguments)
            .fetch_all(pool)
            .await?;
        let total = super::listing_total(offset, limit, events.len(), async {
            let mut count = Statement::<DB>::new(sql::COUNT_AUDIT);
            sql::push_audit_filter(&mut count, filter, DB::timestamp);
            let (text, arguments) = count.into_parts()?;
            sqlx::query_scalar_with::<DB, i64, _>(&text, arguments)
                .fetch_one(pool)
                .await
        })
        .await?;
        Ok((events, total))
    }

    /// The link with this token hash and purpose, in whatever state.
    pub(super) async fn find_email_token<'c>(
        executor: impl Executor<'c, Database = DB>,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> RepoResult<Option<EmailTokenRecord>> {
        Ok(
            sqlx::query_as::<DB, EmailTokenRecord>(sql::FIND_EMAIL_TOKEN)
                .bind(token_hash)
                .bind(purpose.as_str())
                .fetch_optional(executor)
                .await?,
        )
    }

    /// Uses a link up through `writer` (one conditional update), or reads
    /// through `reader` why it cannot be used.
    pub(super) async fn use_email_token(
        writer: &Pool<DB>,
        reader: &Pool<DB>,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Result<UsedEmailToken, EmailTokenProblem>> {
        let used = sqlx::query_as::<DB, UsedEmailToken>(sql::USE_EMAIL_TOKEN)
            .bind(DB::timestamp(now))
            .bind(token_hash)
            .bind(purpose.as_str())
            .fetch_optional(writer)
            .await?;
        if let Some(used) = used {
            return Ok(Ok(used));
        }
        let record = Self::find_email_token(reader, token_hash, purpose).await?;
        Ok(Err(why_unusable(record, now)))
    }

    /// Revokes the user's unused links of one purpose; returns how many.
    pub(super) async fn revoke_email_tokens<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let result = sqlx::query(sql::REVOKE_EMAIL_TOKENS)
            .bind(DB::timestamp(now))
            .bind(user_id)
            .bind(purpose.as_str())
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result))
    }

    /// Revokes the user's older unused links of the purpose and stores the
    /// new one, inside the caller's transaction.
    async fn issue_link(tx: &mut Transaction<'_, DB>, new: &NewEmailToken<'_>) -> RepoResult<()> {
        Self::revoke_email_tokens(&mut **tx, new.user_id, new.purpose, new.now).await?;
        sqlx::query(sql::INSERT_EMAIL_TOKEN)
            .bind(new.user_id)
            .bind(new.purpose.as_str())
            .bind(new.token_hash)
            .bind(new.email)
            .bind(DB::timestamp(new.now))
            .bind(DB::timestamp(new.expires_at))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Queues a message and issues the link it carries, inside the caller's
    /// transaction.
    pub(super) async fn enqueue(
        tx: &mut Transaction<'_, DB>,
        message: NewOutboxMessage<'_>,
        link: Option<NewEmailToken<'_>>,
    ) -> RepoResult<()> {
        if let Some(link) = &link {
            Self::issue_link(tx, link).await?;
        }
        sqlx::query(sql::INSERT_OUTBOX)
            .bind(message.message_id)
            .bind(message.payload)
            .bind(DB::timestamp(message.now))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Claims due rows with the backend's `statement` (how rows are locked
    /// differs), returned in queue order.
    pub(super) async fn claim<'c>(
        executor: impl Executor<'c, Database = DB>,
        statement: &'static str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> RepoResult<Vec<OutboxRow>> {
        let mut rows = sqlx::query_as::<DB, OutboxRow>(statement)
            .bind(DB::timestamp(lease_until))
            .bind(DB::timestamp(now))
            .bind(limit)
            .fetch_all(executor)
            .await?;
        // RETURNING follows no order; callers get them in queue order.
        rows.sort_by_key(|row| row.id);
        Ok(rows)
    }

    /// Replaces a row's payload and issues its link, inside the caller's
    /// transaction; [`RepoError::NotFound`] (the caller rolls back, so no
    /// link either) when the row is gone, delivered or removed elsewhere.
    pub(super) async fn compose(
        tx: &mut Transaction<'_, DB>,
        id: i64,
        payload: &[u8],
        link: NewEmailToken<'_>,
    ) -> RepoResult<()> {
        Self::issue_link(tx, &link).await?;
        let updated = sqlx::query(sql::SET_OUTBOX_PAYLOAD)
            .bind(payload)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        if DB::rows_affected(&updated) == 0 {
            return Err(RepoError::NotFound);
        }
        Ok(())
    }

    /// Removes an outbox row.
    pub(super) async fn remove_outbox<'c>(
        executor: impl Executor<'c, Database = DB>,
        id: i64,
    ) -> RepoResult<()> {
        sqlx::query(sql::DELETE_OUTBOX)
            .bind(id)
            .execute(executor)
            .await?;
        Ok(())
    }

    /// Releases a claim; the row is due again at `next_attempt_at`.
    pub(super) async fn retry_outbox<'c>(
        executor: impl Executor<'c, Database = DB>,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> RepoResult<()> {
        sqlx::query(sql::RETRY_OUTBOX)
            .bind(DB::timestamp(next_attempt_at))
            .bind(error)
            .bind(id)
            .execute(executor)
            .await?;
        Ok(())
    }

    /// The user's TOTP secret, confirmed or pending.
    pub(super) async fn totp<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
    ) -> RepoResult<Option<TotpRecord>> {
        Ok(sqlx::query_as::<DB, TotpRecord>(sql::TOTP_BY_USER)
            .bind(user_id)
            .fetch_optional(executor)
            .await?)
    }

    /// Stores a pending secret unless a confirmed one exists.
    pub(super) async fn start_totp<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        secret_sealed: &[u8],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::START_TOTP)
            .bind(user_id)
            .bind(secret_sealed)
            .bind(DB::timestamp(now))
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// Confirms the pending secret, turns the flag on and replaces the
    /// recovery codes, inside the caller's transaction.
    pub(super) async fn confirm_totp(
        tx: &mut Transaction<'_, DB>,
        user_id: i64,
        step: i64,
        recovery_code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let confirmed = sqlx::query(sql::CONFIRM_TOTP)
            .bind(DB::timestamp(now))
            .bind(step)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        if DB::rows_affected(&confirmed) == 0 {
            return Ok(false);
        }
        Self::set_mfa_enabled(tx, user_id, true, now).await?;
        Self::insert_recovery_codes(tx, user_id, recovery_code_hashes, now).await?;
        Ok(true)
    }

    async fn set_mfa_enabled(
        tx: &mut Transaction<'_, DB>,
        user_id: i64,
        enabled: bool,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::SET_MFA_ENABLED)
            .bind(enabled)
            .bind(DB::timestamp(now))
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// Replaces every recovery code of the user with these.
    async fn insert_recovery_codes(
        tx: &mut Transaction<'_, DB>,
        user_id: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        sqlx::query(sql::DELETE_RECOVERY_CODES)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        for hash in code_hashes {
            sqlx::query(sql::INSERT_RECOVERY_CODE)
                .bind(user_id)
                .bind(hash.as_str())
                .bind(DB::timestamp(now))
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Accepts a step later than the last accepted one.
    pub(super) async fn use_totp_step<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        step: i64,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::USE_TOTP_STEP)
            .bind(step)
            .bind(user_id)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// Removes the second factor inside the caller's transaction; whether
    /// it was on.
    pub(super) async fn disable_second_factor(
        tx: &mut Transaction<'_, DB>,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        for statement in [
            sql::DELETE_TOTP,
            sql::DELETE_RECOVERY_CODES,
            sql::DELETE_USER_CHALLENGES,
        ] {
            sqlx::query(statement)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        }
        Self::set_mfa_enabled(tx, user_id, false, now).await
    }

    /// Replaces the recovery codes of a user whose second factor is on,
    /// inside the caller's transaction.
    pub(super) async fn replace_recovery_codes(
        tx: &mut Transaction<'_, DB>,
        user_id: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let enabled = sqlx::query_scalar::<DB, bool>(sql::USER_MFA_ENABLED)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
        if enabled != Some(true) {
            return Ok(false);
        }
        Self::insert_recovery_codes(tx, user_id, code_hashes, now).await?;
        Ok(true)
    }

    /// Uses up an unused recovery code.
    pub(super) async fn use_recovery_code<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::USE_RECOVERY_CODE)
            .bind(DB::timestamp(now))
            .bind(user_id)
            .bind(code_hash)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// How many unused recovery codes the user has.
    pub(super) async fn recovery_codes_left<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
    ) -> RepoResult<i64> {
        Ok(sqlx::query_scalar::<DB, i64>(sql::COUNT_RECOVERY_CODES)
            .bind(user_id)
            .fetch_one(executor)
            .await?)
    }

    /// Stores a challenge.
    pub(super) async fn create_challenge<'c>(
        executor: impl Executor<'c, Database = DB>,
        new: NewChallenge<'_>,
    ) -> RepoResult<()> {
        sqlx::query(sql::INSERT_CHALLENGE)
            .bind(new.token_hash)
            .bind(new.purpose.as_str())
            .bind(new.user_id)
            .bind(new.payload)
            .bind(DB::timestamp(new.now))
            .bind(DB::timestamp(new.expires_at))
            .execute(executor)
            .await?;
        Ok(())
    }

    /// A page of TOTP secrets by user id.
    pub(super) async fn totp_page<'c>(
        executor: impl Executor<'c, Database = DB>,
        after_user_id: i64,
        limit: i64,
    ) -> RepoResult<Vec<TotpRecord>> {
        Ok(sqlx::query_as::<DB, TotpRecord>(sql::TOTP_PAGE)
            .bind(after_user_id)
            .bind(limit)
            .fetch_all(executor)
            .await?)
    }

    /// Replaces a sealed secret that is still `old`.
    pub(super) async fn reseal_totp<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        old: &[u8],
        new: &[u8],
    ) -> RepoResult<bool> {
        let result = sqlx::query(sql::RESEAL_TOTP)
            .bind(new)
            .bind(user_id)
            .bind(old)
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result) > 0)
    }

    /// A live challenge (`use_up`: and use it, in the same statement).
    pub(super) async fn challenge<'c>(
        executor: impl Executor<'c, Database = DB>,
        token_hash: &str,
        purpose: ChallengePurpose,
        now: DateTime<Utc>,
        use_up: bool,
    ) -> RepoResult<Option<ChallengeRecord>> {
        let query = if use_up {
            sqlx::query_as::<DB, ChallengeRecord>(sql::USE_CHALLENGE)
                .bind(DB::timestamp(now))
                .bind(token_hash)
                .bind(purpose.as_str())
        } else {
            sqlx::query_as::<DB, ChallengeRecord>(sql::FIND_CHALLENGE)
                .bind(token_hash)
                .bind(purpose.as_str())
                .bind(DB::timestamp(now))
        };
        Ok(query.fetch_optional(executor).await?)
    }

    /// How many messages queued at or before `queued_by` still wait.
    pub(super) async fn pending_outbox<'c>(
        executor: impl Executor<'c, Database = DB>,
        queued_by: DateTime<Utc>,
    ) -> RepoResult<i64> {
        Ok(sqlx::query_scalar::<DB, i64>(sql::COUNT_OUTBOX)
            .bind(DB::timestamp(queued_by))
            .fetch_one(executor)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_statement_without_a_row_is_the_last_admin_only_if_the_user_exists() {
        assert!(matches!(refusal(true), RepoError::LastAdmin));
        assert!(matches!(refusal(false), RepoError::NotFound));
    }

    #[test]
    fn an_unusable_link_says_why_or_is_unknown() {
        let now = Utc::now();
        let record = |used: bool, revoked: bool, expires_in: i64| EmailTokenRecord {
            user_id: 1,
            email: "a@example.com".into(),
            expires_at: now + chrono::Duration::seconds(expires_in),
            used_at: used.then_some(now),
            revoked_at: revoked.then_some(now),
        };
        assert_eq!(why_unusable(None, now), EmailTokenProblem::Unknown);
        assert_eq!(
            why_unusable(Some(record(true, true, -1)), now),
            EmailTokenProblem::Used
        );
        assert_eq!(
            why_unusable(Some(record(false, true, -1)), now),
            EmailTokenProblem::Revoked
        );
        assert_eq!(
            why_unusable(Some(record(false, false, -1)), now),
            EmailTokenProblem::Expired
        );
        assert_eq!(
            why_unusable(Some(record(false, false, 60)), now),
            EmailTokenProblem::Unknown
        );
    }
}

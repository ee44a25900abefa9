//! Data access. One trait per aggregate ([`UserRepository`],
//! [`SessionRepository`], [`EmailTokenRepository`]...), one implementation per backend ([`postgres`],
//! [`sqlite`]), chosen from `DATABASE_URL` at startup.
//!
//! Design notes:
//! - Invariants are enforced by the database and mapped, never check-then-insert:
//!   a unique violation on the email becomes [`RepoError::EmailTaken`].
//! - Every write that must be atomic is one statement or one transaction. On
//!   SQLite, transactions start with `BEGIN IMMEDIATE` so two writers never
//!   deadlock on a lock upgrade; on PostgreSQL, changes that could remove the
//!   last active admin serialise on an advisory lock.
//! - The SQL of both backends is kept as similar as the dialects allow
//!   (`sql.rs`), and the statements both run, with the decisions taken on
//!   their results, are written once (`shared.rs`); the shared test suite in
//!   `tests/it/repositories.rs` proves the backends behave the same.

pub mod cache;
pub mod change_feed;
mod passkeys;
pub mod postgres;
mod shared;
mod sql;
pub mod sqlite;

pub use passkeys::{
    CeremonyPurpose, CeremonyRecord, NewCeremony, NewPasskey, PasskeyRecord, PasskeyRepository,
};

use crate::domain::{AuditEventType, Email, Role};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A stored user, including the password hash. Deliberately not `Serialize`:
/// it never leaves the server; clients get [`crate::domain::UserView`].
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub is_active: bool,
    /// Whether the user proved they receive mail at `email`.
    pub email_verified: bool,
    /// Whether sign-in asks for a second factor.
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("is_active", &self.is_active)
            .field("email_verified", &self.email_verified)
            .field("mfa_enabled", &self.mfa_enabled)
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether this user currently holds admin power.
    pub fn is_active_admin(&self) -> bool {
        self.role == Role::Admin && self.is_active
    }

    /// The client-facing view (no password hash).
    pub fn view(&self) -> crate::domain::UserView {
        crate::domain::UserView {
            id: self.id,
            email: self.email.clone(),
            role: self.role,
            is_active: self.is_active,
            email_verified: self.email_verified,
            mfa_enabled: self.mfa_enabled,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// A user to insert.
#[derive(Clone)]
pub struct NewUser<'a> {
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub role: Role,
    pub is_active: bool,
    /// Set for accounts whose address the operator vouches for.
    pub email_verified: bool,
    pub now: DateTime<Utc>,
}

/// Fields to change on a user; `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub password_hash: Option<String>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
    pub email_verified: Option<bool>,
}

impl UserChanges {
    /// Whether applying these changes to an active admin would take away
    /// their admin power: the one rule by which [`UserRepository::update`]
    /// decides to guard the last active admin.
    pub fn removes_admin_power(&self) -> bool {
        self.role == Some(Role::Regular) || self.is_active == Some(false)
    }
}

/// Which of a user's sessions to revoke together with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeSessions {
    /// None.
    None,
    /// Every session of the user.
    All,
    /// Every session except this one (the caller's own).
    AllExcept(i64),
}

impl RevokeSessions {
    /// Every session of the user except `kept`, if given.
    pub fn all_except(kept: Option<i64>) -> RevokeSessions {
        match kept {
            Some(kept) => RevokeSessions::AllExcept(kept),
            None => RevokeSessions::All,
        }
    }
}

/// Filters of the user list (shared with the services and adapters).
pub use crate::domain::UserFilter;

/// A session to insert (one per login).
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub user_id: i64,
    pub refresh_token_hash: &'a str,
    pub now: DateTime<Utc>,
    /// End of the idle period (the first refresh must come before).
    pub expires_at: DateTime<Utc>,
    /// The absolute end: no refresh moves `expires_at` past it.
    pub max_expires_at: DateTime<Utc>,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
}

/// A refresh token presented for rotation.
#[derive(Debug, Clone, Copy)]
pub struct RotationRequest<'a> {
    /// Hash of the presented token.
    pub presented_hash: &'a str,
    /// Hash of the token that replaces it. The caller derives it from the
    /// presented token, so every racing request computes the same one.
    pub successor_hash: &'a str,
    pub now: DateTime<Utc>,
    /// The new idle expiry (capped at the session's absolute end).
    pub new_expires_at: DateTime<Utc>,
    /// Start of the reuse grace: the previous token, rotated out after this
    /// moment into `successor_hash` (still the session's newest), is a racing
    /// refresh rather than a replay. `None`: no grace.
    pub grace_since: Option<DateTime<Utc>>,
}

/// The outcome of presenting a refresh token for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is replaced by the successor.
    Rotated { session_id: i64, user_id: i64 },
    /// The token was rotated out into the successor within the grace, and
    /// the session is live: nothing changes, the successor stands.
    WithinGrace { session_id: i64, user_id: i64 },
    /// The token was the previous one of a session (already rotated): the
    /// session has been revoked.
    ReuseDetected { session_id: i64, user_id: i64 },
    /// Unknown, expired, revoked, or the user is inactive.
    Invalid,
}

/// A stored session, without its token hashes.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SessionRecord {
    pub id: i64,
    pub user_id: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// What the authentication check needs, read in one round trip (when the
/// [`cache::AuthCache`] does not answer it).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionWithUser {
    #[sqlx(flatten)]
    pub user: User,
    pub session_revoked_at: Option<DateTime<Utc>>,
    pub session_expires_at: DateTime<Utc>,
}

/// Data-layer errors. Constraint violations that mean something become variants.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The canonical email is already used by another user.
    #[error("email already registered")]
    EmailTaken,
    /// No row with that id.
    #[error("not found")]
    NotFound,
    /// The change would leave no active admin.
    #[error("would remove the last active admin")]
    LastAdmin,
    /// The passkey's credential id is registered already (to anyone).
    #[error("credential already registered")]
    CredentialTaken,
    /// Anything else from the driver.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// What a single-use link sent by email is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailTokenPurpose {
    /// Confirms that the user receives mail at an address.
    VerifyEmail,
    /// Lets the user set a new password.
    ResetPassword,
}

impl EmailTokenPurpose {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailTokenPurpose::VerifyEmail => "verify_email",
            EmailTokenPurpose::ResetPassword => "reset_password",
        }
    }
}

/// A link to store (only the hash of its token).
#[derive(Debug, Clone)]
pub struct NewEmailToken<'a> {
    pub user_id: i64,
    pub purpose: EmailTokenPurpose,
    pub token_hash: &'a str,
    /// The address the link is sent to.
    pub email: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A link that was valid and is now used up.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UsedEmailToken {
    pub user_id: i64,
    /// The address the link was sent to.
    pub email: String,
}

/// Why a link cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTokenProblem {
    /// No such link (or one for another purpose).
    Unknown,
    /// Used already.
    Used,
    /// Replaced by a newer link, or withdrawn.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// The state of a stored link, as [`EmailTokenRepository::find`] reads it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EmailTokenRecord {
    pub user_id: i64,
    pub email: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl EmailTokenRecord {
    /// Whether the link can be used at `now`, or why not.
    pub fn problem(&self, now: DateTime<Utc>) -> Option<EmailTokenProblem> {
        if self.used_at.is_some() {
            Some(EmailTokenProblem::Used)
        } else if self.revoked_at.is_some() {
            Some(EmailTokenProblem::Revoked)
        } else if self.expires_at <= now {
            Some(EmailTokenProblem::Expired)
        } else {
            None
        }
    }
}

/// Single-use links sent by email.
#[async_trait]
pub trait EmailTokenRepository: Send + Sync {
    /// The link with this token hash and purpose, in whatever state.
    async fn find(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
    ) -> RepoResult<Option<EmailTokenRecord>>;
    /// Uses a link up (one conditional update: of concurrent callers exactly
    /// one succeeds); otherwise says why it cannot be used.
    async fn use_token(
        &self,
        token_hash: &str,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Result<UsedEmailToken, EmailTokenProblem>>;
    /// Revokes the user's unused links of one purpose; returns how many.
    async fn revoke_for_user(
        &self,
        user_id: i64,
        purpose: EmailTokenPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<u64>;
    /// Deletes links that expired before `before`; returns how many.
    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64>;
}

/// A message to put in the mail outbox.
#[derive(Debug, Clone, Copy)]
pub struct NewOutboxMessage<'a> {
    /// The stable `Message-ID` of the message.
    pub message_id: &'a str,
    /// What to send, sealed.
    pub payload: &'a [u8],
    /// Queued at; due at once.
    pub now: DateTime<Utc>,
}

/// A message claimed from the outbox for delivery.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: String,
    pub payload: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// The durable mail outbox: messages waiting for delivery. Any instance may
/// deliver any row; a claim is a lease, so a row whose deliverer died is
/// claimed again once the lease has passed.
#[async_trait]
pub trait OutboxRepository: Send + Sync {
    /// Stores a message and, with `link`, the link it carries (revoking the
    /// user's older unused links of that purpose), in one transaction.
    async fn enqueue(
        &self,
        message: NewOutboxMessage<'_>,
        link: Option<NewEmailToken<'_>>,
    ) -> RepoResult<()>;
    /// Claims up to `limit` due messages that nobody holds (or whose lease
    /// has passed), oldest due first: each is leased until `lease_until`
    /// and counts one more attempt. Concurrent claims never share a row.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> RepoResult<Vec<OutboxRow>>;
    /// Replaces the payload of a row (a message composed from a request)
    /// and issues the link it carries, in one transaction.
    async fn compose(&self, id: i64, payload: &[u8], link: NewEmailToken<'_>) -> RepoResult<()>;
    /// Removes a row (delivered, or given up on).
    async fn remove(&self, id: i64) -> RepoResult<()>;
    /// Releases a claim and makes the row due again at `next_attempt_at`.
    async fn retry_at(
        &self,
        id: i64,
        next_attempt_at: DateTime<Utc>,
        error: &str,
    ) -> RepoResult<()>;
    /// How many messages queued at or before `queued_by` still wait.
    async fn pending(&self, queued_by: DateTime<Utc>) -> RepoResult<i64>;
}

/// A user's TOTP secret as stored: sealed, and whether the enrolment is
/// confirmed.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TotpRecord {
    pub user_id: i64,
    pub secret_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("user_id", &self.user_id)
            .field("confirmed_at", &self.confirmed_at)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// What a two-factor challenge is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// The password step of a sign-in passed; the code step is pending.
    SignIn,
    /// Recovery codes just issued, sealed, shown once by the next page.
    RecoveryCodes,
}

impl ChallengePurpose {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePurpose::SignIn => "sign_in",
            ChallengePurpose::RecoveryCodes => "recovery_codes",
        }
    }
}

/// A challenge to store (only the hash of its token).
#[derive(Debug, Clone, Copy)]
pub struct NewChallenge<'a> {
    pub token_hash: &'a str,
    pub purpose: ChallengePurpose,
    pub user_id: i64,
    /// Sealed data the challenge carries, if any.
    pub payload: Option<&'a [u8]>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A live challenge.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChallengeRecord {
    pub user_id: i64,
    pub payload: Option<Vec<u8>>,
}

/// Second factors: TOTP secrets, recovery codes, and the challenges that
/// carry a two-factor flow from one request to the next. Every "use once"
/// is one conditional statement: of concurrent callers exactly one wins.
#[async_trait]
pub trait SecondFactorRepository: Send + Sync {
    /// The user's TOTP secret, confirmed or pending.
    async fn totp(&self, user_id: i64) -> RepoResult<Option<TotpRecord>>;
    /// Stores a pending secret, replacing a pending one; `false` (nothing
    /// changed) when the user's second factor is already confirmed.
    async fn start_totp(
        &self,
        user_id: i64,
        secret_sealed: &[u8],
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Confirms the pending secret with the step of its first code, turns
    /// the user's second factor on and replaces their recovery codes, in one
    /// transaction; `false` when nothing was pending.
    async fn confirm_totp(
        &self,
        user_id: i64,
        step: i64,
        recovery_code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Accepts `step` for a confirmed secret only if it is later than the
    /// last accepted one (and records it); `false` otherwise.
    async fn use_totp_step(&self, user_id: i64, step: i64) -> RepoResult<bool>;
    /// Turns the second factor off: the secret, the recovery codes and the
    /// user's pending challenges go, in one transaction; `false` when it
    /// was not on (a pending enrolment is removed all the same).
    async fn disable(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Replaces the recovery codes of a user whose second factor is on;
    /// `false` (nothing changed) otherwise.
    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Uses up an unused recovery code of the user; `false` when there is none
    /// with that hash.
    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// How many unused recovery codes the user has.
    async fn recovery_codes_left(&self, user_id: i64) -> RepoResult<i64>;
    /// Stores a challenge.
    async fn create_challenge(&self, new: NewChallenge<'_>) -> RepoResult<()>;
    /// The challenge with this token, while unused and unexpired.
    async fn find_challenge(
        &self,
        token_hash: &str,
        purpose: ChallengePurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<ChallengeRecord>>;
    /// Uses a live challenge up; `None` when it is unknown, used or expired.
    async fn use_challenge(
        &self,
        token_hash: &str,
        purpose: ChallengePurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<ChallengeRecord>>;
    /// Deletes challenges that expired before `before`; returns how many.
    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64>;
    /// Up to `limit` TOTP secrets of users after `after_user_id`, by user id
    /// (key rotation walks them all).
    async fn totp_page(&self, after_user_id: i64, limit: i64) -> RepoResult<Vec<TotpRecord>>;
    /// Replaces a sealed secret if it is still `old` (a concurrent change
    /// wins); whether it was replaced.
    async fn reseal_totp(&self, user_id: i64, old: &[u8], new: &[u8]) -> RepoResult<bool>;
}

/// Result alias for repository calls.
pub type RepoResult<T> = Result<T, RepoError>;

/// Users.
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts a user; [`RepoError::EmailTaken`] when the email exists.
    async fn create(&self, new: NewUser<'_>) -> RepoResult<User>;
    /// The user with this id.
    async fn find_by_id(&self, id: i64) -> RepoResult<Option<User>>;
    /// The user with this (canonical) email.
    async fn find_by_email(&self, email: &Email) -> RepoResult<Option<User>>;
    /// One page of users ordered by id, and the number of matches before paging.
    async fn list(
        &self,
        filter: &UserFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<User>, i64)>;
    /// Applies `changes` and revokes sessions as asked, atomically. Refuses
    /// ([`RepoError::LastAdmin`]) when the user is the last active admin and
    /// the changes take their admin power away
    /// ([`UserChanges::removes_admin_power`]).
    async fn update(
        &self,
        id: i64,
        changes: &UserChanges,
        revoke: RevokeSessions,
        now: DateTime<Utc>,
    ) -> RepoResult<User>;
    /// Marks the user's address verified if it is still `email` (a link
    /// sent to an older address verifies nothing); `false` otherwise.
    async fn mark_email_verified(
        &self,
        id: i64,
        email: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Replaces the password hash without touching sessions (rehash on login).
    async fn set_password_hash(
        &self,
        id: i64,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Deletes a user (sessions go with it); refuses to delete the last active admin.
    async fn delete(&self, id: i64) -> RepoResult<User>;
}

/// Sessions (one per login) and their refresh tokens.
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Inserts a session and returns its id.
    async fn create(&self, new: NewSession<'_>) -> RepoResult<i64>;
    /// Atomically replaces the current refresh token with its successor (one
    /// conditional update: of concurrent callers exactly one rotates). A
    /// previous token presented again is [`Rotation::WithinGrace`] when the
    /// request's grace allows it, and otherwise revokes the session.
    async fn rotate(&self, request: RotationRequest<'_>) -> RepoResult<Rotation>;
    /// The session and its user, for the authentication check (which the
    /// [`cache::AuthCache`], when on, answers for most requests).
    async fn find_with_user(
        &self,
        session_id: i64,
        user_id: i64,
    ) -> RepoResult<Option<SessionWithUser>>;
    /// When the session's user last proved who they are on it (the
    /// sign-in, or a later confirmation); `None` for an unknown, revoked or
    /// expired session, or one from before this was recorded. Read from the
    /// database, never from the authentication cache.
    async fn authenticated_at(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<DateTime<Utc>>>;
    /// Records a confirmation on a live session of this user; `false` when
    /// there is no such session.
    async fn mark_authenticated(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Revokes one session; `false` when it was already revoked or does not exist.
    async fn revoke(&self, session_id: i64, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Revokes one live session of this user; `false` when the user has no
    /// such live session (another user's id included).
    async fn revoke_for_user(
        &self,
        session_id: i64,
        user_id: i64,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// The user's live sessions (not revoked, not expired), newest first.
    async fn list_live(&self, user_id: i64, now: DateTime<Utc>) -> RepoResult<Vec<SessionRecord>>;
    /// Revokes every live session of a user, optionally keeping one.
    async fn revoke_all_for_user(
        &self,
        user_id: i64,
        except: Option<i64>,
        now: DateTime<Utc>,
    ) -> RepoResult<u64>;
    /// How many sessions of all users are live (not revoked, not expired).
    async fn count_live(&self, now: DateTime<Utc>) -> RepoResult<i64>;
    /// Deletes sessions that expired before `expired_before` or were revoked
    /// before `revoked_before`; returns how many.
    async fn purge(
        &self,
        expired_before: DateTime<Utc>,
        revoked_before: DateTime<Utc>,
    ) -> RepoResult<u64>;
}

/// What a throttling counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKind {
    /// A failed sign-in.
    Login,
    /// A sign-up attempt.
    Registration,
    /// An invalid refresh token.
    Refresh,
    /// A request that sends mail (password reset, verification).
    Email,
    /// A wrong second-factor code (counted per user).
    SecondFactor,
}

impl ThrottleKind {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleKind::Login => "login",
            ThrottleKind::Registration => "registration",
            ThrottleKind::Refresh => "refresh",
            ThrottleKind::Email => "email",
            ThrottleKind::SecondFactor => "second_factor",
        }
    }
}

/// Counted events since some instant, with the oldest and newest of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, sqlx::FromRow)]
pub struct ThrottleCount {
    pub count: i64,
    pub oldest: Option<DateTime<Utc>>,
    pub newest: Option<DateTime<Utc>>,
}

/// Throttling counters, shared by every instance through the database.
#[async_trait]
pub trait ThrottleRepository: Send + Sync {
    /// Counts one event for an account (a hash of its email) and/or a client address.
    async fn record(
        &self,
        kind: ThrottleKind,
        account: Option<&str>,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Events of `kind` for this account after `since`.
    async fn count_for_account(
        &self,
        kind: ThrottleKind,
        account: &str,
        since: DateTime<Utc>,
    ) -> RepoResult<ThrottleCount>;
    /// Events of `kind` from this client address after `since`.
    async fn count_for_ip(
        &self,
        kind: ThrottleKind,
        ip: &str,
        since: DateTime<Utc>,
    ) -> RepoResult<ThrottleCount>;
    /// Forgets the account's events of `kind` (a successful sign-in).
    async fn clear_account(&self, kind: ThrottleKind, account: &str) -> RepoResult<()>;
    /// Deletes events older than `before`; returns how many.
    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64>;
}

/// An audit event to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    pub at: DateTime<Utc>,
    pub event_type: AuditEventType,
    pub actor_user_id: Option<i64>,
    pub subject_user_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_user_id: Option<i64>,
    pub subject_user_id: Option<i64>,
    pub event_type: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: sqlx::types::Json<serde_json::Value>,
}

/// Filters of the audit list; all present ones must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Events this user did or that concern them.
    pub user_id: Option<i64>,
    /// Events that concern this user.
    pub subject_user_id: Option<i64>,
    pub event_type: Option<AuditEventType>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// At or before.
    pub until: Option<DateTime<Utc>>,
}

/// The security audit log (append-only, purged by age).
#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Stores events, in one statement.
    async fn append(&self, events: &[NewAuditEvent]) -> RepoResult<()>;
    /// One page, newest first, and the number of matches before paging.
    async fn list(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> RepoResult<(Vec<AuditRecord>, i64)>;
    /// Deletes events older than `before`; returns how many.
    async fn purge(&self, before: DateTime<Utc>) -> RepoResult<u64>;
}

/// The repositories of one database, shared by all services.
#[derive(Clone)]
pub struct Repositories {
    pub users: Arc<dyn UserRepository>,
    pub sessions: Arc<dyn SessionRepository>,
    pub throttle: Arc<dyn ThrottleRepository>,
    pub audit: Arc<dyn AuditRepository>,
    pub email_tokens: Arc<dyn EmailTokenRepository>,
    pub outbox: Arc<dyn OutboxRepository>,
    pub second_factors: Arc<dyn SecondFactorRepository>,
    pub passkeys: Arc<dyn PasskeyRepository>,
    pub health: Arc<dyn HealthCheck>,
    /// The authentication cache in front of `sessions` and `users`, when on.
    pub auth_cache: Option<cache::AuthCache>,
}

impl Repositories {
    /// The same repositories with the authentication check served from
    /// `cache`, and every change to sessions and users applied to it.
    pub fn with_auth_cache(self, cache: cache::AuthCache) -> Repositories {
        Repositories {
            users: Arc::new(cache::CachedUsers {
                inner: self.users,
                cache: cache.clone(),
            }),
            sessions: Arc::new(cache::CachedSessions {
                inner: self.sessions,
                cache: cache.clone(),
            }),
            second_factors: Arc::new(cache::CachedSecondFactors {
                inner: self.second_factors,
                cache: cache.clone(),
            }),
            auth_cache: Some(cache),
            ..self
        }
    }
}

/// Database liveness, for `/health/ready`.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> RepoResult<()>;
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern and wraps it in `%`.
pub(crate) fn like_contains(needle: &str) -> String {
    let mut pattern = String::with_capacity(needle.len() + 2);
    pattern.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// An FTS5 query that matches `needle` as one phrase: the text between
/// double quotes is taken literally (wildcards and operators included), a
/// double quote is written twice. With the trigram tokenizer, a phrase of 3 or
/// more characters matches the rows that contain it, ignoring case.
pub(crate) fn fts_phrase(needle: &str) -> String {
    format!("\"{}\"", needle.replace('"', "\"\""))
}

/// The total number of matches of a listing when its page alone tells it,
/// so the count query can be skipped: a page holding rows but fewer than
/// asked for is the last one (`offset` + its rows), and an empty first page
/// means no match at all. A full page, or an empty one past the start, says
/// nothing about the rest: then the matches are counted.
fn total_told_by_page(offset: i64, limit: i64, rows: usize) -> Option<i64> {
    let rows = i64::try_from(rows).ok()?;
    if rows == 0 {
        (offset == 0).then_some(0)
    } else if rows < limit {
        Some(offset + rows)
    } else {
        None
    }
}

/// The total of a listing whose page of `rows` came from `offset` and
/// `limit`: told by the page when it can be ([`total_told_by_page`]),
/// otherwise counted by `count`, a query that only runs then.
pub(crate) async fn listing_total(
    offset: i64,
    limit: i64,
    rows: usize,
    count: impl std::future::Future<Output = Result<i64, sqlx::Error>>,
) -> RepoResult<i64> {
    match total_told_by_page(offset, limit, rows) {
        Some(total) => Ok(total),
        None => Ok(count.await?),
    }
}

#[cfg(test)]
mod tests {
    use super::{fts_phrase, like_contains, total_told_by_page};

    #[test]
    fn a_partial_or_empty_first_page_tells_the_total() {
        assert_eq!(total_told_by_page(0, 100, 11), Some(11));
        assert_eq!(total_told_by_page(40, 20, 7), Some(47));
        assert_eq!(total_told_by_page(0, 20, 0), Some(0));
        // A full page may have more behind it; an empty page past the
        // start may be past the end of any number of matches.
        assert_eq!(total_told_by_page(0, 20, 20), None);
        assert_eq!(total_told_by_page(60, 20, 0), None);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_contains("a_b%c\\"), "%a\\_b\\%c\\\\%");
        assert_eq!(like_contains("alice"), "%alice%");
    }

    #[test]
    fn fts_phrases_quote_the_needle() {
        assert_eq!(fts_phrase("alice"), "\"alice\"");
        assert_eq!(fts_phrase("a\"b*c:"), "\"a\"\"b*c:\"");
        assert_eq!(fts_phrase("%_\\"), "\"%_\\\"");
    }
}

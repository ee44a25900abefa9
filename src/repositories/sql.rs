//! The SQL text shared by both backends. PostgreSQL and SQLite both accept
//! `$N` parameters and every statement here, so each is written once and the
//! two implementations cannot drift apart; they differ only in how they bind
//! timestamps and how they serialise writers.
//!
//! Parameters are numbered in order of first appearance in each statement
//! (`$1` first), and bound in that order; a number used again refers to the
//! same value.

/// The columns of a [`super::User`], in `FromRow` order.
macro_rules! user_columns {
    () => {
        "id, email, password_hash, role, is_active, email_verified, mfa_enabled, created_at, updated_at"
    };
}

pub(super) const INSERT_USER: &str = concat!(
    "INSERT INTO users (email, password_hash, role, is_active, email_verified, created_at, updated_at) ",
    "VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING ",
    user_columns!()
);

pub(super) const USER_BY_ID: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");

pub(super) const USER_BY_EMAIL: &str =
    concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");

pub(super) const COUNT_USERS: &str = "SELECT count(*) FROM users";

pub(super) const SELECT_USERS: &str = concat!("SELECT ", user_columns!(), " FROM users");

pub(super) const USER_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)";

/// The condition "the row `users` is the last active admin": taking its
/// admin power away, or the row itself, would leave no active admin. The one
/// statement of this rule, used by [`UPDATE_USER`] and [`DELETE_USER`].
macro_rules! is_last_active_admin {
    () => {
        "(users.role = 'admin' AND users.is_active AND NOT EXISTS (\
         SELECT 1 FROM users other \
         WHERE other.role = 'admin' AND other.is_active AND other.id <> users.id))"
    };
}

/// Applies the non-null changes. `$8` says whether the changes take admin
/// power away ([`super::UserChanges::removes_admin_power`]); then the last
/// active admin is refused (no row).
pub(super) const UPDATE_USER: &str = concat!(
    "UPDATE users SET ",
    "email = COALESCE($1, email), ",
    "password_hash = COALESCE($2, password_hash), ",
    "role = COALESCE($3, role), ",
    "is_active = COALESCE($4, is_active), ",
    "email_verified = COALESCE($5, email_verified), ",
    "updated_at = $6 ",
    "WHERE id = $7 AND NOT ($8 AND ",
    is_last_active_admin!(),
    ") RETURNING ",
    user_columns!()
);

pub(super) const SET_PASSWORD_HASH: &str =
    "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3";

/// Deletes a user unless they are the last active admin (no row then).
pub(super) const DELETE_USER: &str = concat!(
    "DELETE FROM users WHERE id = $1 AND NOT ",
    is_last_active_admin!(),
    " RETURNING ",
    user_columns!()
);

/// A new session; its sign-in is its first authentication.
pub(super) const INSERT_SESSION: &str = "INSERT INTO sessions \
     (user_id, refresh_token_hash, created_at, last_used_at, authenticated_at, expires_at, max_expires_at, user_agent, ip) \
     VALUES ($1, $2, $3, $3, $3, $4, $5, $6, $7) RETURNING id";

/// When a live session (at `$3`) of this user last authenticated.
pub(super) const SESSION_AUTHENTICATED_AT: &str = "SELECT authenticated_at FROM sessions \
     WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > $3";

/// Records a confirmation at `$1` on a live session of this user.
pub(super) const MARK_SESSION_AUTHENTICATED: &str = "UPDATE sessions SET authenticated_at = $1 \
     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND expires_at > $1";

/// One conditional UPDATE: of concurrent rotations of the presented token
/// `$4`, one matches. The new idle expiry `$3` never passes the session's
/// absolute end. The user check is a correlated `EXISTS` (one primary-key
/// lookup), not `user_id IN (SELECT ...)`, for which SQLite builds the list
/// of every active user on each rotation (see BENCHMARKS.md, section
/// "Measurements behind the repository code").
pub(super) const ROTATE_SESSION: &str = "UPDATE sessions SET \
     previous_refresh_token_hash = refresh_token_hash, refresh_token_hash = $1, \
     last_used_at = $2, rotated_at = $2, \
     expires_at = CASE WHEN max_expires_at IS NULL OR $3 < max_expires_at THEN $3 ELSE max_expires_at END \
     WHERE refresh_token_hash = $4 AND revoked_at IS NULL AND expires_at > $2 \
     AND EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND users.is_active) \
     RETURNING id, user_id";

/// A previous refresh token `$1` presented again while its rotation to `$2`
/// is the session's newest and happened after `$3`: a racing refresh within
/// the reuse grace. The session must still be live at `$4`.
pub(super) const SESSION_IN_REUSE_GRACE: &str = "SELECT id, user_id FROM sessions \
     WHERE previous_refresh_token_hash = $1 AND refresh_token_hash = $2 AND rotated_at > $3 \
     AND revoked_at IS NULL AND expires_at > $4 \
     AND EXISTS (SELECT 1 FROM users WHERE users.id = sessions.user_id AND users.is_active)";

/// A previous refresh token `$2` presented again: revoke its session.
pub(super) const REVOKE_REUSED_SESSION: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE previous_refresh_token_hash = $2 AND revoked_at IS NULL \
     RETURNING id, user_id";

pub(super) const SESSION_WITH_USER: &str = "SELECT u.id, u.email, u.password_hash, u.role, u.is_active, \
     u.email_verified, u.mfa_enabled, u.created_at, u.updated_at, s.revoked_at AS session_revoked_at, s.expires_at AS session_expires_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.id = $1 AND s.user_id = $2";

pub(super) const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

/// One live session of one user.
pub(super) const REVOKE_USER_SESSION: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL AND expires_at > $1";

/// A user's live sessions, newest first.
pub(super) const LIVE_SESSIONS: &str =
    "SELECT id, user_id, created_at, last_used_at, expires_at, user_agent, ip \
     FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 \
     ORDER BY created_at DESC, id DESC";

/// Every live session of `$2` except `$3` (when not null).
pub(super) const REVOKE_USER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE user_id = $2 AND revoked_at IS NULL AND (CAST($3 AS BIGINT) IS NULL OR id <> $3)";

/// Expired sessions, and sessions revoked long enough ago that their last
/// access token has expired too.
pub(super) const PURGE_SESSIONS: &str =
    "DELETE FROM sessions WHERE expires_at < $1 OR revoked_at < $2";

pub(super) const INSERT_THROTTLE_EVENT: &str =
    "INSERT INTO throttle_events (kind, account, ip, at) VALUES ($1, $2, $3, $4)";

pub(super) const COUNT_THROTTLE_BY_ACCOUNT: &str =
    "SELECT count(*) AS count, MIN(at) AS oldest, MAX(at) AS newest FROM throttle_events \
     WHERE kind = $1 AND account = $2 AND at > $3";

pub(super) const COUNT_THROTTLE_BY_IP: &str =
    "SELECT count(*) AS count, MIN(at) AS oldest, MAX(at) AS newest FROM throttle_events \
     WHERE kind = $1 AND ip = $2 AND at > $3";

pub(super) const CLEAR_THROTTLE_ACCOUNT: &str =
    "DELETE FROM throttle_events WHERE kind = $1 AND account = $2";

pub(super) const PURGE_THROTTLE: &str = "DELETE FROM throttle_events WHERE at < $1";

/// The columns of an audit event, in the order [`insert_audit_events`] numbers them.
const AUDIT_EVENT_COLUMNS: [&str; 7] = [
    "at",
    "actor_user_id",
    "subject_user_id",
    "event_type",
    "ip",
    "user_agent",
    "details",
];

/// Inserts `rows` audit events in one statement, numbered like every other
/// statement: the first row binds `$1`-`$7`, the next `$8`-`$14`...
pub(super) fn insert_audit_events(rows: usize) -> String {
    let columns = AUDIT_EVENT_COLUMNS.len();
    let mut statement = format!(
        "INSERT INTO audit_events ({}) VALUES ",
        AUDIT_EVENT_COLUMNS.join(", ")
    );
    for row in 0..rows {
        statement.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            let separator = if column == 0 { "" } else { ", " };
            statement.push_str(&format!("{separator}${}", row * columns + column + 1));
        }
        statement.push(')');
    }
    statement
}

pub(super) const COUNT_AUDIT: &str = "SELECT count(*) FROM audit_events";

pub(super) const SELECT_AUDIT: &str = "SELECT id, at, actor_user_id, subject_user_id, \
     event_type, ip, user_agent, details FROM audit_events";

pub(super) const PURGE_AUDIT: &str = "DELETE FROM audit_events WHERE at < $1";

/// Live sessions of every user (the active-sessions gauge).
pub(super) const COUNT_LIVE_SESSIONS: &str =
    "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1";

pub(super) const PING: &str = "SELECT 1";

/// Marks the user's address verified, only while it is still `$3`.
pub(super) const MARK_EMAIL_VERIFIED: &str =
    "UPDATE users SET email_verified = TRUE, updated_at = $1 WHERE id = $2 AND email = $3";

/// Revokes the user's outstanding links of one purpose (a newer one replaces them).
pub(super) const REVOKE_EMAIL_TOKENS: &str = "UPDATE email_tokens SET revoked_at = $1 \
     WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL";

pub(super) const INSERT_EMAIL_TOKEN: &str = "INSERT INTO email_tokens \
     (user_id, purpose, token_hash, email, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";

/// One conditional UPDATE: a link is used once, even by concurrent requests.
pub(super) const USE_EMAIL_TOKEN: &str = "UPDATE email_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND revoked_at IS NULL \
     AND expires_at > $1 RETURNING user_id, email";

/// A link's state, whatever it is (to say why it cannot be used).
pub(super) const FIND_EMAIL_TOKEN: &str = "SELECT user_id, email, expires_at, used_at, revoked_at \
     FROM email_tokens WHERE token_hash = $1 AND purpose = $2";

/// Links that expired before `$1` are of no use to anyone.
pub(super) const PURGE_EMAIL_TOKENS: &str = "DELETE FROM email_tokens WHERE expires_at < $1";

pub(super) const INSERT_OUTBOX: &str = "INSERT INTO mail_outbox \
     (message_id, payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $3)";

/// Rows due at `$2` that nobody holds, oldest due first, up to `$3` (the
/// row lock clause, PostgreSQL's `FOR UPDATE SKIP LOCKED`, is appended per
/// backend).
macro_rules! due_outbox_rows {
    () => {
        "SELECT id FROM mail_outbox WHERE next_attempt_at <= $2 \
         AND (locked_until IS NULL OR locked_until <= $2) ORDER BY next_attempt_at, id LIMIT $3"
    };
}

/// Leases the due rows until `$1`.
macro_rules! claim_outbox {
    ($lock:literal) => {
        concat!(
            "UPDATE mail_outbox SET locked_until = $1, attempts = attempts + 1 WHERE id IN (",
            due_outbox_rows!(),
            $lock,
            ") RETURNING id, message_id, payload, created_at, attempts"
        )
    };
}

/// SQLite: the single writer connection serialises claims.
pub(super) const CLAIM_OUTBOX_SQLITE: &str = claim_outbox!("");
/// PostgreSQL: concurrent claims on several instances skip each other's rows.
pub(super) const CLAIM_OUTBOX_POSTGRES: &str = claim_outbox!(" FOR UPDATE SKIP LOCKED");

pub(super) const SET_OUTBOX_PAYLOAD: &str = "UPDATE mail_outbox SET payload = $1 WHERE id = $2";

pub(super) const DELETE_OUTBOX: &str = "DELETE FROM mail_outbox WHERE id = $1";

pub(super) const RETRY_OUTBOX: &str = "UPDATE mail_outbox \
     SET locked_until = NULL, next_attempt_at = $1, last_error = $2 WHERE id = $3";

pub(super) const COUNT_OUTBOX: &str = "SELECT count(*) FROM mail_outbox WHERE created_at <= $1";

pub(super) const TOTP_BY_USER: &str = "SELECT user_id, secret_sealed, created_at, confirmed_at, \
     last_step FROM totp_secrets WHERE user_id = $1";

/// A pending secret replaces a pending one, never a confirmed one (no row then).
pub(super) const START_TOTP: &str = "INSERT INTO totp_secrets (user_id, secret_sealed, created_at) \
     VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE \
     SET secret_sealed = excluded.secret_sealed, created_at = excluded.created_at, last_step = NULL \
     WHERE totp_secrets.confirmed_at IS NULL";

/// Confirms the pending secret, recording the step of its first code.
pub(super) const CONFIRM_TOTP: &str = "UPDATE totp_secrets SET confirmed_at = $1, last_step = $2 \
     WHERE user_id = $3 AND confirmed_at IS NULL";

/// One conditional UPDATE: a step is accepted once, and only after the last.
pub(super) const USE_TOTP_STEP: &str = "UPDATE totp_secrets SET last_step = $1 \
     WHERE user_id = $2 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $1)";

pub(super) const DELETE_TOTP: &str = "DELETE FROM totp_secrets WHERE user_id = $1";

/// Sets the user's second-factor flag (`$1`); the row must change.
pub(super) const SET_MFA_ENABLED: &str =
    "UPDATE users SET mfa_enabled = $1, updated_at = $2 WHERE id = $3 AND mfa_enabled <> $1";

pub(super) const USER_MFA_ENABLED: &str = "SELECT mfa_enabled FROM users WHERE id = $1";

pub(super) const DELETE_RECOVERY_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = $1";

pub(super) const INSERT_RECOVERY_CODE: &str =
    "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)";

/// One conditional UPDATE: a recovery code is used once, even by concurrent requests.
pub(super) const USE_RECOVERY_CODE: &str = "UPDATE recovery_codes SET used_at = $1 \
     WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL";

pub(super) const COUNT_RECOVERY_CODES: &str =
    "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL";

pub(super) const DELETE_USER_CHALLENGES: &str = "DELETE FROM mfa_challenges WHERE user_id = $1";

pub(super) const INSERT_CHALLENGE: &str = "INSERT INTO mfa_challenges \
     (token_hash, purpose, user_id, payload, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";

pub(super) const FIND_CHALLENGE: &str = "SELECT user_id, payload FROM mfa_challenges \
     WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3";

/// One conditional UPDATE: a challenge is used once, even by concurrent requests.
pub(super) const USE_CHALLENGE: &str = "UPDATE mfa_challenges SET used_at = $1 \
     WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
     RETURNING user_id, payload";

pub(super) const TOTP_PAGE: &str = "SELECT user_id, secret_sealed, created_at, confirmed_at, \
     last_step FROM totp_secrets WHERE user_id > $1 ORDER BY user_id LIMIT $2";

pub(super) const RESEAL_TOTP: &str =
    "UPDATE totp_secrets SET secret_sealed = $1 WHERE user_id = $2 AND secret_sealed = $3";

pub(super) const PURGE_CHALLENGES: &str = "DELETE FROM mfa_challenges WHERE expires_at < $1";

/// How [`push_user_filter`] finds the emails that contain the needle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum EmailSearch {
    /// `email LIKE '%needle%'` alone. On PostgreSQL the trigram index
    /// `users_email_trgm_idx` serves it (needles of 3+ characters); on SQLite
    /// it reads every user.
    Like,
    /// SQLite only: the candidates the FTS5 trigram index `users_email_fts`
    /// finds for the needle (3+ characters), each confirmed by the same
    /// `LIKE`, so the matches are exactly those of [`EmailSearch::Like`].
    Trigram,
}

/// A statement assembled at run time (the listings' optional filters and
/// paging), its parameters numbered `$1, $2, ...` in order of appearance on
/// both backends, like the fixed statements. sqlx's `QueryBuilder` writes
/// SQLite's parameters as bare `?`, and cannot be executed from code generic
/// over the database (its arguments must outlive the borrow of the builder
/// that owns them); the text and the arguments of a [`Statement`] part
/// before execution ([`Statement::into_parts`]).
pub(super) struct Statement<'a, DB: sqlx::Database> {
    sql: String,
    arguments: DB::Arguments<'a>,
    /// The first value that could not be encoded, reported by `into_parts`.
    error: Option<sqlx::error::BoxDynError>,
}

impl<'a, DB: sqlx::Database> Statement<'a, DB> {
    /// A statement starting with `sql`, no parameters yet.
    pub(super) fn new(sql: &str) -> Self {
        Statement {
            sql: sql.to_owned(),
            arguments: Default::default(),
            error: None,
        }
    }

    /// Appends text.
    pub(super) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next numbered parameter, bound to `value`.
    pub(super) fn push_bind<T>(&mut self, value: T) -> &mut Self
    where
        T: 'a + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    {
        use sqlx::Arguments as _;
        if let Err(err) = self.arguments.add(value) {
            self.error.get_or_insert(err);
        }
        let number = self.arguments.len();
        self.sql.push_str(&format!("${number}"));
        self
    }

    /// The text and its arguments, or the first value that failed to encode.
    pub(super) fn into_parts(self) -> Result<(String, DB::Arguments<'a>), sqlx::Error> {
        match self.error {
            Some(err) => Err(sqlx::Error::Encode(err)),
            None => Ok((self.sql, self.arguments)),
        }
    }
}

/// Appends the `WHERE` clause of the user list to a statement.
pub(super) fn push_user_filter<'a, DB>(
    statement: &mut Statement<'a, DB>,
    filter: &super::UserFilter,
    search: EmailSearch,
) where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    statement.push(" WHERE TRUE");
    if let Some(needle) = &filter.email_contains {
        let needle = needle.to_lowercase();
        if search == EmailSearch::Trigram {
            statement
                .push(" AND id IN (SELECT rowid FROM users_email_fts WHERE users_email_fts MATCH ")
                .push_bind(super::fts_phrase(&needle))
                .push(")");
        }
        statement
            .push(" AND email LIKE ")
            .push_bind(super::like_contains(&needle))
            .push(" ESCAPE '\\'");
    }
    if let Some(role) = filter.role {
        statement.push(" AND role = ").push_bind(role.as_str());
    }
    if let Some(active) = filter.is_active {
        statement.push(" AND is_active = ").push_bind(active);
    }
}

/// Appends ordering and paging to the user list.
pub(super) fn push_user_page<'a, DB>(statement: &mut Statement<'a, DB>, offset: i64, limit: i64)
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    statement
        .push(" ORDER BY id LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
}

/// Appends the `WHERE` clause of the audit list; `T` is how the backend binds
/// a timestamp.
pub(super) fn push_audit_filter<'a, DB, T>(
    statement: &mut Statement<'a, DB>,
    filter: &super::AuditFilter,
    timestamp: impl Fn(chrono::DateTime<chrono::Utc>) -> T,
) where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    T: sqlx::Encode<'a, DB> + sqlx::Type<DB> + 'a,
{
    statement.push(" WHERE TRUE");
    if let Some(user_id) = filter.user_id {
        statement
            .push(" AND (subject_user_id = ")
            .push_bind(user_id)
            .push(" OR actor_user_id = ")
            .push_bind(user_id)
            .push(")");
    }
    if let Some(user_id) = filter.subject_user_id {
        statement.push(" AND subject_user_id = ").push_bind(user_id);
    }
    if let Some(kind) = filter.event_type {
        statement
            .push(" AND event_type = ")
            .push_bind(kind.as_str());
    }
    if let Some(since) = filter.since {
        statement.push(" AND at >= ").push_bind(timestamp(since));
    }
    if let Some(until) = filter.until {
        statement.push(" AND at <= ").push_bind(timestamp(until));
    }
}

/// Appends ordering (newest first) and paging to the audit list.
pub(super) fn push_audit_page<'a, DB>(statement: &mut Statement<'a, DB>, offset: i64, limit: i64)
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    statement
        .push(" ORDER BY at DESC, id DESC LIMIT ")
        .push_bind(limit)
        .push(" OFFSET ")
        .push_bind(offset);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameter numbers of a statement, in order of first appearance.
    fn first_appearances(statement: &str) -> Vec<u32> {
        let mut seen = Vec::new();
        for (at, _) in statement.match_indices('$') {
            let digits: String = statement[at + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(number) = digits.parse::<u32>() {
                if !seen.contains(&number) {
                    seen.push(number);
                }
            }
        }
        seen
    }

    #[test]
    fn parameters_are_numbered_in_order_of_first_appearance() {
        let audit_insert = insert_audit_events(3);
        let statements: &[&str] = &[
            INSERT_USER,
            USER_BY_ID,
            USER_BY_EMAIL,
            COUNT_USERS,
            SELECT_USERS,
            USER_EXISTS,
            UPDATE_USER,
            SET_PASSWORD_HASH,
            DELETE_USER,
            INSERT_SESSION,
            SESSION_AUTHENTICATED_AT,
            MARK_SESSION_AUTHENTICATED,
            ROTATE_SESSION,
            SESSION_IN_REUSE_GRACE,
            REVOKE_REUSED_SESSION,
            SESSION_WITH_USER,
            REVOKE_SESSION,
            REVOKE_USER_SESSION,
            LIVE_SESSIONS,
            REVOKE_USER_SESSIONS,
            PURGE_SESSIONS,
            INSERT_THROTTLE_EVENT,
            COUNT_THROTTLE_BY_ACCOUNT,
            COUNT_THROTTLE_BY_IP,
            CLEAR_THROTTLE_ACCOUNT,
            PURGE_THROTTLE,
            &audit_insert,
            COUNT_AUDIT,
            SELECT_AUDIT,
            PURGE_AUDIT,
            COUNT_LIVE_SESSIONS,
            PING,
            MARK_EMAIL_VERIFIED,
            REVOKE_EMAIL_TOKENS,
            INSERT_EMAIL_TOKEN,
            USE_EMAIL_TOKEN,
            FIND_EMAIL_TOKEN,
            PURGE_EMAIL_TOKENS,
            INSERT_OUTBOX,
            CLAIM_OUTBOX_SQLITE,
            CLAIM_OUTBOX_POSTGRES,
            SET_OUTBOX_PAYLOAD,
            DELETE_OUTBOX,
            RETRY_OUTBOX,
            COUNT_OUTBOX,
            TOTP_BY_USER,
            START_TOTP,
            CONFIRM_TOTP,
            USE_TOTP_STEP,
            DELETE_TOTP,
            SET_MFA_ENABLED,
            USER_MFA_ENABLED,
            DELETE_RECOVERY_CODES,
            INSERT_RECOVERY_CODE,
            USE_RECOVERY_CODE,
            COUNT_RECOVERY_CODES,
            DELETE_USER_CHALLENGES,
            INSERT_CHALLENGE,
            FIND_CHALLENGE,
            USE_CHALLENGE,
            PURGE_CHALLENGES,
            TOTP_PAGE,
            RESEAL_TOTP,
        ];
        for statement in statements {
            let numbers = first_appearances(statement);
            let expected: Vec<u32> = (1..).take(numbers.len()).collect();
            assert_eq!(numbers, expected, "{statement}");
        }
    }

    #[test]
    fn audit_inserts_number_each_row_after_the_last() {
        assert_eq!(
            insert_audit_events(2),
            "INSERT INTO audit_events (at, actor_user_id, subject_user_id, event_type, ip, \
             user_agent, details) VALUES ($1, $2, $3, $4, $5, $6, $7), \
             ($8, $9, $10, $11, $12, $13, $14)"
        );
    }

    #[test]
    fn built_statements_number_their_parameters_in_order_on_both_backends() {
        let filter = super::super::UserFilter {
            email_contains: Some("Ab_c".into()),
            role: Some(crate::domain::Role::Admin),
            is_active: Some(true),
        };
        let mut users = Statement::<sqlx::Sqlite>::new(SELECT_USERS);
        push_user_filter(&mut users, &filter, EmailSearch::Trigram);
        push_user_page(&mut users, 20, 10);
        let (text, _) = users.into_parts().expect("encoded");
        assert_eq!(first_appearances(&text), vec![1, 2, 3, 4, 5, 6]);
        assert!(text.ends_with(" ORDER BY id LIMIT $5 OFFSET $6"), "{text}");

        let filter = super::super::AuditFilter {
            user_id: Some(7),
            since: Some(chrono::Utc::now()),
            ..Default::default()
        };
        let mut audit = Statement::<sqlx::Postgres>::new(SELECT_AUDIT);
        push_audit_filter(&mut audit, &filter, |at| at);
        push_audit_page(&mut audit, 0, 50);
        let (text, _) = audit.into_parts().expect("encoded");
        assert!(
            text.ends_with(
                " WHERE TRUE AND (subject_user_id = $1 OR actor_user_id = $2) AND at >= $3 \
                 ORDER BY at DESC, id DESC LIMIT $4 OFFSET $5"
            ),
            "{text}"
        );
    }
}

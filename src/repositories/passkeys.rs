//! Passkeys (WebAuthn credentials), the WebAuthn user handles, and the
//! state of a WebAuthn ceremony between its two requests.
//!
//! The statements are the same on both backends and bound once here
//! ([`Queries`]); the backends only choose the connection that runs them.
//! Every "use once" is one statement: a ceremony's state is deleted as it
//! is taken, so of two requests finishing one ceremony exactly one gets it.

use super::{shared::Dialect, RepoError, RepoResult};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Encode, Executor, FromRow, IntoArguments, Type};

/// A registered passkey.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PasskeyRecord {
    pub id: i64,
    pub user_id: i64,
    /// The authenticator's credential id (unique across users).
    pub credential_id: Vec<u8>,
    /// The name its owner gave it.
    pub name: String,
    /// The verifier's record of the credential (webauthn-rs `Passkey` as
    /// JSON: public key, signature counter, backup flags).
    pub credential: String,
    /// Whether the credential may be synced between devices (a "synced
    /// passkey", e.g. in a password manager) rather than bound to one.
    pub backup_eligible: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for PasskeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyRecord")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("backup_eligible", &self.backup_eligible)
            .field("created_at", &self.created_at)
            .field("last_used_at", &self.last_used_at)
            .finish_non_exhaustive()
    }
}

/// A passkey to store.
#[derive(Debug, Clone, Copy)]
pub struct NewPasskey<'a> {
    pub user_id: i64,
    pub credential_id: &'a [u8],
    pub name: &'a str,
    pub credential: &'a str,
    pub backup_eligible: bool,
    pub now: DateTime<Utc>,
    /// The most passkeys a user may have: with this many, nothing is stored.
    pub max_per_user: i64,
}

/// What a WebAuthn ceremony in progress is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Adding a passkey (one pending per user).
    Register,
    /// Signing in with a passkey, no account named (discoverable credentials).
    SignIn,
    /// The second step of a password sign-in (keyed by its `mfa_token`).
    SecondFactor,
}

impl CeremonyPurpose {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyPurpose::Register => "register",
            CeremonyPurpose::SignIn => "sign_in",
            CeremonyPurpose::SecondFactor => "second_factor",
        }
    }
}

/// The state of a ceremony to store (a pending one with the same key is
/// replaced).
#[derive(Debug, Clone, Copy)]
pub struct NewCeremony<'a> {
    /// SHA-256 of the ceremony's key (hex).
    pub key_hash: &'a str,
    pub purpose: CeremonyPurpose,
    pub user_id: Option<i64>,
    /// The verifier's state (webauthn-rs, as JSON).
    pub state: &'a str,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A ceremony taken (and so used up).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CeremonyRecord {
    pub user_id: Option<i64>,
    pub state: String,
}

/// Passkeys and WebAuthn ceremonies.
#[async_trait]
pub trait PasskeyRepository: Send + Sync {
    /// The user's WebAuthn user handle, stored as `candidate` if they had
    /// none yet.
    async fn user_handle(&self, user_id: i64, candidate: &[u8]) -> RepoResult<Vec<u8>>;
    /// The user a WebAuthn user handle belongs to.
    async fn user_by_handle(&self, handle: &[u8]) -> RepoResult<Option<i64>>;
    /// The user's passkeys, oldest first.
    async fn list(&self, user_id: i64) -> RepoResult<Vec<PasskeyRecord>>;
    /// The passkey with this credential id, whoever owns it.
    async fn by_credential_id(&self, credential_id: &[u8]) -> RepoResult<Option<PasskeyRecord>>;
    /// Stores a passkey: `None` when the user has `max_per_user` already;
    /// [`RepoError::CredentialTaken`] when the credential id is registered.
    async fn add(&self, new: NewPasskey<'_>) -> RepoResult<Option<PasskeyRecord>>;
    /// Renames one of the user's passkeys; `None` when they have no such one.
    async fn rename(&self, user_id: i64, id: i64, name: &str) -> RepoResult<Option<PasskeyRecord>>;
    /// Removes one of the user's passkeys; the removed one, or `None`.
    async fn remove(&self, user_id: i64, id: i64) -> RepoResult<Option<PasskeyRecord>>;
    /// Records a use: the updated verifier record (counter, backup flags)
    /// and the time.
    async fn record_use(
        &self,
        id: i64,
        credential: &str,
        backup_eligible: bool,
        now: DateTime<Utc>,
    ) -> RepoResult<()>;
    /// Stores a ceremony, replacing a pending one with the same key.
    async fn start_ceremony(&self, new: NewCeremony<'_>) -> RepoResult<()>;
    /// Takes (deletes and returns) the live ceremony with this key and
    /// purpose: `None` when unknown, expired or taken already.
    async fn take_ceremony(
        &self,
        key_hash: &str,
        purpose: CeremonyPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<CeremonyRecord>>;
    /// Deletes ceremonies that expired before `before`; returns how many.
    async fn purge_ceremonies(&self, before: DateTime<Utc>) -> RepoResult<u64>;
}

const PASSKEY_COLUMNS: &str =
    "id, user_id, credential_id, name, credential, backup_eligible, created_at, last_used_at";

const INSERT_HANDLE: &str = "INSERT INTO webauthn_user_handles (user_id, handle) VALUES ($1, $2) \
     ON CONFLICT (user_id) DO NOTHING";
const HANDLE_OF_USER: &str = "SELECT handle FROM webauthn_user_handles WHERE user_id = $1";
const USER_OF_HANDLE: &str = "SELECT user_id FROM webauthn_user_handles WHERE handle = $1";

fn list_statement() -> String {
    format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id")
}

fn by_credential_statement() -> String {
    format!("SELECT {PASSKEY_COLUMNS} FROM passkeys WHERE credential_id = $1")
}

/// One statement: nothing is stored when the user has the most already.
fn insert_statement() -> String {
    format!(
        "INSERT INTO passkeys (user_id, credential_id, name, credential, backup_eligible, created_at) \
         SELECT $1, $2, $3, $4, $5, $6 \
         WHERE (SELECT count(*) FROM passkeys WHERE user_id = $1) < $7 \
         RETURNING {PASSKEY_COLUMNS}"
    )
}

fn rename_statement() -> String {
    format!(
        "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3 RETURNING {PASSKEY_COLUMNS}"
    )
}

fn remove_statement() -> String {
    format!("DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING {PASSKEY_COLUMNS}")
}

const RECORD_USE: &str = "UPDATE passkeys SET credential = $1, backup_eligible = $2, \
     last_used_at = $3 WHERE id = $4";

const START_CEREMONY: &str = "INSERT INTO webauthn_challenges \
     (key_hash, purpose, user_id, state, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
     ON CONFLICT (key_hash) DO UPDATE SET purpose = excluded.purpose, user_id = excluded.user_id, \
     state = excluded.state, created_at = excluded.created_at, expires_at = excluded.expires_at";

/// One statement: a ceremony is taken once, even by concurrent requests.
const TAKE_CEREMONY: &str = "DELETE FROM webauthn_challenges \
     WHERE key_hash = $1 AND purpose = $2 AND expires_at > $3 RETURNING user_id, state";

const PURGE_CEREMONIES: &str = "DELETE FROM webauthn_challenges WHERE expires_at < $1";

/// A unique violation on a passkey insert: the credential id is registered.
fn credential_taken(err: sqlx::Error) -> RepoError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => RepoError::CredentialTaken,
        _ => RepoError::Database(err),
    }
}

/// The passkey statements of database `DB`.
pub(super) struct Queries<DB>(std::marker::PhantomData<DB>);

impl<DB> Queries<DB>
where
    DB: Dialect,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'r> (i64,): FromRow<'r, DB::Row>,
    for<'r> (Vec<u8>,): FromRow<'r, DB::Row>,
    for<'r> PasskeyRecord: FromRow<'r, DB::Row>,
    for<'r> CeremonyRecord: FromRow<'r, DB::Row>,
{
    pub(super) async fn insert_handle<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        candidate: &[u8],
    ) -> RepoResult<()> {
        sqlx::query(INSERT_HANDLE)
            .bind(user_id)
            .bind(candidate)
            .execute(executor)
            .await?;
        Ok(())
    }

    pub(super) async fn handle_of_user<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
    ) -> RepoResult<Vec<u8>> {
        let (handle,) = sqlx::query_as::<DB, (Vec<u8>,)>(HANDLE_OF_USER)
            .bind(user_id)
            .fetch_optional(executor)
            .await?
            .ok_or(RepoError::NotFound)?;
        Ok(handle)
    }

    pub(super) async fn user_of_handle<'c>(
        executor: impl Executor<'c, Database = DB>,
        handle: &[u8],
    ) -> RepoResult<Option<i64>> {
        Ok(sqlx::query_as::<DB, (i64,)>(USER_OF_HANDLE)
            .bind(handle)
            .fetch_optional(executor)
            .await?
            .map(|(id,)| id))
    }

    pub(super) async fn list<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
    ) -> RepoResult<Vec<PasskeyRecord>> {
        let statement = list_statement();
        Ok(sqlx::query_as::<DB, PasskeyRecord>(&statement)
            .bind(user_id)
            .fetch_all(executor)
            .await?)
    }

    pub(super) async fn by_credential_id<'c>(
        executor: impl Executor<'c, Database = DB>,
        credential_id: &[u8],
    ) -> RepoResult<Option<PasskeyRecord>> {
        let statement = by_credential_statement();
        Ok(sqlx::query_as::<DB, PasskeyRecord>(&statement)
            .bind(credential_id)
            .fetch_optional(executor)
            .await?)
    }

    pub(super) async fn add<'c>(
        executor: impl Executor<'c, Database = DB>,
        new: NewPasskey<'_>,
    ) -> RepoResult<Option<PasskeyRecord>> {
        let statement = insert_statement();
        sqlx::query_as::<DB, PasskeyRecord>(&statement)
            .bind(new.user_id)
            .bind(new.credential_id)
            .bind(new.name)
            .bind(new.credential)
            .bind(new.backup_eligible)
            .bind(DB::timestamp(new.now))
            .bind(new.max_per_user)
            .fetch_optional(executor)
            .await
            .map_err(credential_taken)
    }

    pub(super) async fn rename<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        id: i64,
        name: &str,
    ) -> RepoResult<Option<PasskeyRecord>> {
        let statement = rename_statement();
        Ok(sqlx::query_as::<DB, PasskeyRecord>(&statement)
            .bind(name)
            .bind(id)
            .bind(user_id)
            .fetch_optional(executor)
            .await?)
    }

    pub(super) async fn remove<'c>(
        executor: impl Executor<'c, Database = DB>,
        user_id: i64,
        id: i64,
    ) -> RepoResult<Option<PasskeyRecord>> {
        let statement = remove_statement();
        Ok(sqlx::query_as::<DB, PasskeyRecord>(&statement)
            .bind(id)
            .bind(user_id)
            .fetch_optional(executor)
            .await?)
    }

    pub(super) async fn record_use<'c>(
        executor: impl Executor<'c, Database = DB>,
        id: i64,
        credential: &str,
        backup_eligible: bool,
        now: DateTime<Utc>,
    ) -> RepoResult<()> {
        sqlx::query(RECORD_USE)
            .bind(credential)
            .bind(backup_eligible)
            .bind(DB::timestamp(now))
            .bind(id)
            .execute(executor)
            .await?;
        Ok(())
    }

    pub(super) async fn start_ceremony<'c>(
        executor: impl Executor<'c, Database = DB>,
        new: NewCeremony<'_>,
    ) -> RepoResult<()> {
        sqlx::query(START_CEREMONY)
            .bind(new.key_hash)
            .bind(new.purpose.as_str())
            .bind(new.user_id)
            .bind(new.state)
            .bind(DB::timestamp(new.now))
            .bind(DB::timestamp(new.expires_at))
            .execute(executor)
            .await?;
        Ok(())
    }

    pub(super) async fn take_ceremony<'c>(
        executor: impl Executor<'c, Database = DB>,
        key_hash: &str,
        purpose: CeremonyPurpose,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<CeremonyRecord>> {
        Ok(sqlx::query_as::<DB, CeremonyRecord>(TAKE_CEREMONY)
            .bind(key_hash)
            .bind(purpose.as_str())
            .bind(DB::timestamp(now))
            .fetch_optional(executor)
            .await?)
    }

    pub(super) async fn purge_ceremonies<'c>(
        executor: impl Executor<'c, Database = DB>,
        before: DateTime<Utc>,
    ) -> RepoResult<u64> {
        let result = sqlx::query(PURGE_CEREMONIES)
            .bind(DB::timestamp(before))
            .execute(executor)
            .await?;
        Ok(DB::rows_affected(&result))
    }
}

/// The backends' implementations: each names the connection a statement
/// runs on (`$read` for reads, `$write` for writes).
macro_rules! impl_passkey_repository {
    ($store:ty, $db:ty, $read:ident, $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::repositories::PasskeyRepository for $store {
            async fn user_handle(
                &self,
                user_id: i64,
                candidate: &[u8],
            ) -> $crate::repositories::RepoResult<Vec<u8>> {
                type Q = $crate::repositories::passkeys::Queries<$db>;
                Q::insert_handle(&self.$write, user_id, candidate).await?;
                Q::handle_of_user(&self.$write, user_id).await
            }

            async fn user_by_handle(
                &self,
                handle: &[u8],
            ) -> $crate::repositories::RepoResult<Option<i64>> {
                $crate::repositories::passkeys::Queries::<$db>::user_of_handle(&self.$read, handle)
                    .await
            }

            async fn list(
                &self,
                user_id: i64,
            ) -> $crate::repositories::RepoResult<Vec<$crate::repositories::PasskeyRecord>> {
                $crate::repositories::passkeys::Queries::<$db>::list(&self.$read, user_id).await
            }

            async fn by_credential_id(
                &self,
                credential_id: &[u8],
            ) -> $crate::repositories::RepoResult<Option<$crate::repositories::PasskeyRecord>> {
                $crate::repositories::passkeys::Queries::<$db>::by_credential_id(
                    &self.$read,
                    credential_id,
                )
                .await
            }

            async fn add(
                &self,
                new: $crate::repositories::NewPasskey<'_>,
            ) -> $crate::repositories::RepoResult<Option<$crate::repositories::PasskeyRecord>> {
                $crate::repositories::passkeys::Queries::<$db>::add(&self.$write, new).await
            }

            async fn rename(
                &self,
                user_id: i64,
                id: i64,
                name: &str,
            ) -> $crate::repositories::RepoResult<Option<$crate::repositories::PasskeyRecord>> {
                $crate::repositories::passkeys::Queries::<$db>::rename(
                    &self.$write,
                    user_id,
                    id,
                    name,
                )
                .await
            }

            async fn remove(
                &self,
                user_id: i64,
                id: i64,
            ) -> $crate::repositories::RepoResult<Option<$crate::repositories::PasskeyRecord>> {
                $crate::repositories::passkeys::Queries::<$db>::remove(&self.$write, user_id, id)
                    .await
            }

            async fn record_use(
                &self,
                id: i64,
                credential: &str,
                backup_eligible: bool,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::repositories::RepoResult<()> {
                $crate::repositories::passkeys::Queries::<$db>::record_use(
                    &self.$write,
                    id,
                    credential,
                    backup_eligible,
                    now,
                )
                .await
            }

            async fn start_ceremony(
                &self,
                new: $crate::repositories::NewCeremony<'_>,
            ) -> $crate::repositories::RepoResult<()> {
                $crate::repositories::passkeys::Queries::<$db>::start_ceremony(&self.$write, new)
                    .await
            }

            async fn take_ceremony(
                &self,
                key_hash: &str,
                purpose: $crate::repositories::CeremonyPurpose,
                now: chrono::DateTime<chrono::Utc>,
            ) -> $crate::repositories::RepoResult<Option<$crate::repositories::CeremonyRecord>>
            {
                $crate::repositories::passkeys::Queries::<$db>::take_ceremony(
                    &self.$write,
                    key_hash,
                    purpose,
                    now,
                )
                .await
            }

            async fn purge_ceremonies(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> $crate::repositories::RepoResult<u64> {
                $crate::repositories::passkeys::Queries::<$db>::purge_ceremonies(
                    &self.$write,
                    before,
                )
                .await
            }
        }
    };
}
pub(super) use impl_passkey_repository;

//! Passkeys (WebAuthn, verified by the `webauthn-rs` crate): adding,
//! listing, renaming and removing them; signing in with one without typing
//! an email (discoverable credentials); and using one as the second step of
//! a password sign-in.
//!
//! Rules, each in one place here:
//! - The relying party is `PUBLIC_URL`: its host is the RP ID, its origin
//!   the only origin accepted. A host that is an IP address cannot be an RP
//!   ID (WebAuthn refuses it): passkeys are then unavailable, and say why.
//! - User verification is required (a PIN, a fingerprint): a passkey
//!   sign-in counts as two factors.
//! - A ceremony's state lives in the database (any instance finishes what
//!   another started), is used once (taken as it is read) and lives
//!   [`CEREMONY_MINUTES`]; a registration is bound to its user, a sign-in to
//!   its opaque challenge id, a second step to its `mfa_token`.
//! - Credential ids are unique across users; an assertion must come from a
//!   passkey of the user its handle names.
//! - Signature counters must go up where the authenticator keeps one: one
//!   that goes back (a cloned authenticator) is refused and audited.
//! - Failed assertions are throttled like passwords, per account and per
//!   address (the same counters), and audited as `passkey_failed`.
//! - Adding and removing a passkey need a recent authentication and are
//!   mailed to the user. Every account keeps its password, so removing the
//!   last passkey never removes the last way to sign in.

use super::{
    audit::{AuditEntry, AuditLog},
    mail_links::MailLinks,
    step_up::StepUp,
    throttle::{account_key, Throttle},
    Actor, ClientInfo, ServiceError, ServiceResult,
};
use crate::{
    crypto::tokens::{hash_opaque_token, new_opaque_token, plausible_refresh_token},
    domain::{parse_passkey_name, AuditEventType, PasskeyKind, PasskeyView},
    repositories::{CeremonyPurpose, NewCeremony, NewPasskey, PasskeyRecord, Repositories, User},
};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;
use std::sync::Arc;
use webauthn_rs::prelude::{
    Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid,
    Webauthn, WebauthnBuilder, WebauthnError,
};

/// How long a ceremony waits for the authenticator's answer.
pub const CEREMONY_MINUTES: i64 = 5;
/// The most passkeys one account may have.
pub const MAX_PASSKEYS: i64 = 20;

/// The relying party the passkeys of this site belong to.
#[derive(Clone)]
struct RelyingParty {
    webauthn: Arc<Webauthn>,
    origin: String,
}

/// Passkeys.
#[derive(Clone)]
pub struct PasskeyService {
    repos: Repositories,
    party: Result<RelyingParty, Arc<str>>,
    step_up: StepUp,
    throttle: Throttle,
    audit: AuditLog,
    links: MailLinks,
}

/// A passwordless sign-in waiting for the authenticator.
pub struct SignInCeremony {
    /// Opaque, single use; only its hash is stored.
    pub challenge_id: SecretString,
    /// The `navigator.credentials.get()` options (`{"publicKey": ...}`).
    pub options: Value,
}

/// The relying party of `public_url`, or why there can be none.
fn relying_party(public_url: &str, name: &str) -> Result<RelyingParty, String> {
    let url = Url::parse(public_url).map_err(|e| format!("PUBLIC_URL is not a URL ({e})"))?;
    let Some(host) = url.domain() else {
        return Err(format!(
            "passkeys need the site to be reached by a domain name, and PUBLIC_URL ({public_url}) \
             names an IP address; use e.g. http://localhost:{} in development",
            url.port_or_known_default().unwrap_or(3000)
        ));
    };
    let webauthn = WebauthnBuilder::new(host, &url)
        .and_then(|builder| builder.rp_name(name).build())
        .map_err(|e| format!("cannot set up passkeys for {public_url}: {e}"))?;
    Ok(RelyingParty {
        webauthn: Arc::new(webauthn),
        origin: url.origin().ascii_serialization(),
    })
}

/// The key of a user's pending registration (one per user).
fn registration_key(user_id: i64) -> String {
    hash_opaque_token(&format!("passkey registration of user {user_id}"))
}

/// Why a verification failed, as the audit log records it.
fn failure_reason(err: &WebauthnError) -> &'static str {
    match err {
        WebauthnError::InvalidRPOrigin => "wrong_origin",
        WebauthnError::InvalidRPIDHash => "wrong_rp_id",
        WebauthnError::MismatchedChallenge => "wrong_challenge",
        WebauthnError::CredentialPossibleCompromise => "counter_regression",
        WebauthnError::UserNotVerified => "user_not_verified",
        WebauthnError::UserNotPresent => "user_not_present",
        WebauthnError::CredentialExcludedFromRequest | WebauthnError::CredentialNotFound => {
            "unknown_credential"
        }
        _ => "invalid_response",
    }
}

fn internal(err: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(err.into())
}

fn view(record: &PasskeyRecord) -> PasskeyView {
    PasskeyView {
        id: record.id,
        name: record.name.clone(),
        kind: if record.backup_eligible {
            PasskeyKind::Synced
        } else {
            PasskeyKind::DeviceBound
        },
        created_at: record.created_at,
        last_used_at: record.last_used_at,
    }
}

/// The stored form of a verifier record, and whether it may be synced.
fn stored(passkey: &Passkey) -> ServiceResult<(String, bool)> {
    let value = serde_json::to_value(passkey).map_err(internal)?;
    let backup_eligible = value
        .pointer("/cred/backup_eligible")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((value.to_string(), backup_eligible))
}

fn parse_state<T: serde::de::DeserializeOwned>(state: &str) -> ServiceResult<T> {
    serde_json::from_str(state).map_err(internal)
}

/// The authenticator's answer, or a clear 422 naming the field.
fn parse_response<T: serde::de::DeserializeOwned>(credential: Value) -> ServiceResult<T> {
    serde_json::from_value(credential).map_err(|_| {
        ServiceError::invalid(
            "credential",
            "Not a WebAuthn response: send the PublicKeyCredential as JSON \
             (credential.toJSON() in a browser)",
        )
    })
}

impl PasskeyService {
    /// Builds the service for the site at `public_url`, named `rp_name` in
    /// the authenticators' prompts.
    pub fn new(
        common: super::Common,
        public_url: &str,
        rp_name: &str,
        step_up: StepUp,
        links: MailLinks,
    ) -> Self {
        let party = relying_party(public_url, rp_name).map_err(|why| {
            tracing::warn!("passkeys are unavailable: {why}");
            Arc::from(why)
        });
        PasskeyService {
            repos: common.repos,
            party,
            step_up,
            throttle: common.throttle,
            audit: common.audit,
            links,
        }
    }

    /// Whether passkeys work on this server (and if not, why).
    pub fn availability(&self) -> Result<(), &str> {
        self.party.as_ref().map(|_| ()).map_err(|why| &**why)
    }

    fn party(&self) -> ServiceResult<&RelyingParty> {
        self.party
            .as_ref()
            .map_err(|_| ServiceError::PasskeysUnavailable)
    }

    /// A verification failure as the caller sees it.
    fn refusal(&self, err: &WebauthnError) -> ServiceError {
        match (err, self.party.as_ref()) {
            (WebauthnError::InvalidRPOrigin | WebauthnError::InvalidRPIDHash, Ok(party)) => {
                ServiceError::PasskeyWrongSite {
                    origin: party.origin.clone(),
                }
            }
            _ => ServiceError::PasskeyNotAccepted,
        }
    }

    /// Keeps a ceremony's state for [`CEREMONY_MINUTES`] under `key_hash`
    /// (a pending one with the same key is replaced).
    async fn keep<T: serde::Serialize>(
        &self,
        key_hash: &str,
        purpose: CeremonyPurpose,
        user_id: Option<i64>,
        state: &T,
    ) -> ServiceResult<()> {
        let now = Utc::now();
        let state = serde_json::to_string(state).map_err(internal)?;
        self.repos
            .passkeys
            .start_ceremony(NewCeremony {
                key_hash,
                purpose,
                user_id,
                state: &state,
                now,
                expires_at: now + chrono::Duration::minutes(CEREMONY_MINUTES),
            })
            .await?;
        Ok(())
    }

    /// A discoverable request (no credential named) and its state. The
    /// page chooses how to ask (a button at once, the email field's autofill
    /// conditionally), so the options carry no `mediation`.
    fn discoverable_request(
        party: &RelyingParty,
    ) -> ServiceResult<(Value, webauthn_rs::prelude::DiscoverableAuthentication)> {
        let (options, state) = party
            .webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let mut options = serde_json::to_value(&options).map_err(internal)?;
        if let Some(map) = options.as_object_mut() {
            map.remove("mediation");
        }
        Ok((options, state))
    }

    /// The caller's passkeys, oldest first.
    pub async fn list(&self, actor: &Actor) -> ServiceResult<Vec<PasskeyView>> {
        Ok(self
            .repos
            .passkeys
            .list(actor.user.id)
            .await?
            .iter()
            .map(view)
            .collect())
    }

    /// Whether the user has a passkey.
    pub async fn has_passkeys(&self, user_id: i64) -> ServiceResult<bool> {
        Ok(self.party.is_ok() && !self.repos.passkeys.list(user_id).await?.is_empty())
    }

    /// Starts adding a passkey: the `navigator.credentials.create()`
    /// options (`{"publicKey": ...}`), asking for a discoverable credential
    /// with user verification. Needs a recent authentication.
    pub async fn start_registration(&self, actor: &Actor) -> ServiceResult<Value> {
        let party = self.party()?;
        self.step_up.require(actor).await?;
        let user = &actor.user;
        let existing = self.repos.passkeys.list(user.id).await?;
        if existing.len() as i64 >= MAX_PASSKEYS {
            return Err(ServiceError::PasskeyLimit);
        }
        let handle = self
            .repos
            .passkeys
            .user_handle(user.id, Uuid::new_v4().as_bytes())
            .await?;
        let handle = Uuid::from_slice(&handle).map_err(internal)?;
        let exclude = existing
            .iter()
            .map(|record| record.credential_id.clone())
            .collect();
        let (options, state) = party
            .webauthn
            .start_passkey_registration(handle, &user.email, &user.email, Some(exclude))
            .map_err(internal)?;
        self.keep(
            &registration_key(user.id),
            CeremonyPurpose::Register,
            Some(user.id),
            &state,
        )
        .await?;
        let mut options = serde_json::to_value(&options).map_err(internal)?;
        // A discoverable credential, so that signing in needs no email.
        if let Some(selection) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            selection.insert("residentKey".to_owned(), Value::from("required"));
            selection.insert("requireResidentKey".to_owned(), Value::from(true));
        }
        Ok(options)
    }

    /// Finishes adding a passkey with the authenticator's answer
    /// (`credential`, the `PublicKeyCredential` as JSON) under `name`.
    pub async fn finish_registration(
        &self,
        actor: &Actor,
        name: &str,
        credential: Value,
    ) -> ServiceResult<PasskeyView> {
        let party = self.party()?;
        let name = parse_passkey_name(name).map_err(|msg| ServiceError::invalid("name", msg))?;
        let response: RegisterPublicKeyCredential = parse_response(credential)?;
        let user = &actor.user;
        let now = Utc::now();
        let ceremony = self
            .repos
            .passkeys
            .take_ceremony(&registration_key(user.id), CeremonyPurpose::Register, now)
            .await?
            .filter(|ceremony| ceremony.user_id == Some(user.id))
            .ok_or(ServiceError::PasskeyCeremonyExpired)?;
        let state: PasskeyRegistration = parse_state(&ceremony.state)?;
        let passkey = match party
            .webauthn
            .finish_passkey_registration(&response, &state)
        {
            Ok(passkey) => passkey,
            Err(err) => {
                self.audit.record(
                    AuditEntry::by(actor, AuditEventType::PasskeyFailed, user.id)
                        .detail("during", "registration")
                        .detail("reason", failure_reason(&err)),
                );
                return Err(match self.refusal(&err) {
                    ServiceError::PasskeyNotAccepted => ServiceError::PasskeyRegistrationFailed,
                    other => other,
                });
            }
        };
        let (record, backup_eligible) = stored(&passkey)?;
        let added = self
            .repos
            .passkeys
            .add(NewPasskey {
                user_id: user.id,
                credential_id: passkey.cred_id().as_slice(),
                name: &name,
                credential: &record,
                backup_eligible,
                now,
                max_per_user: MAX_PASSKEYS,
            })
            .await?
            .ok_or(ServiceError::PasskeyLimit)?;
        self.audit.record(
            AuditEntry::by(actor, AuditEventType::PasskeyAdded, user.id)
                .detail("passkey_id", added.id)
                .detail("name", added.name.as_str()),
        );
        self.links
            .notify_passkey(user, &added.name, true, now)
            .await;
        Ok(view(&added))
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename(&self, actor: &Actor, id: i64, name: &str) -> ServiceResult<PasskeyView> {
        let name = parse_passkey_name(name).map_err(|msg| ServiceError::invalid("name", msg))?;
        self.repos
            .passkeys
            .rename(actor.user.id, id, &name)
            .await?
            .map(|record| view(&record))
            .ok_or(ServiceError::PasskeyNotFound)
    }

    /// Removes one of the caller's passkeys. Needs a recent authentication.
    pub async fn remove(&self, actor: &Actor, id: i64) -> ServiceResult<()> {
        self.step_up.require(actor).await?;
        let removed = self
            .repos
            .passkeys
            .remove(actor.user.id, id)
            .await?
            .ok_or(ServiceError::PasskeyNotFound)?;
        self.audit.record(
            AuditEntry::by(actor, AuditEventType::PasskeyRemoved, actor.user.id)
                .detail("passkey_id", removed.id)
                .detail("name", removed.name.as_str()),
        );
        self.links
            .notify_passkey(&actor.user, &removed.name, false, Utc::now())
            .await;
        Ok(())
    }

    /// Starts a passwordless sign-in: options for any passkey of this site
    /// (the authenticator offers the accounts it holds), and the challenge
    /// id that finishes it.
    pub async fn start_sign_in(&self) -> ServiceResult<SignInCeremony> {
        let (options, state) = Self::discoverable_request(self.party()?)?;
        let token = new_opaque_token();
        self.keep(&token.hash, CeremonyPurpose::SignIn, None, &state)
            .await?;
        Ok(SignInCeremony {
            challenge_id: token.token,
            options,
        })
    }

    /// Records a refused assertion: throttling counts it against the
    /// address (and the account, when known), the audit log says why.
    async fn assertion_failed(
        &self,
        user: Option<&User>,
        client: &ClientInfo,
        during: &'static str,
        reason: &'static str,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        let ip = client.ip.as_deref();
        match (user, during) {
            (Some(user), "second_factor") => {
                self.throttle.second_factor_failed(user.id, ip, now).await?
            }
            (Some(user), _) => {
                self.throttle
                    .login_failed(&account_key(&user.email), ip, now)
                    .await?
            }
            (None, _) => self.throttle.address_failed(ip, now).await?,
        }
        self.audit.record(
            AuditEntry::new(AuditEventType::PasskeyFailed)
                .maybe_subject(user.map(|u| u.id))
                .client(client)
                .detail("during", during)
                .detail("reason", reason),
        );
        Ok(())
    }

    /// Stores what a verified assertion changed (counter, backup state).
    async fn record_use(
        &self,
        record: &PasskeyRecord,
        mut passkey: Passkey,
        result: &webauthn_rs::prelude::AuthenticationResult,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        passkey.update_credential(result);
        let (stored, backup_eligible) = stored(&passkey)?;
        self.repos
            .passkeys
            .record_use(record.id, &stored, backup_eligible, now)
            .await?;
        Ok(())
    }

    /// Verifies an assertion of `record` (a passkey of `user`) against a
    /// ceremony's state, stores what it changed (counter, backup state) and
    /// records the use; a refusal is counted and audited (`during` says
    /// which flow).
    async fn check_assertion(
        &self,
        response: &PublicKeyCredential,
        state: &str,
        record: &PasskeyRecord,
        user: &User,
        client: &ClientInfo,
        during: &'static str,
    ) -> ServiceResult<()> {
        let party = self.party()?;
        let now = Utc::now();
        let passkey: Passkey = parse_state(&record.credential)?;
        let result = match party.webauthn.finish_discoverable_authentication_v2(
            response,
            parse_state(state)?,
            &passkey,
        ) {
            Ok(result) => result,
            Err(err) => {
                self.assertion_failed(Some(user), client, during, failure_reason(&err), now)
                    .await?;
                return Err(self.refusal(&err));
            }
        };
        self.record_use(record, passkey, &result, now).await?;
        self.audit.record(
            AuditEntry::new(AuditEventType::PasskeyUsed)
                .actor(user.id)
                .subject(user.id)
                .client(client)
                .detail("during", during)
                .detail("passkey_id", record.id)
                .detail("name", record.name.as_str()),
        );
        Ok(())
    }

    /// Checks a passwordless sign-in: the challenge id of
    /// [`PasskeyService::start_sign_in`] and the authenticator's assertion.
    /// The user it proves (active or not: the caller decides), or why not.
    pub async fn verify_sign_in(
        &self,
        challenge_id: &str,
        credential: Value,
        client: &ClientInfo,
    ) -> ServiceResult<User> {
        let party = self.party()?;
        let response: PublicKeyCredential = parse_response(credential)?;
        let now = Utc::now();
        let ip = client.ip.as_deref();
        if let Err(throttled) = self.throttle.check_address(ip, now).await? {
            return Err(throttled.into());
        }
        if !plausible_refresh_token(challenge_id) {
            return Err(ServiceError::PasskeyCeremonyExpired);
        }
        let ceremony = self
            .repos
            .passkeys
            .take_ceremony(
                &hash_opaque_token(challenge_id),
                CeremonyPurpose::SignIn,
                now,
            )
            .await?
            .ok_or(ServiceError::PasskeyCeremonyExpired)?;
        let (handle, credential_id) = match party
            .webauthn
            .identify_discoverable_authentication(&response)
        {
            Ok(found) => found,
            Err(_) => {
                self.assertion_failed(None, client, "sign_in", "no_user_handle", now)
                    .await?;
                return Err(ServiceError::PasskeyNotAccepted);
            }
        };
        let owner = self
            .repos
            .passkeys
            .user_by_handle(handle.as_bytes())
            .await?;
        let record = self.repos.passkeys.by_credential_id(credential_id).await?;
        let user = match owner {
            Some(id) => self.repos.users.find_by_id(id).await?,
            None => None,
        };
        let (user, record) = match (user, record) {
            (Some(user), Some(record)) if record.user_id == user.id => (user, record),
            (user, record) => {
                let reason = if record.is_some() {
                    "credential_of_another_user"
                } else {
                    "unknown_credential"
                };
                self.assertion_failed(user.as_ref(), client, "sign_in", reason, now)
                    .await?;
                return Err(ServiceError::PasskeyNotAccepted);
            }
        };
        if let Err(throttled) = self
            .throttle
            .check_login(&account_key(&user.email), ip, now)
            .await?
        {
            return Err(throttled.into());
        }
        self.check_assertion(
            &response,
            &ceremony.state,
            &record,
            &user,
            client,
            "sign_in",
        )
        .await?;
        self.throttle
            .login_succeeded(&account_key(&user.email))
            .await?;
        Ok(user)
    }

    /// Options for the second step of a password sign-in of `user` with
    /// one of their passkeys (`None` when they have none), kept under the
    /// sign-in's `mfa_token` (its hash): a new call replaces the last.
    pub async fn start_second_factor(
        &self,
        user: &User,
        mfa_token_hash: &str,
    ) -> ServiceResult<Option<Value>> {
        let Ok(party) = self.party.as_ref() else {
            return Ok(None);
        };
        let records = self.repos.passkeys.list(user.id).await?;
        if records.is_empty() {
            return Ok(None);
        }
        // The assertion is checked against the passkey as stored when it
        // arrives (its latest counter), so the state names no credential;
        // the options list the user's, for the browser to offer only those.
        let (mut options, state) = Self::discoverable_request(party)?;
        if let Some(public_key) = options.get_mut("publicKey").and_then(Value::as_object_mut) {
            use base64::Engine;
            let allowed: Vec<Value> = records
                .iter()
                .map(|record| {
                    serde_json::json!({
                        "type": "public-key",
                        "id": base64::engine::general_purpose::URL_SAFE_NO_PAD
                            .encode(&record.credential_id),
                    })
                })
                .collect();
            public_key.insert("allowCredentials".to_owned(), Value::Array(allowed));
        }
        self.keep(
            mfa_token_hash,
            CeremonyPurpose::SecondFactor,
            Some(user.id),
            &state,
        )
        .await?;
        Ok(Some(options))
    }

    /// Checks a passkey assertion as the second step of a sign-in of
    /// `user` (the ceremony kept under the `mfa_token`'s hash, used up).
    pub async fn verify_second_factor(
        &self,
        user: &User,
        mfa_token_hash: &str,
        credential: Value,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        self.party()?;
        let response: PublicKeyCredential = parse_response(credential)?;
        let now = Utc::now();
        if let Err(throttled) = self
            .throttle
            .check_second_factor(user.id, client.ip.as_deref(), now)
            .await?
        {
            return Err(throttled.into());
        }
        let ceremony = self
            .repos
            .passkeys
            .take_ceremony(mfa_token_hash, CeremonyPurpose::SecondFactor, now)
            .await?
            .filter(|ceremony| ceremony.user_id == Some(user.id))
            .ok_or(ServiceError::PasskeyCeremonyExpired)?;
        let record = match self
            .repos
            .passkeys
            .by_credential_id(response.raw_id.as_slice())
            .await?
        {
            Some(record) if record.user_id == user.id => record,
            other => {
                let reason = if other.is_some() {
                    "credential_of_another_user"
                } else {
                    "unknown_credential"
                };
                self.assertion_failed(Some(user), client, "second_factor", reason, now)
                    .await?;
                return Err(ServiceError::PasskeyNotAccepted);
            }
        };
        self.check_assertion(
            &response,
            &ceremony.state,
            &record,
            user,
            client,
            "second_factor",
        )
        .await?;
        self.throttle.second_factor_succeeded(user.id).await?;
        Ok(())
    }
}

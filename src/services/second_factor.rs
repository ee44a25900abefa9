//! Two-factor authentication: enrolment of an authenticator app (TOTP),
//! recovery codes, checking a code at sign-in or for a confirmation, and an
//! admin's reset.
//!
//! Rules, each in one place here:
//! - A TOTP secret is 160 random bits, sealed at rest with
//!   `DATA_ENCRYPTION_KEY` and bound to its user ([`SECRET_PURPOSE`]); it
//!   counts only once confirmed with a first code.
//! - A TOTP code is accepted for its step and one either side, and a step
//!   only once and only after the last accepted one (one conditional
//!   update: of two requests with the same code exactly one passes).
//! - Recovery codes: 10 of 80 bits, SHA-256 stored, each usable once; new
//!   ones replace all old ones.
//! - Wrong codes back off per user and per address like wrong passwords
//!   (counted in the database, so across instances) and are audited.
//! - Turning the second factor on or off and new recovery codes need a
//!   recent authentication ([`StepUp`]); the user is told by email about
//!   every change and every recovery code used.

use super::{
    audit::{AuditEntry, AuditLog},
    mail_links::{MailLinks, SecondFactorChange},
    passkeys::PasskeyService,
    step_up::StepUp,
    throttle::Throttle,
    Actor, ClientInfo, ServiceError, ServiceResult,
};
use crate::{
    crypto::{
        factors::{self, TotpKey},
        tokens::{hash_opaque_token, new_opaque_token},
        DataSealer,
    },
    domain::AuditEventType,
    repositories::{ChallengePurpose, NewChallenge, Repositories, User},
};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

/// The purpose the TOTP secrets' sealing key is derived for.
pub const SECRET_PURPOSE: &str = "leptos-auth totp secret v1";
/// How long recovery codes waiting to be shown by a page stay readable.
const REVEAL_MINUTES: i64 = 10;

/// A way to pass the second step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// A code from an authenticator app.
    Totp,
    /// One of the recovery codes.
    RecoveryCode,
    /// One of the user's passkeys.
    Webauthn,
}

impl Method {
    /// The wire form (`methods` in the API).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::RecoveryCode => "recovery_code",
            Method::Webauthn => "webauthn",
        }
    }
}

/// A user's second factor as their profile shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Sign-in asks for a second factor.
    pub enabled: bool,
    /// An enrolment waits for its first code.
    pub pending: bool,
    /// What the second step accepts.
    pub methods: Vec<Method>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

/// What an authenticator app needs to enrol: the secret (for typing) and
/// the `otpauth://` URI (and its QR code).
pub struct Enrolment {
    pub secret: SecretString,
    pub uri: SecretString,
    /// The URI as an inline SVG QR code.
    pub qr_svg: String,
}

/// Recovery codes, shown once.
pub struct RecoveryCodes(pub Vec<SecretString>);

impl RecoveryCodes {
    /// The codes as text, for the one answer that shows them.
    pub fn reveal(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|code| code.expose_secret().to_owned())
            .collect()
    }
}

/// Two-factor authentication.
#[derive(Clone)]
pub struct SecondFactorService {
    repos: Repositories,
    sealer: DataSealer,
    issuer: String,
    step_up: StepUp,
    throttle: Throttle,
    audit: AuditLog,
    links: MailLinks,
    passkeys: PasskeyService,
}

/// What a sealed secret is bound to: its user.
fn secret_context(user_id: i64) -> Vec<u8> {
    format!("totp:{user_id}").into_bytes()
}

/// What sealed recovery codes waiting for a page are bound to.
fn reveal_context(user_id: i64) -> Vec<u8> {
    format!("recovery-codes:{user_id}").into_bytes()
}

fn unix_seconds(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

impl SecondFactorService {
    /// Builds the service.
    pub fn new(
        common: super::Common,
        sealer: DataSealer,
        issuer: &str,
        step_up: StepUp,
        links: MailLinks,
        passkeys: PasskeyService,
    ) -> Self {
        let super::Common {
            repos,
            throttle,
            audit,
        } = common;
        SecondFactorService {
            repos,
            sealer,
            issuer: issuer.to_owned(),
            step_up,
            throttle,
            audit,
            links,
            passkeys,
        }
    }

    /// The caller's second factor.
    pub async fn status(&self, actor: &Actor) -> ServiceResult<Status> {
        self.status_of(actor.user.id).await
    }

    async fn status_of(&self, user_id: i64) -> ServiceResult<Status> {
        let totp = self.repos.second_factors.totp(user_id).await?;
        let enabled = totp.as_ref().is_some_and(|t| t.confirmed_at.is_some());
        let pending = totp.as_ref().is_some_and(|t| t.confirmed_at.is_none());
        let recovery_codes_left = if enabled {
            self.repos
                .second_factors
                .recovery_codes_left(user_id)
                .await?
        } else {
            0
        };
        let mut methods = Vec::new();
        if enabled {
            methods.push(Method::Totp);
            if recovery_codes_left > 0 {
                methods.push(Method::RecoveryCode);
            }
            if self.passkeys.has_passkeys(user_id).await? {
                methods.push(Method::Webauthn);
            }
        }
        Ok(Status {
            enabled,
            pending,
            methods,
            recovery_codes_left,
        })
    }

    /// What the second step of a sign-in of `user` accepts.
    pub async fn methods(&self, user: &User) -> ServiceResult<Vec<Method>> {
        Ok(self.status_of(user.id).await?.methods)
    }

    fn enrolment(&self, user: &User, secret: &[u8]) -> ServiceResult<Enrolment> {
        let key = TotpKey::new(secret, &self.issuer, &user.email)
            .map_err(|e| ServiceError::Internal(e.into()))?;
        let uri = key.uri().map_err(|e| ServiceError::Internal(e.into()))?;
        let qr_svg = factors::qr_svg(&uri, "QR code to scan with an authenticator app")
            .map_err(|e| ServiceError::Internal(e.into()))?;
        Ok(Enrolment {
            secret: SecretString::from(factors::secret_text(secret)),
            uri: SecretString::from(uri),
            qr_svg,
        })
    }

    fn open_secret(&self, user_id: i64, sealed: &[u8]) -> ServiceResult<Vec<u8>> {
        self.sealer
            .open(sealed, &secret_context(user_id))
            .map(|opened| opened.plain)
            .map_err(|_| {
                ServiceError::Internal(anyhow::anyhow!(
                    "the TOTP secret of user {user_id} does not open with DATA_ENCRYPTION_KEY or DATA_ENCRYPTION_OLD_KEYS"
                ))
            })
    }

    /// Starts (or restarts) an enrolment: a new secret, pending until a
    /// first code confirms it. Needs a recent authentication.
    pub async fn start_totp(&self, actor: &Actor) -> ServiceResult<Enrolment> {
        self.step_up.require(actor).await?;
        if actor.user.mfa_enabled {
            return Err(ServiceError::MfaAlreadyEnabled);
        }
        let secret = factors::new_secret();
        let sealed = self.sealer.seal(&secret, &secret_context(actor.user.id));
        let started = self
            .repos
            .second_factors
            .start_totp(actor.user.id, &sealed, Utc::now())
            .await?;
        if !started {
            return Err(ServiceError::MfaAlreadyEnabled);
        }
        self.enrolment(&actor.user, &secret)
    }

    /// The enrolment waiting for its first code, if any (the page shows it
    /// again after a wrong code).
    pub async fn pending_enrolment(&self, actor: &Actor) -> ServiceResult<Option<Enrolment>> {
        let Some(totp) = self.repos.second_factors.totp(actor.user.id).await? else {
            return Ok(None);
        };
        if totp.confirmed_at.is_some() {
            return Ok(None);
        }
        let secret = self.open_secret(actor.user.id, &totp.secret_sealed)?;
        self.enrolment(&actor.user, &secret).map(Some)
    }

    /// Confirms the pending enrolment with a current code: the second factor
    /// is on, and the first recovery codes are returned (shown once). Needs
    /// a recent authentication; wrong codes are throttled.
    pub async fn confirm_totp(&self, actor: &Actor, code: &str) -> ServiceResult<RecoveryCodes> {
        self.step_up.require(actor).await?;
        let user = &actor.user;
        let now = Utc::now();
        let ip = actor.client.ip.as_deref();
        self.check_throttle(user.id, &actor.client, now).await?;
        let totp = self
            .repos
            .second_factors
            .totp(user.id)
            .await?
            .filter(|t| t.confirmed_at.is_none())
            .ok_or(ServiceError::NoPendingEnrolment)?;
        let secret = self.open_secret(user.id, &totp.secret_sealed)?;
        let key = TotpKey::new(&secret, &self.issuer, &user.email)
            .map_err(|e| ServiceError::Internal(e.into()))?;
        let Some(step) = key.matching_step(code, unix_seconds(now)) else {
            self.throttle.second_factor_failed(user.id, ip, now).await?;
            self.audit.record(
                AuditEntry::by(actor, AuditEventType::MfaFailed, user.id)
                    .detail("reason", "wrong_code")
                    .detail("during", "enrolment"),
            );
            return Err(ServiceError::invalid(
                "code",
                "That code is not right: enter the 6 digits your authenticator app shows now",
            ));
        };
        let (codes, hashes) = new_recovery_codes();
        let confirmed = self
            .repos
            .second_factors
            .confirm_totp(user.id, step as i64, &hashes, now)
            .await?;
        if !confirmed {
            return Err(ServiceError::NoPendingEnrolment);
        }
        self.throttle.second_factor_succeeded(user.id).await?;
        self.audit.record(
            AuditEntry::by(actor, AuditEventType::MfaEnabled, user.id).detail("method", "totp"),
        );
        self.links
            .notify_second_factor(user, SecondFactorChange::Enabled, now)
            .await;
        Ok(codes)
    }

    /// Turns the caller's second factor off. Needs a recent authentication.
    pub async fn disable(&self, actor: &Actor) -> ServiceResult<()> {
        self.step_up.require(actor).await?;
        let now = Utc::now();
        if !self
            .repos
            .second_factors
            .disable(actor.user.id, now)
            .await?
        {
            return Err(ServiceError::MfaNotEnabled);
        }
        self.audit.record(AuditEntry::by(
            actor,
            AuditEventType::MfaDisabled,
            actor.user.id,
        ));
        self.links
            .notify_second_factor(&actor.user, SecondFactorChange::Disabled, now)
            .await;
        Ok(())
    }

    /// Replaces the caller's recovery codes. Needs a recent authentication.
    pub async fn regenerate_recovery_codes(&self, actor: &Actor) -> ServiceResult<RecoveryCodes> {
        self.step_up.require(actor).await?;
        let (codes, hashes) = new_recovery_codes();
        let replaced = self
            .repos
            .second_factors
            .replace_recovery_codes(actor.user.id, &hashes, Utc::now())
            .await?;
        if !replaced {
            return Err(ServiceError::MfaNotEnabled);
        }
        self.audit.record(AuditEntry::by(
            actor,
            AuditEventType::RecoveryCodesRegenerated,
            actor.user.id,
        ));
        Ok(codes)
    }

    /// Admin: turns a user's second factor off (they lost their device).
    /// Needs a recent authentication of the admin; the user is told.
    pub async fn admin_reset(&self, actor: &Actor, user_id: i64) -> ServiceResult<()> {
        actor.require_admin()?;
        self.step_up.require(actor).await?;
        let user = self
            .repos
            .users
            .find_by_id(user_id)
            .await?
            .ok_or(ServiceError::UserNotFound)?;
        let now = Utc::now();
        if !self.repos.second_factors.disable(user_id, now).await? {
            return Err(ServiceError::MfaNotEnabled);
        }
        self.audit.record(AuditEntry::by(
            actor,
            AuditEventType::MfaResetByAdmin,
            user_id,
        ));
        self.links
            .notify_second_factor(&user, SecondFactorChange::ResetByAdmin, now)
            .await;
        Ok(())
    }

    /// Throttled: refused before any code is looked at (and audited).
    async fn check_throttle(
        &self,
        user_id: i64,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        if let Err(throttled) = self
            .throttle
            .check_second_factor(user_id, client.ip.as_deref(), now)
            .await?
        {
            self.audit.record(
                AuditEntry::new(AuditEventType::MfaFailed)
                    .subject(user_id)
                    .client(client)
                    .detail("reason", "throttled")
                    .detail("retry_after", throttled.retry_after),
            );
            return Err(throttled.into());
        }
        Ok(())
    }

    /// Checks a second-factor code of `user` (a TOTP code, or a recovery
    /// code, which is used up) from `client`: which kind passed, or
    /// [`ServiceError::IncorrectCode`] (counted for throttling, audited).
    /// A TOTP code of a step already accepted is refused.
    pub async fn verify(
        &self,
        user: &User,
        code: &str,
        client: &ClientInfo,
    ) -> ServiceResult<Method> {
        let now = Utc::now();
        self.check_throttle(user.id, client, now).await?;
        let outcome = self.try_code(user, code, now).await?;
        match outcome {
            Ok(method) => {
                self.throttle.second_factor_succeeded(user.id).await?;
                if method == Method::RecoveryCode {
                    let left = self
                        .repos
                        .second_factors
                        .recovery_codes_left(user.id)
                        .await?;
                    self.audit.record(
                        AuditEntry::new(AuditEventType::RecoveryCodeUsed)
                            .actor(user.id)
                            .subject(user.id)
                            .client(client)
                            .detail("left", left),
                    );
                    self.links
                        .notify_second_factor(
                            user,
                            SecondFactorChange::RecoveryCodeUsed { left },
                            now,
                        )
                        .await;
                }
                Ok(method)
            }
            Err(reason) => {
                self.throttle
                    .second_factor_failed(user.id, client.ip.as_deref(), now)
                    .await?;
                self.audit.record(
                    AuditEntry::new(AuditEventType::MfaFailed)
                        .subject(user.id)
                        .client(client)
                        .detail("reason", reason),
                );
                Err(ServiceError::IncorrectCode)
            }
        }
    }

    /// The method a code passes as, or why it does not (the audit reason).
    async fn try_code(
        &self,
        user: &User,
        code: &str,
        now: DateTime<Utc>,
    ) -> ServiceResult<Result<Method, &'static str>> {
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == factors::DIGITS && digits.bytes().all(|b| b.is_ascii_digit()) {
            let Some(totp) = self
                .repos
                .second_factors
                .totp(user.id)
                .await?
                .filter(|t| t.confirmed_at.is_some())
            else {
                return Ok(Err("not_enrolled"));
            };
            let secret = self.open_secret(user.id, &totp.secret_sealed)?;
            let key = TotpKey::new(&secret, &self.issuer, &user.email)
                .map_err(|e| ServiceError::Internal(e.into()))?;
            let Some(step) = key.matching_step(&digits, unix_seconds(now)) else {
                return Ok(Err("wrong_code"));
            };
            let fresh = self
                .repos
                .second_factors
                .use_totp_step(user.id, step as i64)
                .await?;
            return Ok(if fresh {
                Ok(Method::Totp)
            } else {
                Err("reused_code")
            });
        }
        let Some(normalized) = factors::normalize_recovery_code(code) else {
            return Ok(Err("wrong_code"));
        };
        let used = self
            .repos
            .second_factors
            .use_recovery_code(user.id, &factors::hash_recovery_code(&normalized), now)
            .await?;
        Ok(if used {
            Ok(Method::RecoveryCode)
        } else {
            Err("wrong_code")
        })
    }

    /// Keeps freshly issued recovery codes, sealed, for the page that shows
    /// them next (a form post answers with a redirect): the returned token
    /// (for an HttpOnly cookie) reads them once, within 10 minutes.
    pub async fn stash_recovery_codes(
        &self,
        actor: &Actor,
        codes: &RecoveryCodes,
    ) -> ServiceResult<SecretString> {
        let json =
            serde_json::to_vec(&codes.reveal()).map_err(|e| ServiceError::Internal(e.into()))?;
        let sealed = self.sealer.seal(&json, &reveal_context(actor.user.id));
        let token = new_opaque_token();
        let now = Utc::now();
        self.repos
            .second_factors
            .create_challenge(NewChallenge {
                token_hash: &token.hash,
                purpose: ChallengePurpose::RecoveryCodes,
                user_id: actor.user.id,
                payload: Some(&sealed),
                now,
                expires_at: now + chrono::Duration::minutes(REVEAL_MINUTES),
            })
            .await?;
        Ok(token.token)
    }

    /// The recovery codes a [`SecondFactorService::stash_recovery_codes`]
    /// token holds, used up on reading; `None` when it is unknown, used,
    /// expired, or another user's.
    pub async fn take_recovery_codes(
        &self,
        actor: &Actor,
        token: &str,
    ) -> ServiceResult<Option<Vec<String>>> {
        let Some(challenge) = self
            .repos
            .second_factors
            .use_challenge(
                &hash_opaque_token(token),
                ChallengePurpose::RecoveryCodes,
                Utc::now(),
            )
            .await?
        else {
            return Ok(None);
        };
        if challenge.user_id != actor.user.id {
            return Ok(None);
        }
        let Some(sealed) = challenge.payload else {
            return Ok(None);
        };
        let Ok(opened) = self.sealer.open(&sealed, &reveal_context(actor.user.id)) else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&opened.plain).ok())
    }
}

/// What sealing every TOTP secret again with the current key did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResealReport {
    /// Sealed with a retired key, now with the current one.
    pub resealed: u64,
    /// Already sealed with the current key.
    pub current: u64,
    /// Opened with no configured key (their users must set up again).
    pub unreadable: u64,
}

impl SecondFactorService {
    /// Seals every TOTP secret sealed with a retired key
    /// (`DATA_ENCRYPTION_OLD_KEYS`) again with `DATA_ENCRYPTION_KEY`, after
    /// which the retired keys can be dropped (`leptos-auth reseal`).
    pub async fn reseal_all(&self) -> ServiceResult<ResealReport> {
        let mut report = ResealReport::default();
        let mut after = 0;
        loop {
            let page = self.repos.second_factors.totp_page(after, 500).await?;
            let Some(last) = page.last() else {
                return Ok(report);
            };
            after = last.user_id;
            for row in page {
                let context = secret_context(row.user_id);
                match self.sealer.open(&row.secret_sealed, &context) {
                    Ok(opened) if opened.stale => {
                        let sealed = self.sealer.seal(&opened.plain, &context);
                        if self
                            .repos
                            .second_factors
                            .reseal_totp(row.user_id, &row.secret_sealed, &sealed)
                            .await?
                        {
                            report.resealed += 1;
                        }
                    }
                    Ok(_) => report.current += 1,
                    Err(_) => {
                        tracing::warn!(
                            user_id = row.user_id,
                            "a TOTP secret opens with no configured key"
                        );
                        report.unreadable += 1;
                    }
                }
            }
        }
    }
}

/// New recovery codes and their stored hashes.
fn new_recovery_codes() -> (RecoveryCodes, Vec<String>) {
    let codes = factors::new_recovery_codes();
    let hashes = codes
        .iter()
        .filter_map(|code| factors::normalize_recovery_code(code))
        .map(|normal| factors::hash_recovery_code(&normal))
        .collect();
    (
        RecoveryCodes(codes.into_iter().map(SecretString::from).collect()),
        hashes,
    )
}

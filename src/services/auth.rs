//! Sign-in, token refresh with rotation and reuse detection, sign-out, and the
//! per-request authentication check.

use super::{
    audit::{AuditEntry, AuditLog},
    passkeys::{PasskeyService, SignInCeremony},
    second_factor::{Method, SecondFactorService},
    step_up::StepUp,
    throttle::{account_key, Throttle},
    Actor, ClientInfo, ServiceError, ServiceResult,
};
use crate::{
    crypto::{
        passwords::PasswordHasher,
        tokens::{
            hash_opaque_token, new_opaque_token, plausible_refresh_token, TokenError, TokenService,
        },
    },
    domain::{AuditEventType, Email, Role},
    repositories::{
        ChallengePurpose, NewChallenge, NewSession, Repositories, Rotation, RotationRequest, User,
    },
};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// The tokens handed out by a sign-in or a refresh.
#[derive(Clone)]
pub struct TokenPair {
    /// Short-lived JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque token for `/auth/refresh`; only its hash is stored.
    pub refresh_token: SecretString,
    /// Access-token lifetime in seconds.
    pub expires_in: i64,
    /// The session these tokens belong to.
    pub session_id: i64,
}

/// The outcome of a right password.
pub enum SignIn {
    /// Signed in: a new session.
    Complete(TokenPair),
    /// The account has a second factor: the sign-in continues with
    /// [`AuthService::complete_second_factor`].
    SecondFactorRequired(SecondFactorChallenge),
}

/// The pending second step of a sign-in.
pub struct SecondFactorChallenge {
    /// Opaque, single use, valid [`MFA_TOKEN_MINUTES`]; only its hash is stored.
    pub mfa_token: SecretString,
    /// What the second step accepts.
    pub methods: Vec<Method>,
    /// With [`Method::Webauthn`]: the `navigator.credentials.get()`
    /// options for one of the user's passkeys.
    pub webauthn: Option<serde_json::Value>,
}

/// What the first step of a sign-in was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FirstFactor {
    Password,
    /// A passkey (with user verification: it counts as two factors).
    Passkey,
}

/// How long the second step of a sign-in may wait for its code.
pub const MFA_TOKEN_MINUTES: i64 = 5;

/// What a caller proves to confirm a sensitive action.
pub enum StepUpProof {
    Password(SecretString),
    /// A TOTP code or a recovery code.
    Code(String),
    /// One field that takes either (the pages): a code when the user has a
    /// second factor and it reads as one, else the password.
    PasswordOrCode(SecretString),
}

/// Account rules of sign-in.
#[derive(Debug, Clone, Copy)]
pub struct SignInRules {
    /// `REQUIRE_EMAIL_VERIFICATION`: no session before the address is verified.
    pub require_verification: bool,
    /// `REQUIRE_2FA_FOR_ADMINS`: admins act only with a second factor.
    pub second_factor_for_admins: bool,
}

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    /// Without a refresh for this long, a session ends (`SESSION_IDLE_DAYS`).
    pub idle: Duration,
    /// However often refreshed, a session ends this long after sign-in
    /// (`SESSION_MAX_DAYS`).
    pub max: Duration,
    /// A refresh token rotated out less than this long ago is a racing
    /// refresh, not a replay (`REFRESH_REUSE_GRACE_SECONDS`; zero: none).
    pub reuse_grace: Duration,
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(7))
}

/// `d` as a chrono duration (zero if it does not fit, which no setting allows).
fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_default()
}

/// Authentication: sessions and tokens.
#[derive(Clone)]
pub struct AuthService {
    repos: Repositories,
    hasher: PasswordHasher,
    tokens: TokenService,
    lifetime: SessionLifetime,
    throttle: Throttle,
    audit: AuditLog,
    rules: SignInRules,
    second_factors: SecondFactorService,
    passkeys: PasskeyService,
    step_up: StepUp,
}

/// What sign-in checks besides the password, and the step-up rule.
#[derive(Clone)]
pub struct Factors {
    pub second_factors: SecondFactorService,
    pub passkeys: PasskeyService,
    pub step_up: StepUp,
}

/// Why a sign-in failed, as the audit log records it.
fn failure_reason(user_known: bool) -> &'static str {
    if user_known {
        "wrong_password"
    } else {
        "unknown_account"
    }
}

impl AuthService {
    /// Builds the service.
    pub fn new(
        common: super::Common,
        hasher: PasswordHasher,
        tokens: TokenService,
        lifetime: SessionLifetime,
        rules: SignInRules,
        factors: Factors,
    ) -> Self {
        let super::Common {
            repos,
            throttle,
            audit,
        } = common;
        let Factors {
            second_factors,
            passkeys,
            step_up,
        } = factors;
        AuthService {
            repos,
            hasher,
            tokens,
            lifetime,
            throttle,
            audit,
            rules,
            second_factors,
            passkeys,
            step_up,
        }
    }

    /// The idle expiry of a session refreshed (or opened) at `now`.
    fn idle_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        after(now, self.lifetime.idle)
    }

    /// Checks the credentials and opens a new session (one per sign-in, so
    /// several devices coexist). Unknown email and wrong password fail the same
    /// way and take the same time (a dummy hash is verified for unknown emails).
    /// Throttled attempts are refused before any hashing, identically for
    /// existing and unknown accounts. Only after the right password does the
    /// answer tell an account with a second factor apart: it gets a
    /// [`SecondFactorChallenge`] instead of a session, unless `otp` (a code
    /// sent with the password) passes the second step at once.
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        otp: Option<&str>,
        client: &ClientInfo,
    ) -> ServiceResult<SignIn> {
        let now = Utc::now();
        let account = account_key(email);
        let ip = client.ip.as_deref();
        let parsed = Email::parse(email).ok();
        if let Err(throttled) = self.throttle.check_login(&account, ip, now).await? {
            let subject = match &parsed {
                Some(email) => self.repos.users.find_by_email(email).await?.map(|u| u.id),
                None => None,
            };
            self.audit.record(
                AuditEntry::new(AuditEventType::LoginThrottled)
                    .maybe_subject(subject)
                    .client(client)
                    .detail("retry_after", throttled.retry_after)
                    .detail("scope", throttled.scope.as_str()),
            );
            crate::metrics::login_attempt(crate::metrics::LoginOutcome::Throttled);
            return Err(throttled.into());
        }
        // No account can have an over-long password: refuse before hashing.
        let over_long = crate::domain::password_is_too_long(password.expose_secret());
        let user = match &parsed {
            Some(email) if !over_long => self.repos.users.find_by_email(email).await?,
            _ => None,
        };
        let matches = if over_long {
            false
        } else {
            let verification = self
                .hasher
                .verify(
                    password.clone(),
                    user.as_ref().map(|u| u.password_hash.clone()),
                )
                .await?;
            if verification.matches && verification.needs_rehash {
                if let Some(user) = &user {
                    self.upgrade_hash(user.id, password).await;
                }
            }
            verification.matches
        };
        let user = match user {
            Some(user) if matches => user,
            user => {
                self.throttle.login_failed(&account, ip, now).await?;
                let mut entry = AuditEntry::new(AuditEventType::LoginFailed)
                    .maybe_subject(user.as_ref().map(|u| u.id))
                    .client(client)
                    .detail("reason", failure_reason(user.is_some()));
                if let (None, Some(email)) = (&user, &parsed) {
                    // Which address was tried; never the password.
                    entry = entry.detail("email", email.as_str());
                }
                self.audit.record(entry);
                crate::metrics::login_attempt(crate::metrics::LoginOutcome::Failure);
                return Err(ServiceError::InvalidCredentials);
            }
        };
        if !user.is_active {
            self.audit.record(
                AuditEntry::new(AuditEventType::LoginFailed)
                    .subject(user.id)
                    .client(client)
                    .detail("reason", "inactive"),
            );
            crate::metrics::login_attempt(crate::metrics::LoginOutcome::Failure);
            return Err(ServiceError::InactiveUser);
        }
        self.throttle.login_succeeded(&account).await?;
        if self.rules.require_verification && !user.email_verified {
            return Err(self.unverified(&user, client));
        }
        if user.mfa_enabled {
            if let Some(code) = otp.filter(|code| !code.trim().is_empty()) {
                let method = self.second_factors.verify(&user, code, client).await?;
                return self
                    .signed_in(&user, client, FirstFactor::Password, Some(method))
                    .await
                    .map(SignIn::Complete);
            }
            return self
                .second_factor_challenge(&user)
                .await
                .map(SignIn::SecondFactorRequired);
        }
        self.signed_in(&user, client, FirstFactor::Password, None)
            .await
            .map(SignIn::Complete)
    }

    /// The refusal of a sign-in before the address is verified, recorded.
    fn unverified(&self, user: &User, client: &ClientInfo) -> ServiceError {
        self.audit.record(
            AuditEntry::new(AuditEventType::LoginFailed)
                .subject(user.id)
                .client(client)
                .detail("reason", "email_not_verified"),
        );
        crate::metrics::login_attempt(crate::metrics::LoginOutcome::Failure);
        ServiceError::EmailNotVerified
    }

    /// Opens the session of a completed sign-in (with the second factor it
    /// passed, if any) and records it.
    async fn signed_in(
        &self,
        user: &User,
        client: &ClientInfo,
        first: FirstFactor,
        second_factor: Option<Method>,
    ) -> ServiceResult<TokenPair> {
        let pair = match self.open_session(user, client).await {
            Err(ServiceError::EmailNotVerified) => return Err(self.unverified(user, client)),
            result => result?,
        };
        let mut entry = AuditEntry::new(AuditEventType::LoginSucceeded)
            .actor(user.id)
            .subject(user.id)
            .client(client)
            .detail("session_id", pair.session_id);
        if first == FirstFactor::Passkey {
            entry = entry.detail("method", "passkey");
        }
        if let Some(method) = second_factor {
            entry = entry.detail("second_factor", method.as_str());
        }
        self.audit.record(entry);
        crate::metrics::login_attempt(crate::metrics::LoginOutcome::Success);
        Ok(pair)
    }

    /// Stores the pending second step of a sign-in of `user`.
    async fn second_factor_challenge(&self, user: &User) -> ServiceResult<SecondFactorChallenge> {
        let token = new_opaque_token();
        let now = Utc::now();
        self.repos
            .second_factors
            .create_challenge(NewChallenge {
                token_hash: &token.hash,
                purpose: ChallengePurpose::SignIn,
                user_id: user.id,
                payload: None,
                now,
                expires_at: now + chrono::Duration::minutes(MFA_TOKEN_MINUTES),
            })
            .await?;
        let methods = self.second_factors.methods(user).await?;
        let webauthn = if methods.contains(&Method::Webauthn) {
            self.passkeys.start_second_factor(user, &token.hash).await?
        } else {
            None
        };
        Ok(SecondFactorChallenge {
            mfa_token: token.token,
            methods,
            webauthn,
        })
    }

    /// The pending sign-in of an `mfa_token` and its user (active, with
    /// their second factor still on).
    async fn pending_sign_in(&self, mfa_token: &str) -> ServiceResult<(String, User)> {
        if !plausible_refresh_token(mfa_token) {
            return Err(ServiceError::InvalidMfaToken);
        }
        let token_hash = hash_opaque_token(mfa_token);
        let challenge = self
            .repos
            .second_factors
            .find_challenge(&token_hash, ChallengePurpose::SignIn, Utc::now())
            .await?
            .ok_or(ServiceError::InvalidMfaToken)?;
        let user = self
            .repos
            .users
            .find_by_id(challenge.user_id)
            .await?
            .filter(|user| user.is_active && user.mfa_enabled)
            .ok_or(ServiceError::InvalidMfaToken)?;
        Ok((token_hash, user))
    }

    /// Uses up the `mfa_token` of a passed second step and opens the session.
    async fn second_step_passed(
        &self,
        token_hash: &str,
        user: &User,
        method: Method,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        self.repos
            .second_factors
            .use_challenge(token_hash, ChallengePurpose::SignIn, Utc::now())
            .await?
            .ok_or(ServiceError::InvalidMfaToken)?;
        self.signed_in(user, client, FirstFactor::Password, Some(method))
            .await
    }

    /// What the second step of a pending sign-in accepts (empty when the
    /// `mfa_token` is unknown, used or expired).
    pub async fn second_factor_methods(&self, mfa_token: &str) -> ServiceResult<Vec<Method>> {
        match self.pending_sign_in(mfa_token).await {
            Ok((_, user)) => self.second_factors.methods(&user).await,
            Err(ServiceError::InvalidMfaToken) => Ok(Vec::new()),
            Err(other) => Err(other),
        }
    }

    /// New passkey options for the second step of a pending sign-in (after
    /// a refused or abandoned attempt; the last options stop working).
    pub async fn second_factor_passkey_options(
        &self,
        mfa_token: &str,
    ) -> ServiceResult<serde_json::Value> {
        let (token_hash, user) = self.pending_sign_in(mfa_token).await?;
        self.passkeys
            .start_second_factor(&user, &token_hash)
            .await?
            .ok_or(ServiceError::PasskeyNotFound)
    }

    /// The second step of a sign-in with a passkey: the `mfa_token` of the
    /// password step and the assertion for the options it came with.
    #[tracing::instrument(skip_all)]
    pub async fn complete_second_factor_with_passkey(
        &self,
        mfa_token: &str,
        credential: serde_json::Value,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        let (token_hash, user) = self.pending_sign_in(mfa_token).await?;
        self.passkeys
            .verify_second_factor(&user, &token_hash, credential, client)
            .await?;
        self.second_step_passed(&token_hash, &user, Method::Webauthn, client)
            .await
    }

    /// Starts a passwordless sign-in (see [`PasskeyService::start_sign_in`]).
    pub async fn start_passkey_sign_in(&self) -> ServiceResult<SignInCeremony> {
        self.passkeys.start_sign_in().await
    }

    /// Signs in with a passkey: the challenge id of
    /// [`AuthService::start_passkey_sign_in`] and the authenticator's
    /// assertion. A passkey verifies its user, so this counts as two factors
    /// and the session may take sensitive actions at once.
    #[tracing::instrument(skip_all)]
    pub async fn passkey_sign_in(
        &self,
        challenge_id: &str,
        credential: serde_json::Value,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        let user = self
            .passkeys
            .verify_sign_in(challenge_id, credential, client)
            .await?;
        if !user.is_active {
            self.audit.record(
                AuditEntry::new(AuditEventType::LoginFailed)
                    .subject(user.id)
                    .client(client)
                    .detail("reason", "inactive")
                    .detail("method", "passkey"),
            );
            crate::metrics::login_attempt(crate::metrics::LoginOutcome::Failure);
            return Err(ServiceError::InactiveUser);
        }
        self.signed_in(&user, client, FirstFactor::Passkey, None)
            .await
    }

    /// The second step of a sign-in: the `mfa_token` of the password step
    /// and a TOTP or recovery code. A wrong code leaves the token usable
    /// (until it expires; wrong codes are throttled); a right one uses it
    /// up (once, even for concurrent requests) and opens the session.
    #[tracing::instrument(skip_all)]
    pub async fn complete_second_factor(
        &self,
        mfa_token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        let (token_hash, user) = self.pending_sign_in(mfa_token).await?;
        let method = self.second_factors.verify(&user, code, client).await?;
        self.second_step_passed(&token_hash, &user, method, client)
            .await
    }

    /// Confirms who the caller is for sensitive actions (step-up): their
    /// password (throttled like a sign-in) or a second-factor code (when
    /// they have one). The session then counts as recently authenticated.
    #[tracing::instrument(skip_all)]
    pub async fn confirm(&self, actor: &Actor, proof: StepUpProof) -> ServiceResult<()> {
        let user = &actor.user;
        /// The proof, once a field that takes either is read.
        enum Given {
            Password(SecretString),
            Code(String),
        }
        let given = match proof {
            StepUpProof::Password(password) => Given::Password(password),
            StepUpProof::Code(code) => Given::Code(code),
            StepUpProof::PasswordOrCode(secret) => {
                if user.mfa_enabled
                    && crate::crypto::factors::looks_like_a_code(secret.expose_secret())
                {
                    Given::Code(secret.expose_secret().to_owned())
                } else {
                    Given::Password(secret)
                }
            }
        };
        let method = match given {
            Given::Password(password) => {
                let now = Utc::now();
                let account = account_key(&user.email);
                let ip = actor.client.ip.as_deref();
                if let Err(throttled) = self.throttle.check_login(&account, ip, now).await? {
                    return Err(throttled.into());
                }
                let matches = !crate::domain::password_is_too_long(password.expose_secret())
                    && self
                        .hasher
                        .verify(password, Some(user.password_hash.clone()))
                        .await?
                        .matches;
                if !matches {
                    self.throttle.login_failed(&account, ip, now).await?;
                    self.audit.record(
                        AuditEntry::by(actor, AuditEventType::LoginFailed, user.id)
                            .detail("reason", "wrong_password")
                            .detail("during", "confirmation"),
                    );
                    return Err(ServiceError::IncorrectPassword);
                }
                "password"
            }
            Given::Code(code) => {
                if !user.mfa_enabled {
                    return Err(ServiceError::MfaNotEnabled);
                }
                match self.second_factors.verify(user, &code, &actor.client).await {
                    Ok(method) => method.as_str(),
                    Err(ServiceError::IncorrectCode) => {
                        return Err(ServiceError::IncorrectConfirmationCode)
                    }
                    Err(other) => return Err(other),
                }
            }
        };
        self.step_up.renew(actor).await?;
        self.audit.record(
            AuditEntry::by(actor, AuditEventType::StepUpConfirmed, user.id)
                .detail("method", method),
        );
        Ok(())
    }

    /// Stores a hash with the configured parameters; never fails the sign-in.
    async fn upgrade_hash(&self, user_id: i64, password: SecretString) {
        match self.hasher.hash(password).await {
            Ok(hash) => {
                if let Err(err) = self
                    .repos
                    .users
                    .set_password_hash(user_id, &hash, Utc::now())
                    .await
                {
                    tracing::warn!(user_id, error = %err, "could not store the upgraded password hash");
                }
            }
            Err(err) => tracing::warn!(user_id, error = %err, "could not rehash the password"),
        }
    }

    /// Opens a session for a user whose identity is already proven (sign-in, or
    /// registration through the pages) and returns its tokens. With
    /// `REQUIRE_EMAIL_VERIFICATION`, an unverified user gets no session.
    pub async fn open_session(&self, user: &User, client: &ClientInfo) -> ServiceResult<TokenPair> {
        if self.rules.require_verification && !user.email_verified {
            return Err(ServiceError::EmailNotVerified);
        }
        let user_id = user.id;
        let now = Utc::now();
        let refresh = self.tokens.new_refresh_token();
        let session_id = self
            .repos
            .sessions
            .create(NewSession {
                user_id,
                refresh_token_hash: &refresh.hash,
                now,
                expires_at: self.idle_expiry(now).min(after(now, self.lifetime.max)),
                max_expires_at: after(now, self.lifetime.max),
                user_agent: client.user_agent.as_deref(),
                ip: client.ip.as_deref(),
            })
            .await?;
        let access_token = self.tokens.issue_access(user_id, session_id, now)?;
        Ok(TokenPair {
            access_token,
            refresh_token: refresh.token,
            expires_in: self.tokens.access_ttl_seconds(),
            session_id,
        })
    }

    /// Exchanges a refresh token for a new pair. The presented token is
    /// rotated out atomically into its successor (the same for every request
    /// that presents it, see [`TokenService::successor_refresh_token`]).
    /// Presenting it again within the reuse grace, while the session is live
    /// and the successor still its newest token, is a racing refresh: it gets
    /// the same successor and a new access token, and nothing is revoked.
    /// Later it is reuse, which revokes the whole session (and with it the
    /// newest tokens). The new idle expiry never passes the session's
    /// absolute end. A client address that keeps presenting invalid tokens
    /// is throttled.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        let now = Utc::now();
        let ip = client.ip.as_deref();
        self.throttle.check_refresh(ip, now).await?;
        let result = self.rotate(refresh_token, client, now).await;
        if matches!(
            result,
            Err(ServiceError::InvalidRefreshToken | ServiceError::InvalidTokenType)
        ) {
            self.throttle.refresh_failed(ip, now).await?;
        }
        result
    }

    async fn rotate(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> ServiceResult<TokenPair> {
        if refresh_token.contains('.') {
            // Refresh tokens never contain a dot; JWTs do.
            crate::metrics::refresh_refused();
            return Err(match self.tokens.verify_access(refresh_token) {
                Ok(_) | Err(TokenError::WrongType) => ServiceError::InvalidTokenType,
                Err(TokenError::Invalid) => ServiceError::InvalidRefreshToken,
            });
        }
        if !plausible_refresh_token(refresh_token) {
            crate::metrics::refresh_refused();
            return Err(ServiceError::InvalidRefreshToken);
        }
        let next = self.tokens.successor_refresh_token(refresh_token);
        let grace = self.lifetime.reuse_grace;
        let rotation = self
            .repos
            .sessions
            .rotate(RotationRequest {
                presented_hash: &hash_opaque_token(refresh_token),
                successor_hash: &next.hash,
                now,
                new_expires_at: self.idle_expiry(now),
                // Zero means strict: not even a rotation that happened in
                // the same instant counts as a race.
                grace_since: (!grace.is_zero()).then(|| now - chrono_duration(grace)),
            })
            .await?;
        crate::metrics::refresh_rotation(&rotation);
        let pair = |user_id, session_id| -> ServiceResult<TokenPair> {
            Ok(TokenPair {
                access_token: self.tokens.issue_access(user_id, session_id, now)?,
                refresh_token: next.token.clone(),
                expires_in: self.tokens.access_ttl_seconds(),
                session_id,
            })
        };
        match rotation {
            Rotation::Rotated {
                session_id,
                user_id,
            } => pair(user_id, session_id),
            Rotation::WithinGrace {
                session_id,
                user_id,
            } => {
                self.audit.record(
                    AuditEntry::new(AuditEventType::RefreshReuseWithinGrace)
                        .subject(user_id)
                        .client(client)
                        .detail("session_id", session_id),
                );
                pair(user_id, session_id)
            }
            Rotation::ReuseDetected {
                session_id,
                user_id,
            } => {
                tracing::warn!(
                    session_id,
                    user_id,
                    "refresh token reuse detected: session revoked"
                );
                self.audit.record(
                    AuditEntry::new(AuditEventType::RefreshReuseDetected)
                        .subject(user_id)
                        .client(client)
                        .detail("session_id", session_id),
                );
                Err(ServiceError::InvalidRefreshToken)
            }
            Rotation::Invalid => Err(ServiceError::InvalidRefreshToken),
        }
    }

    /// Resolves an access token to the caller making this request from
    /// `client`. The session and the user are read together (from the
    /// authentication cache when it vouches for them, see
    /// `repositories::cache`), so logout, deactivation, deletion and role
    /// changes take effect on the next request.
    pub async fn authenticate(
        &self,
        access_token: &str,
        client: ClientInfo,
    ) -> ServiceResult<Actor> {
        let claims = self
            .tokens
            .verify_access(access_token)
            .map_err(|_| ServiceError::InvalidToken)?;
        let user_id = claims.user_id().ok_or(ServiceError::InvalidToken)?;
        let found = self
            .repos
            .sessions
            .find_with_user(claims.sid, user_id)
            .await?
            .ok_or(ServiceError::InvalidToken)?;
        if found.session_revoked_at.is_some() {
            return Err(ServiceError::TokenAlreadyInvalidated);
        }
        if found.session_expires_at <= Utc::now() || !found.user.is_active {
            return Err(ServiceError::InvalidToken);
        }
        let admin_needs_second_factor = self.rules.second_factor_for_admins
            && found.user.role == Role::Admin
            && !found.user.mfa_enabled;
        Ok(Actor {
            user: found.user,
            session_id: claims.sid,
            client,
            admin_needs_second_factor,
        })
    }

    /// Ends the caller's session: its access and refresh tokens stop working.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, access_token: &str, client: ClientInfo) -> ServiceResult<()> {
        let actor = self.authenticate(access_token, client).await?;
        if self.end_session(&actor).await? {
            Ok(())
        } else {
            Err(ServiceError::TokenAlreadyInvalidated)
        }
    }

    /// Ends a session the caller is authenticated by (sign-out from the pages).
    #[tracing::instrument(skip_all)]
    pub async fn logout_session(&self, actor: &Actor) -> ServiceResult<()> {
        self.end_session(actor).await?;
        Ok(())
    }

    async fn end_session(&self, actor: &Actor) -> ServiceResult<bool> {
        let ended = self
            .repos
            .sessions
            .revoke(actor.session_id, Utc::now())
            .await?;
        if ended {
            self.audit.record(
                AuditEntry::by(actor, AuditEventType::Logout, actor.user.id)
                    .detail("session_id", actor.session_id),
            );
        }
        Ok(ended)
    }
}

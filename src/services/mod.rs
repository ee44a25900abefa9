//! Business rules. Every rule lives here, once: who may do what, the password
//! policy, the last-admin rule, session rotation and revocation. The JSON API
//! and the Leptos server functions both call these services and only translate
//! their results; no handler decides anything on its own.
//!
//! Services take an [`Actor`] (the authenticated caller) where permissions
//! matter, and return [`ServiceError`], whose variants mean something to a user.

pub mod audit;
pub mod auth;
pub mod mail_links;
pub mod maintenance;
pub mod outbox;
pub mod passkeys;
pub mod recovery;
pub mod second_factor;
pub mod sessions;
pub mod step_up;
pub mod throttle;
pub mod users;

pub use audit::{AuditEntry, AuditLog, AuditService};
pub use auth::{AuthService, SecondFactorChallenge, SignIn, StepUpProof, TokenPair};
pub use mail_links::MailLinks;
pub use maintenance::{Maintenance, PurgeReport};
pub use passkeys::PasskeyService;
pub use recovery::AccountRecovery;
pub use second_factor::SecondFactorService;
pub use sessions::SessionService;
pub use step_up::StepUp;
pub use throttle::Throttle;
pub use users::{NewUserInput, UpdateMeInput, UpdateUserInput, UserService};

use crate::{
    config::Config,
    crypto::{passwords, PasswordHasher, TokenService},
    repositories::{EmailTokenProblem, RepoError, Repositories, User},
};

/// The authenticated caller: the user as currently stored (role and activity
/// as of this request: from the database, or from the authentication cache,
/// which every change to them empties), the session of their token, and
/// the device the request came from (for the audit log).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
    pub session_id: i64,
    pub client: ClientInfo,
    /// `REQUIRE_2FA_FOR_ADMINS` is on and this admin has no second factor
    /// yet: nothing an admin may do works until they turn it on.
    pub admin_needs_second_factor: bool,
}

impl Actor {
    /// Whether the caller is an active admin right now.
    pub fn is_admin(&self) -> bool {
        self.user.is_active_admin()
    }

    /// Fails with [`ServiceError::Forbidden`] unless the caller is an admin,
    /// and with [`ServiceError::SecondFactorRequiredForAdmins`] while
    /// `REQUIRE_2FA_FOR_ADMINS` waits for this admin's second factor.
    pub fn require_admin(&self) -> Result<(), ServiceError> {
        if !self.is_admin() {
            Err(ServiceError::Forbidden)
        } else if self.admin_needs_second_factor {
            Err(ServiceError::SecondFactorRequiredForAdmins)
        } else {
            Ok(())
        }
    }
}

/// What most services are built over: the repositories, the throttling
/// counters and the audit writer.
#[derive(Clone)]
pub struct Common {
    pub repos: Repositories,
    pub throttle: Throttle,
    pub audit: AuditLog,
}

/// Where a request came from, recorded on the session it creates.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

impl ClientInfo {
    /// Bounds what is stored: user agents are truncated to 512 characters.
    pub fn new(user_agent: Option<&str>, ip: Option<String>) -> Self {
        ClientInfo {
            user_agent: user_agent.map(|ua| ua.chars().take(512).collect()),
            ip,
        }
    }
}

/// A field of the caller's input that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The input field (e.g. `email`).
    pub field: &'static str,
    /// A message for the user.
    pub message: String,
    /// A machine-readable kind (e.g. `value_error`, `missing`).
    pub kind: &'static str,
}

/// What can go wrong in a service call, in terms the caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Unknown email or wrong password (never says which).
    #[error("Incorrect email or password")]
    InvalidCredentials,
    /// Right password, but the account is deactivated.
    #[error("Inactive user")]
    InactiveUser,
    /// The access token is invalid, expired, or its session or user is gone.
    #[error("Could not validate credentials")]
    InvalidToken,
    /// The access token's session was revoked (logged out).
    #[error("Token already invalidated")]
    TokenAlreadyInvalidated,
    /// A refresh token that is unknown, expired, revoked or reused.
    #[error("Invalid refresh token")]
    InvalidRefreshToken,
    /// A token of the wrong type (an access token where a refresh token belongs).
    #[error("Invalid token type")]
    InvalidTokenType,
    /// The caller may not do this.
    #[error("Not enough permissions")]
    Forbidden,
    /// Self-registration is turned off (`ALLOW_REGISTRATION=false`).
    #[error("Registration is disabled on this server")]
    RegistrationDisabled,
    /// The email belongs to another account.
    #[error("Email already registered")]
    EmailTaken,
    /// The current password given to confirm a change is wrong.
    #[error("Incorrect password")]
    IncorrectPassword,
    /// Users cannot change their own role.
    #[error("Cannot change your own role")]
    CannotChangeOwnRole,
    /// No such user.
    #[error("User not found")]
    UserNotFound,
    /// No such live session of this user.
    #[error("Session not found")]
    SessionNotFound,
    /// The change would leave no active admin.
    #[error("Cannot remove the last active admin")]
    LastAdmin,
    /// Input that does not meet the rules (email format, password policy...).
    #[error("{}", .0.message)]
    Invalid(FieldError),
    /// Sign-in refused until the address is verified (`REQUIRE_EMAIL_VERIFICATION`).
    #[error("Email not verified")]
    EmailNotVerified,
    /// Asked to verify an address that is verified already.
    #[error("Email already verified")]
    EmailAlreadyVerified,
    /// A link sent by email that cannot be used.
    #[error("{}", link_problem(*.0))]
    InvalidLink(EmailTokenProblem),
    /// The action needs a recent authentication on this session
    /// (`STEP_UP_MINUTES`): confirm with the password or a code first.
    #[error("Recent authentication required")]
    StepUpRequired,
    /// A wrong (or already used) second-factor code at sign-in.
    #[error("Incorrect two-factor code")]
    IncorrectCode,
    /// The second step of a sign-in with an unknown, used or expired
    /// `mfa_token`: sign in again.
    #[error("Two-factor sign-in expired or invalid: sign in again")]
    InvalidMfaToken,
    /// A wrong code given to confirm a sensitive action.
    #[error("Incorrect code")]
    IncorrectConfirmationCode,
    /// Two-factor authentication is on already.
    #[error("Two-factor authentication is already on")]
    MfaAlreadyEnabled,
    /// Two-factor authentication is not on.
    #[error("Two-factor authentication is not on")]
    MfaNotEnabled,
    /// No enrolment waits for its first code.
    #[error("No two-factor setup in progress: start again")]
    NoPendingEnrolment,
    /// `REQUIRE_2FA_FOR_ADMINS`: this admin must turn on a second factor first.
    #[error("Two-factor authentication required for admins")]
    SecondFactorRequiredForAdmins,
    /// Passkeys cannot work on this server (`PUBLIC_URL` names an IP address).
    #[error("Passkeys are not available on this server")]
    PasskeysUnavailable,
    /// A passkey ceremony that is unknown, used or expired: start again.
    #[error("Passkey request expired or already used: please try again")]
    PasskeyCeremonyExpired,
    /// An assertion that does not prove a passkey of this site (unknown
    /// credential, bad signature, counter gone back, no user verification).
    #[error("Passkey not accepted")]
    PasskeyNotAccepted,
    /// An authenticator's registration answer that does not verify.
    #[error("The passkey could not be registered: please try again")]
    PasskeyRegistrationFailed,
    /// The answer was made for another site (origin or RP ID).
    #[error("This passkey answer was made for another site: open this site at {origin}")]
    PasskeyWrongSite { origin: String },
    /// The credential is registered already (to this or another account).
    #[error("This passkey is registered already")]
    PasskeyAlreadyRegistered,
    /// The account has the most passkeys it may have.
    #[error("You have the most passkeys an account may have (20): remove one first")]
    PasskeyLimit,
    /// No such passkey of this user.
    #[error("Passkey not found")]
    PasskeyNotFound,
    /// Brute-force throttling: wait this many seconds.
    #[error("Too many attempts, try again in {retry_after} second{}", if *.retry_after == 1 { "" } else { "s" })]
    Throttled { retry_after: u64 },
    /// The database cannot be reached right now.
    #[error("Service temporarily unavailable")]
    Unavailable(#[source] RepoError),
    /// A fault on our side; the cause is logged, never shown.
    #[error("Internal Server Error")]
    Internal(#[source] anyhow::Error),
}

/// What a user is told about a link that cannot be used.
fn link_problem(problem: EmailTokenProblem) -> &'static str {
    match problem {
        EmailTokenProblem::Unknown => "This link is not valid. Please ask for a new one.",
        EmailTokenProblem::Used => "This link has already been used. Please ask for a new one.",
        EmailTokenProblem::Revoked => {
            "This link was replaced by a newer one. Please use the link in the most recent message."
        }
        EmailTokenProblem::Expired => "This link has expired. Please ask for a new one.",
    }
}

impl ServiceError {
    /// A validation failure of one field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(FieldError {
            field,
            message: message.into(),
            kind: "value_error",
        })
    }

    /// A required field that is missing.
    pub fn missing(field: &'static str) -> Self {
        ServiceError::Invalid(FieldError {
            field,
            message: "Field required".to_owned(),
            kind: "missing",
        })
    }
}

impl From<RepoError> for ServiceError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::EmailTaken => ServiceError::EmailTaken,
            RepoError::NotFound => ServiceError::UserNotFound,
            RepoError::LastAdmin => ServiceError::LastAdmin,
            RepoError::CredentialTaken => ServiceError::PasskeyAlreadyRegistered,
            RepoError::Database(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => ServiceError::Unavailable(err),
            RepoError::Database(sqlx::Error::Database(ref db)) if server_unavailable(db.code()) => {
                ServiceError::Unavailable(err)
            }
            RepoError::Database(e) => ServiceError::Internal(e.into()),
        }
    }
}

/// SQLSTATEs that mean "the database cannot serve right now" rather than "this
/// query is wrong": connection exceptions (class 08), shutdown or restart in
/// progress (57P01..57P03), too many connections (53300).
fn server_unavailable(code: Option<std::borrow::Cow<'_, str>>) -> bool {
    code.is_some_and(|code| {
        code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
    })
}

impl From<passwords::HashError> for ServiceError {
    fn from(err: passwords::HashError) -> Self {
        ServiceError::Internal(err.into())
    }
}

impl From<jsonwebtoken::errors::Error> for ServiceError {
    fn from(err: jsonwebtoken::errors::Error) -> Self {
        ServiceError::Internal(err.into())
    }
}

/// Result alias for service calls.
pub type ServiceResult<T> = Result<T, ServiceError>;

/// All services of one instance, built once at startup and shared.
#[derive(Clone)]
pub struct Services {
    pub auth: AuthService,
    pub users: UserService,
    pub sessions: SessionService,
    /// Verification and password-reset flows.
    pub recovery: AccountRecovery,
    /// Two-factor authentication.
    pub second_factors: SecondFactorService,
    /// Passkeys.
    pub passkeys: PasskeyService,
    /// The recent-authentication rule of sensitive actions.
    pub step_up: StepUp,
    pub audit: AuditService,
    /// The audit writer (flushed at shutdown).
    pub audit_log: AuditLog,
    /// The durable mail outbox (its worker stops at shutdown).
    pub outbox: outbox::Outbox,
    pub maintenance: Maintenance,
    /// The password hasher (its counters show work done).
    pub hasher: PasswordHasher,
    pub repositories: Repositories,
}

impl Services {
    /// Wires the services over the given repositories and starts the audit
    /// writer and the mail sender (call inside a Tokio runtime).
    pub fn new(config: &Config, repositories: Repositories) -> anyhow::Result<Services> {
        use anyhow::Context;
        use secrecy::ExposeSecret;
        let hasher = PasswordHasher::new(&config.argon2).context("setting up password hashing")?;
        let transport = crate::mail::Transport::from_settings(&config.mail, config.app_env)
            .context("setting up outgoing mail")?;
        let outbox = outbox::Outbox::new(
            repositories.outbox.clone(),
            config.jwt_secret.expose_secret().as_bytes(),
            &transport.sender_domain(),
        );
        let links = MailLinks::new(
            repositories.clone(),
            outbox.clone(),
            &config.mail.public_url,
        );
        let tokens = TokenService::new(
            &config.jwt_secret,
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl,
        );
        let audit_log = AuditLog::start(repositories.audit.clone());
        let throttle = Throttle::new(repositories.throttle.clone(), config.throttle);
        let step_up = StepUp::new(repositories.clone(), config.factors.step_up);
        let common = Common {
            repos: repositories.clone(),
            throttle: throttle.clone(),
            audit: audit_log.clone(),
        };
        let passkeys = PasskeyService::new(
            common.clone(),
            &config.mail.public_url,
            &config.factors.totp_issuer,
            step_up.clone(),
            links.clone(),
        );
        let second_factors = SecondFactorService::new(
            common.clone(),
            crate::crypto::DataSealer::new(
                &config.factors.data_keys,
                second_factor::SECRET_PURPOSE,
            ),
            &config.factors.totp_issuer,
            step_up.clone(),
            links.clone(),
            passkeys.clone(),
        );
        let auth = AuthService::new(
            common.clone(),
            hasher.clone(),
            tokens,
            auth::SessionLifetime {
                idle: config.session_idle,
                max: config.session_max,
                reuse_grace: config.refresh_reuse_grace,
            },
            auth::SignInRules {
                require_verification: config.mail.require_verification,
                second_factor_for_admins: config.factors.require_for_admins,
            },
            auth::Factors {
                second_factors: second_factors.clone(),
                passkeys: passkeys.clone(),
                step_up: step_up.clone(),
            },
        );
        let users = UserService::new(
            common,
            hasher.clone(),
            config.password_policy(),
            config.allow_registration,
            links.clone(),
            step_up.clone(),
        );
        let recovery = AccountRecovery::new(
            repositories.clone(),
            users.clone(),
            links,
            throttle.clone(),
            audit_log.clone(),
        );
        {
            let recovery = recovery.clone();
            outbox.spawn_worker(transport, move |request| {
                let recovery = recovery.clone();
                async move { recovery.compose_requested(request).await }
            });
        }
        let sessions = SessionService::new(repositories.clone(), audit_log.clone());
        let audit = AuditService::new(repositories.audit.clone(), audit_log.clone());
        let maintenance = Maintenance::new(
            repositories.clone(),
            throttle,
            config.access_token_ttl,
            config.audit_retention,
        );
        Ok(Services {
            auth,
            users,
            sessions,
            recovery,
            second_factors,
            passkeys,
            step_up,
            audit,
            audit_log,
            outbox,
            maintenance,
            hasher,
            repositories,
        })
    }
}

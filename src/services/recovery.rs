//! Proving an address and recovering an account by email: verification
//! links (sent at sign-up and on an email change, resent on request) and
//! password reset. Requests that send mail are throttled per client address
//! (429) and per account (at most one message per interval; extra requests
//! are answered the same way and send nothing). Anonymous requests answer
//! the same whether or not an account exists.

use super::{
    audit::{AuditEntry, AuditLog},
    mail_links::MailLinks,
    outbox::{Composed, LinkRequest},
    throttle::{account_key, Throttle, Throttled},
    users::UserService,
    Actor, ClientInfo, ServiceError, ServiceResult,
};
use crate::{
    domain::{AuditEventType, Email},
    repositories::{EmailTokenProblem, EmailTokenPurpose, Repositories, User},
};
use chrono::Utc;
use secrecy::SecretString;

/// Verification and password reset.
#[derive(Clone)]
pub struct AccountRecovery {
    repos: Repositories,
    users: UserService,
    links: MailLinks,
    throttle: Throttle,
    audit: AuditLog,
}

impl AccountRecovery {
    /// Builds the service.
    pub fn new(
        repos: Repositories,
        users: UserService,
        links: MailLinks,
        throttle: Throttle,
        audit: AuditLog,
    ) -> Self {
        AccountRecovery {
            repos,
            users,
            links,
            throttle,
            audit,
        }
    }

    /// The account an anonymous request names, when the address parses and
    /// an account has it. Malformed addresses are refused (422).
    async fn find_account(&self, email: &str) -> ServiceResult<Option<User>> {
        let email =
            Email::parse(email).map_err(|e| ServiceError::invalid("email", e.to_string()))?;
        Ok(self.repos.users.find_by_email(&email).await?)
    }

    /// Counts a mail request against the client address (429 beyond the
    /// hourly limit), then whether the account may get a message now (a
    /// refusal says how long to wait).
    async fn mail_allowance(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> ServiceResult<Result<(), Throttled>> {
        let now = Utc::now();
        self.throttle
            .email_request(client.ip.as_deref(), now)
            .await?;
        self.throttle
            .email_to_account(&account_key(email), now)
            .await
    }

    /// For anonymous requests: queues a link request for this address when
    /// it may get a message now. The work is the same for every address
    /// (the counters, and the queued request, also for unknown ones); the
    /// outbox's worker finds the account and decides (see
    /// [`AccountRecovery::compose_requested`]). An address that got a
    /// message too recently is simply sent nothing (answering differently
    /// would tell that the account exists).
    async fn request_anonymous_link(
        &self,
        email: &str,
        purpose: EmailTokenPurpose,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        let email =
            Email::parse(email).map_err(|e| ServiceError::invalid("email", e.to_string()))?;
        if self.mail_allowance(email.as_str(), client).await?.is_err() {
            return Ok(());
        }
        self.links.request_link(&email, purpose, client).await
    }

    /// The outbox's worker: the message for a queued link request, when an
    /// account should get it: an active account for a reset, an active
    /// unverified one for a verification link. A reset request is audited
    /// here, where the account is known.
    pub async fn compose_requested(&self, request: LinkRequest) -> ServiceResult<Option<Composed>> {
        let Some(user) = self.find_account(&request.email).await? else {
            return Ok(None);
        };
        let wanted = user.is_active
            && match request.purpose {
                EmailTokenPurpose::ResetPassword => true,
                EmailTokenPurpose::VerifyEmail => !user.email_verified,
            };
        if !wanted {
            return Ok(None);
        }
        if request.purpose == EmailTokenPurpose::ResetPassword {
            let client = ClientInfo {
                ip: request.ip.clone(),
                user_agent: request.user_agent.clone(),
            };
            self.audit.record(
                AuditEntry::new(AuditEventType::PasswordResetRequested)
                    .subject(user.id)
                    .client(&client),
            );
        }
        Ok(Some(self.links.compose(&user, request.purpose)))
    }

    /// `POST /auth/password-recovery`: sends a reset link when an active
    /// account has this address. The answer is the same either way, and so
    /// is the work done before answering: the counters are read and written
    /// and a request is queued for unknown addresses too; the link is stored
    /// and sent after the answer.
    #[tracing::instrument(skip_all)]
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        self.request_anonymous_link(email, EmailTokenPurpose::ResetPassword, client)
            .await
    }

    /// Whether a reset link can still be used (the reset page checks before
    /// showing its form).
    pub async fn check_reset_link(&self, token: &str) -> ServiceResult<()> {
        let record = self
            .links
            .check(token, EmailTokenPurpose::ResetPassword)
            .await?;
        self.active_user(record.user_id).await.map(|_| ())
    }

    /// The active user a link belongs to; a link of a deactivated (or
    /// deleted) account is no longer valid.
    async fn active_user(&self, user_id: i64) -> ServiceResult<User> {
        self.repos
            .users
            .find_by_id(user_id)
            .await?
            .filter(|user| user.is_active)
            .ok_or(ServiceError::InvalidLink(EmailTokenProblem::Unknown))
    }

    /// Sets a new password with a reset link: the policy applies (422 on
    /// `new_password`, the link stays usable), the link is used up, every
    /// session of the user ends, and a notice goes to the address.
    #[tracing::instrument(skip_all)]
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: SecretString,
        client: &ClientInfo,
    ) -> ServiceResult<User> {
        let record = self
            .links
            .check(token, EmailTokenPurpose::ResetPassword)
            .await?;
        let user = self.active_user(record.user_id).await?;
        let password_hash = self.users.hash_new_password(&user, &new_password).await?;
        let used = self
            .links
            .use_up(token, EmailTokenPurpose::ResetPassword)
            .await?;
        self.users
            .apply_password_reset(&user, password_hash, &used.email, client)
            .await
    }

    /// Confirms an address with a verification link. A link sent to an
    /// address the account no longer has verifies nothing.
    #[tracing::instrument(skip_all)]
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> ServiceResult<User> {
        let used = self
            .links
            .use_up(token, EmailTokenPurpose::VerifyEmail)
            .await?;
        let verified = self
            .repos
            .users
            .mark_email_verified(used.user_id, &used.email, Utc::now())
            .await?;
        if !verified {
            return Err(ServiceError::InvalidLink(EmailTokenProblem::Revoked));
        }
        self.audit.record(
            AuditEntry::new(AuditEventType::EmailVerified)
                .actor(used.user_id)
                .subject(used.user_id)
                .client(client)
                .detail("email", used.email.as_str()),
        );
        self.repos
            .users
            .find_by_id(used.user_id)
            .await?
            .ok_or(ServiceError::InvalidLink(EmailTokenProblem::Unknown))
    }

    /// Sends the caller a new verification link (429 when asked again too soon).
    #[tracing::instrument(skip_all, fields(user_id = actor.user.id))]
    pub async fn resend_verification(&self, actor: &Actor) -> ServiceResult<()> {
        self.resend_to(&actor.user, &actor.client).await
    }

    /// Admin: sends a user a new verification link.
    #[tracing::instrument(skip_all, fields(user_id = id))]
    pub async fn admin_resend_verification(&self, actor: &Actor, id: i64) -> ServiceResult<()> {
        actor.require_admin()?;
        let user = self
            .repos
            .users
            .find_by_id(id)
            .await?
            .ok_or(ServiceError::UserNotFound)?;
        self.resend_to(&user, &actor.client).await
    }

    async fn resend_to(&self, user: &User, client: &ClientInfo) -> ServiceResult<()> {
        if user.email_verified {
            return Err(ServiceError::EmailAlreadyVerified);
        }
        self.mail_allowance(&user.email, client)
            .await?
            .map_err(ServiceError::from)?;
        self.links.send_verification(user).await
    }

    /// From the sign-in page, without a session: sends a verification link
    /// when an active, unverified account has this address. The answer is
    /// the same whatever the account's state.
    #[tracing::instrument(skip_all)]
    pub async fn request_verification(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        self.request_anonymous_link(email, EmailTokenPurpose::VerifyEmail, client)
            .await
    }
}

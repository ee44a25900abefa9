//! User management: registration, self-service changes, and the admin
//! operations, with the rules that guard them (registration switch, who may
//! grant roles, current-password confirmation, the last-admin rule).

use super::{
    audit::{AuditEntry, AuditLog},
    mail_links::{MailLinks, PasswordChangedBy},
    step_up::StepUp,
    throttle::Throttle,
    Actor, ClientInfo, ServiceError, ServiceResult,
};
use crate::{
    crypto::PasswordHasher,
    domain::{AuditEventType, Email, Page, PasswordPolicy, Role, UserFilter},
    repositories::{NewUser, Repositories, RevokeSessions, User, UserChanges},
};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};

/// Input of a registration or an admin "create user".
#[derive(Debug, Clone)]
pub struct NewUserInput {
    pub email: String,
    pub password: SecretString,
    /// Only admins may ask for anything but `regular`.
    pub role: Option<Role>,
    /// Only admins may create inactive users.
    pub is_active: Option<bool>,
}

/// Changes a user asks for on their own account.
#[derive(Debug, Clone, Default)]
pub struct UpdateMeInput {
    pub email: Option<String>,
    pub password: Option<SecretString>,
    /// Required to change the email or the password.
    pub current_password: Option<SecretString>,
    /// Accepted only when it equals the current role.
    pub role: Option<Role>,
}

/// Changes an admin makes to any user.
#[derive(Debug, Clone, Default)]
pub struct UpdateUserInput {
    pub email: Option<String>,
    pub password: Option<SecretString>,
    pub role: Option<Role>,
    pub is_active: Option<bool>,
}

/// One page of the user list.
pub struct UserPage {
    pub users: Vec<User>,
    /// Matches before paging.
    pub total: i64,
}

/// User management.
#[derive(Clone)]
pub struct UserService {
    repos: Repositories,
    hasher: PasswordHasher,
    policy: PasswordPolicy,
    allow_registration: bool,
    throttle: Throttle,
    audit: AuditLog,
    links: MailLinks,
    step_up: StepUp,
}

/// Who made a change, as the audit log records it.
#[derive(Clone, Copy)]
enum ChangedBy<'a> {
    /// The user on their own account.
    SelfService(&'a Actor),
    /// An admin.
    Admin(&'a Actor),
    /// The operator (CLI or `ADMIN_EMAIL`), outside any session.
    Operator,
    /// A new user signing up: their own actor, before any session exists.
    SignUp,
}

impl ChangedBy<'_> {
    fn entry(self, event_type: AuditEventType, subject: i64) -> AuditEntry {
        match self {
            ChangedBy::SelfService(actor) | ChangedBy::Admin(actor) => {
                AuditEntry::by(actor, event_type, subject)
            }
            ChangedBy::Operator => AuditEntry::new(event_type).subject(subject),
            ChangedBy::SignUp => AuditEntry::new(event_type).actor(subject).subject(subject),
        }
        .detail("by", self.label())
    }

    fn label(self) -> &'static str {
        match self {
            ChangedBy::SelfService(_) => "self",
            ChangedBy::Admin(_) => "admin",
            ChangedBy::Operator => "operator",
            ChangedBy::SignUp => "registration",
        }
    }

    /// Who changed a password, for the notice.
    fn password_changer(self) -> PasswordChangedBy {
        match self {
            ChangedBy::SelfService(_) | ChangedBy::SignUp => PasswordChangedBy::User,
            ChangedBy::Admin(_) | ChangedBy::Operator => PasswordChangedBy::Admin,
        }
    }
}

impl UserService {
    /// Builds the service.
    pub fn new(
        common: super::Common,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        allow_registration: bool,
        links: MailLinks,
        step_up: StepUp,
    ) -> Self {
        let super::Common {
            repos,
            throttle,
            audit,
        } = common;
        UserService {
            repos,
            hasher,
            policy,
            allow_registration,
            throttle,
            audit,
            links,
            step_up,
        }
    }

    /// Sends a verification link to the user's address. A failure is logged,
    /// never returned: the change that asked for it has happened.
    async fn send_verification(&self, user: &User) {
        if let Err(err) = self.links.send_verification(user).await {
            tracing::error!(user_id = user.id, error = %err, "could not issue a verification link");
        }
    }

    /// Records what changed between `before` and `after` (one event per
    /// aspect) and tells the user by email: a new address must be verified
    /// (the old one gets a notice), a new password gets a notice.
    async fn record_changes(&self, by: ChangedBy<'_>, before: &User, after: &User, password: bool) {
        let now = Utc::now();
        if before.email != after.email {
            self.send_verification(after).await;
            self.links
                .notify_email_changed(&before.email, &after.email, now)
                .await;
        }
        if password {
            self.links
                .notify_password_changed(after, by.password_changer(), now)
                .await;
        }
        let id = after.id;
        if before.email != after.email {
            self.audit.record(
                by.entry(AuditEventType::EmailChanged, id)
                    .detail("from", before.email.as_str())
                    .detail("to", after.email.as_str()),
            );
        }
        if password {
            self.audit
                .record(by.entry(AuditEventType::PasswordChanged, id));
        }
        if before.role != after.role {
            self.audit.record(
                by.entry(AuditEventType::RoleChanged, id)
                    .detail("from", before.role.as_str())
                    .detail("to", after.role.as_str()),
            );
        }
        if before.is_active != after.is_active {
            let kind = if after.is_active {
                AuditEventType::UserActivated
            } else {
                AuditEventType::UserDeactivated
            };
            self.audit.record(by.entry(kind, id));
        }
    }

    fn record_created(&self, by: ChangedBy<'_>, user: &User) {
        self.audit.record(
            by.entry(AuditEventType::UserCreated, user.id)
                .detail("email", user.email.as_str())
                .detail("role", user.role.as_str()),
        );
    }

    fn record_deleted(&self, by: ChangedBy<'_>, user: &User) {
        self.audit.record(
            by.entry(AuditEventType::UserDeleted, user.id)
                .detail("email", user.email.as_str()),
        );
    }

    /// The password policy in force (the pages show its minimum length).
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// The policy's verdict on a candidate password (the live strength meter
    /// on the sign-up page uses the same rules as registration).
    pub fn password_strength(
        &self,
        password: &str,
        email: &str,
    ) -> crate::domain::PasswordStrength {
        let email = Email::parse(email).ok();
        self.policy
            .assess(password, email.as_ref().map(Email::local_part))
    }

    /// Whether anonymous visitors may sign up.
    pub fn registration_open(&self) -> bool {
        self.allow_registration
    }

    fn parse_email(raw: &str) -> ServiceResult<Email> {
        Email::parse(raw).map_err(|e| ServiceError::invalid("email", e.to_string()))
    }

    /// The password rule, the one place it is applied: accepts `password`
    /// for the account with `email`, or refuses it as input `field`.
    fn accept_password(
        &self,
        password: &SecretString,
        email: &Email,
        field: &'static str,
    ) -> ServiceResult<()> {
        self.policy
            .check(password.expose_secret(), Some(email.local_part()))
            .map_err(|e| ServiceError::invalid(field, e.to_string()))
    }

    /// Applies the password policy, then hashes (never hash what the policy refuses).
    async fn checked_hash(
        &self,
        password: &SecretString,
        email: &Email,
        field: &'static str,
    ) -> ServiceResult<String> {
        self.accept_password(password, email, field)?;
        Ok(self.hasher.hash(password.clone()).await?)
    }

    /// Signs up: anyone may create an active regular account for themselves,
    /// while registration is open, and only so often per client address.
    #[tracing::instrument(skip_all)]
    pub async fn sign_up(&self, input: NewUserInput, client: &ClientInfo) -> ServiceResult<User> {
        if input.role.is_some_and(|r| r != Role::Regular) || input.is_active == Some(false) {
            return Err(ServiceError::Forbidden);
        }
        if !self.allow_registration {
            return Err(ServiceError::RegistrationDisabled);
        }
        let email = Self::parse_email(&input.email)?;
        self.accept_password(&input.password, &email, "password")?;
        self.throttle
            .registration_attempt(client.ip.as_deref(), Utc::now())
            .await?;
        let password_hash = self.hasher.hash(input.password).await?;
        let user = self
            .insert(&email, &password_hash, Role::Regular, true, false)
            .await?;
        self.send_verification(&user).await;
        self.record_created(ChangedBy::SignUp, &user);
        Ok(user)
    }

    /// Admin: creates an account with the role and activity of their choice
    /// (registration switch and sign-up throttling do not apply).
    #[tracing::instrument(skip_all, fields(admin_id = admin.user.id))]
    pub async fn create_user(&self, admin: &Actor, input: NewUserInput) -> ServiceResult<User> {
        admin.require_admin()?;
        let email = Self::parse_email(&input.email)?;
        let password_hash = self
            .checked_hash(&input.password, &email, "password")
            .await?;
        let user = self
            .insert(
                &email,
                &password_hash,
                input.role.unwrap_or_default(),
                input.is_active.unwrap_or(true),
                false,
            )
            .await?;
        self.send_verification(&user).await;
        self.record_created(ChangedBy::Admin(admin), &user);
        Ok(user)
    }

    async fn insert(
        &self,
        email: &Email,
        password_hash: &str,
        role: Role,
        is_active: bool,
        email_verified: bool,
    ) -> ServiceResult<User> {
        Ok(self
            .repos
            .users
            .create(NewUser {
                email,
                password_hash,
                role,
                is_active,
                email_verified,
                now: Utc::now(),
            })
            .await?)
    }

    /// Changes the caller's own account. Changing the email or the password
    /// requires the current password and a recent authentication; a password
    /// change signs out every other session; nobody changes their own role.
    #[tracing::instrument(skip_all, fields(user_id = actor.user.id))]
    pub async fn update_me(&self, actor: &Actor, input: UpdateMeInput) -> ServiceResult<User> {
        let me = &actor.user;
        if input.role.is_some_and(|r| r != me.role) {
            return Err(ServiceError::CannotChangeOwnRole);
        }
        let new_email = input
            .email
            .as_deref()
            .map(Self::parse_email)
            .transpose()?
            .filter(|email| email.as_str() != me.email);
        if new_email.is_none() && input.password.is_none() {
            return Ok(me.clone());
        }
        self.step_up.require(actor).await?;
        let current = input
            .current_password
            .ok_or(ServiceError::missing("current_password"))?;
        let effective_email = match &new_email {
            Some(email) => email.clone(),
            None => Self::parse_email(&me.email)?,
        };
        if let Some(password) = &input.password {
            self.accept_password(password, &effective_email, "password")?;
        }
        let verification = self
            .hasher
            .verify(current, Some(me.password_hash.clone()))
            .await?;
        if !verification.matches {
            return Err(ServiceError::IncorrectPassword);
        }
        let password_hash = match input.password {
            Some(password) => Some(self.hasher.hash(password).await?),
            None => None,
        };
        let revoke = if password_hash.is_some() {
            RevokeSessions::AllExcept(actor.session_id)
        } else {
            RevokeSessions::None
        };
        let password_changed = password_hash.is_some();
        let changes = UserChanges {
            email_verified: new_email.is_some().then_some(false),
            email: new_email,
            password_hash,
            ..UserChanges::default()
        };
        let updated = self
            .repos
            .users
            .update(me.id, &changes, revoke, Utc::now())
            .await?;
        self.record_changes(
            ChangedBy::SelfService(actor),
            me,
            &updated,
            password_changed,
        )
        .await;
        Ok(updated)
    }

    /// The hash of a new password for `user`, after the policy accepted it
    /// (a password reset checks it before using the link up).
    pub(super) async fn hash_new_password(
        &self,
        user: &User,
        password: &SecretString,
    ) -> ServiceResult<String> {
        let email = Self::parse_email(&user.email)?;
        self.checked_hash(password, &email, "new_password").await
    }

    /// Stores a password set with a reset link sent to `link_email`: every
    /// session ends, the address counts as verified when it is still
    /// `link_email` (the link proved the user reads it), and the user is told
    /// by email.
    pub(super) async fn apply_password_reset(
        &self,
        user: &User,
        password_hash: String,
        link_email: &str,
        client: &ClientInfo,
    ) -> ServiceResult<User> {
        let changes = UserChanges {
            password_hash: Some(password_hash),
            email_verified: (user.email == link_email && !user.email_verified).then_some(true),
            ..UserChanges::default()
        };
        let updated = self
            .repos
            .users
            .update(user.id, &changes, RevokeSessions::All, Utc::now())
            .await?;
        self.audit.record(
            AuditEntry::new(AuditEventType::PasswordChanged)
                .actor(updated.id)
                .subject(updated.id)
                .client(client)
                .detail("by", "reset"),
        );
        self.links
            .notify_password_changed(&updated, PasswordChangedBy::Reset, Utc::now())
            .await;
        Ok(updated)
    }

    /// Deletes the caller's own account after checking their password, on a
    /// recently authenticated session (the last active admin cannot).
    #[tracing::instrument(skip_all, fields(user_id = actor.user.id))]
    pub async fn delete_me(
        &self,
        actor: &Actor,
        current_password: SecretString,
    ) -> ServiceResult<User> {
        self.step_up.require(actor).await?;
        let verification = self
            .hasher
            .verify(current_password, Some(actor.user.password_hash.clone()))
            .await?;
        if !verification.matches {
            return Err(ServiceError::IncorrectPassword);
        }
        let deleted = self.repos.users.delete(actor.user.id).await?;
        self.record_deleted(ChangedBy::SelfService(actor), &deleted);
        Ok(deleted)
    }

    /// Admin: one user.
    pub async fn get(&self, actor: &Actor, id: i64) -> ServiceResult<User> {
        actor.require_admin()?;
        self.repos
            .users
            .find_by_id(id)
            .await?
            .ok_or(ServiceError::UserNotFound)
    }

    /// Admin: a filtered page of users ordered by id, with the total count.
    pub async fn list(
        &self,
        actor: &Actor,
        filter: &UserFilter,
        page: Page,
    ) -> ServiceResult<UserPage> {
        actor.require_admin()?;
        // Search text is taken literally. With a character no address holds
        // (a control character, NUL included, or a space) it matches nobody;
        // the databases are not asked, as they cannot take every such text.
        if filter
            .email_contains
            .as_deref()
            .is_some_and(Email::no_address_contains)
        {
            return Ok(UserPage {
                users: Vec::new(),
                total: 0,
            });
        }
        let (users, total) = self
            .repos
            .users
            .list(filter, page.offset(), page.limit())
            .await?;
        Ok(UserPage { users, total })
    }

    /// Admin: changes any user. A new password or a deactivation signs the
    /// user out everywhere (except the admin's own session when they edit
    /// themselves); demoting or deactivating the last active admin is refused.
    /// Needs a recent authentication of the admin.
    #[tracing::instrument(skip_all, fields(user_id = id))]
    pub async fn update(
        &self,
        actor: &Actor,
        id: i64,
        input: UpdateUserInput,
    ) -> ServiceResult<User> {
        actor.require_admin()?;
        self.step_up.require(actor).await?;
        let target = self
            .repos
            .users
            .find_by_id(id)
            .await?
            .ok_or(ServiceError::UserNotFound)?;
        let new_email = input
            .email
            .as_deref()
            .map(Self::parse_email)
            .transpose()?
            .filter(|email| email.as_str() != target.email);
        let password_hash = match &input.password {
            Some(password) => {
                let email = match &new_email {
                    Some(email) => email.clone(),
                    None => Self::parse_email(&target.email)?,
                };
                Some(self.checked_hash(password, &email, "password").await?)
            }
            None => None,
        };
        let signs_out = password_hash.is_some() || input.is_active == Some(false);
        let revoke = match (signs_out, id == actor.user.id) {
            (false, _) => RevokeSessions::None,
            (true, true) => RevokeSessions::AllExcept(actor.session_id),
            (true, false) => RevokeSessions::All,
        };
        let password_changed = password_hash.is_some();
        let changes = UserChanges {
            email_verified: new_email.is_some().then_some(false),
            email: new_email,
            password_hash,
            role: input.role,
            is_active: input.is_active,
        };
        let updated = self
            .repos
            .users
            .update(id, &changes, revoke, Utc::now())
            .await?;
        self.record_changes(ChangedBy::Admin(actor), &target, &updated, password_changed)
            .await;
        Ok(updated)
    }

    /// Admin: deletes a user (their sessions go with them). The last active
    /// admin cannot be deleted. Needs a recent authentication of the admin.
    #[tracing::instrument(skip_all, fields(user_id = id))]
    pub async fn delete(&self, actor: &Actor, id: i64) -> ServiceResult<User> {
        actor.require_admin()?;
        self.step_up.require(actor).await?;
        let deleted = self.repos.users.delete(id).await?;
        self.record_deleted(ChangedBy::Admin(actor), &deleted);
        Ok(deleted)
    }

    /// Operator: makes an existing account an active admin. `Ok(None)` when no
    /// account has this email (then use [`UserService::create_admin`]).
    pub async fn promote_to_admin(&self, email: &str) -> ServiceResult<Option<User>> {
        let email = Self::parse_email(email)?;
        let Some(user) = self.repos.users.find_by_email(&email).await? else {
            return Ok(None);
        };
        if user.is_active_admin() {
            return Ok(Some(user));
        }
        let changes = UserChanges {
            role: Some(Role::Admin),
            is_active: Some(true),
            ..UserChanges::default()
        };
        let promoted = self
            .repos
            .users
            .update(user.id, &changes, RevokeSessions::None, Utc::now())
            .await?;
        self.record_changes(ChangedBy::Operator, &user, &promoted, false)
            .await;
        Ok(Some(promoted))
    }

    /// Operator: creates an active admin (CLI `create-admin`, `ADMIN_EMAIL`),
    /// with the same password policy as everyone else.
    pub async fn create_admin(&self, email: &str, password: SecretString) -> ServiceResult<User> {
        let email = Self::parse_email(email)?;
        let password_hash = self.checked_hash(&password, &email, "password").await?;
        // The operator vouches for the address.
        let user = self
            .insert(&email, &password_hash, Role::Admin, true, true)
            .await?;
        self.record_created(ChangedBy::Operator, &user);
        Ok(user)
    }

    /// Operator: ensures an admin with this email exists. Promotes an existing
    /// account (its password is never overwritten) or creates one.
    pub async fn ensure_admin(
        &self,
        email: &str,
        password: SecretString,
    ) -> ServiceResult<(User, bool)> {
        if let Some(user) = self.promote_to_admin(email).await? {
            return Ok((user, false));
        }
        match self.create_admin(email, password.clone()).await {
            Ok(user) => Ok((user, true)),
            // Another instance created it between our lookup and insert.
            Err(ServiceError::EmailTaken) => match self.promote_to_admin(email).await? {
                Some(user) => Ok((user, false)),
                None => Err(ServiceError::EmailTaken),
            },
            Err(err) => Err(err),
        }
    }
}

//! User management: registration, self-service changes, and the admin
//! operations, with the rules that guard them (registration switch, who may
//! grant roles, current-password confirmation, the last-admin rule).

use super::{passwords::PasswordHasher, Actor, ServiceError, ServiceResult};
use crate::{
    domain::{Email, PasswordPolicy, Role},
    repositories::{NewUser, Repositories, RevokeSessions, User, UserChanges, UserFilter},
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
}

impl UserService {
    /// Builds the service.
    pub fn new(
        repos: Repositories,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        allow_registration: bool,
    ) -> Self {
        UserService {
            repos,
            hasher,
            policy,
            allow_registration,
        }
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

    /// Applies the password policy, then hashes (never hash what the policy refuses).
    async fn checked_hash(
        &self,
        password: &SecretString,
        email: &Email,
        field: &'static str,
    ) -> ServiceResult<String> {
        self.policy
            .check(password.expose_secret(), Some(email.local_part()))
            .map_err(|e| ServiceError::invalid(field, e.to_string()))?;
        Ok(self.hasher.hash(password.clone()).await?)
    }

    /// Creates an account. Anonymous callers may only sign up as an active
    /// regular user, and only while registration is open; admins may choose
    /// the role and the activity.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        caller: Option<&Actor>,
        input: NewUserInput,
    ) -> ServiceResult<User> {
        let by_admin = caller.is_some_and(Actor::is_admin);
        if !by_admin {
            if input.role.is_some_and(|r| r != Role::Regular) || input.is_active == Some(false) {
                return Err(ServiceError::Forbidden);
            }
            if !self.allow_registration {
                return Err(ServiceError::RegistrationDisabled);
            }
        }
        let email = Self::parse_email(&input.email)?;
        let password_hash = self
            .checked_hash(&input.password, &email, "password")
            .await?;
        Ok(self
            .repos
            .users
            .create(NewUser {
                email: &email,
                password_hash: &password_hash,
                role: input.role.unwrap_or_default(),
                is_active: input.is_active.unwrap_or(true),
                now: Utc::now(),
            })
            .await?)
    }

    /// Changes the caller's own account. Changing the email or the password
    /// requires the current password; a password change signs out every other
    /// session; nobody changes their own role.
    #[tracing::instrument(skip_all, fields(user_id = actor.user.id))]
    pub async fn update_me(&self, actor: &Actor, input: UpdateMeInput) -> ServiceResult<User> {
        let me = &actor.user;
        if input.role.is_some_and(|r| r != me.role) {
            return Err(ServiceError::CannotChangeOwnRole);
        }
        let new_email = input.email.as_deref().map(Self::parse_email).transpose()?;
        if new_email.is_none() && input.password.is_none() {
            return Ok(me.clone());
        }
        let current = input
            .current_password
            .ok_or(ServiceError::missing("current_password"))?;
        let effective_email = match &new_email {
            Some(email) => email.clone(),
            None => Self::parse_email(&me.email)?,
        };
        if let Some(password) = &input.password {
            self.policy
                .check(password.expose_secret(), Some(effective_email.local_part()))
                .map_err(|e| ServiceError::invalid("password", e.to_string()))?;
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
        let changes = UserChanges {
            email: new_email,
            password_hash,
            ..UserChanges::default()
        };
        Ok(self
            .repos
            .users
            .update(me.id, &changes, revoke, false, Utc::now())
            .await?)
    }

    /// Deletes the caller's own account after checking their password (the last
    /// active admin cannot).
    #[tracing::instrument(skip_all, fields(user_id = actor.user.id))]
    pub async fn delete_me(
        &self,
        actor: &Actor,
        current_password: SecretString,
    ) -> ServiceResult<User> {
        let verification = self
            .hasher
            .verify(current_password, Some(actor.user.password_hash.clone()))
            .await?;
        if !verification.matches {
            return Err(ServiceError::IncorrectPassword);
        }
        Ok(self.repos.users.delete(actor.user.id).await?)
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
        filter: UserFilter,
        offset: i64,
        limit: i64,
    ) -> ServiceResult<UserPage> {
        actor.require_admin()?;
        let (users, total) = self.repos.users.list(&filter, offset, limit).await?;
        Ok(UserPage { users, total })
    }

    /// Admin: changes any user. A new password or a deactivation signs the
    /// user out everywhere (except the admin's own session when they edit
    /// themselves); demoting or deactivating the last active admin is refused.
    #[tracing::instrument(skip_all, fields(user_id = id))]
    pub async fn update(
        &self,
        actor: &Actor,
        id: i64,
        input: UpdateUserInput,
    ) -> ServiceResult<User> {
        actor.require_admin()?;
        let target = self
            .repos
            .users
            .find_by_id(id)
            .await?
            .ok_or(ServiceError::UserNotFound)?;
        let new_email = input.email.as_deref().map(Self::parse_email).transpose()?;
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
        let changes = UserChanges {
            email: new_email,
            password_hash,
            role: input.role,
            is_active: input.is_active,
        };
        let guard = changes.removes_admin_power();
        Ok(self
            .repos
            .users
            .update(id, &changes, revoke, guard, Utc::now())
            .await?)
    }

    /// Admin: deletes a user (their sessions go with them). The last active
    /// admin cannot be deleted.
    #[tracing::instrument(skip_all, fields(user_id = id))]
    pub async fn delete(&self, actor: &Actor, id: i64) -> ServiceResult<User> {
        actor.require_admin()?;
        Ok(self.repos.users.delete(id).await?)
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
        Ok(Some(
            self.repos
                .users
                .update(user.id, &changes, RevokeSessions::None, false, Utc::now())
                .await?,
        ))
    }

    /// Operator: creates an active admin (CLI `create-admin`, `ADMIN_EMAIL`),
    /// with the same password policy as everyone else.
    pub async fn create_admin(&self, email: &str, password: SecretString) -> ServiceResult<User> {
        let email = Self::parse_email(email)?;
        let password_hash = self.checked_hash(&password, &email, "password").await?;
        Ok(self
            .repos
            .users
            .create(NewUser {
                email: &email,
                password_hash: &password_hash,
                role: Role::Admin,
                is_active: true,
                now: Utc::now(),
            })
            .await?)
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

//! Sign-in, token refresh with rotation and reuse detection, sign-out, and the
//! per-request authentication check.

use super::{
    passwords::PasswordHasher,
    tokens::{hash_refresh_token, plausible_refresh_token, TokenError, TokenService},
    Actor, ClientInfo, ServiceError, ServiceResult,
};
use crate::{
    domain::{Email, MAX_PASSWORD_CHARS},
    repositories::{NewSession, Repositories, Rotation},
};
use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// The tokens handed out by a sign-in or a refresh.
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

/// Authentication: sessions and tokens.
#[derive(Clone)]
pub struct AuthService {
    repos: Repositories,
    hasher: PasswordHasher,
    tokens: TokenService,
    refresh_ttl: Duration,
}

impl AuthService {
    /// Builds the service.
    pub fn new(
        repos: Repositories,
        hasher: PasswordHasher,
        tokens: TokenService,
        refresh_ttl: Duration,
    ) -> Self {
        AuthService {
            repos,
            hasher,
            tokens,
            refresh_ttl,
        }
    }

    fn refresh_expiry(&self, now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        now + chrono::Duration::from_std(self.refresh_ttl).unwrap_or(chrono::Duration::days(7))
    }

    /// Checks the credentials and opens a new session (one per sign-in, so
    /// several devices coexist). Unknown email and wrong password fail the same
    /// way and take the same time (a dummy hash is verified for unknown emails).
    #[tracing::instrument(skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        // No account can have an over-long password: refuse before hashing.
        if password
            .expose_secret()
            .chars()
            .take(MAX_PASSWORD_CHARS + 1)
            .count()
            > MAX_PASSWORD_CHARS
        {
            return Err(ServiceError::InvalidCredentials);
        }
        let user = match Email::parse(email) {
            Ok(email) => self.repos.users.find_by_email(&email).await?,
            Err(_) => None,
        };
        let verification = self
            .hasher
            .verify(
                password.clone(),
                user.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        let user = match user {
            Some(user) if verification.matches => user,
            _ => return Err(ServiceError::InvalidCredentials),
        };
        if !user.is_active {
            return Err(ServiceError::InactiveUser);
        }
        if verification.needs_rehash {
            // Upgrading the stored hash must never fail the sign-in.
            match self.hasher.hash(password).await {
                Ok(hash) => {
                    if let Err(err) = self
                        .repos
                        .users
                        .set_password_hash(user.id, &hash, Utc::now())
                        .await
                    {
                        tracing::warn!(user_id = user.id, error = %err, "could not store the upgraded password hash");
                    }
                }
                Err(err) => {
                    tracing::warn!(user_id = user.id, error = %err, "could not rehash the password")
                }
            }
        }
        self.open_session(user.id, client).await
    }

    /// Opens a session for a user whose identity is already proven (sign-in, or
    /// registration through the pages) and returns its tokens.
    pub async fn open_session(
        &self,
        user_id: i64,
        client: &ClientInfo,
    ) -> ServiceResult<TokenPair> {
        let now = Utc::now();
        let refresh = self.tokens.new_refresh_token();
        let session_id = self
            .repos
            .sessions
            .create(NewSession {
                user_id,
                refresh_token_hash: &refresh.hash,
                now,
                expires_at: self.refresh_expiry(now),
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
    /// rotated out atomically; presenting it again later is reuse, which
    /// revokes the whole session (and with it the newest tokens).
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> ServiceResult<TokenPair> {
        if refresh_token.contains('.') {
            // Refresh tokens never contain a dot; JWTs do.
            return Err(match self.tokens.verify_access(refresh_token) {
                Ok(_) | Err(TokenError::WrongType) => ServiceError::InvalidTokenType,
                Err(TokenError::Invalid) => ServiceError::InvalidRefreshToken,
            });
        }
        if !plausible_refresh_token(refresh_token) {
            return Err(ServiceError::InvalidRefreshToken);
        }
        let now = Utc::now();
        let next = self.tokens.new_refresh_token();
        let rotation = self
            .repos
            .sessions
            .rotate(
                &hash_refresh_token(refresh_token),
                &next.hash,
                now,
                self.refresh_expiry(now),
            )
            .await?;
        match rotation {
            Rotation::Rotated {
                session_id,
                user_id,
            } => Ok(TokenPair {
                access_token: self.tokens.issue_access(user_id, session_id, now)?,
                refresh_token: next.token,
                expires_in: self.tokens.access_ttl_seconds(),
                session_id,
            }),
            Rotation::ReuseDetected {
                session_id,
                user_id,
            } => {
                tracing::warn!(
                    session_id,
                    user_id,
                    "refresh token reuse detected: session revoked"
                );
                Err(ServiceError::InvalidRefreshToken)
            }
            Rotation::Invalid => Err(ServiceError::InvalidRefreshToken),
        }
    }

    /// Resolves an access token to the caller. Every call reads the session and
    /// the user in one query, so logout, deactivation, deletion and role
    /// changes take effect on the next request.
    pub async fn authenticate(&self, access_token: &str) -> ServiceResult<Actor> {
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
        Ok(Actor {
            user: found.user,
            session_id: claims.sid,
        })
    }

    /// Ends the caller's session: its access and refresh tokens stop working.
    #[tracing::instrument(skip_all)]
    pub async fn logout(&self, access_token: &str) -> ServiceResult<()> {
        let actor = self.authenticate(access_token).await?;
        if self
            .repos
            .sessions
            .revoke(actor.session_id, Utc::now())
            .await?
        {
            Ok(())
        } else {
            Err(ServiceError::TokenAlreadyInvalidated)
        }
    }

    /// Ends a session the caller is authenticated by (sign-out from the pages).
    #[tracing::instrument(skip_all)]
    pub async fn logout_session(&self, actor: &Actor) -> ServiceResult<()> {
        self.repos
            .sessions
            .revoke(actor.session_id, Utc::now())
            .await?;
        Ok(())
    }
}

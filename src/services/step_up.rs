//! Step-up confirmation ("sudo mode"): sensitive actions (changing the
//! email or password, turning a second factor on or off, new recovery codes,
//! deleting the account, an admin's changes to other accounts) need the
//! session to have authenticated within `STEP_UP_MINUTES`. The sign-in
//! counts; later, `AuthService::confirm` (the password, or a second-factor
//! code) renews it. The moment is stored on the session in the database and
//! read from there (never from the authentication cache), so a confirmation
//! counts on every instance at once.

use super::{Actor, ServiceError, ServiceResult};
use crate::repositories::Repositories;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The step-up rule over the sessions' `authenticated_at`.
#[derive(Clone)]
pub struct StepUp {
    repos: Repositories,
    window: chrono::Duration,
}

impl StepUp {
    /// Sessions authenticated less than `window` ago may act.
    pub fn new(repos: Repositories, window: Duration) -> Self {
        StepUp {
            repos,
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::minutes(10)),
        }
    }

    /// Until when the caller's session may take sensitive actions without
    /// a new confirmation; `None` when it needs one now.
    pub async fn fresh_until(&self, actor: &Actor) -> ServiceResult<Option<DateTime<Utc>>> {
        let now = Utc::now();
        let authenticated = self
            .repos
            .sessions
            .authenticated_at(actor.session_id, actor.user.id, now)
            .await?;
        Ok(authenticated
            .map(|at| at + self.window)
            .filter(|until| *until > now))
    }

    /// Whether the caller's session must confirm before a sensitive action.
    pub async fn is_needed(&self, actor: &Actor) -> ServiceResult<bool> {
        Ok(self.fresh_until(actor).await?.is_none())
    }

    /// Fails with [`ServiceError::StepUpRequired`] unless the caller's
    /// session authenticated recently enough.
    pub async fn require(&self, actor: &Actor) -> ServiceResult<()> {
        match self.fresh_until(actor).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::StepUpRequired),
        }
    }

    /// Records that the caller just proved who they are on this session.
    pub(super) async fn renew(&self, actor: &Actor) -> ServiceResult<()> {
        let renewed = self
            .repos
            .sessions
            .mark_authenticated(actor.session_id, actor.user.id, Utc::now())
            .await?;
        if renewed {
            Ok(())
        } else {
            Err(ServiceError::InvalidToken)
        }
    }
}

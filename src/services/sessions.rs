//! Device sessions: users see and end their own sessions; admins see and end
//! anyone's. Ending a session makes its access and refresh tokens stop
//! working at once: every request checks the session, and ending one
//! drops it from the authentication cache of every instance
//! (`repositories::cache`).

use super::{
    audit::{AuditEntry, AuditLog},
    Actor, ServiceError, ServiceResult,
};
use crate::{
    domain::{AuditEventType, SessionView},
    repositories::{Repositories, SessionRecord},
};
use chrono::Utc;

/// Session management.
#[derive(Clone)]
pub struct SessionService {
    repos: Repositories,
    audit: AuditLog,
}

fn view(record: SessionRecord, current_session: i64) -> SessionView {
    SessionView {
        current: record.id == current_session,
        id: record.id,
        created_at: record.created_at,
        last_used_at: record.last_used_at,
        expires_at: record.expires_at,
        user_agent: record.user_agent,
        ip: record.ip,
    }
}

impl SessionService {
    /// Builds the service.
    pub fn new(repos: Repositories, audit: AuditLog) -> Self {
        SessionService { repos, audit }
    }

    /// The caller's live sessions, newest first; theirs is marked `current`.
    pub async fn list_mine(&self, actor: &Actor) -> ServiceResult<Vec<SessionView>> {
        let records = self
            .repos
            .sessions
            .list_live(actor.user.id, Utc::now())
            .await?;
        Ok(records
            .into_iter()
            .map(|r| view(r, actor.session_id))
            .collect())
    }

    /// Ends one of the caller's sessions. Another user's session id is
    /// indistinguishable from an unknown one.
    #[tracing::instrument(skip_all, fields(user_id = actor.user.id, session_id))]
    pub async fn revoke_mine(&self, actor: &Actor, session_id: i64) -> ServiceResult<()> {
        if self
            .repos
            .sessions
            .revoke_for_user(session_id, actor.user.id, Utc::now())
            .await?
        {
            self.audit.record(
                AuditEntry::by(actor, AuditEventType::SessionRevoked, actor.user.id)
                    .detail("session_id", session_id)
                    .detail("count", 1),
            );
            Ok(())
        } else {
            Err(ServiceError::SessionNotFound)
        }
    }

    /// Ends every session of the caller except the current one; returns how many.
    #[tracing::instrument(skip_all, fields(user_id = actor.user.id))]
    pub async fn revoke_my_others(&self, actor: &Actor) -> ServiceResult<u64> {
        let count = self
            .repos
            .sessions
            .revoke_all_for_user(actor.user.id, Some(actor.session_id), Utc::now())
            .await?;
        if count > 0 {
            self.audit.record(
                AuditEntry::by(actor, AuditEventType::SessionRevoked, actor.user.id)
                    .detail("count", count)
                    .detail("all_others", true),
            );
        }
        Ok(count)
    }

    /// Admin: a user's live sessions.
    pub async fn list_for_user(
        &self,
        actor: &Actor,
        user_id: i64,
    ) -> ServiceResult<Vec<SessionView>> {
        actor.require_admin()?;
        self.require_user(user_id).await?;
        let records = self.repos.sessions.list_live(user_id, Utc::now()).await?;
        Ok(records
            .into_iter()
            .map(|r| view(r, actor.session_id))
            .collect())
    }

    /// Admin: signs a user out everywhere; returns how many sessions ended.
    #[tracing::instrument(skip_all, fields(user_id))]
    pub async fn revoke_all_for_user(&self, actor: &Actor, user_id: i64) -> ServiceResult<u64> {
        actor.require_admin()?;
        self.require_user(user_id).await?;
        let count = self
            .repos
            .sessions
            .revoke_all_for_user(user_id, None, Utc::now())
            .await?;
        self.audit.record(
            AuditEntry::by(actor, AuditEventType::SignedOutEverywhere, user_id)
                .detail("count", count),
        );
        Ok(count)
    }

    async fn require_user(&self, user_id: i64) -> ServiceResult<()> {
        match self.repos.users.find_by_id(user_id).await? {
            Some(_) => Ok(()),
            None => Err(ServiceError::UserNotFound),
        }
    }
}

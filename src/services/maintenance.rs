//! Housekeeping the server does by itself: expired and revoked sessions,
//! throttling counters nobody reads any more, emailed links a week past
//! their expiry, and audit events past their
//! retention are deleted every `MAINTENANCE_INTERVAL_SECONDS`. Every
//! instance runs it; the deletes are idempotent, so several instances on one
//! database only repeat each other's work.

use super::{throttle::Throttle, ServiceResult};
use crate::repositories::Repositories;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub sessions: u64,
    pub throttle_events: u64,
    pub audit_events: u64,
    pub email_tokens: u64,
    /// Expired two-factor challenges (sign-in steps, recovery codes waiting
    /// to be shown).
    pub mfa_challenges: u64,
    /// Expired passkey ceremonies (WebAuthn challenges never answered).
    pub passkey_ceremonies: u64,
}

/// Expired emailed links are kept this long, so a late click is told
/// "expired" rather than "not valid".
const EXPIRED_LINKS_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// The purge rules.
#[derive(Clone)]
pub struct Maintenance {
    repos: Repositories,
    throttle: Throttle,
    /// A revoked session is kept while its last access token could still be
    /// presented, so that token gets "Token already invalidated".
    access_ttl: Duration,
    audit_retention: Option<Duration>,
}

fn ago(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Maintenance {
    /// Builds the rules.
    pub fn new(
        repos: Repositories,
        throttle: Throttle,
        access_ttl: Duration,
        audit_retention: Option<Duration>,
    ) -> Self {
        Maintenance {
            repos,
            throttle,
            access_ttl,
            audit_retention,
        }
    }

    /// Whether the database answers (the readiness probe).
    pub async fn database_ready(&self) -> ServiceResult<()> {
        Ok(self.repos.health.ping().await?)
    }

    /// How many sessions are live now (the `auth_active_sessions` gauge).
    pub async fn live_sessions(&self) -> ServiceResult<i64> {
        Ok(self.repos.sessions.count_live(Utc::now()).await?)
    }

    /// Deletes what has outlived its use, as of `now`.
    pub async fn purge(&self, now: DateTime<Utc>) -> ServiceResult<PurgeReport> {
        let sessions = self
            .repos
            .sessions
            .purge(now, ago(now, self.access_ttl))
            .await?;
        let throttle_events = self
            .repos
            .throttle
            .purge(self.throttle.horizon(now))
            .await?;
        let audit_events = match self.audit_retention {
            Some(retention) => self.repos.audit.purge(ago(now, retention)).await?,
            None => 0,
        };
        let email_tokens = self
            .repos
            .email_tokens
            .purge(ago(now, EXPIRED_LINKS_KEPT))
            .await?;
        let mfa_challenges = self.repos.second_factors.purge(now).await?;
        let passkey_ceremonies = self.repos.passkeys.purge_ceremonies(now).await?;
        Ok(PurgeReport {
            sessions,
            throttle_events,
            audit_events,
            email_tokens,
            mfa_challenges,
            passkey_ceremonies,
        })
    }

    /// Purges now and then every `interval`, until the runtime stops.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.purge(Utc::now()).await {
                    Ok(report) if report != PurgeReport::default() => {
                        tracing::info!(
                            sessions = report.sessions,
                            throttle_events = report.throttle_events,
                            audit_events = report.audit_events,
                            email_tokens = report.email_tokens,
                            mfa_challenges = report.mfa_challenges,
                            passkey_ceremonies = report.passkey_ceremonies,
                            "purged expired rows"
                        )
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!(error = %err, "purge failed; will retry"),
                }
            }
        })
    }
}

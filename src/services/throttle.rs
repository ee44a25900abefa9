//! Brute-force throttling. Counters live in the database, so every instance
//! sees the same counts; a refused attempt costs two indexed reads and no
//! password hashing.
//!
//! - Sign-in, per account: after `LOGIN_MAX_FAILURES` failures within
//!   `LOGIN_WINDOW_MINUTES`, each further attempt must wait
//!   `30 s x 2^(failures - limit)` after the last failure, capped at 15
//!   minutes. Failures older than the window stop counting, so nothing is
//!   ever locked for good; a successful sign-in clears the account's count.
//!   Unknown accounts are counted exactly like existing ones.
//! - Sign-in, per client address: at most `LOGIN_IP_MAX_FAILURES_PER_HOUR`
//!   failures per hour across accounts.
//! - Second-factor codes, per user and per address: the same limits and
//!   backoff as sign-ins, counted apart (`second_factor`).
//! - Sign-up per address (`REGISTRATION_MAX_PER_IP_PER_HOUR`) and invalid
//!   refresh tokens per address (`REFRESH_IP_MAX_FAILURES_PER_HOUR`).
//!
//! A limit of 0 turns that check off.

use super::{ServiceError, ServiceResult};
use crate::{
    config::ThrottleSettings,
    domain::Email,
    repositories::{ThrottleCount, ThrottleKind, ThrottleRepository},
};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::{sync::Arc, time::Duration};

/// The first delay once an account reaches its failure limit.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);
/// The longest delay an account can be asked to wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
const HOUR: Duration = Duration::from_secs(3600);

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope {
    Account,
    Ip,
}

impl ThrottleScope {
    /// The form recorded in audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            ThrottleScope::Account => "account",
            ThrottleScope::Ip => "ip",
        }
    }
}

/// A refusal: how long to wait and which limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Whole seconds until an attempt will be considered again (at least 1).
    pub retry_after: u64,
    pub scope: ThrottleScope,
}

impl From<Throttled> for ServiceError {
    fn from(t: Throttled) -> Self {
        ServiceError::Throttled {
            retry_after: t.retry_after,
        }
    }
}

/// The delay an account must wait after `failures` failures in the window.
pub fn backoff(failures: i64, limit: u32) -> Option<Duration> {
    if limit == 0 || failures < i64::from(limit) {
        return None;
    }
    let doublings = u32::try_from(failures - i64::from(limit))
        .unwrap_or(u32::MAX)
        .min(16);
    Some(
        FIRST_BACKOFF
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF),
    )
}

/// The key an account is counted under: a hash of its canonical email (or
/// of the trimmed, lower-cased input when it is not a valid email), so the
/// table holds no addresses and unknown accounts count like real ones.
pub fn account_key(email: &str) -> String {
    let canonical = match Email::parse(email) {
        Ok(email) => email.as_str().to_owned(),
        Err(_) => email.trim().to_lowercase(),
    };
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// The key a user's wrong second-factor codes are counted under.
fn second_factor_key(user_id: i64) -> String {
    format!("user:{user_id}")
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Seconds from `now` until `at`, rounded up; `None` when `at` has passed.
fn seconds_until(at: DateTime<Utc>, now: DateTime<Utc>) -> Option<u64> {
    let millis = (at - now).num_milliseconds();
    (millis > 0).then(|| (millis as u64).div_ceil(1000))
}

/// The throttling rules over the shared counters.
#[derive(Clone)]
pub struct Throttle {
    repo: Arc<dyn ThrottleRepository>,
    settings: ThrottleSettings,
}

impl Throttle {
    /// Builds the rules.
    pub fn new(repo: Arc<dyn ThrottleRepository>, settings: ThrottleSettings) -> Self {
        Throttle { repo, settings }
    }

    /// Per-address limit: `limit` events of `kind` per hour.
    async fn check_ip(
        &self,
        kind: ThrottleKind,
        ip: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> ServiceResult<Option<Throttled>> {
        let Some(ip) = ip.filter(|_| limit > 0) else {
            return Ok(None);
        };
        let ThrottleCount { count, oldest, .. } = self
            .repo
            .count_for_ip(kind, ip, now - to_chrono(HOUR))
            .await?;
        if count < i64::from(limit) {
            return Ok(None);
        }
        // The hour slides: the oldest counted event drops out first.
        let free_at = oldest.unwrap_or(now) + to_chrono(HOUR);
        Ok(Some(Throttled {
            retry_after: seconds_until(free_at, now).unwrap_or(1),
            scope: ThrottleScope::Ip,
        }))
    }

    /// Whether a sign-in for `account` from `ip` may be tried now.
    pub async fn check_login(
        &self,
        account: &str,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<Result<(), Throttled>> {
        self.check_attempt(ThrottleKind::Login, account, ip, now)
            .await
    }

    /// The per-account backoff and per-address limit of one kind of attempt
    /// (sign-ins, second-factor codes), with the sign-in limits.
    async fn check_attempt(
        &self,
        kind: ThrottleKind,
        account: &str,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<Result<(), Throttled>> {
        let limits = &self.settings;
        let mut refusal = self
            .check_ip(kind, ip, limits.login_ip_max_failures_per_hour, now)
            .await?;
        if limits.login_max_failures > 0 {
            let ThrottleCount { count, newest, .. } = self
                .repo
                .count_for_account(kind, account, now - to_chrono(limits.login_window))
                .await?;
            if let (Some(delay), Some(last)) = (backoff(count, limits.login_max_failures), newest) {
                if let Some(wait) = seconds_until(last + to_chrono(delay), now) {
                    if refusal.is_none_or(|r| r.retry_after < wait) {
                        refusal = Some(Throttled {
                            retry_after: wait,
                            scope: ThrottleScope::Account,
                        });
                    }
                }
            }
        }
        Ok(refusal.map_or(Ok(()), Err))
    }

    /// Whether a second-factor code for `user_id` from `ip` may be tried
    /// now: wrong codes back off exactly like wrong passwords.
    pub async fn check_second_factor(
        &self,
        user_id: i64,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<Result<(), Throttled>> {
        self.check_attempt(
            ThrottleKind::SecondFactor,
            &second_factor_key(user_id),
            ip,
            now,
        )
        .await
    }

    /// Counts a wrong second-factor code against the user and the address.
    pub async fn second_factor_failed(
        &self,
        user_id: i64,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        self.attempt_failed(
            ThrottleKind::SecondFactor,
            &second_factor_key(user_id),
            ip,
            now,
        )
        .await
    }

    /// A right code forgets the user's wrong ones.
    pub async fn second_factor_succeeded(&self, user_id: i64) -> ServiceResult<()> {
        self.attempt_succeeded(ThrottleKind::SecondFactor, &second_factor_key(user_id))
            .await
    }

    /// Counts a failed sign-in against the account and the address.
    pub async fn login_failed(
        &self,
        account: &str,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        self.attempt_failed(ThrottleKind::Login, account, ip, now)
            .await
    }

    /// Whether a sign-in that names no account yet (a passkey's) may be
    /// tried from `ip` now: the per-address limit of sign-ins.
    pub async fn check_address(
        &self,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<Result<(), Throttled>> {
        let limit = self.settings.login_ip_max_failures_per_hour;
        Ok(self
            .check_ip(ThrottleKind::Login, ip, limit, now)
            .await?
            .map_or(Ok(()), Err))
    }

    /// Counts a failed sign-in that named no known account against the address.
    pub async fn address_failed(&self, ip: Option<&str>, now: DateTime<Utc>) -> ServiceResult<()> {
        if self.settings.login_ip_max_failures_per_hour == 0 || ip.is_none() {
            return Ok(());
        }
        Ok(self.repo.record(ThrottleKind::Login, None, ip, now).await?)
    }

    /// A successful sign-in forgets the account's failures.
    pub async fn login_succeeded(&self, account: &str) -> ServiceResult<()> {
        self.attempt_succeeded(ThrottleKind::Login, account).await
    }

    async fn attempt_failed(
        &self,
        kind: ThrottleKind,
        account: &str,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        if self.settings.login_max_failures == 0
            && self.settings.login_ip_max_failures_per_hour == 0
        {
            return Ok(());
        }
        Ok(self.repo.record(kind, Some(account), ip, now).await?)
    }

    async fn attempt_succeeded(&self, kind: ThrottleKind, account: &str) -> ServiceResult<()> {
        if self.settings.login_max_failures == 0 {
            return Ok(());
        }
        Ok(self.repo.clear_account(kind, account).await?)
    }

    /// Refuses a request of `kind` when the address has reached its hourly
    /// `limit`; otherwise counts it.
    async fn ip_attempt(
        &self,
        kind: ThrottleKind,
        ip: Option<&str>,
        limit: u32,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        if let Some(throttled) = self.check_ip(kind, ip, limit, now).await? {
            return Err(throttled.into());
        }
        if limit > 0 && ip.is_some() {
            self.repo.record(kind, None, ip, now).await?;
        }
        Ok(())
    }

    /// Refuses a sign-up when the address has reached its hourly limit;
    /// otherwise counts it.
    pub async fn registration_attempt(
        &self,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> ServiceResult<()> {
        let limit = self.settings.registration_max_per_ip_per_hour;
        self.ip_attempt(ThrottleKind::Registration, ip, limit, now)
            .await
    }

    /// Refuses a request that sends mail (password reset, verification) when
    /// the address has reached its hourly limit; otherwise counts it.
    pub async fn email_request(&self, ip: Option<&str>, now: DateTime<Utc>) -> ServiceResult<()> {
        let limit = self.settings.email_ip_max_per_hour;
        self.ip_attempt(ThrottleKind::Email, ip, limit, now).await
    }

    /// Whether a message may go to this account now (at most one per
    /// `EMAIL_REQUEST_INTERVAL_SECONDS`); counts it when it may.
    pub async fn email_to_account(
        &self,
        account: &str,
        now: DateTime<Utc>,
    ) -> ServiceResult<Result<(), Throttled>> {
        let interval = self.settings.email_account_interval;
        if interval.is_zero() {
            return Ok(Ok(()));
        }
        let ThrottleCount { newest, .. } = self
            .repo
            .count_for_account(ThrottleKind::Email, account, now - to_chrono(interval))
            .await?;
        if let Some(wait) = newest.and_then(|last| seconds_until(last + to_chrono(interval), now)) {
            return Ok(Err(Throttled {
                retry_after: wait,
                scope: ThrottleScope::Account,
            }));
        }
        self.repo
            .record(ThrottleKind::Email, Some(account), None, now)
            .await?;
        Ok(Ok(()))
    }

    /// Refuses a refresh when the address presented too many invalid tokens.
    pub async fn check_refresh(&self, ip: Option<&str>, now: DateTime<Utc>) -> ServiceResult<()> {
        let limit = self.settings.refresh_ip_max_failures_per_hour;
        match self.check_ip(ThrottleKind::Refresh, ip, limit, now).await? {
            Some(throttled) => Err(throttled.into()),
            None => Ok(()),
        }
    }

    /// Counts an invalid refresh token against the address.
    pub async fn refresh_failed(&self, ip: Option<&str>, now: DateTime<Utc>) -> ServiceResult<()> {
        if self.settings.refresh_ip_max_failures_per_hour == 0 || ip.is_none() {
            return Ok(());
        }
        Ok(self
            .repo
            .record(ThrottleKind::Refresh, None, ip, now)
            .await?)
    }

    /// The oldest counter anyone still reads: older rows can go.
    pub fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let settings = &self.settings;
        now - to_chrono(
            settings
                .login_window
                .max(HOUR)
                .max(settings.email_account_interval),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_the_limit_doubles_and_is_capped() {
        assert_eq!(backoff(4, 5), None);
        assert_eq!(backoff(5, 5), Some(Duration::from_secs(30)));
        assert_eq!(backoff(6, 5), Some(Duration::from_secs(60)));
        assert_eq!(backoff(9, 5), Some(Duration::from_secs(480)));
        assert_eq!(backoff(10, 5), Some(MAX_BACKOFF));
        assert_eq!(backoff(1_000_000, 5), Some(MAX_BACKOFF));
        assert_eq!(backoff(1_000, 0), None, "0 means unlimited");
    }

    #[test]
    fn account_keys_are_hashes_of_the_canonical_email() {
        assert_eq!(
            account_key(" Alice@Example.COM "),
            account_key("alice@example.com")
        );
        assert_ne!(
            account_key("alice@example.com"),
            account_key("bob@example.com")
        );
        assert_eq!(account_key("alice@example.com").len(), 64);
        assert!(!account_key("alice@example.com").contains("alice"));
        assert_eq!(account_key("Not An Email"), account_key("not an email"));
    }

    #[test]
    fn waits_round_up_to_whole_seconds() {
        let now = Utc::now();
        assert_eq!(
            seconds_until(now + chrono::Duration::milliseconds(1), now),
            Some(1)
        );
        assert_eq!(
            seconds_until(now + chrono::Duration::seconds(30), now),
            Some(30)
        );
        assert_eq!(seconds_until(now, now), None);
    }
}

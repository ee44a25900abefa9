//! Security audit events: what happened to an account, by whom, from where.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// The kinds of security event the services record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuditEventType {
    /// A successful sign-in (a new session).
    LoginSucceeded,
    /// A refused sign-in; `details.reason` says why (never the password).
    LoginFailed,
    /// A sign-in refused by brute-force throttling before any password check.
    LoginThrottled,
    /// A session ended by its own user signing out.
    Logout,
    /// An already-rotated refresh token was presented again: the session was revoked.
    RefreshReuseDetected,
    /// A refresh token rotated out moments ago was presented again by a
    /// racing request (another tab, another thread): within the reuse grace,
    /// the session stays and the request got the same successor token.
    RefreshReuseWithinGrace,
    /// The password was changed (by the user or an admin).
    PasswordChanged,
    /// The email address was changed.
    EmailChanged,
    /// The role was changed.
    RoleChanged,
    /// The account was activated.
    UserActivated,
    /// The account was deactivated.
    UserDeactivated,
    /// The account was created (sign-up, admin, or operator).
    UserCreated,
    /// The account was deleted.
    UserDeleted,
    /// A user ended one or more of their own sessions from another device.
    SessionRevoked,
    /// An admin signed the user out everywhere.
    SignedOutEverywhere,
    /// The user confirmed their address with a link sent to it.
    EmailVerified,
    /// A password-reset link was sent to the account's address.
    PasswordResetRequested,
    /// Two-factor authentication was turned on (an authenticator app confirmed).
    MfaEnabled,
    /// The user turned two-factor authentication off.
    MfaDisabled,
    /// A wrong, reused or throttled second-factor code; `details.reason` says which.
    MfaFailed,
    /// A recovery code was used up (`details.left`: how many remain).
    RecoveryCodeUsed,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// An admin turned the user's two-factor authentication off.
    MfaResetByAdmin,
    /// The user confirmed who they are (password or code) for sensitive actions.
    StepUpConfirmed,
    /// A passkey was registered (`details.name`, `details.passkey_id`).
    PasskeyAdded,
    /// A passkey was removed (`details.name`, `details.passkey_id`).
    PasskeyRemoved,
    /// A passkey signed in or passed the second step (`details.during`).
    PasskeyUsed,
    /// A passkey assertion or registration was refused; `details.reason` says why
    /// (`counter_regression`: the authenticator may have been cloned).
    PasskeyFailed,
}

impl AuditEventType {
    /// Every event type, in a stable order (filters list them).
    pub const ALL: [AuditEventType; 28] = [
        AuditEventType::LoginSucceeded,
        AuditEventType::LoginFailed,
        AuditEventType::LoginThrottled,
        AuditEventType::Logout,
        AuditEventType::RefreshReuseDetected,
        AuditEventType::RefreshReuseWithinGrace,
        AuditEventType::PasswordChanged,
        AuditEventType::EmailChanged,
        AuditEventType::RoleChanged,
        AuditEventType::UserActivated,
        AuditEventType::UserDeactivated,
        AuditEventType::UserCreated,
        AuditEventType::UserDeleted,
        AuditEventType::SessionRevoked,
        AuditEventType::SignedOutEverywhere,
        AuditEventType::EmailVerified,
        AuditEventType::PasswordResetRequested,
        AuditEventType::MfaEnabled,
        AuditEventType::MfaDisabled,
        AuditEventType::MfaFailed,
        AuditEventType::RecoveryCodeUsed,
        AuditEventType::RecoveryCodesRegenerated,
        AuditEventType::MfaResetByAdmin,
        AuditEventType::StepUpConfirmed,
        AuditEventType::PasskeyAdded,
        AuditEventType::PasskeyRemoved,
        AuditEventType::PasskeyUsed,
        AuditEventType::PasskeyFailed,
    ];

    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditEventType::LoginSucceeded => "login_succeeded",
            AuditEventType::LoginFailed => "login_failed",
            AuditEventType::LoginThrottled => "login_throttled",
            AuditEventType::Logout => "logout",
            AuditEventType::RefreshReuseDetected => "refresh_reuse_detected",
            AuditEventType::RefreshReuseWithinGrace => "refresh_reuse_within_grace",
            AuditEventType::PasswordChanged => "password_changed",
            AuditEventType::EmailChanged => "email_changed",
            AuditEventType::RoleChanged => "role_changed",
            AuditEventType::UserActivated => "user_activated",
            AuditEventType::UserDeactivated => "user_deactivated",
            AuditEventType::UserCreated => "user_created",
            AuditEventType::UserDeleted => "user_deleted",
            AuditEventType::SessionRevoked => "session_revoked",
            AuditEventType::SignedOutEverywhere => "signed_out_everywhere",
            AuditEventType::EmailVerified => "email_verified",
            AuditEventType::PasswordResetRequested => "password_reset_requested",
            AuditEventType::MfaEnabled => "mfa_enabled",
            AuditEventType::MfaDisabled => "mfa_disabled",
            AuditEventType::MfaFailed => "mfa_failed",
            AuditEventType::RecoveryCodeUsed => "recovery_code_used",
            AuditEventType::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            AuditEventType::MfaResetByAdmin => "mfa_reset_by_admin",
            AuditEventType::StepUpConfirmed => "step_up_confirmed",
            AuditEventType::PasskeyAdded => "passkey_added",
            AuditEventType::PasskeyRemoved => "passkey_removed",
            AuditEventType::PasskeyUsed => "passkey_used",
            AuditEventType::PasskeyFailed => "passkey_failed",
        }
    }

    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            AuditEventType::LoginSucceeded => "Signed in",
            AuditEventType::LoginFailed => "Failed sign-in",
            AuditEventType::LoginThrottled => "Sign-in throttled",
            AuditEventType::Logout => "Signed out",
            AuditEventType::RefreshReuseDetected => "Stolen session token detected",
            AuditEventType::RefreshReuseWithinGrace => "Session refreshed by two requests at once",
            AuditEventType::PasswordChanged => "Password changed",
            AuditEventType::EmailChanged => "Email changed",
            AuditEventType::RoleChanged => "Role changed",
            AuditEventType::UserActivated => "Account activated",
            AuditEventType::UserDeactivated => "Account deactivated",
            AuditEventType::UserCreated => "Account created",
            AuditEventType::UserDeleted => "Account deleted",
            AuditEventType::SessionRevoked => "Device signed out",
            AuditEventType::SignedOutEverywhere => "Signed out everywhere by an admin",
            AuditEventType::EmailVerified => "Email address verified",
            AuditEventType::PasswordResetRequested => "Password reset requested",
            AuditEventType::MfaEnabled => "Two-factor authentication turned on",
            AuditEventType::MfaDisabled => "Two-factor authentication turned off",
            AuditEventType::MfaFailed => "Wrong two-factor code",
            AuditEventType::RecoveryCodeUsed => "Recovery code used",
            AuditEventType::RecoveryCodesRegenerated => "New recovery codes",
            AuditEventType::MfaResetByAdmin => "Two-factor authentication reset by an admin",
            AuditEventType::StepUpConfirmed => "Confirmed for a sensitive action",
            AuditEventType::PasskeyAdded => "Passkey added",
            AuditEventType::PasskeyRemoved => "Passkey removed",
            AuditEventType::PasskeyUsed => "Passkey used",
            AuditEventType::PasskeyFailed => "Passkey refused",
        }
    }
}

impl fmt::Display for AuditEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an audit event type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for AuditEventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditEventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// One audit event as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(as = AuditEvent))]
pub struct AuditEventView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: AuditEventType,
    /// Who did it (`null`: anonymous, or the operator).
    pub actor_user_id: Option<i64>,
    /// Whose account it concerns (`null`: no account matched).
    pub subject_user_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// Event-specific facts (`reason`, `session_id`, `from`/`to`...).
    #[cfg_attr(feature = "ssr", schema(value_type = Object))]
    pub details: serde_json::Value,
    /// Another account, an administrator's, did this to the subject's
    /// account. In the user's own log such an event names neither the
    /// administrator nor their device (`actor_user_id`, `ip` and
    /// `user_agent` are `null`); the admin log keeps them.
    #[serde(default)]
    pub by_administrator: bool,
}

impl AuditEventView {
    /// One line for people: the label and the most telling detail.
    pub fn summary(&self) -> String {
        let detail = |key: &str| self.details.get(key).and_then(|v| v.as_str());
        let label = match self.event_type {
            // Its label already says who.
            AuditEventType::SignedOutEverywhere => self.event_type.label().to_owned(),
            kind if self.by_administrator => format!("{} by an administrator", kind.label()),
            kind => kind.label().to_owned(),
        };
        let label = label.as_str();
        match self.event_type {
            AuditEventType::LoginFailed => match detail("reason") {
                Some("wrong_password") => format!("{label}: wrong password"),
                Some("unknown_account") => format!("{label}: no such account"),
                Some("inactive") => format!("{label}: account deactivated"),
                Some(other) => format!("{label}: {other}"),
                None => label.to_owned(),
            },
            AuditEventType::EmailChanged | AuditEventType::RoleChanged => {
                match (detail("from"), detail("to")) {
                    (Some(from), Some(to)) => format!("{label}: {from} -> {to}"),
                    _ => label.to_owned(),
                }
            }
            AuditEventType::UserCreated
            | AuditEventType::UserDeleted
            | AuditEventType::EmailVerified => match detail("email") {
                Some(email) => format!("{label}: {email}"),
                None => label.to_owned(),
            },
            AuditEventType::LoginThrottled => {
                match self.details.get("retry_after").and_then(|v| v.as_u64()) {
                    Some(seconds) => format!("{label} for {seconds} s"),
                    None => label.to_owned(),
                }
            }
            AuditEventType::SessionRevoked | AuditEventType::SignedOutEverywhere => {
                match self.details.get("count").and_then(|v| v.as_u64()) {
                    Some(1) | None => label.to_owned(),
                    Some(n) => format!("{label} ({n} sessions)"),
                }
            }
            AuditEventType::PasswordChanged => match detail("by") {
                Some("reset") => format!("{label} with a reset link"),
                _ => label.to_owned(),
            },
            AuditEventType::MfaFailed => match detail("reason") {
                Some("wrong_code") => label.to_owned(),
                Some("reused_code") => format!("{label}: a code already used"),
                Some("throttled") => format!("{label}: too many attempts"),
                Some(other) => format!("{label}: {other}"),
                None => label.to_owned(),
            },
            AuditEventType::PasskeyAdded
            | AuditEventType::PasskeyRemoved
            | AuditEventType::PasskeyUsed => match detail("name") {
                Some(name) => format!("{label}: {name}"),
                None => label.to_owned(),
            },
            AuditEventType::PasskeyFailed => match detail("reason") {
                Some("counter_regression") => {
                    format!("{label}: its signature counter went back (a cloned authenticator?)")
                }
                Some(other) => format!("{label}: {}", other.replace('_', " ")),
                None => label.to_owned(),
            },
            AuditEventType::RecoveryCodeUsed => {
                match self.details.get("left").and_then(|v| v.as_u64()) {
                    Some(left) => format!("{label} ({left} left)"),
                    None => label.to_owned(),
                }
            }
            _ => label.to_owned(),
        }
    }
}

/// One page of audit events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEventView>,
    /// Matches before paging.
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_their_text_and_json_forms() {
        for kind in AuditEventType::ALL {
            assert_eq!(kind.as_str().parse::<AuditEventType>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).expect("serialise"),
                serde_json::json!(kind.as_str())
            );
        }
        assert!("LoginSucceeded".parse::<AuditEventType>().is_err());
    }

    #[test]
    fn summaries_show_the_telling_detail() {
        let event = |event_type, details| AuditEventView {
            id: 1,
            at: Utc::now(),
            event_type,
            actor_user_id: None,
            subject_user_id: Some(1),
            ip: None,
            user_agent: None,
            details,
            by_administrator: false,
        };
        use serde_json::json;
        assert_eq!(
            event(
                AuditEventType::LoginFailed,
                json!({"reason": "wrong_password"})
            )
            .summary(),
            "Failed sign-in: wrong password"
        );
        assert_eq!(
            event(
                AuditEventType::RoleChanged,
                json!({"from": "regular", "to": "admin"})
            )
            .summary(),
            "Role changed: regular -> admin"
        );
        assert_eq!(
            event(AuditEventType::SessionRevoked, json!({"count": 3})).summary(),
            "Device signed out (3 sessions)"
        );
        assert_eq!(
            event(AuditEventType::Logout, json!({})).summary(),
            "Signed out"
        );
    }

    #[test]
    fn summaries_say_when_an_administrator_acted() {
        let by_admin = |event_type, details| AuditEventView {
            id: 1,
            at: Utc::now(),
            event_type,
            actor_user_id: Some(7),
            subject_user_id: Some(1),
            ip: None,
            user_agent: None,
            details,
            by_administrator: true,
        };
        use serde_json::json;
        assert_eq!(
            by_admin(
                AuditEventType::RoleChanged,
                json!({"from": "regular", "to": "admin", "by": "admin"})
            )
            .summary(),
            "Role changed by an administrator: regular -> admin"
        );
        assert_eq!(
            by_admin(AuditEventType::PasswordChanged, json!({"by": "admin"})).summary(),
            "Password changed by an administrator"
        );
        assert_eq!(
            by_admin(AuditEventType::SignedOutEverywhere, json!({"count": 2})).summary(),
            "Signed out everywhere by an admin (2 sessions)"
        );
    }
}

use super::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user as shown to clients (API responses and pages). It has no password
/// field by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(as = User))]
pub struct UserView {
    #[cfg_attr(feature = "ssr", schema(minimum = 1))]
    pub id: i64,
    #[cfg_attr(feature = "ssr", schema(format = "email"))]
    pub email: String,
    pub role: Role,
    pub is_active: bool,
    /// Whether the user confirmed the address with a link sent to it.
    pub email_verified: bool,
    /// Whether sign-in asks for a second factor (an authenticator app's
    /// code or a recovery code).
    pub mfa_enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One page of the admin user list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPage {
    pub users: Vec<UserView>,
    /// Matches before paging.
    pub total: i64,
    /// Users skipped before this page.
    pub offset: i64,
    /// Page size.
    pub limit: i64,
}

/// The password policy's verdict on a candidate password, for the live meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordStrength {
    /// 0 (guessable) ..= 4 (very strong).
    pub score: u8,
    /// Whether the policy accepts it.
    pub acceptable: bool,
    /// Why not, or how to improve; empty when there is nothing to say.
    pub feedback: String,
}

/// A live session (one sign-in on one device), as its owner or an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(as = Session))]
pub struct SessionView {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    /// Last token refresh (not every request).
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

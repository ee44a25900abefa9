use super::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A user as shown to clients (API responses and pages). It has no password
/// field by construction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: i64,
    pub email: String,
    pub role: Role,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

//! A passkey as its owner sees it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest passkey name, in characters.
pub const PASSKEY_NAME_MAX_CHARS: usize = 64;

/// Where a passkey lives, as far as the server can tell (the authenticator
/// says whether its credential may be backed up and synced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PasskeyKind {
    /// Synced between devices (a password manager, a phone's or a computer's
    /// passkey store).
    Synced,
    /// Bound to one device (a security key, or an authenticator that never
    /// exports it).
    DeviceBound,
}

impl PasskeyKind {
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            PasskeyKind::Synced => "Synced passkey",
            PasskeyKind::DeviceBound => "Device-bound passkey",
        }
    }
}

/// A registered passkey: metadata only, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(as = Passkey))]
pub struct PasskeyView {
    pub id: i64,
    pub name: String,
    pub kind: PasskeyKind,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A passkey name as given (trimmed), or what is wrong with it.
pub fn parse_passkey_name(raw: &str) -> Result<String, &'static str> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("Give the passkey a name (e.g. \"Laptop\")");
    }
    if name.chars().count() > PASSKEY_NAME_MAX_CHARS {
        return Err("A passkey name has at most 64 characters");
    }
    if name.chars().any(char::is_control) {
        return Err("A passkey name cannot contain control characters");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_passkey_name("  Laptop "), Ok("Laptop".to_owned()));
        assert!(parse_passkey_name("   ").is_err());
        assert!(parse_passkey_name(&"x".repeat(65)).is_err());
        assert_eq!(
            parse_passkey_name(&"é".repeat(64)).map(|n| n.len()),
            Ok(128)
        );
        assert!(parse_passkey_name("a\u{0007}b").is_err());
    }
}

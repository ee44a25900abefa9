use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest address we accept (RFC 5321 path limit).
const MAX_EMAIL_LEN: usize = 254;
/// Longest local part (RFC 5321).
const MAX_LOCAL_LEN: usize = 64;

/// A valid email address in canonical form: trimmed and lower-case. Emails are
/// compared and stored only in this form, so `Alice@Example.com` and
/// `alice@example.com` are the same account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

/// Why an email address was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    /// Nothing but whitespace.
    #[error("Email is required")]
    Empty,
    /// Over 254 characters.
    #[error("Email must be at most 254 characters")]
    TooLong,
    /// Control characters (including CR/LF and NUL) are never part of an address.
    #[error("Email must not contain control characters or spaces")]
    ForbiddenCharacter,
    /// Not of the shape `local@domain.tld`.
    #[error("Enter a valid email address, like name@example.com")]
    Malformed,
}

impl Email {
    /// Trims, validates and lower-cases `raw`.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if trimmed.chars().count() > MAX_EMAIL_LEN {
            return Err(EmailError::TooLong);
        }
        if trimmed.chars().any(forbidden) {
            return Err(EmailError::ForbiddenCharacter);
        }
        let (local, domain) = trimmed.split_once('@').ok_or(EmailError::Malformed)?;
        if local.is_empty()
            || local.chars().count() > MAX_LOCAL_LEN
            || domain.contains('@')
            || !valid_domain(domain)
        {
            return Err(EmailError::Malformed);
        }
        Ok(Email(trimmed.to_lowercase()))
    }

    /// The canonical address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether no address can contain `text`: it holds a character that
    /// [`Email::parse`] refuses anywhere (a control character, NUL and CR/LF
    /// included, or a space). A search for such text finds nobody, and need
    /// not ask the database (which could not take every one of them:
    /// PostgreSQL text cannot hold NUL).
    pub fn no_address_contains(text: &str) -> bool {
        text.chars().any(forbidden)
    }

    /// The part before the `@` (used by the password policy).
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map(|(l, _)| l).unwrap_or(&self.0)
    }
}

/// A character no address holds (before or after the `@`).
fn forbidden(c: char) -> bool {
    c.is_control() || c.is_whitespace()
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.chars().count() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = EmailError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Email::parse(&value)
    }
}

impl From<Email> for String {
    fn from(email: Email) -> String {
        email.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_lower_cased() {
        let email = Email::parse("  Alice.Smith@Example.COM \n").expect("valid");
        assert_eq!(email.as_str(), "alice.smith@example.com");
        assert_eq!(email.local_part(), "alice.smith");
    }

    #[test]
    fn international_domains_and_plus_addressing_are_accepted() {
        assert!(Email::parse("bob+tag@sub.example.org").is_ok());
        assert!(Email::parse("jose@bücher.de").is_ok());
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for bad in [
            "plainaddress",
            "@example.com",
            "a@b@example.com",
            "user@",
            "user@localhost",
            "user@.example.com",
            "user@example..com",
            "user@-example.com",
            "user@exa mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(Email::parse("   "), Err(EmailError::Empty));
    }

    #[test]
    fn control_characters_and_inner_spaces_are_rejected() {
        for bad in [
            "a\r\nb@example.com",
            "a\0b@example.com",
            "a b@example.com",
            "a\tb@example.com",
        ] {
            assert_eq!(
                Email::parse(bad),
                Err(EmailError::ForbiddenCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_with_a_refused_character_is_in_no_address() {
        for text in ["\0", "a\0b", "\u{1b}[0m", "x\ny", "\u{7f}", "a b", "\u{85}"] {
            assert!(Email::no_address_contains(text), "{text:?}");
        }
        for text in ["alice", "%_\\\"*", "bücher.de", "", "@"] {
            assert!(!Email::no_address_contains(text), "{text:?}");
        }
    }

    #[test]
    fn overlong_addresses_are_rejected() {
        let long = format!("{}@example.com", "a".repeat(300));
        assert_eq!(Email::parse(&long), Err(EmailError::TooLong));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert_eq!(Email::parse(&long_local), Err(EmailError::Malformed));
    }

    #[test]
    fn emails_deserialize_only_when_valid() {
        let ok: Email = serde_json::from_str("\"X@Y.io\"").expect("valid");
        assert_eq!(ok.as_str(), "x@y.io");
        assert!(serde_json::from_str::<Email>("\"nope\"").is_err());
    }
}

//! The password policy (OWASP ASVS 5.0 section 6.2): length counted in Unicode
//! code points, no composition rules, passwords compared exactly as typed, and
//! a strength estimate (zxcvbn) that rejects common and guessable passwords.

/// Hard upper bound: longer passwords are refused before any hashing, so a
/// megabyte "password" cannot be used to burn CPU.
pub const MAX_PASSWORD_CHARS: usize = 128;
/// No configuration may lower the minimum below this.
pub const MIN_PASSWORD_FLOOR: usize = 8;

/// Whether `password` is longer than any account's password can be
/// ([`MAX_PASSWORD_CHARS`]): such input is refused before any hashing, at
/// sign-up as at sign-in. Counts at most MAX+1 characters, so a huge input
/// costs nothing extra.
pub fn is_too_long(password: &str) -> bool {
    password.chars().take(MAX_PASSWORD_CHARS + 1).count() > MAX_PASSWORD_CHARS
}
/// Lowest acceptable zxcvbn score (0..=4).
const MIN_SCORE: u8 = 3;

/// Why a password was refused. The messages are shown to the user as they are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than the configured minimum.
    #[error("Password must be at least {min} characters long")]
    TooShort { min: usize },
    /// Longer than [`MAX_PASSWORD_CHARS`].
    #[error("Password must be at most {max} characters long")]
    TooLong { max: usize },
    /// Contains the part of the email address before the `@`.
    #[error("Password must not contain your email address")]
    ContainsEmail,
    /// Guessable according to the strength estimator.
    #[error("Password is too weak: {feedback}")]
    TooWeak { feedback: String },
}

/// Checks candidate passwords on registration and on every change.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    min_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy { min_chars: 12 }
    }
}

impl PasswordPolicy {
    /// A policy with the given minimum length, raised to the floor of 8 if lower.
    pub fn new(min_chars: usize) -> Self {
        PasswordPolicy {
            min_chars: min_chars.clamp(MIN_PASSWORD_FLOOR, MAX_PASSWORD_CHARS),
        }
    }

    /// The minimum length in characters.
    pub fn min_chars(&self) -> usize {
        self.min_chars
    }

    /// Only the length rules: cheap, used to refuse over-long input before any
    /// other work.
    pub fn check_length(&self, password: &str) -> Result<(), PasswordError> {
        if is_too_long(password) {
            return Err(PasswordError::TooLong {
                max: MAX_PASSWORD_CHARS,
            });
        }
        if password.chars().take(self.min_chars).count() < self.min_chars {
            return Err(PasswordError::TooShort {
                min: self.min_chars,
            });
        }
        Ok(())
    }

    /// The whole policy. `email_local_part` is the part of the account's email
    /// before the `@`, when known.
    pub fn check(
        &self,
        password: &str,
        email_local_part: Option<&str>,
    ) -> Result<(), PasswordError> {
        self.evaluate(password, email_local_part).1
    }

    /// The verdict and the strength score (0..=4), for a live strength meter.
    /// Uses exactly the rules of [`PasswordPolicy::check`].
    pub fn assess(
        &self,
        password: &str,
        email_local_part: Option<&str>,
    ) -> super::PasswordStrength {
        let (score, verdict) = self.evaluate(password, email_local_part);
        super::PasswordStrength {
            score,
            acceptable: verdict.is_ok(),
            feedback: verdict.err().map(|e| e.to_string()).unwrap_or_default(),
        }
    }

    fn evaluate(
        &self,
        password: &str,
        email_local_part: Option<&str>,
    ) -> (u8, Result<(), PasswordError>) {
        if let Err(err) = self.check_length(password) {
            return (0, Err(err));
        }
        let lowered = password.to_lowercase();
        let mut inputs = Vec::new();
        if let Some(local) = email_local_part.filter(|l| l.chars().count() >= 3) {
            if lowered.contains(&local.to_lowercase()) {
                return (0, Err(PasswordError::ContainsEmail));
            }
            inputs.push(local);
        }
        inputs.push("leptos-auth");
        let estimate = zxcvbn::zxcvbn(password, &inputs);
        let score = u8::from(estimate.score());
        if score < MIN_SCORE {
            return (
                score,
                Err(PasswordError::TooWeak {
                    feedback: feedback_text(&estimate),
                }),
            );
        }
        (score, Ok(()))
    }
}

fn feedback_text(estimate: &zxcvbn::Entropy) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            parts.push(warning.to_string());
        }
        parts.extend(feedback.suggestions().iter().map(|s| s.to_string()));
    }
    if parts.is_empty() {
        parts.push("Add more words or characters that are less common.".to_owned());
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_code_points() {
        let policy = PasswordPolicy::new(12);
        // 12 emoji are 48 bytes but 12 characters.
        assert_eq!(policy.check_length(&"🦀".repeat(12)), Ok(()));
        assert_eq!(
            policy.check_length(&"é".repeat(11)),
            Err(PasswordError::TooShort { min: 12 })
        );
    }

    #[test]
    fn over_long_passwords_are_rejected() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check(&"x".repeat(129), None),
            Err(PasswordError::TooLong { max: 128 })
        );
        assert_eq!(
            policy.check(&"y".repeat(1_000_000), None),
            Err(PasswordError::TooLong { max: 128 })
        );
    }

    #[test]
    fn the_minimum_cannot_go_below_the_floor() {
        assert_eq!(PasswordPolicy::new(4).min_chars(), MIN_PASSWORD_FLOOR);
        assert_eq!(PasswordPolicy::new(16).min_chars(), 16);
    }

    #[test]
    fn common_passwords_are_rejected_with_feedback() {
        let policy = PasswordPolicy::default();
        for weak in [
            "password1234",
            "qwertyuiopas",
            "aaaaaaaaaaaa",
            "123456789012",
        ] {
            match policy.check(weak, None) {
                Err(PasswordError::TooWeak { feedback }) => assert!(!feedback.is_empty()),
                other => panic!("{weak}: expected TooWeak, got {other:?}"),
            }
        }
    }

    #[test]
    fn passwords_containing_the_email_local_part_are_rejected() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("my-Johnsmith-horse-battery", Some("johnsmith")),
            Err(PasswordError::ContainsEmail)
        );
    }

    #[test]
    fn the_assessment_agrees_with_the_check() {
        let policy = PasswordPolicy::default();
        let weak = policy.assess("password1234", None);
        assert!(!weak.acceptable);
        assert!(weak.score < 3);
        assert!(weak.feedback.contains("too weak"));
        let strong = policy.assess("correct horse battery staple", None);
        assert!(strong.acceptable);
        assert!(strong.score >= 3);
        assert_eq!(strong.feedback, "");
        let short = policy.assess("abc", None);
        assert_eq!((short.score, short.acceptable), (0, false));
    }

    #[test]
    fn strong_passwords_pass_and_are_not_trimmed_or_composition_checked() {
        let policy = PasswordPolicy::default();
        assert_eq!(policy.check("correct horse battery staple", None), Ok(()));
        assert_eq!(
            policy.check("  spaces around tulip lantern  ", None),
            Ok(())
        );
        assert_eq!(policy.check("ünïcödé-pässwörd-mit-🦀-krebs", None), Ok(()));
    }
}

//! The error type of the server functions, shared by the server and the
//! browser so pages can match on it and say the right thing.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// The form field of a step-up confirmation (password or code) that a
/// sensitive form carries when the session needs one.
pub const CONFIRM_FIELD: &str = "confirm_secret";

/// The refusal of a sign-in before the address is verified.
pub const EMAIL_NOT_VERIFIED: &str =
    "Please confirm your email address first: open the link we sent you, or ask for a new one below.";

/// What went wrong, in words a user can act on. Never carries internals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// Not signed in (or the session is over).
    #[error("Please sign in to continue")]
    Unauthenticated,
    /// Signed in, but not allowed.
    #[error("You do not have permission to do this")]
    Forbidden,
    /// The thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// One form field is wrong.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Refused for a reason the message explains (wrong password, last admin...).
    #[error("{message}")]
    Refused { status: u16, message: String },
    /// The database cannot be reached right now.
    #[error("The service is temporarily unavailable. Please try again in a moment.")]
    Unavailable,
    /// A fault on our side (details are in the server log, never here).
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
}

impl AppError {
    /// The message for a form field, when this error is about that field.
    pub fn for_field(&self, name: &str) -> Option<String> {
        match self {
            AppError::Invalid { field, message } if field == name => Some(message.clone()),
            _ => None,
        }
    }

    /// The message for the form as a whole, when it is not about one field.
    pub fn general(&self) -> Option<String> {
        match self {
            AppError::Invalid { .. } => None,
            other => Some(other.to_string()),
        }
    }

    /// The seconds to wait, when this is the brute-force throttle's refusal
    /// (429, "Too many attempts, try again in N seconds").
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::Refused {
                status: 429,
                message,
            } => message
                .split("try again in ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
                .filter(|seconds| *seconds > 0),
            _ => None,
        }
    }

    /// Whether this is the refusal of a sign-in before the address is verified.
    pub fn is_email_not_verified(&self) -> bool {
        matches!(self, AppError::Refused { status: 403, message } if message == EMAIL_NOT_VERIFIED)
    }

    /// A form field error.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Bad form input (e.g. a missing field) is the client's doing.
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::Deserialization(message) => {
                AppError::Refused {
                    status: 400,
                    message: format!("The form could not be read: {message}"),
                }
            }
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => AppError::Unavailable,
            _ => AppError::Internal,
        }
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// The HTTP status of this error.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Refused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_refusal_tells_how_long_to_wait() {
        let refused = |status, message: &str| AppError::Refused {
            status,
            message: message.to_owned(),
        };
        assert_eq!(
            refused(429, "Too many attempts, try again in 27 seconds").retry_after(),
            Some(27)
        );
        assert_eq!(refused(429, "Too many attempts").retry_after(), None);
        assert_eq!(
            refused(429, "Too many attempts, try again in 0 seconds").retry_after(),
            None
        );
        assert_eq!(refused(401, "try again in 5 seconds").retry_after(), None);
        assert_eq!(AppError::Unauthenticated.retry_after(), None);
    }
}

//! Domain types. Everything here compiles for the browser too, except the
//! password policy, which needs the server-side strength estimator.
//!
//! "Parse, don't validate": an [`Email`] can only hold a canonical, valid
//! address, so the rest of the code never re-checks one.

mod audit;
mod device;
mod email;
mod listing;
mod passkey;
#[cfg(feature = "ssr")]
mod password;
mod redirect;
mod role;
mod user;

pub use audit::{AuditEventType, AuditEventView, AuditPage, UnknownEventType};
pub use device::{device_name, time_ago};
pub use email::{Email, EmailError};
pub use listing::{AuditQuery, ListingError, Page, UserFilter, MAX_OFFSET, MAX_PAGE_SIZE};
pub use passkey::{parse_passkey_name, PasskeyKind, PasskeyView, PASSKEY_NAME_MAX_CHARS};
#[cfg(feature = "ssr")]
pub use password::{
    is_too_long as password_is_too_long, PasswordError, PasswordPolicy, MAX_PASSWORD_CHARS,
    MIN_PASSWORD_FLOOR,
};
pub use redirect::{encode_query_value, safe_next};
pub use role::{Role, UnknownRole};
pub use user::{PasswordStrength, SessionView, UserPage, UserView};

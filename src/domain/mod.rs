//! Domain types. Everything here compiles for the browser too, except the
//! password policy, which needs the server-side strength estimator.
//!
//! "Parse, don't validate": an [`Email`] can only hold a canonical, valid
//! address, so the rest of the code never re-checks one.

mod audit;
mod device;
mod email;
#[cfg(feature = "ssr")]
mod password;
mod redirect;
mod role;
mod user;

pub use audit::{AuditEventType, AuditEventView, AuditPage, UnknownEventType};
pub use device::{device_name, time_ago};
pub use email::{Email, EmailError};
#[cfg(feature = "ssr")]
pub use password::{PasswordError, PasswordPolicy, MAX_PASSWORD_CHARS, MIN_PASSWORD_FLOOR};
pub use redirect::{encode_query_value, safe_next};
pub use role::{Role, UnknownRole};
pub use user::{PasswordStrength, SessionView, UserPage, UserView};

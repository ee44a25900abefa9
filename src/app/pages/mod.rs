//! One module per area of the site.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod errors;
pub mod home;
pub mod passkeys;
pub mod profile;
pub mod recovery;
pub mod two_factor;

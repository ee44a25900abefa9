//! The browser side of the HTTP layer: cookie sessions, CSRF defence,
//! security headers and the body cap for the Leptos pages and server
//! functions. It knows nothing of the app above it (`app` imports `web`,
//! never the other way).
//!
//! Tokens travel only in `HttpOnly` cookies. [`session::resolve`] turns the
//! cookies into the signed-in [`crate::services::Actor`] for every page and
//! server-function request, refreshing the session transparently when the
//! access token has expired (same rotation and reuse detection as the API).
//! Server functions stay thin: they read the actor through
//! `app::context`, call one service method, and map the result.

pub mod body;
pub mod cookies;
pub mod csrf;
pub mod headers;
pub mod session;

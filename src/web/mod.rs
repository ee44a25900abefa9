//! The browser side of the HTTP layer: cookie sessions, CSRF defence,
//! security headers and the body cap for the Leptos pages and server
//! functions; the site's static files ([`assets`]) and response
//! compression ([`compression`]). It knows nothing of the app above it
//! (`app` imports `web`, never the other way).
//!
//! Tokens travel only in `HttpOnly` cookies. [`session::resolve`] turns the
//! cookies into the signed-in [`crate::services::Actor`] for every page and
//! server-function request, refreshing the session transparently when the
//! access token has expired (same rotation and reuse detection as the API).
//! Server functions stay thin: they read the actor through
//! `app::context`, call one service method, and map the result.

pub mod assets;
pub mod body;
pub mod compression;
pub mod cookies;
pub mod csrf;
pub mod headers;
pub mod session;

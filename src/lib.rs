//! leptos-auth: user management and authentication in one binary.
//!
//! Requests flow one way: `api` handlers (JSON) and, in the browser app, Leptos
//! server functions -> `services` (every business rule) -> `repositories` (SQL)
//! -> the database. Types shared with the browser live in `domain` and `app` and
//! have no server dependencies.

/// The Leptos application: shell, routes, pages and their server functions.
pub mod app;
/// Domain types shared by the server and the browser: emails, roles, user views.
pub mod domain;

/// The JSON REST API under `/api/v1` and the health endpoints.
#[cfg(feature = "ssr")]
pub mod api;
/// Command-line interface: `serve`, `migrate`, `create-admin`, `config check`.
#[cfg(feature = "ssr")]
pub mod cli;
/// Who is calling: client address and user agent, resolved once per request.
#[cfg(feature = "ssr")]
pub mod client;
/// Settings read from the environment (and `.env`).
#[cfg(feature = "ssr")]
pub mod config;
/// Keys derived from configured secrets, and sealing (authenticated encryption).
#[cfg(feature = "ssr")]
pub mod crypto;
/// Opening the database chosen by `DATABASE_URL` and running the embedded migrations.
#[cfg(feature = "ssr")]
pub mod db;
/// Outgoing mail: SMTP, or the development outbox folder; off the request path.
#[cfg(feature = "ssr")]
pub mod mail;
/// Prometheus metrics: what is recorded, and the `/metrics` listener.
#[cfg(feature = "ssr")]
pub mod metrics;
/// Data access: one trait per aggregate, one implementation per database backend.
#[cfg(feature = "ssr")]
pub mod repositories;
/// Business rules: authentication, tokens, passwords and user management.
#[cfg(feature = "ssr")]
pub mod services;
/// Router assembly and serving: `Application::build` and `run_until`.
#[cfg(feature = "ssr")]
pub mod startup;
/// The application state every handler and server function shares.
#[cfg(feature = "ssr")]
pub mod state;
/// Logging: formats, the request span, request ids.
#[cfg(feature = "ssr")]
pub mod telemetry;
/// Cookie sessions, CSRF defence and security headers for the pages.
#[cfg(feature = "ssr")]
pub mod web;

/// Browser entry point: makes the page's islands (the `#[island]`
/// components) interactive; everything else stays the server's HTML.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // Panic messages in the console while developing; a release build
    // leaves the formatting machinery out of the wasm.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}

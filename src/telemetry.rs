//! Logging: one line per request (method, path, status, latency) through
//! `tracing`. `RUST_LOG` picks the levels. Tokens, passwords and query strings
//! are never logged.

use std::io::IsTerminal;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber (call once, from `main`).
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn,leptos_axum=warn"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .try_init();
}

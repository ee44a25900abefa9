//! Logging: one line per request through `tracing`, as human-readable
//! `key=value` text or as JSON (`LOG_FORMAT`). `RUST_LOG` picks the levels.
//!
//! Every request runs in a `request` span carrying its `request_id` (the
//! client's `x-request-id` when it is usable, else a fresh UUID, echoed in the
//! response), `method`, `route` (the matched route pattern, e.g.
//! `/api/v1/users/{user_id}`; the bare path for pages and assets without one)
//! and, once authentication knows it, `user_id`. The line written when the
//! response is ready adds `status` and `latency_ms`. Events inside the request
//! carry the same span, so they can be joined on `request_id`.
//!
//! Never logged: query strings, headers other than the request id, bodies,
//! tokens, passwords, cookies, email addresses.

use crate::config::LogFormat;
use axum::{
    extract::{MatchedPath, Request},
    http::HeaderValue,
    response::Response,
};
use std::{io::IsTerminal, time::Duration};
use tracing::Span;
use tracing_subscriber::{fmt, fmt::writer::BoxMakeWriter, EnvFilter};

/// Levels used when `RUST_LOG` is unset (or invalid).
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=warn,leptos_axum=warn";

/// The request-id header, read from requests and set on every response.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest client-supplied request id kept (longer ones are replaced).
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// The server's log stream.
    Stdout,
    /// One-shot commands, whose standard output is their result.
    Stderr,
}

/// Installs the global subscriber (once per process; later calls do nothing).
pub fn init(format: LogFormat, output: Output) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (writer, terminal) = match output {
        Output::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        Output::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let builder = fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.with_target(false).with_ansi(terminal).try_init(),
        // The event's fields at the top level, the request span under "span"
        // and every enclosing span under "spans".
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The span of one request (see the module documentation). `user_id` starts
/// empty and is recorded by whatever authenticates the caller.
pub fn request_span(request: &Request) -> Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    // The route pattern, never the query string; the path only when no
    // route matched (pages' assets, 404s).
    let route = match request.extensions().get::<MatchedPath>() {
        Some(matched) => matched.as_str(),
        None => request.uri().path(),
    };
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        route = %route,
        user_id = tracing::field::Empty,
    )
}

/// The request line, written in the request's span once the response is ready.
pub fn log_response(response: &Response, latency: Duration, _span: &Span) {
    tracing::info!(
        status = response.status().as_u16(),
        // Whole microseconds, so the number prints short.
        latency_ms = latency.as_micros() as f64 / 1000.0,
        "request"
    );
}

/// Middleware (before the request-id layers): drops an `x-request-id` that
/// is unusable in logs, so that a fresh one is generated. Usable: one header,
/// 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters (no spaces, no
/// control characters, nothing that could forge or break a log line).
pub async fn drop_unusable_request_id(mut request: Request) -> Request {
    let headers = request.headers_mut();
    let mut values = headers.get_all(REQUEST_ID).iter();
    let usable = match (values.next(), values.next()) {
        (Some(value), None) => usable_request_id(value),
        (None, _) => true,
        (Some(_), Some(_)) => false,
    };
    if !usable {
        headers.remove(REQUEST_ID);
    }
    request
}

/// Whether a client-supplied request id can be kept.
pub fn usable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len()) && bytes.iter().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_must_be_short_visible_ascii() {
        for usable in [
            "3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
            "req-1",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            &"a".repeat(MAX_REQUEST_ID_LEN),
        ] {
            let value = HeaderValue::from_str(usable).expect("header value");
            assert!(usable_request_id(&value), "{usable:?}");
        }
        for unusable in [
            "".to_owned(),
            "a".repeat(MAX_REQUEST_ID_LEN + 1),
            "with space".to_owned(),
            "tab\there".to_owned(),
        ] {
            let value = HeaderValue::from_str(&unusable).expect("header value");
            assert!(!usable_request_id(&value), "{unusable:?}");
        }
        let non_ascii = HeaderValue::from_bytes("caf\u{e9}".as_bytes()).expect("obs-text");
        assert!(!usable_request_id(&non_ascii));
    }
}

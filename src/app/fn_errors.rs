//! The HTTP status of every server-function error, set in one place.
//!
//! leptos answers a server function's `Err` with a 500 whatever the error:
//! its own argument-decoding errors (a missing field, a number out of range,
//! a body that is not a form) as much as a refusal of ours. This middleware
//! reads the typed [`AppError`] back from the body (leptos marks such
//! answers with its `serverfnerror` header) and gives the response that
//! error's status ([`AppError::status`]), so no server function has to
//! remember to, and a new one cannot forget.

use super::error::AppError;
use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue},
    middleware::Next,
    response::Response,
};
use leptos::server_fn::error::SERVER_FN_ERROR_HEADER;

/// The largest error body read back (ours are a message of a few lines).
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Middleware: a server-function error answer gets the status of its error.
/// Redirects are left alone: a plain HTML form post is sent back to its
/// form with the error in the URL.
pub async fn status_from_error(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if !response.headers().contains_key(SERVER_FN_ERROR_HEADER)
        || response.status().is_redirection()
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let decoded = axum::body::to_bytes(body, MAX_ERROR_BYTES)
        .await
        .ok()
        .and_then(|bytes| {
            serde_json::from_slice::<AppError>(&bytes)
                .ok()
                .map(|error| (error, bytes))
        });
    let (error, bytes) = match decoded {
        Some(decoded) => decoded,
        None => {
            // Not an error of ours: say nothing of it to the client.
            tracing::error!("a server function answered with an unreadable error");
            let error = AppError::Internal;
            let bytes = serde_json::to_vec(&error).unwrap_or_default();
            (error, bytes.into())
        }
    };
    parts.status = error.status();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(bytes))
}

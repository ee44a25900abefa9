//! Security headers for pages: a Content-Security-Policy with a per-request
//! nonce for the hydration scripts, `nosniff`, `Referrer-Policy`,
//! `frame-ancestors 'none'`, and `Cache-Control: no-store` on HTML (pages may
//! show account data). The API docs get the same, with a policy of their own.

use axum::{
    extract::Request,
    http::{header, HeaderMap, HeaderValue},
    middleware::Next,
    response::Response,
};
use base64::Engine;
use rand::RngCore;

/// The CSP nonce of a request; the Leptos context hands it to the hydration scripts.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// Middleware: creates the nonce before rendering, sets the headers after.
pub async fn page_headers(mut request: Request, next: Next) -> Response {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let nonce = base64::engine::general_purpose::STANDARD.encode(bytes);
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    set_common(headers);
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/html"));
    if is_html {
        let csp = format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
             style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
             object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
        );
        if let Ok(value) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, value);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Middleware for the API docs (`/docs` and the OpenAPI document, outside
/// the pages' router): the pages' headers but the Content-Security-Policy,
/// which the docs page sets for itself (Swagger UI needs inline styles).
pub async fn docs_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    set_common(response.headers_mut());
    response
}

/// The headers of every response a browser may show: no content-type
/// sniffing, no referrer beyond this site, no framing.
pub(super) fn set_common(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

//! CSRF defence for cookie-authenticated requests (OWASP CSRF cheat sheet,
//! "verifying origin with standard headers"; ASVS 5.0 3.5). Leptos does not do
//! this for server functions, so every state-changing request to the pages
//! and server functions must come from this site.

use axum::{
    extract::Request,
    http::{header, HeaderMap, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};

/// Middleware: refuses (403) unsafe methods whose `Origin` (or, without one,
/// `Sec-Fetch-Site`, then `Referer`) is not this site. Browsers always send at
/// least one of them; a request with none is not a browser's (curl, scripts)
/// and carries no ambient cookies an attacker could ride on.
pub async fn guard(request: Request, next: Next) -> Response {
    if is_safe_method(request.method()) || same_site(request.headers()) {
        return next.run(request).await;
    }
    tracing::warn!(path = %request.uri().path(), "cross-site request refused");
    (
        StatusCode::FORBIDDEN,
        Json(serde_json::json!({ "detail": "Cross-site request refused" })),
    )
        .into_response()
}

fn is_safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether the request's origin headers name this site (the `Host` it was sent to).
pub fn same_site(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let header_str = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = header_str(header::ORIGIN) {
        return origin != "null" && host.is_some_and(|host| authority_of(origin) == Some(host));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    if let Some(referer) = header_str(header::REFERER) {
        return host.is_some_and(|host| authority_of(referer) == Some(host));
    }
    true
}

/// `host[:port]` of an absolute http(s) URL.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn same_origin_requests_pass() {
        assert!(same_site(&headers(&[
            ("host", "app.example:3000"),
            ("origin", "http://app.example:3000")
        ])));
        assert!(same_site(&headers(&[
            ("host", "app.example"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(same_site(&headers(&[
            ("host", "app.example"),
            ("referer", "https://app.example/login?next=/x")
        ])));
        assert!(
            same_site(&headers(&[("host", "app.example")])),
            "no browser headers: not a browser"
        );
    }

    #[test]
    fn cross_site_requests_fail() {
        assert!(!same_site(&headers(&[
            ("host", "app.example"),
            ("origin", "https://evil.example")
        ])));
        assert!(!same_site(&headers(&[
            ("host", "app.example"),
            ("origin", "null")
        ])));
        assert!(!same_site(&headers(&[
            ("host", "app.example"),
            ("origin", "https://app.example.evil.example")
        ])));
        assert!(!same_site(&headers(&[
            ("host", "app.example"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_site(&headers(&[
            ("host", "app.example"),
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_site(&headers(&[
            ("host", "app.example"),
            ("referer", "https://evil.example/app.example")
        ])));
        assert!(
            !same_site(&headers(&[("origin", "https://app.example")])),
            "no Host"
        );
    }
}

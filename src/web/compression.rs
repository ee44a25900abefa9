//! Compression of the HTML pages and the JSON answers, per response, with
//! the encoding the request's `Accept-Encoding` prefers (brotli, then gzip).
//!
//! What is compressed ([`Compressible`]): `text/html` and `application/json`
//! bodies of at least [`MIN_BYTES`] (or of a size not known in advance, as a
//! rendered page's). What is not:
//!
//! - the static files: `/pkg` and the site root are precompressed at build
//!   time ([`super::assets`]) and go out as they are (their content types,
//!   and their `Content-Encoding` when precompressed, keep them out);
//! - small answers (`/api/v1/users/me`, errors): under [`MIN_BYTES`]
//!   compression saves a few hundred bytes at best and costs every request
//!   an encoder;
//! - answers that carry a credential, so that no compressed length can
//!   tell an observer anything about it (BREACH): the token responses
//!   (JSON marked `Cache-Control: no-store`, RFC 6749 5.1), and pages whose
//!   address carries an emailed link's `token` (`/reset-password?token=`,
//!   `/verify-email?token=`), which [`keep_link_pages_identity`] marks. The
//!   README's security model says why the other pages and the API can be
//!   compressed.
//!
//! The level is measured, not the libraries' default ([`LEVEL`]).

use axum::{
    extract::Request,
    http::{header, HeaderMap, HeaderValue, Response},
    middleware::Next,
    response::IntoResponse,
};
use http_body::Body;
use std::convert::Infallible;
use tower::{Layer, ServiceExt};
use tower_http::compression::{
    predicate::{Predicate, SizeAbove},
    CompressionLayer, CompressionLevel,
};

/// Bodies smaller than this go out as they are.
pub const MIN_BYTES: u16 = 1024;

/// The quality of both encoders (brotli 0-11, gzip 0-9): the lowest that
/// compresses with both (gzip's 0 stores). On a 3 KB page it gets most of
/// what level 4 (tower-http's default for brotli) gets, for about half the
/// cost; brotli's own default, 11, costs milliseconds per page
/// (BENCHMARKS.md, "Compression").
pub const LEVEL: i32 = 1;

/// Middleware for the whole router (pages, server functions and the API):
/// a [`Compressible`] response goes through tower-http's compression, with
/// the request's `Accept-Encoding`; every other response passes untouched.
///
/// Not tower-http's `CompressionLayer` around everything: its response body
/// is an enum as large as a brotli encoder's state (5.8 KB), which every
/// response, compressed or not, would be moved and boxed in (measured on
/// `users/me`: BENCHMARKS.md, "Compression").
pub async fn compress(request: Request, next: Next) -> axum::response::Response {
    let accept = request.headers().get(header::ACCEPT_ENCODING).cloned();
    let mut response = next.run(request).await;
    let headers = response.headers();
    if headers.contains_key(header::CONTENT_ENCODING)
        || headers.contains_key(header::CONTENT_RANGE)
        || !Compressible.should_compress(&response)
    {
        return response;
    }
    let Some(accept) = accept else {
        // Sent as it is to this request, compressed to others.
        add_vary(response.headers_mut());
        return response;
    };
    let mut probe = Request::new(axum::body::Body::empty());
    probe.headers_mut().insert(header::ACCEPT_ENCODING, accept);
    let mut finished = Some(response);
    let compression = encoder().layer(tower::service_fn(move |_: Request| {
        std::future::ready(Ok::<_, Infallible>(finished.take().unwrap_or_default()))
    }));
    match compression.oneshot(probe).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// tower-http's compression as [`compress`] applies it.
fn encoder() -> CompressionLayer<Compressible> {
    CompressionLayer::new()
        .no_deflate()
        .no_zstd()
        .quality(CompressionLevel::Precise(LEVEL))
        .compress_when(Compressible)
}

fn add_vary(headers: &mut HeaderMap) {
    let varies = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding"));
    if !varies {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// Which responses [`compress`] compresses (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct Compressible;

/// A response extension: send this body as it is.
#[derive(Debug, Clone, Copy)]
pub struct Identity;

impl Predicate for Compressible {
    fn should_compress<B: Body>(&self, response: &Response<B>) -> bool {
        if response.extensions().get::<Identity>().is_some() {
            return false;
        }
        let headers = response.headers();
        let kind = content_type(headers);
        let compressible = match kind {
            Kind::Html => true,
            Kind::Json => !no_store(headers),
            Kind::Other => false,
        };
        compressible && SizeAbove::new(MIN_BYTES).should_compress(response)
    }
}

enum Kind {
    Html,
    Json,
    Other,
}

fn content_type(headers: &HeaderMap) -> Kind {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Kind::Other;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("text/html") {
        Kind::Html
    } else if essence.eq_ignore_ascii_case("application/json") {
        Kind::Json
    } else {
        Kind::Other
    }
}

fn no_store(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case("no-store"))
}

/// Middleware for the pages: the answer to an address with a `token` in
/// its query (an emailed link, which the page carries into its form) is
/// marked [`Identity`].
pub async fn keep_link_pages_identity(request: Request, next: Next) -> axum::response::Response {
    let carries_token = request.uri().query().is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == "token")
    });
    let mut response = next.run(request).await;
    if carries_token {
        response.extensions_mut().insert(Identity);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{Compressible, Identity, MIN_BYTES};
    use axum::{body::Body, http::Response};
    use tower_http::compression::predicate::Predicate;

    fn response(content_type: &str, cache_control: Option<&str>, bytes: usize) -> Response<Body> {
        let mut builder = Response::builder().header("content-type", content_type);
        if let Some(value) = cache_control {
            builder = builder.header("cache-control", value);
        }
        builder
            .body(Body::from(vec![b'a'; bytes]))
            .expect("response")
    }

    #[test]
    fn html_and_json_above_the_threshold_and_nothing_else() {
        let large = usize::from(MIN_BYTES);
        let compressed = |r: &Response<Body>| Compressible.should_compress(r);
        assert!(compressed(&response(
            "text/html; charset=utf-8",
            Some("no-store"),
            large
        )));
        assert!(compressed(&response("application/json", None, large)));
        assert!(compressed(&response(
            "Application/JSON; charset=utf-8",
            None,
            large
        )));
        // Small answers.
        assert!(!compressed(&response("text/html", None, large - 1)));
        assert!(!compressed(&response("application/json", None, large - 1)));
        // Credentials: a JSON answer that must not be stored is a token response.
        assert!(!compressed(&response(
            "application/json",
            Some("no-store"),
            100 * large
        )));
        assert!(!compressed(&response(
            "application/json",
            Some("private, No-Store"),
            100 * large
        )));
        // Static files are precompressed, or sent as they are.
        for content_type in [
            "application/wasm",
            "text/javascript",
            "text/css",
            "image/svg+xml",
            "text/plain",
        ] {
            assert!(
                !compressed(&response(content_type, None, 100 * large)),
                "{content_type}"
            );
        }
        // Marked by a middleware.
        let mut marked = response("text/html", None, 100 * large);
        marked.extensions_mut().insert(Identity);
        assert!(!compressed(&marked));
    }
}

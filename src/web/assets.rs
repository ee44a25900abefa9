//! The site's static files, read from disk by tower-http's `ServeDir`: the
//! front end cargo-leptos builds under `/pkg` (wasm, js, css) and the files
//! at the site root (what `public/` holds: `favicon.svg`, `robots.txt`, the
//! `/docs` assets).
//!
//! - **Encoding.** A release build made with `cargo leptos build --release
//!   --precompress` has a `.br` and a `.gz` beside every file; the file the
//!   request's `Accept-Encoding` prefers is sent as it is (brotli, else
//!   gzip, else the file itself), so nothing is compressed per request.
//!   Every answer says `Vary: Accept-Encoding`. A build without the
//!   precompressed files (`make run`) sends every file as it is.
//! - **Caching.** A `/pkg` file whose name carries cargo-leptos's content
//!   hash ([`is_hashed_name`], only when the build hashes its names) never
//!   changes: `Cache-Control: public, max-age=31536000, immutable`. An
//!   unhashed `/pkg` file (a build without hashing) may change with any
//!   build: `no-cache`, so the browser keeps it and asks again with
//!   `If-Modified-Since` (the `Last-Modified` `ServeDir` sends), and an
//!   unchanged file costs a 304 without a body. The site-root files
//!   (favicon, robots.txt, the API docs' assets) change only with a new
//!   release and browsers fetch some of them (the favicon) without
//!   revalidating: they are fresh for a day ([`SITE_ROOT`]), then
//!   revalidated the same way.
//! - **Missing files.** A missing `/pkg` file is a plain 404 with an empty
//!   body (not the HTML page); at the site root, the caller's `not_found`
//!   service answers (the app's HTML 404 page).
//!
//! No session, cookie or database is involved in `/pkg`: [`Site::pkg_router`]
//! is merged beside the pages, not behind their middleware.

use super::headers::set_common;
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use leptos::config::LeptosOptions;
use std::{convert::Infallible, path::PathBuf};
use tower::{Layer, Service};
use tower_http::services::ServeDir;

/// The cache policy of a file whose name carries its content's hash.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The cache policy of an unhashed `/pkg` file: keep it, but ask before
/// using it.
pub const REVALIDATE: &str = "no-cache";
/// The cache policy of the site-root files: fresh for a day, then asked
/// for again (a new release's favicon shows within a day).
pub const SITE_ROOT: &str = "public, max-age=86400";

/// Where the site's files are and whether their names carry hashes.
#[derive(Debug, Clone)]
pub struct Site {
    root: PathBuf,
    pkg_dir: String,
    policy: Policy,
}

#[derive(Debug, Clone, Copy)]
struct Policy {
    /// The build hashes its `/pkg` file names (`LeptosOptions::hash_files`).
    hashed_names: bool,
}

impl Site {
    /// The site `options` describe: `site_root`, `site_pkg_dir`, `hash_files`.
    pub fn new(options: &LeptosOptions) -> Site {
        Site {
            root: PathBuf::from(options.site_root.as_ref()),
            pkg_dir: options.site_pkg_dir.trim_matches('/').to_owned(),
            policy: Policy {
                hashed_names: options.hash_files,
            },
        }
    }

    /// `/<site_pkg_dir>/*`: the built front end, from `<site_root>/<site_pkg_dir>`.
    pub fn pkg_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let files = ServeDir::new(self.root.join(&self.pkg_dir))
            .precompressed_br()
            .precompressed_gzip()
            .append_index_html_on_directories(false);
        Router::new()
            .nest_service(&format!("/{}", self.pkg_dir), files)
            .layer(middleware::from_fn_with_state(self.policy, pkg_headers))
    }

    /// The files at the site root; every path that names none goes to
    /// `not_found` (whatever the method).
    pub fn root_files<F>(
        &self,
        not_found: F,
    ) -> impl Service<
        Request,
        Response = Response,
        Error = Infallible,
        Future = impl std::future::Future<Output = Result<Response, Infallible>> + Send + 'static,
    > + Clone
           + Send
           + Sync
           + 'static
    where
        F: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
        F::Response: IntoResponse + 'static,
        F::Future: Send + 'static,
    {
        let not_found = tower::ServiceBuilder::new()
            .map_response(IntoResponse::into_response)
            .service(not_found);
        let files = ServeDir::new(&self.root)
            .precompressed_br()
            .precompressed_gzip()
            .append_index_html_on_directories(false)
            .call_fallback_on_method_not_allowed(true)
            .fallback(not_found);
        middleware::from_fn(root_headers).layer(files)
    }
}

/// Whether a file name carries cargo-leptos's content hash:
/// `<name>.<hash>.<extension>`, the hash being an MD5 in unpadded URL-safe
/// base64 (22 characters), as cargo-leptos's `hash-files` renames every
/// file of the pkg folder (`leptos-auth.<hash>.wasm`, the js, the css, the
/// split chunks and their manifest). wasm-bindgen's `snippets/` keep their
/// names, and do not match.
pub fn is_hashed_name(file_name: &str) -> bool {
    let mut parts = file_name.rsplitn(3, '.');
    let (Some(extension), Some(hash), Some(stem)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    !extension.is_empty()
        && !stem.is_empty()
        && hash.len() == 22
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Middleware of `/pkg`: the cache policy by name, `Vary`, and the headers
/// every response a browser may show carries.
async fn pkg_headers(State(policy): State<Policy>, request: Request, next: Next) -> Response {
    let hashed = policy.hashed_names
        && request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .is_some_and(is_hashed_name);
    let mut response = next.run(request).await;
    let served = is_served(response.status());
    let headers = response.headers_mut();
    set_common(headers);
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let policy = if hashed && served {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    response
}

/// Middleware of the site-root files: those are never hashed, and change
/// only with a release ([`SITE_ROOT`]). Answers of the `not_found` service
/// (the HTML page, redirects) are left to it.
async fn root_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if is_served(response.status()) {
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(SITE_ROOT));
    }
    response
}

/// A file (or part of one) was sent, or the browser's copy is still good.
fn is_served(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::OK | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
    )
}

#[cfg(test)]
mod tests {
    use super::is_hashed_name;

    #[test]
    fn hashed_names_are_the_ones_cargo_leptos_writes() {
        for name in [
            "leptos-auth.Ab3dEf7hIjKlMnOpQrStUv.wasm",
            "leptos-auth.x-_0123456789abcdefghi.js",
            "leptos-auth.ZZZZZZZZZZZZZZZZZZZZZZ.css",
            "__wasm_split.Ab3dEf7hIjKlMnOpQrStUv.js",
            "__wasm_split_manifest.Ab3dEf7hIjKlMnOpQrStUv.json",
        ] {
            assert!(is_hashed_name(name), "{name}");
        }
        for name in [
            "leptos-auth.wasm",
            "leptos-auth_bg.wasm",
            "favicon.svg",
            "inline0.js",
            // The precompressed variant asked for by name is not the hashed file.
            "leptos-auth.Ab3dEf7hIjKlMnOpQrStUv.wasm.br",
            // 21 and 23 characters, a character base64url does not use, no stem.
            "leptos-auth.Ab3dEf7hIjKlMnOpQrStU.wasm",
            "leptos-auth.Ab3dEf7hIjKlMnOpQrStUvw.wasm",
            "leptos-auth.Ab3dEf7hIjKlMnOpQrSt+v.wasm",
            ".Ab3dEf7hIjKlMnOpQrStUv.wasm",
            "leptos-auth.Ab3dEf7hIjKlMnOpQrStUv.",
        ] {
            assert!(!is_hashed_name(name), "{name}");
        }
    }
}

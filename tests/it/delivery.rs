//! How the browser gets its bytes: the site's files from a real site folder
//! (precompressed variants chosen by `Accept-Encoding`, cache policy by
//! name, conditional requests, plain 404s), and the compression of pages
//! and JSON (large ones compressed, small ones and credentials not).
//!
//! Static files involve no database: these tests run on SQLite only.

use crate::common::{TestApp, PASSWORD};
use axum::{
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{header, HeaderMap, Method, Request, StatusCode},
};
use http_body_util::BodyExt;
use leptos_auth::{
    startup::router,
    web::assets::{IMMUTABLE, REVALIDATE, SITE_ROOT},
};
use std::{io::Write, net::SocketAddr, path::Path};
use tower::ServiceExt;

/// A name as cargo-leptos's `hash-files` writes it (22 characters of hash).
const HASHED_WASM: &str = "leptos-auth.Ab3dEf7hIjKlMnOpQrStUv.wasm";
const HASHED_JS: &str = "leptos-auth.x-_0123456789abcdefghi.js";

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        writer.write_all(data).expect("brotli");
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

fn unbrotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &data[..], &mut out).expect("a brotli body");
    out
}

fn ungzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(data), &mut out)
        .expect("a gzip body");
    out
}

/// Some wasm-like bytes that compress well.
fn wasm_bytes() -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    for i in 0..4000u32 {
        bytes.extend_from_slice(format!("function_{} ", i % 97).as_bytes());
    }
    bytes
}

/// A site folder as `cargo leptos build --release --precompress` leaves it
/// (with `hash-files`): each file with its `.br` and `.gz`, an unhashed css
/// in pkg (as a build without hashing has), and public files at the root.
fn write_site(root: &Path) {
    let pkg = root.join("pkg");
    std::fs::create_dir_all(&pkg).expect("pkg");
    let files: [(&Path, &str, Vec<u8>); 5] = [
        (&pkg, HASHED_WASM, wasm_bytes()),
        (&pkg, HASHED_JS, b"export function init() {}\n".repeat(50)),
        (&pkg, "leptos-auth.css", b"body { margin: 0 }\n".repeat(50)),
        (
            root,
            "favicon.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><circle r=\"1\"/></svg>\n".repeat(20),
        ),
        (root, "robots.txt", b"User-agent: *\nDisallow:\n".to_vec()),
    ];
    for (dir, name, content) in files {
        std::fs::write(dir.join(format!("{name}.br")), brotli(&content)).expect("br");
        std::fs::write(dir.join(format!("{name}.gz")), gzip(&content)).expect("gz");
        std::fs::write(dir.join(name), content).expect("file");
    }
}

/// The real router serving `site` (as `LEPTOS_SITE_ROOT`), its names hashed
/// or not (`LeptosOptions::hash_files`, which startup detects from the hash
/// file). A hashing app serves no page here: leptos reads the hash file
/// beside the running binary when it renders one, and there is none beside
/// the test binary.
async fn serving(site: &Path, hash_files: bool) -> TestApp {
    let app = TestApp::sqlite().await;
    let mut options = app.state.leptos_options.clone();
    options.site_root = site.display().to_string().into();
    options.hash_files = hash_files;
    let state = app.state.with_leptos_options(options);
    let router =
        router(state.clone()).layer(MockConnectInfo(SocketAddr::from(([203, 0, 113, 7], 41000))));
    TestApp {
        router,
        state,
        ..app
    }
}

struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as the client reads it, after its `Content-Encoding`.
    fn decoded(&self) -> Vec<u8> {
        match self.header(header::CONTENT_ENCODING) {
            None => self.body.clone(),
            Some("br") => unbrotli(&self.body),
            Some("gzip") => ungzip(&self.body),
            Some(other) => panic!("unexpected encoding {other}"),
        }
    }

    fn varies_by_encoding(&self) -> bool {
        self.headers
            .get_all(header::VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case("accept-encoding"))
    }
}

/// Sends a request with extra headers and returns the bytes as sent.
async fn send(app: &TestApp, method: Method, uri: &str, headers: &[(&str, &str)]) -> Raw {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, "localhost");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = app
        .router
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Raw {
        status,
        headers,
        body,
    }
}

async fn get(app: &TestApp, uri: &str, headers: &[(&str, &str)]) -> Raw {
    send(app, Method::GET, uri, headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_go_out_precompressed_as_the_browser_accepts() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let app = serving(site.path(), true).await;
    let raw = std::fs::read(site.path().join("pkg").join(HASHED_WASM)).expect("wasm");
    let uri = format!("/pkg/{HASHED_WASM}");

    for (accept, encoding, file) in [
        (Some("br, gzip"), Some("br"), format!("{HASHED_WASM}.br")),
        (
            Some("gzip, deflate, br;q=0"),
            Some("gzip"),
            format!("{HASHED_WASM}.gz"),
        ),
        (
            Some("gzip;q=0.5, br;q=1"),
            Some("br"),
            format!("{HASHED_WASM}.br"),
        ),
        (Some("identity"), None, HASHED_WASM.to_owned()),
        (None, None, HASHED_WASM.to_owned()),
    ] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        let response = get(&app, &uri, &headers).await;
        assert_eq!(response.status, StatusCode::OK, "{accept:?}");
        assert_eq!(
            response.header(header::CONTENT_ENCODING),
            encoding,
            "{accept:?}"
        );
        assert_eq!(
            response.header(header::CONTENT_TYPE),
            Some("application/wasm"),
            "{accept:?}"
        );
        // The file written at build time, byte for byte: nothing compressed
        // per request.
        let on_disk = std::fs::read(site.path().join("pkg").join(&file)).expect("file");
        assert!(
            response.body == on_disk,
            "{accept:?}: not the bytes of {file}"
        );
        assert_eq!(response.decoded(), raw, "{accept:?}");
        assert_eq!(
            response.header(header::CONTENT_LENGTH),
            Some(on_disk.len().to_string().as_str())
        );
        assert!(response.varies_by_encoding(), "{accept:?}: no Vary");
        assert_eq!(
            response.header(header::X_CONTENT_TYPE_OPTIONS),
            Some("nosniff")
        );
        assert_eq!(
            response.header(header::REFERRER_POLICY),
            Some("same-origin")
        );
        // No session is looked at for an asset.
        assert!(response.headers.get(header::SET_COOKIE).is_none());
    }
    // The brotli file is the smaller one, and the one a browser gets.
    let br = get(
        &app,
        &uri,
        &[("accept-encoding", "gzip, deflate, br, zstd")],
    )
    .await;
    assert_eq!(br.header(header::CONTENT_ENCODING), Some("br"));
    assert!(
        br.body.len() < raw.len() / 4,
        "{} of {}",
        br.body.len(),
        raw.len()
    );

    // Files at the site root come precompressed too.
    let favicon = get(&app, "/favicon.svg", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(favicon.status, StatusCode::OK);
    assert_eq!(favicon.header(header::CONTENT_ENCODING), Some("br"));
    assert_eq!(favicon.header(header::CONTENT_TYPE), Some("image/svg+xml"));
    assert!(favicon.varies_by_encoding());
    assert!(String::from_utf8(favicon.decoded())
        .expect("svg")
        .starts_with("<svg"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_names_are_immutable_the_site_root_keeps_a_day_the_others_revalidate() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let hashing = serving(site.path(), true).await;

    for name in [HASHED_WASM, HASHED_JS] {
        let response = get(
            &hashing,
            &format!("/pkg/{name}"),
            &[("accept-encoding", "br")],
        )
        .await;
        assert_eq!(response.status, StatusCode::OK, "{name}");
        assert_eq!(
            response.header(header::CACHE_CONTROL),
            Some(IMMUTABLE),
            "{name}"
        );
    }
    assert_eq!(IMMUTABLE, "public, max-age=31536000, immutable");

    // Unhashed files may change under their name: kept, asked for again;
    // the site root's only with a release: fresh for a day (a browser
    // fetches the favicon without revalidating it).
    for (uri, policy) in [
        ("/pkg/leptos-auth.css", REVALIDATE),
        ("/favicon.svg", SITE_ROOT),
        ("/robots.txt", SITE_ROOT),
    ] {
        let response = get(&hashing, uri, &[("accept-encoding", "br")]).await;
        assert_eq!(response.status, StatusCode::OK, "{uri}");
        assert_eq!(
            response.header(header::CACHE_CONTROL),
            Some(policy),
            "{uri}"
        );
        assert!(
            response.header(header::LAST_MODIFIED).is_some(),
            "{uri}: no validator"
        );
    }
    assert_eq!(REVALIDATE, "no-cache");
    assert_eq!(SITE_ROOT, "public, max-age=86400");
    // The precompressed file asked for by its own name is not the hashed file.
    let by_name = get(&hashing, &format!("/pkg/{HASHED_WASM}.br"), &[]).await;
    assert_eq!(by_name.status, StatusCode::OK);
    assert_eq!(by_name.header(header::CACHE_CONTROL), Some(REVALIDATE));

    // A build without hashing promises nothing, whatever a name looks like.
    let plain = serving(site.path(), false).await;
    let response = get(
        &plain,
        &format!("/pkg/{HASHED_WASM}"),
        &[("accept-encoding", "br")],
    )
    .await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.header(header::CACHE_CONTROL), Some(REVALIDATE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_asset_costs_a_304_without_a_body() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let app = serving(site.path(), true).await;

    for (uri, policy) in [
        (format!("/pkg/{HASHED_WASM}"), IMMUTABLE),
        ("/pkg/leptos-auth.css".to_owned(), REVALIDATE),
        ("/favicon.svg".to_owned(), SITE_ROOT),
    ] {
        let first = get(&app, &uri, &[("accept-encoding", "br, gzip")]).await;
        assert_eq!(first.status, StatusCode::OK, "{uri}");
        assert!(!first.body.is_empty());
        let stamp = first
            .header(header::LAST_MODIFIED)
            .unwrap_or_else(|| panic!("{uri}: no Last-Modified"))
            .to_owned();

        let again = get(
            &app,
            &uri,
            &[
                ("accept-encoding", "br, gzip"),
                ("if-modified-since", &stamp),
            ],
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{uri}");
        assert!(again.body.is_empty(), "{uri}: a 304 has no body");
        // The 304 says what the 200 said about caching.
        assert_eq!(again.header(header::CACHE_CONTROL), Some(policy), "{uri}");
        assert!(again.varies_by_encoding(), "{uri}");

        // A copy older than the file is sent the file.
        let stale = get(
            &app,
            &uri,
            &[
                ("accept-encoding", "br, gzip"),
                ("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT"),
            ],
        )
        .await;
        assert_eq!(stale.status, StatusCode::OK, "{uri}");
        assert_eq!(stale.body, first.body, "{uri}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_asset_is_a_plain_404() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let app = serving(site.path(), true).await;
    for uri in [
        "/pkg/leptos-auth.AAAAAAAAAAAAAAAAAAAAAA.wasm",
        "/pkg/missing.js",
        "/pkg/",
        "/pkg",
        "/pkg/../favicon.svg",
        "/pkg/%2e%2e/favicon.svg",
    ] {
        let response = get(&app, uri, &[("accept-encoding", "br, gzip")]).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            response.body.is_empty(),
            "{uri}: {:?}",
            String::from_utf8_lossy(&response.body)
        );
        assert!(
            !response
                .header(header::CONTENT_TYPE)
                .is_some_and(|ct| ct.starts_with("text/html")),
            "{uri}: not the HTML page"
        );
        // A name that is not there now may be there after a deploy.
        assert_ne!(
            response.header(header::CACHE_CONTROL),
            Some(IMMUTABLE),
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_still_get_the_html_404_page() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let app = serving(site.path(), false).await;
    for method in [Method::GET, Method::POST] {
        let response = send(&app, method.clone(), "/no-such-page", &[]).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{method}");
        assert!(
            response
                .header(header::CONTENT_TYPE)
                .is_some_and(|ct| ct.starts_with("text/html")),
            "{method}"
        );
        assert!(
            String::from_utf8_lossy(&response.body).contains("Page not found"),
            "{method}"
        );
        assert_eq!(response.header(header::CACHE_CONTROL), Some("no-store"));
        assert!(response.header(header::CONTENT_SECURITY_POLICY).is_some());
    }
    // And compressed like any page.
    let compressed = get(&app, "/no-such-page", &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(compressed.status, StatusCode::NOT_FOUND);
    assert_eq!(compressed.header(header::CONTENT_ENCODING), Some("br"));
    assert!(String::from_utf8(compressed.decoded())
        .expect("html")
        .contains("Page not found"));
    // A site-root file is still a file, and a file that is not there the page.
    let robots = get(&app, "/robots.txt", &[]).await;
    assert_eq!(robots.status, StatusCode::OK);
    assert_eq!(robots.body, b"User-agent: *\nDisallow:\n");
    let missing = get(&app, "/missing.txt", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&missing.body).contains("Page not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_large_json_are_compressed_when_accepted() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let app = serving(site.path(), false).await;

    let plain = get(&app, "/login", &[]).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert!(plain.header(header::CONTENT_ENCODING).is_none());
    assert!(
        plain.varies_by_encoding(),
        "the page varies even when sent as it is"
    );
    let html = String::from_utf8(plain.body.clone()).expect("html");
    assert!(html.contains("<form"), "{html}");

    for (accept, encoding) in [("br, gzip", "br"), ("gzip", "gzip"), ("gzip, br", "br")] {
        let page = get(&app, "/login", &[("accept-encoding", accept)]).await;
        assert_eq!(page.status, StatusCode::OK, "{accept}");
        assert_eq!(
            page.header(header::CONTENT_ENCODING),
            Some(encoding),
            "{accept}"
        );
        assert!(page.varies_by_encoding(), "{accept}");
        // Still a page: not stored, with its policy.
        assert_eq!(page.header(header::CACHE_CONTROL), Some("no-store"));
        assert!(page
            .header(header::CONTENT_SECURITY_POLICY)
            .is_some_and(|csp| csp.contains("frame-ancestors 'none'")));
        assert_eq!(page.header(header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));
        let decoded = String::from_utf8(page.decoded()).expect("html");
        assert!(decoded.contains("<form"), "{accept}");
        assert!(
            page.body.len() < decoded.len() * 2 / 3,
            "{accept}: {} of {}",
            page.body.len(),
            decoded.len()
        );
    }

    // The OpenAPI document (outside the pages' router) too.
    let spec = get(
        &app,
        "/api/v1/openapi.json",
        &[("accept-encoding", "br, gzip")],
    )
    .await;
    assert_eq!(spec.status, StatusCode::OK);
    assert_eq!(spec.header(header::CONTENT_ENCODING), Some("br"));
    assert!(spec.varies_by_encoding());
    let document: serde_json::Value = serde_json::from_slice(&spec.decoded()).expect("json");
    assert!(document["openapi"].is_string());
    assert!(spec.body.len() * 4 < spec.decoded().len());

    // An API listing large enough.
    let (_, admin) = app.admin("compress-admin@example.com").await;
    for i in 0..12 {
        app.register(&format!("listed-{i}@example.com"), PASSWORD)
            .await
            .assert_status(StatusCode::CREATED);
    }
    let bearer = format!("Bearer {}", admin.access);
    let list = get(
        &app,
        "/api/v1/users?limit=100",
        &[("accept-encoding", "gzip"), ("authorization", &bearer)],
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.decoded().len() >= 1024, "{}", list.decoded().len());
    assert_eq!(list.header(header::CONTENT_ENCODING), Some("gzip"));
    let users: serde_json::Value = serde_json::from_slice(&list.decoded()).expect("json");
    assert_eq!(users.as_array().map(Vec::len), Some(13));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_answers_and_credentials_go_out_as_they_are() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let app = serving(site.path(), false).await;
    app.register("tokens@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let accept = ("accept-encoding", "br, gzip");

    // The API's token responses.
    let login = app
        .send(
            Request::post("/api/v1/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .header(accept.0, accept.1)
                .body(Body::from(
                    serde_json::json!({ "email": "tokens@example.com", "password": PASSWORD })
                        .to_string(),
                ))
                .expect("request"),
        )
        .await;
    login.assert_status(StatusCode::OK);
    assert!(login.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(login.headers[header::CACHE_CONTROL], "no-store");
    let refresh_token = login.body["refresh_token"].as_str().expect("refresh token");
    let access_token = login.body["access_token"].as_str().expect("access token");

    let refreshed = app
        .send(
            Request::post("/api/v1/auth/refresh")
                .header(header::CONTENT_TYPE, "application/json")
                .header(accept.0, accept.1)
                .body(Body::from(
                    serde_json::json!({ "refresh_token": refresh_token }).to_string(),
                ))
                .expect("request"),
        )
        .await;
    refreshed.assert_status(StatusCode::OK);
    assert!(refreshed.headers.get(header::CONTENT_ENCODING).is_none());
    assert!(refreshed.body["access_token"].is_string());

    // A small answer: not worth an encoder.
    let bearer = format!("Bearer {access_token}");
    let me = get(
        &app,
        "/api/v1/users/me",
        &[accept, ("authorization", &bearer)],
    )
    .await;
    assert_eq!(me.status, StatusCode::OK);
    assert!(me.body.len() < 1024);
    assert!(me.header(header::CONTENT_ENCODING).is_none());

    // The pages' sign-in (the server function the hydrated page calls).
    let form = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("email", "tokens@example.com"),
            ("password", PASSWORD),
            ("next", ""),
        ])
        .finish();
    let signed_in = app
        .send(
            Request::post("/fn/login")
                .header(header::HOST, "localhost")
                .header(header::ORIGIN, "http://localhost")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .header(accept.0, accept.1)
                .body(Body::from(form))
                .expect("request"),
        )
        .await;
    signed_in.assert_status(StatusCode::OK);
    assert!(signed_in.headers.get(header::SET_COOKIE).is_some());
    assert!(signed_in.headers.get(header::CONTENT_ENCODING).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carrying_an_emailed_token_are_not_compressed() {
    let site = tempfile::tempdir().expect("site");
    write_site(site.path());
    let app = serving(site.path(), false).await;
    let accept = [("accept-encoding", "br, gzip")];

    for uri in [
        "/reset-password?token=emailed-link-token",
        "/verify-email?token=emailed-link-token",
        "/reset-password?x=1&token=emailed-link-token",
    ] {
        let page = get(&app, uri, &accept).await;
        assert!(
            page.header(header::CONTENT_TYPE)
                .is_some_and(|ct| ct.starts_with("text/html")),
            "{uri}"
        );
        assert!(page.body.len() >= 1024, "{uri}: large enough to compress");
        assert!(page.header(header::CONTENT_ENCODING).is_none(), "{uri}");
        assert!(String::from_utf8(page.body).is_ok(), "{uri}");
    }
    // The same page without a token is compressed like the others.
    let without = get(&app, "/reset-password", &accept).await;
    assert_eq!(without.header(header::CONTENT_ENCODING), Some("br"));
    let forgot = get(&app, "/forgot-password?tokens=1", &accept).await;
    assert_eq!(forgot.header(header::CONTENT_ENCODING), Some("br"));
}

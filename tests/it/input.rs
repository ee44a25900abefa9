//! Bad input on both databases: any text in the user search (a property
//! test), control characters in text inputs, and keep-alive connections
//! after an early refusal (a real server and a real HTTP client).

use crate::common::{pg, test_settings, Backend, TestApp, PASSWORD};
use axum::http::{header, Method, Request, StatusCode};
use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, TestCaseError, TestRunner},
};
use serde_json::json;
use std::collections::BTreeSet;

/// Addresses with the characters that mean something to `LIKE`, FTS5, SQL
/// or URLs, all of which an address may hold before its `@`.
const EMAILS: [&str; 9] = [
    "plain@example.com",
    "per%cent@example.com",
    "under_score@example.com",
    "back\\slash@example.com",
    "quo\"te@example.com",
    "star*col:on^@example.com",
    "apos'trophe;--@example.com",
    "ünïcödé@bücher.de",
    "NOT(AND)OR+near@example.com",
];

/// Characters that are metacharacters somewhere (LIKE, FTS5, SQL, URLs,
/// terminals), control characters, and letters that change under case
/// folding; arbitrary Unicode is mixed in by the strategy.
const AWKWARD: [char; 40] = [
    '%',
    '_',
    '\\',
    '"',
    '\'',
    '*',
    ':',
    '^',
    '(',
    ')',
    '-',
    '+',
    '.',
    '@',
    ';',
    '&',
    '=',
    '#',
    '?',
    '/',
    ' ',
    '\0',
    '\t',
    '\n',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{200b}',
    '\u{feff}',
    'İ',
    'ß',
    'é',
    '\u{10ffff}',
    'N',
    'O',
    'a',
    'e',
    'x',
    'ü',
];

/// Search text: awkward characters and arbitrary Unicode, or a piece of a
/// known address in any letter case (so that some searches find someone).
fn needles() -> impl Strategy<Value = String> {
    let awkward = proptest::collection::vec(
        prop_oneof![3 => proptest::sample::select(&AWKWARD[..]), 1 => any::<char>()],
        0..10,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>());
    let piece = (
        proptest::sample::select(&EMAILS[..]),
        0usize..30,
        1usize..8,
        any::<bool>(),
    )
        .prop_map(|(email, start, len, upper)| {
            let piece: String = email.chars().skip(start % 20).take(len).collect();
            if upper {
                piece.to_uppercase()
            } else {
                piece
            }
        });
    prop_oneof![awkward, piece]
}

/// What a literal, case-insensitive substring search must find.
fn expected_matches(needle: &str) -> BTreeSet<String> {
    let needle = needle.to_lowercase();
    EMAILS
        .iter()
        .chain(["root@example.com"].iter())
        .map(|email| email.to_lowercase())
        .filter(|email| email.contains(&needle))
        .collect()
}

fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Control characters are taken literally: no address holds one, so a
/// search with one finds nobody (a 200 with an empty page), on both
/// databases, never an error. Every other search finds exactly the
/// addresses that contain the text, ignoring case.
async fn the_user_search_takes_any_text_literally(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    for email in EMAILS {
        app.register(email, PASSWORD)
            .await
            .assert_status(StatusCode::CREATED);
    }
    let handle = tokio::runtime::Handle::current();
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let outcome = tokio::task::block_in_place(|| {
        runner.run(&needles(), |needle| {
            let uri = format!("/api/v1/users?limit=100&q={}", query_value(&needle));
            let response = handle.block_on(app.get(&uri, Some(&admin.access)));
            prop_assert_eq!(
                response.status,
                StatusCode::OK,
                "{:?}: {}",
                needle,
                response.text
            );
            let found: BTreeSet<String> = response
                .body
                .as_array()
                .ok_or_else(|| TestCaseError::fail(format!("not a list: {}", response.text)))?
                .iter()
                .filter_map(|user| user["email"].as_str().map(str::to_owned))
                .collect();
            // The API treats an empty `q` as no filter.
            if !needle.is_empty() {
                prop_assert_eq!(&found, &expected_matches(&needle), "{:?}", needle);
            }
            let total = found.len().to_string();
            prop_assert_eq!(
                response.headers["x-total-count"].to_str().ok(),
                Some(total.as_str()),
                "{:?}",
                needle
            );
            Ok(())
        })
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

async fn control_characters_in_text_inputs_are_refused_or_taken_literally(app: TestApp) {
    let (_, admin) = app.admin("root@example.com").await;
    for control in ["\0", "\u{1}", "\r\n", "\u{1b}", "\u{7f}", "\u{85}"] {
        let email = format!("a{control}b@example.com");
        app.register(&email, PASSWORD)
            .await
            .assert_validation(&["body", "email"]);
        app.login_response(&email, PASSWORD)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "Incorrect email or password");
        app.post(
            "/api/v1/auth/password-recovery",
            json!({ "email": email }),
            None,
        )
        .await
        .assert_validation(&["body", "email"]);
        for path in ["/api/v1/auth/verify-email", "/api/v1/auth/reset-password"] {
            let response = app
                .post(
                    path,
                    json!({ "token": format!("x{control}y"), "new_password": PASSWORD }),
                    None,
                )
                .await;
            assert_eq!(
                response.status,
                StatusCode::BAD_REQUEST,
                "{path}: {}",
                response.text
            );
        }
        app.refresh(&format!("r{control}t"))
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        let search = app
            .get(
                &format!("/api/v1/users?q={}", query_value(&format!("ab{control}"))),
                Some(&admin.access),
            )
            .await;
        search.assert_status(StatusCode::OK);
        assert_eq!(search.body, json!([]));
        assert_eq!(search.headers["x-total-count"], "0");
        app.get(
            &format!("/api/v1/audit?type={}", query_value(control)),
            Some(&admin.access),
        )
        .await
        .assert_validation(&["query", "type"]);
    }
    // The search: three NUL bytes.
    let nul = app
        .get("/api/v1/users?q=%00%00%00", Some(&admin.access))
        .await;
    nul.assert_status(StatusCode::OK);
    assert_eq!(nul.body, json!([]));
    // Passwords are any Unicode, used exactly as typed: control characters too.
    let odd = "tab\there, nul\0there, escape\u{1b} everywhere";
    let (id, tokens) = app.user("odd@example.com").await;
    app.patch(
        "/api/v1/users/me",
        json!({ "password": odd, "current_password": PASSWORD }),
        Some(&tokens.access),
    )
    .await
    .assert_status(StatusCode::OK);
    let again = app.login("odd@example.com", odd).await;
    let me = app.get("/api/v1/users/me", Some(&again.access)).await;
    assert_eq!(me.body["id"], id);
    app.login_response(
        "odd@example.com",
        "tab\there, nul there, escape\u{1b} everywhere",
    )
    .await
    .assert_status(StatusCode::UNAUTHORIZED);
}

/// A real server on a free port, its address, and the means to stop it.
struct Served {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    running: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn serve(backend: Backend) -> Served {
    use leptos_auth::{config::Config, startup::Application};
    let dir = tempfile::tempdir().expect("temp dir");
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("serve.db").display()),
        Backend::Postgres => pg::fresh_database().await,
    };
    let mut vars = test_settings(&url, dir.path());
    vars.insert("LEPTOS_SITE_ADDR".into(), "127.0.0.1:0".into());
    let config = Config::from_lookup(|k| vars.get(k).cloned()).expect("config");
    let server = Application::build(config).await.expect("build");
    let base = format!("http://{}", server.local_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Served {
        base,
        stop,
        running,
        _dir: dir,
    }
}

/// After a refusal that leaves the request body unread (413, 415), the
/// server cannot reuse the connection, and says so: `Connection: close`.
/// The client's next request, which would otherwise go out on the closing
/// connection and fail ("connection closed before message completed"),
/// then opens a new one. Requests that were read keep their connection.
async fn an_early_refusal_says_the_connection_closes(backend: Backend) {
    let served = serve(backend).await;
    // One pooled connection: the next request goes out on the last one if
    // the client believes it still open.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let url = |path: &str| format!("{}{path}", served.base);
    let health = || async {
        let response = http
            .get(url("/health"))
            .send()
            .await
            .expect("the next request on this client is answered");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert!(response.headers().get(header::CONNECTION).is_none());
    };
    health().await;
    let megabytes = |n: usize| vec![b'x'; n * 1024 * 1024];
    let refusals = [
        ("/api/v1/users", "application/json", megabytes(3), 413),
        ("/api/v1/users", "application/xml", megabytes(1), 415),
        (
            "/fn/login",
            "application/x-www-form-urlencoded",
            megabytes(3),
            413,
        ),
    ];
    for (path, content_type, body, status) in refusals {
        let size = body.len();
        let response = http
            .post(url(path))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ORIGIN, served.base.as_str())
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path} with {size} bytes: {e}"));
        assert_eq!(response.status().as_u16(), status, "{path}");
        let connection = response.headers().get(header::CONNECTION).cloned();
        health().await;
        health().await;
        assert_eq!(
            connection.as_ref().map(|v| v.as_bytes()),
            Some(&b"close"[..]),
            "{path} with {size} bytes"
        );
    }
    // A body that was read leaves the connection open.
    let login = http
        .post(url("/api/v1/auth/login"))
        .json(&json!({ "email": "nobody@example.com", "password": PASSWORD }))
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), reqwest::StatusCode::UNAUTHORIZED);
    assert!(login.headers().get(header::CONNECTION).is_none());
    health().await;
    let _ = served.stop.send(());
    served
        .running
        .await
        .expect("server task")
        .expect("server stops cleanly");
}

/// One HTTP/1.1 answer read off a socket: the head (status line and
/// headers, lower-cased) and the body.
async fn read_answer(
    reader: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<(String, Vec<u8>), String> {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match reader.read(&mut chunk).await {
            Ok(0) => return Err("server disconnected".to_owned()),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("server disconnected: {e}")),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        match reader.read(&mut chunk).await {
            Ok(0) => return Err("server disconnected mid-body".to_owned()),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("server disconnected mid-body: {e}")),
        }
    }
    Ok((head, body))
}

/// Two requests on one kept-alive connection, as HTTP/1.1 allows: the
/// first is refused before its body is read; unless its answer says
/// `Connection: close`, the second must be answered on the same socket.
async fn the_connection_after_a_refusal_answers_or_was_said_closed(backend: Backend) {
    use tokio::io::AsyncWriteExt;
    let served = serve(backend).await;
    let addr = served.base.trim_start_matches("http://").to_owned();
    let body = vec![b'x'; 1024 * 1024];
    for (path, content_type, status) in [
        ("/fn/login", "application/x-www-form-urlencoded", "413"),
        ("/api/v1/users", "application/xml", "415"),
        ("/api/v1/users", "application/json", "413"),
    ] {
        let stream = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        let first = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let upload = {
            let mut request = first.into_bytes();
            request.extend_from_slice(&body);
            tokio::spawn(async move {
                // The server may stop reading: a failed write is its refusal.
                let _ = writer.write_all(&request).await;
                writer
            })
        };
        let (head, _) = read_answer(&mut reader).await.expect("the first answer");
        assert!(
            head.starts_with(&format!("http/1.1 {status}")),
            "{path}: {head}"
        );
        let mut writer = upload.await.expect("upload");
        let second = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        let said_close = head.contains("\r\nconnection: close\r\n");
        let answer = if said_close {
            // A client that was told opens a new connection.
            let stream = tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect");
            let (mut reader, mut writer) = stream.into_split();
            writer.write_all(second.as_bytes()).await.expect("write");
            read_answer(&mut reader).await
        } else {
            match writer.write_all(second.as_bytes()).await {
                Ok(()) => read_answer(&mut reader).await,
                Err(e) => Err(format!("server disconnected: {e}")),
            }
        };
        let (head2, _) = answer.unwrap_or_else(|e| {
            panic!(
                "{path}: the request after the {status} ({}): {e}",
                if said_close {
                    "said close"
                } else {
                    "kept alive"
                }
            )
        });
        assert!(head2.starts_with("http/1.1 200"), "{head2}");
    }
    let _ = served.stop.send(());
    served
        .running
        .await
        .expect("server task")
        .expect("server stops cleanly");
}

/// The same limits hold without a socket: the refusals say so too.
async fn refusals_before_the_body_is_read_say_connection_close(app: TestApp) {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/users")
        .header(header::CONTENT_TYPE, "application/xml")
        .body(axum::body::Body::from("<user/>"))
        .expect("request");
    let refused = app.send(request).await;
    refused.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(refused.headers[header::CONNECTION], "close");
    let read = app.login_response("nobody@example.com", PASSWORD).await;
    read.assert_status(StatusCode::UNAUTHORIZED);
    assert!(read.headers.get(header::CONNECTION).is_none());
    let get = app.get("/health", None).await;
    assert!(get.headers.get(header::CONNECTION).is_none());
}

both_backends!(
    the_user_search_takes_any_text_literally,
    control_characters_in_text_inputs_are_refused_or_taken_literally,
    refusals_before_the_body_is_read_say_connection_close,
);

each_backend!(
    an_early_refusal_says_the_connection_closes,
    the_connection_after_a_refusal_answers_or_was_said_closed,
);

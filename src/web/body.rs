//! Request bodies at the edge: the size cap of the pages and server
//! functions, and the keep-alive rule for answers given before a body was
//! read to its end.

use axum::{
    body::{Body, Bytes, HttpBody},
    extract::Request,
    http::{header, HeaderValue, StatusCode, Version},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

/// Largest request body anyone may send (413 beyond): the API's cap, and
/// the pages' and server functions' (their forms hold an email and a few
/// passwords; the API's bodies are as small).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Middleware for the pages and server functions: reads the body, at most
/// [`MAX_BODY_BYTES`], before anything else sees it, and answers 413 beyond
/// (at once when `Content-Length` already says so). Without it, leptos reads
/// up to axum's 2 MB default and reports a larger body as an argument error.
pub async fn cap(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        return too_large();
    }
    match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_BODY_BYTES)).await
    {
        Ok(collected) => {
            let body = Body::from(collected.to_bytes());
            next.run(Request::from_parts(parts, body)).await
        }
        Err(err) if err.is::<http_body_util::LengthLimitError>() => too_large(),
        // The client stopped sending mid-body: nobody is listening any more.
        Err(_) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "detail": "Could not read the request body" })),
        )
            .into_response(),
    }
}

fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        Json(serde_json::json!({ "detail": "Request body too large" })),
    )
        .into_response()
}

/// Middleware for every route: a response to an HTTP/1 request whose body
/// was not read to its end (refused early: too large, wrong content type,
/// not authenticated...) says `Connection: close`. hyper cannot reuse such a
/// connection (the rest of the body is still on it) and closes it after the
/// response; without the header, a client would send its next request on a
/// connection that is going away and see it fail ("server disconnected").
pub async fn close_if_unread(request: Request, next: Next) -> Response {
    if request.version() > Version::HTTP_11 || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let finished = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(Watched {
            inner: body,
            finished: finished.clone(),
        })
    });
    let mut response = next.run(request).await;
    if !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that notes when it has been read to its end.
struct Watched {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

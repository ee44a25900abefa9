//! Resolves the browser session from the cookies, once per request.

use super::cookies::SessionCookies;
use crate::{
    api::extract::client_info,
    services::{Actor, ClientInfo, ServiceError},
    startup::AppState,
};
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use tower_cookies::Cookies;

/// The signed-in user of a page or server-function request (`None`: anonymous).
#[derive(Debug, Clone, Default)]
pub struct BrowserSession(pub Option<Actor>);

/// Static assets never need a session (and must not cost a database query).
fn is_asset(path: &str) -> bool {
    path.starts_with("/pkg/")
        || path == "/favicon.svg"
        || path == "/favicon.ico"
        || path == "/robots.txt"
}

/// Middleware: puts the [`BrowserSession`] into the request extensions. When
/// the access cookie is missing or expired and the refresh cookie is valid,
/// the session is rotated and fresh cookies go out with the response; when
/// the session is over (signed out, revoked, reused, user deactivated or
/// deleted), both cookies are cleared.
pub async fn resolve(
    State(state): State<AppState>,
    cookies: Cookies,
    mut request: Request,
    next: Next,
) -> Response {
    if is_asset(request.uri().path()) {
        return next.run(request).await;
    }
    let jar = SessionCookies::new(&state.config);
    let client = client_info(request.headers(), request.extensions(), &state);
    let actor = session_from_cookies(&state, &jar, &cookies, &client)
        .await
        .map(|mut actor| {
            actor.client = client;
            actor
        });
    tracing::Span::current().record("user_id", actor.as_ref().map(|a| a.user.id));
    request.extensions_mut().insert(BrowserSession(actor));
    next.run(request).await
}

async fn session_from_cookies(
    state: &AppState,
    jar: &SessionCookies,
    cookies: &Cookies,
    client: &ClientInfo,
) -> Option<Actor> {
    let auth = &state.services.auth;
    if let Some(access) = jar.access_token(cookies) {
        match auth.authenticate(&access).await {
            Ok(actor) => return Some(actor),
            // A database fault is not the end of the session: keep the cookies.
            Err(ServiceError::Unavailable(_) | ServiceError::Internal(_)) => return None,
            Err(_) => {}
        }
    }
    let refresh = jar.refresh_token(cookies)?;
    match auth.refresh(&refresh, client).await {
        Ok(pair) => {
            jar.set(cookies, &pair);
            auth.authenticate(&pair.access_token).await.ok()
        }
        Err(ServiceError::Unavailable(_) | ServiceError::Internal(_)) => None,
        Err(_) => {
            jar.clear(cookies);
            None
        }
    }
}

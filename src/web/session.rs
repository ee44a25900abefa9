//! Resolves the browser session from the cookies, once per request.

use super::cookies::SessionCookies;
use crate::{
    crypto::hash_opaque_token,
    services::{Actor, AuthService, ClientInfo, ServiceError, TokenPair},
};
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::Response,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use tokio::sync::OnceCell;
use tower_cookies::Cookies;

/// The signed-in user of a page or server-function request (`None`: anonymous).
#[derive(Debug, Clone, Default)]
pub struct BrowserSession(pub Option<Actor>);

/// How a browser refresh ended, shared by the requests that waited for it.
#[derive(Clone)]
enum Refreshed {
    Pair(TokenPair),
    /// The session is over: clear the cookies.
    Ended,
    /// The database failed: keep the cookies, treat the request as anonymous.
    Unavailable,
}

type Flight = Arc<OnceCell<Refreshed>>;

/// The browser refreshes in flight on this instance, by refresh-token hash.
///
/// Tabs of one browser that load pages at the moment their access cookie
/// expired all carry the same refresh cookie. Here the first request
/// rotates it and the others wait for its answer instead of rotating
/// again, so one instance does one rotation per token (even with
/// `REFRESH_REUSE_GRACE_SECONDS=0`). Across instances, the database's reuse
/// grace and the one successor per token keep the racers signed in.
#[derive(Clone, Default)]
struct RefreshFlights(Arc<Mutex<HashMap<String, Flight>>>);

impl RefreshFlights {
    /// Runs `refresh` once for all concurrent callers with the same token.
    async fn run<F, Fut>(&self, token: &str, refresh: F) -> Refreshed
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Refreshed>,
    {
        let key = hash_opaque_token(token);
        let flight = {
            let mut flights = self.0.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let outcome = flight.get_or_init(refresh).await.clone();
        // Whoever finishes first takes the flight down; a later request with
        // the same token goes to the database (and its reuse rules) again.
        let mut flights = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        outcome
    }
}

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
    State(sessions): State<Sessions>,
    cookies: Cookies,
    mut request: Request,
    next: Next,
) -> Response {
    if is_asset(request.uri().path()) {
        return next.run(request).await;
    }
    let client = crate::client::of(request.extensions());
    let actor = sessions.resolve(&cookies, client).await;
    tracing::Span::current().record("user_id", actor.as_ref().map(|a| a.user.id));
    request.extensions_mut().insert(BrowserSession(actor));
    next.run(request).await
}

/// What [`resolve`] needs: the authentication service, the cookie settings
/// and this instance's refreshes in flight.
#[derive(Clone)]
pub struct Sessions {
    auth: AuthService,
    jar: SessionCookies,
    flights: RefreshFlights,
}

impl Sessions {
    /// The session resolver of one instance.
    pub fn new(auth: AuthService, jar: SessionCookies) -> Self {
        Sessions {
            auth,
            jar,
            flights: RefreshFlights::default(),
        }
    }

    async fn resolve(&self, cookies: &Cookies, client: ClientInfo) -> Option<Actor> {
        let (auth, jar) = (&self.auth, &self.jar);
        if let Some(access) = jar.access_token(cookies) {
            match auth.authenticate(&access, client.clone()).await {
                Ok(actor) => return Some(actor),
                // A database fault is not the end of the session: keep the cookies.
                Err(ServiceError::Unavailable(_) | ServiceError::Internal(_)) => return None,
                Err(_) => {}
            }
        }
        let refresh = jar.refresh_token(cookies)?;
        let refreshed = self
            .flights
            .run(&refresh, || async {
                match auth.refresh(&refresh, &client).await {
                    Ok(pair) => Refreshed::Pair(pair),
                    Err(ServiceError::Unavailable(_) | ServiceError::Internal(_)) => {
                        Refreshed::Unavailable
                    }
                    Err(_) => Refreshed::Ended,
                }
            })
            .await;
        match refreshed {
            Refreshed::Pair(pair) => {
                jar.set(cookies, &pair);
                auth.authenticate(&pair.access_token, client).await.ok()
            }
            Refreshed::Unavailable => None,
            Refreshed::Ended => {
                jar.clear(cookies);
                None
            }
        }
    }
}

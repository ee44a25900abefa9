//! Router assembly and serving. `Application::build` initializes the
//! [`AppState`] (connect, migrate, wire the services) and binds the listener
//! (port 0 in tests), so tests and `main` start the app the same way.

use crate::{
    api,
    app::{self, shell, App},
    client,
    config::Config,
    db::Pool,
    metrics,
    state::AppState,
    telemetry, web,
};
use anyhow::Context;
use axum::{
    http::{header, HeaderValue, Method, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    Router,
};
use leptos::{
    nonce::Nonce,
    prelude::{provide_context, use_context},
};
use leptos_axum::{generate_route_list, AxumRouteListing, LeptosRoutes};
use std::{
    future::{Future, IntoFuture},
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};
use tokio::net::TcpListener;
use tower_cookies::CookieManagerLayer;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

/// The whole HTTP surface: health, `/api/v1`, the site's assets and the
/// Leptos pages.
pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.config.cors_origins);
    let docs = api::docs_router(state.services.users.policy())
        .layer(middleware::from_fn(web::headers::docs_headers));
    let api = Router::new()
        .merge(api::health_router())
        .merge(docs)
        .nest("/api/v1", api::router())
        .with_state(state.clone());
    let api = match cors {
        Some(cors) => api.layer(cors),
        None => api,
    };
    // Layers run bottom-up on the way in. Applied per route, they see the
    // matched route (`MatchedPath`) for the logs and the metrics.
    let trusted = client::TrustedProxies::new(&state.config.trusted_proxies);
    // `/pkg` beside the pages, not behind their cookies, session and CSRF
    // layers: a static file needs none of them.
    let site = web::assets::Site::new(&state.leptos_options);
    api.merge(site.pkg_router())
        .merge(pages_router(state, &site))
        .layer(middleware::from_fn(web::compression::compress))
        .layer(middleware::from_fn_with_state(trusted, client::resolve))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn(web::body::close_if_unread))
        .layer(middleware::from_fn(metrics::track_http))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_request(())
                .on_response(telemetry::log_response)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::map_request(telemetry::drop_unusable_request_id))
}

/// The page routes, generated once per process. Generating them runs the app
/// with resource loading suppressed process-wide, so a page rendering at that
/// moment in another router of the same process (integration tests build
/// many) would wait forever (leptos issue #4773). The list is the same for
/// every router of this binary.
fn route_list() -> Vec<AxumRouteListing> {
    static ROUTES: OnceLock<Vec<AxumRouteListing>> = OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// Pages, server functions and the files at the site root, with cookie
/// sessions, CSRF defence, security headers and a body cap. Request order
/// (after the client address, resolved for every route): headers (nonce)
/// -> body cap -> cookies -> CSRF check -> session -> emailed-link pages
/// kept uncompressed -> server-function error status -> Leptos, or for
/// other paths a file of the site root, else the HTML 404 page.
fn pages_router(state: AppState, site: &web::assets::Site) -> Router {
    let routes = route_list();
    let options = state.leptos_options.clone();
    let context = {
        let state = state.clone();
        move || {
            provide_context(state.clone());
            // The CSP nonce chosen by the header middleware, for the hydration scripts.
            let nonce = use_context::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<web::headers::CspNonce>().cloned());
            if let Some(web::headers::CspNonce(nonce)) = nonce {
                provide_context(Nonce::from_value(nonce));
            }
        }
    };
    let not_found = {
        let options = options.clone();
        let render = leptos_axum::render_app_async_with_context(context.clone(), move || {
            shell(options.clone())
        });
        tower::service_fn(move |request: axum::extract::Request| {
            let page = render(request);
            async move {
                let mut response = page.await;
                // The app's fallback route renders "Page not found"; a
                // status it chose (a redirect) stays.
                if response.status() == StatusCode::OK {
                    *response.status_mut() = StatusCode::NOT_FOUND;
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    Router::new()
        .leptos_routes_with_context(&state, routes, context, move || shell(options.clone()))
        .fallback_service(site.root_files(not_found))
        .layer(middleware::from_fn(app::fn_errors::status_from_error))
        .layer(middleware::from_fn(
            web::compression::keep_link_pages_identity,
        ))
        .layer(middleware::from_fn_with_state(
            web::session::Sessions::new(
                state.services.auth.clone(),
                web::cookies::SessionCookies::new(&state.config),
            ),
            web::session::resolve,
        ))
        .layer(middleware::from_fn(web::csrf::guard))
        .layer(CookieManagerLayer::new())
        .layer(middleware::from_fn(web::body::cap))
        .layer(middleware::from_fn(web::headers::page_headers))
        .with_state(state)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({ "detail": "Internal Server Error" })),
    )
        .into_response()
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static(telemetry::REQUEST_ID),
            ])
            .expose_headers([
                header::HeaderName::from_static("x-total-count"),
                header::HeaderName::from_static(telemetry::REQUEST_ID),
            ])
            .max_age(Duration::from_secs(3600)),
    )
}

/// A ready-to-serve instance: state, router and bound listeners.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pool: Pool,
    state: AppState,
    /// The `/metrics` listener and the recorder it renders (`METRICS_ADDR`).
    metrics: Option<(TcpListener, metrics_exporter_prometheus::PrometheusHandle)>,
}

impl Application {
    /// Builds the app and binds `LEPTOS_SITE_ADDR` and, when set,
    /// `METRICS_ADDR` (use port 0 for a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let addr = config.site_addr;
        let metrics_addr = config.metrics_addr;
        // Installed first, so that startup's own work is counted.
        let recorder = metrics_addr.map(|_| metrics::recorder()).transpose()?;
        let (state, pool) = AppState::initialize(config).await?;
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("invalid configuration: LEPTOS_SITE_ADDR: cannot listen on {addr}")
        })?;
        let metrics = match (metrics_addr, recorder) {
            (Some(addr), Some(recorder)) => {
                let listener = TcpListener::bind(addr).await.with_context(|| {
                    format!("invalid configuration: METRICS_ADDR: cannot listen on {addr}")
                })?;
                Some((listener, recorder))
            }
            _ => None,
        };
        Ok(Application {
            listener,
            router: router(state.clone()),
            pool,
            state,
            metrics,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The address of the `/metrics` listener, when metrics are on.
    pub fn metrics_addr(&self) -> Option<std::io::Result<SocketAddr>> {
        self.metrics
            .as_ref()
            .map(|(listener, _)| listener.local_addr())
    }

    /// The shared state (tests use it to reach the services).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops accepting connections
    /// and lets the requests in flight finish, for at most
    /// `SHUTDOWN_TIMEOUT_SECONDS` (then it stops anyway, and says so); then
    /// writes the queued audit events and closes the database pool. The
    /// periodic purge and the metrics listener run meanwhile.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        let services = self.state.services.clone();
        let grace = self.state.config.shutdown_timeout;
        let purge = services
            .maintenance
            .clone()
            .spawn(self.state.config.maintenance_interval);
        let metrics = match self.metrics {
            Some((listener, handle)) => {
                tracing::info!(
                    "serving metrics on http://{}/metrics",
                    listener.local_addr()?
                );
                Some(tokio::spawn(metrics::serve(
                    listener,
                    handle,
                    metrics_reader(&self.state, &self.pool),
                )))
            }
            None => None,
        };

        // The grace period starts when the signal arrives.
        let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!(
                timeout_seconds = grace.as_secs(),
                "no longer accepting connections; letting requests in flight finish"
            );
            let _ = stopping.send(());
        };
        let deadline = async move {
            match stopped.await {
                Ok(()) => tokio::time::sleep(grace).await,
                // The server ended without a signal.
                Err(_) => std::future::pending().await,
            }
        };
        tracing::info!("listening on http://{addr}");
        let server = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let drained = tokio::select! {
            result = server.into_future() => {
                result.context("serving HTTP")?;
                true
            }
            () = deadline => false,
        };
        if !drained {
            tracing::warn!(
                timeout_seconds = grace.as_secs(),
                "requests still in flight after SHUTDOWN_TIMEOUT_SECONDS: stopping anyway"
            );
        }

        purge.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        if tokio::time::timeout(CLOSE_TIMEOUT, services.audit_log.flush())
            .await
            .is_err()
        {
            tracing::error!("timed out writing the last audit events");
        }
        // Queued messages are rows: what is not delivered now is delivered
        // by another instance, or by this one's next start.
        if tokio::time::timeout(CLOSE_TIMEOUT, services.outbox.flush())
            .await
            .is_err()
        {
            tracing::warn!("messages still queued at shutdown: they stay in the outbox");
        }
        services.outbox.stop();
        // Waits for connections still checked out (by requests cut short).
        if tokio::time::timeout(CLOSE_TIMEOUT, self.pool.close())
            .await
            .is_err()
        {
            tracing::warn!("timed out closing the database connections");
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// The figures each `/metrics` scrape reads, through the services.
fn metrics_reader(state: &AppState, pool: &Pool) -> metrics::Reader {
    let services = state.services.clone();
    let pool = pool.clone();
    Arc::new(move || {
        let (services, pool) = (services.clone(), pool.clone());
        Box::pin(async move {
            let (live_sessions, outbox_pending) = tokio::join!(
                services.maintenance.live_sessions(),
                services.outbox.pending()
            );
            metrics::Readings {
                pool: pool.connections(),
                live_sessions: live_sessions
                    .inspect_err(|err| tracing::warn!(error = %err, "could not count live sessions for /metrics"))
                    .ok(),
                outbox_pending: outbox_pending
                    .inspect_err(|err| tracing::warn!(error = %err, "could not count queued messages for /metrics"))
                    .ok(),
            }
        })
    })
}

/// How long the last audit writes, the last queued messages and closing the
/// pool may each take at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("shutting down (Ctrl-C)"),
        _ = terminate => tracing::info!("shutting down (SIGTERM)"),
    }
}

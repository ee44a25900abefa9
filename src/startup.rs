//! Application state, router assembly and serving. `Application::build`
//! connects, migrates, wires the services and binds the listener (port 0 in
//! tests), so tests and `main` start the app the same way.

use crate::{
    api,
    app::{shell, App},
    config::Config,
    db::Pool,
    metrics,
    services::{ServiceError, Services},
    telemetry, web,
};
use anyhow::Context;
use axum::{
    extract::FromRef,
    http::{header, HeaderValue, Method, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    Router,
};
use leptos::{
    nonce::Nonce,
    prelude::{provide_context, use_context, LeptosOptions},
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

/// Shared by every handler and server function: built once, and a clone is
/// one reference count. axum clones the state into the handler of every
/// request at every layer; cloning the services themselves (each holds its
/// repositories, hasher, mailer...) took about a quarter of the CPU time of
/// `GET /api/v1/users/me` (perf, BENCHMARKS.md).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// What [`AppState`] points at (fields reached through `Deref`).
pub struct SharedState {
    /// Leptos rendering options (site root, output name...).
    pub leptos_options: LeptosOptions,
    /// The business layer.
    pub services: Services,
    /// The settings of this instance.
    pub config: Arc<Config>,
    /// Browser refreshes in flight on this instance (one rotation per token).
    pub refresh_flights: crate::web::session::RefreshFlights,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// Leptos' handlers take their options from the router state.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// Connects to the database, applies migrations, wires the services and
    /// ensures the `ADMIN_EMAIL` admin exists when configured.
    pub async fn initialize(config: Config) -> anyhow::Result<(AppState, Pool)> {
        let pool = Pool::connect(&config.database)
            .await
            .context("opening the database")?;
        pool.migrate().await.context("applying migrations")?;
        let services = Services::new(&config, pool.serving_repositories(config.auth_cache))?;
        ensure_configured_admin(&config, &services).await?;
        let state = AppState(Arc::new(SharedState {
            leptos_options: leptos_options(&config)?,
            services,
            config: Arc::new(config),
            refresh_flights: Default::default(),
        }));
        Ok((state, pool))
    }
}

/// The Leptos options this instance serves with (also shown by `config check`).
pub(crate) fn leptos_options(config: &Config) -> anyhow::Result<LeptosOptions> {
    let mut options = leptos::config::get_configuration(None)
        .context("reading the Leptos site configuration")?
        .leptos_options;
    options.site_addr = config.site_addr;
    if std::env::var_os("LEPTOS_SITE_ROOT").is_none() {
        if let Some(site) = site_next_to_binary() {
            options.site_root = site.display().to_string().into();
        }
    }
    Ok(options)
}

/// The `site` folder beside the executable (the `make dist` and container
/// layout), so the binary serves its assets from any working directory.
fn site_next_to_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let site = exe.parent()?.join("site");
    site.join("pkg").is_dir().then_some(site)
}

async fn ensure_configured_admin(config: &Config, services: &Services) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) else {
        return Ok(());
    };
    match services
        .users
        .ensure_admin(email.as_str(), password.clone())
        .await
    {
        Ok((user, true)) => tracing::info!(
            user_id = user.id,
            "created the admin account from ADMIN_EMAIL"
        ),
        Ok((user, false)) => {
            tracing::info!(user_id = user.id, "the ADMIN_EMAIL account is an admin")
        }
        Err(ServiceError::Invalid(field)) => {
            anyhow::bail!("invalid configuration: ADMIN_PASSWORD: {}", field.message)
        }
        Err(err) => {
            return Err(anyhow::Error::new(err).context("ensuring the ADMIN_EMAIL admin exists"))
        }
    }
    Ok(())
}

/// The whole HTTP surface: health, `/api/v1`, and the Leptos pages and assets.
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
    api.merge(pages_router(state))
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

/// Pages, server functions and site assets, with cookie sessions, CSRF
/// defence, security headers and a body cap. Request order: headers (nonce)
/// -> body cap -> cookies -> CSRF check -> session -> server-function error
/// status -> Leptos.
fn pages_router(state: AppState) -> Router {
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
    Router::new()
        .leptos_routes_with_context(&state, routes, context.clone(), move || {
            shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
        .layer(middleware::from_fn(web::fn_errors::status_from_error))
        .layer(middleware::from_fn_with_state(
            state.clone(),
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
                    self.pool.clone(),
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

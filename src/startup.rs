//! Application state, router assembly and serving. `Application::build`
//! connects, migrates, wires the services and binds the listener (port 0 in
//! tests), so tests and `main` start the app the same way.

use crate::{
    api,
    app::{shell, App},
    config::Config,
    db::Pool,
    services::{ServiceError, Services},
    web,
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
    future::Future,
    net::SocketAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};
use tokio::net::TcpListener;
use tower_cookies::CookieManagerLayer;
use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};

/// Shared by every handler and server function: built once, cloned cheaply.
#[derive(Clone, FromRef)]
pub struct AppState {
    /// Leptos rendering options (site root, output name...).
    pub leptos_options: LeptosOptions,
    /// The business layer.
    pub services: Services,
    /// The settings of this instance.
    pub config: Arc<Config>,
}

impl AppState {
    /// Connects to the database, applies migrations, wires the services and
    /// ensures the `ADMIN_EMAIL` admin exists when configured.
    pub async fn initialize(config: Config) -> anyhow::Result<(AppState, Pool)> {
        let pool = Pool::connect(&config)
            .await
            .context("opening the database")?;
        pool.migrate().await.context("applying migrations")?;
        let services =
            Services::new(&config, pool.repositories()).context("setting up password hashing")?;
        ensure_configured_admin(&config, &services).await?;
        let state = AppState {
            leptos_options: leptos_options(&config)?,
            services,
            config: Arc::new(config),
        };
        Ok((state, pool))
    }
}

fn leptos_options(config: &Config) -> anyhow::Result<LeptosOptions> {
    let mut options = leptos::config::get_configuration(None)
        .context("reading the Leptos site configuration")?
        .leptos_options;
    options.site_addr = config.site_addr;
    Ok(options)
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
    let api = Router::new()
        .merge(api::health_router())
        .nest("/api/v1", api::router())
        .with_state(state.clone());
    let api = match cors {
        Some(cors) => api.layer(cors),
        None => api,
    };
    api.merge(pages_router(state))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &axum::extract::Request| {
                    // The path only: query strings are never logged.
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path())
                })
                .on_request(())
                .on_response(|res: &Response, latency: Duration, _span: &tracing::Span| {
                    tracing::info!(
                        status = res.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "request"
                    );
                })
                .on_failure(()),
        )
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
/// defence and security headers. Request order: headers (nonce) -> cookies ->
/// CSRF check -> session -> Leptos.
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
        .layer(middleware::from_fn_with_state(
            state.clone(),
            web::session::resolve,
        ))
        .layer(middleware::from_fn(web::csrf::guard))
        .layer(CookieManagerLayer::new())
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
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::HeaderName::from_static("x-total-count")])
            .max_age(Duration::from_secs(3600)),
    )
}

/// A ready-to-serve instance: state, router and a bound listener.
pub struct Application {
    listener: TcpListener,
    router: Router,
    pool: Pool,
    state: AppState,
}

impl Application {
    /// Builds the app and binds `LEPTOS_SITE_ADDR` (use port 0 for a free port).
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let addr = config.site_addr;
        let (state, pool) = AppState::initialize(config).await?;
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("invalid configuration: LEPTOS_SITE_ADDR: cannot listen on {addr}")
        })?;
        Ok(Application {
            listener,
            router: router(state.clone()),
            pool,
            state,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests use it to reach the services).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish,
    /// writes the queued audit events, then closes the database pool. The
    /// periodic purge runs meanwhile.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr()?;
        let services = self.state.services.clone();
        let purge = services
            .maintenance
            .clone()
            .spawn(self.state.config.maintenance_interval);
        tracing::info!("listening on http://{addr}");
        axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
        purge.abort();
        if tokio::time::timeout(Duration::from_secs(5), services.audit_log.flush())
            .await
            .is_err()
        {
            tracing::error!("timed out writing the last audit events");
        }
        self.pool.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

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
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

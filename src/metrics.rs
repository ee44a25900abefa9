//! Prometheus metrics, served at `/metrics` on a listener of their own
//! (`METRICS_ADDR`), never on the site's port.
//!
//! Code records through the `metrics` facade (the functions below, one call
//! where something happens); the `metrics-exporter-prometheus` recorder keeps
//! the values and renders them in the text format. The facade is global by
//! design: the recorder is installed once per process, lazily, by the first
//! instance that serves metrics. Without it every recording is a no-op, so
//! instances without `METRICS_ADDR` (and most tests) pay nothing.
//!
//! Families (see the README, "Logs and metrics"):
//! - `http_requests_total`, `http_request_duration_seconds` by `method`,
//!   `route` (the matched route pattern, `unmatched` otherwise: a label per
//!   raw path would let clients create series at will) and `status`;
//!   `http_requests_in_flight`;
//! - `auth_login_attempts_total` by `outcome` (`success`, `failure`, `throttled`);
//! - `auth_refresh_attempts_total` by `outcome` (`rotated`, `within_grace`, `reuse_detected`, `invalid`);
//! - `argon2_queue_wait_seconds`: from asking to hash to getting a slot;
//! - `db_pool_connections`, `db_pool_idle_connections`: sampled at each scrape;
//! - `auth_active_sessions`: live sessions of all users, counted at each scrape;
//! - `mail_messages_total` by `outcome` (`sent`, `retried`, `failed`);
//! - `mail_outbox_pending`: messages waiting in the durable outbox (all
//!   instances), counted at each scrape.

use crate::repositories::Rotation;
use ::metrics::{counter, gauge, histogram};
use anyhow::Context;
use axum::{
    extract::{MatchedPath, Request, State},
    http::header,
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};
use tokio::net::TcpListener;

/// Histogram buckets (seconds) of every `*_seconds` family: from a cached
/// page to a request stuck behind a queue of password hashes.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often histogram samples are folded in even when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on the first call. Later
/// calls (tests start many instances in one process) get the same handle.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|e| e.to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
        .map_err(anyhow::Error::msg)
        .context("installing the metrics recorder")
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("http_requests_total", "HTTP requests answered.");
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from receiving a request to its response headers."
    );
    describe_gauge!("http_requests_in_flight", "HTTP requests being served.");
    describe_counter!(
        "auth_cache_lookups_total",
        "Authentication checks by result: hit (answered from this instance's cache) or miss (read from the database)."
    );
    describe_gauge!(
        "auth_cache_change_feed_up",
        "1 while this instance follows the PostgreSQL change feed that keeps its authentication cache current."
    );
    describe_counter!(
        "auth_login_attempts_total",
        "Sign-ins (API and pages) by outcome: success, failure, throttled."
    );
    describe_counter!(
        "auth_refresh_attempts_total",
        "Refresh-token exchanges by outcome: rotated, within_grace, reuse_detected, invalid."
    );
    describe_histogram!(
        "argon2_queue_wait_seconds",
        Unit::Seconds,
        "Wait for a password-hashing slot (ARGON2_MAX_CONCURRENT)."
    );
    describe_gauge!(
        "db_pool_connections",
        "Open database connections (idle and in use)."
    );
    describe_gauge!("db_pool_idle_connections", "Idle database connections.");
    describe_counter!(
        "mail_messages_total",
        "Delivery attempts by outcome: sent (or written to the outbox folder), retried (a transient failure; another attempt is scheduled), failed (refused, or given up after 24 hours)."
    );
    describe_gauge!(
        "mail_outbox_pending",
        "Messages waiting in the durable mail outbox (queued by any instance), counted at each scrape."
    );
    describe_gauge!(
        "auth_active_sessions",
        "Live sessions (signed in, not expired or revoked), counted at each scrape."
    );
}

/// Counts a delivery attempt by outcome (`sent`, `retried`, `failed`).
pub fn mail_message(outcome: &'static str) {
    counter!("mail_messages_total", "outcome" => outcome).increment(1);
}

/// How a sign-in ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// A session was opened.
    Success,
    /// Wrong credentials or an inactive account.
    Failure,
    /// Refused by brute-force throttling before any password check.
    Throttled,
}

/// Counts a sign-in.
pub fn login_attempt(outcome: LoginOutcome) {
    let outcome = match outcome {
        LoginOutcome::Success => "success",
        LoginOutcome::Failure => "failure",
        LoginOutcome::Throttled => "throttled",
    };
    counter!("auth_login_attempts_total", "outcome" => outcome).increment(1);
}

/// Counts a refresh that reached the session store, by what it found.
pub fn refresh_rotation(rotation: &Rotation) {
    let outcome = match rotation {
        Rotation::Rotated { .. } => "rotated",
        Rotation::WithinGrace { .. } => "within_grace",
        Rotation::ReuseDetected { .. } => "reuse_detected",
        Rotation::Invalid => "invalid",
    };
    counter!("auth_refresh_attempts_total", "outcome" => outcome).increment(1);
}

/// Counts a refresh refused before the session store (malformed token, or
/// an access token presented as a refresh token).
pub fn refresh_refused() {
    counter!("auth_refresh_attempts_total", "outcome" => "invalid").increment(1);
}

/// Records how long a password hash waited for a slot.
pub fn argon2_queue_wait(waited: Duration) {
    histogram!("argon2_queue_wait_seconds").record(waited.as_secs_f64());
}

/// Middleware (inside the router, where the matched route is known): counts
/// and times every request.
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let _in_flight = InFlight::start();
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    counter!("http_requests_total", &labels).increment(1);
    histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}

/// Standard methods by name; anything else is one label, not one per name.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Keeps `http_requests_in_flight` right even when a request is cancelled.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        gauge!("http_requests_in_flight").increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        gauge!("http_requests_in_flight").decrement(1.0);
    }
}

/// What a scrape reads besides the recorder: the figures only the
/// database knows, and the pool's connections.
#[derive(Debug, Clone, Copy, Default)]
pub struct Readings {
    /// Connections open in the pool, and how many of them are idle.
    pub pool: (u32, usize),
    /// Live sessions (`None`: could not be counted this time).
    pub live_sessions: Option<i64>,
    /// Messages waiting in the mail outbox (`None`: could not be counted).
    pub outbox_pending: Option<i64>,
}

/// Takes the [`Readings`] at each scrape (startup wires it to the services,
/// which this module sits below).
pub type Reader = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Readings> + Send>> + Send + Sync,
>;

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    read: Reader,
}

/// Serves `GET /metrics` on `listener` until the task is dropped, and keeps
/// the recorder's histograms folded in between scrapes.
pub async fn serve(listener: TcpListener, handle: PrometheusHandle, read: Reader) {
    let upkeep = {
        let handle = handle.clone();
        async move {
            let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
            loop {
                ticks.tick().await;
                handle.run_upkeep();
            }
        }
    };
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(Scrape { handle, read });
    tokio::select! {
        result = axum::serve(listener, app) => {
            if let Err(err) = result {
                tracing::error!(error = %err, "the metrics listener failed");
            }
        }
        () = upkeep => {}
    }
}

async fn render(State(scrape): State<Scrape>) -> impl IntoResponse {
    let readings = (scrape.read)().await;
    let (size, idle) = readings.pool;
    gauge!("db_pool_connections").set(f64::from(size));
    gauge!("db_pool_idle_connections").set(idle as f64);
    // A figure that could not be read keeps its last value (the reader
    // logs why).
    if let Some(live) = readings.live_sessions {
        gauge!("auth_active_sessions").set(live as f64);
    }
    if let Some(pending) = readings.outbox_pending {
        gauge!("mail_outbox_pending").set(pending as f64);
    }
    scrape.handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
}

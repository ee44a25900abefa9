//! Liveness and readiness.

use crate::state::AppState;
use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

/// `{"status": ...}`
#[derive(Serialize, utoipa::ToSchema)]
pub struct HealthStatus {
    /// `healthy`, `ready` or `unavailable`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "Up", body = HealthStatus)))]
pub async fn live() -> Json<HealthStatus> {
    Json(HealthStatus { status: "healthy" })
}

/// The database answers.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = HealthStatus),
        (status = 503, description = "The database does not answer", body = HealthStatus)
    ))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<HealthStatus>) {
    match state.services.maintenance.database_ready().await {
        Ok(()) => (StatusCode::OK, Json(HealthStatus { status: "ready" })),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(HealthStatus {
                    status: "unavailable",
                }),
            )
        }
    }
}

//! Liveness and readiness.

use crate::startup::AppState;
use axum::{extract::State, http::StatusCode, Json};
use serde_json::{json, Value};

/// `GET /health`: the process is up.
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "healthy" }))
}

/// `GET /health/ready`: the database answers (503 otherwise).
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.services.repositories.health.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
        }
    }
}

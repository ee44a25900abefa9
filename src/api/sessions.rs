//! `/api/v1/users/me/sessions` and `/api/v1/users/{id}/sessions`: device sessions.

use super::{
    error::ApiError,
    extract::{CurrentUser, SessionIdPath, UserIdPath},
    openapi::{AdminOnly, ErrorDetail, SignedIn, ValidationError},
};
use crate::{domain::SessionView, state::AppState};
use axum::{extract::State, http::StatusCode, Json};

/// The caller's live sessions, newest first.
#[utoipa::path(get, path = "/api/v1/users/me/sessions", tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Live sessions", body = [SessionView]),
        SignedIn
    ))]
pub async fn list_mine(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    Ok(Json(state.services.sessions.list_mine(&actor).await?))
}

/// End one of the caller's sessions: its tokens stop working at once.
#[utoipa::path(delete, path = "/api/v1/users/me/sessions/{session_id}", tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    params(("session_id" = i64, Path, minimum = 1, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such live session of the caller", body = ErrorDetail),
        (status = 422, description = "The id is not a positive integer", body = ValidationError),
        SignedIn
    ))]
pub async fn revoke_mine(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    SessionIdPath(id): SessionIdPath,
) -> Result<StatusCode, ApiError> {
    state.services.sessions.revoke_mine(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// End every session of the caller except the current one.
#[utoipa::path(delete, path = "/api/v1/users/me/sessions", tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "All other sessions ended"),
        SignedIn
    ))]
pub async fn revoke_my_others(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<StatusCode, ApiError> {
    state.services.sessions.revoke_my_others(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's live sessions (admin).
#[utoipa::path(get, path = "/api/v1/users/{user_id}/sessions", tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, minimum = 1, description = "User id")),
    responses(
        (status = 200, description = "Live sessions", body = [SessionView]),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 422, description = "The id is not a positive integer", body = ValidationError),
        AdminOnly
    ))]
pub async fn list_for_user(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(user_id): UserIdPath,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    Ok(Json(
        state
            .services
            .sessions
            .list_for_user(&actor, user_id)
            .await?,
    ))
}

/// Sign a user out everywhere (admin).
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/sessions", tag = "sessions",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, minimum = 1, description = "User id")),
    responses(
        (status = 204, description = "Every session of the user ended"),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 422, description = "The id is not a positive integer", body = ValidationError),
        AdminOnly
    ))]
pub async fn revoke_all_for_user(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(user_id): UserIdPath,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .sessions
        .revoke_all_for_user(&actor, user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

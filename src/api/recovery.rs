//! Email verification and password reset: `/api/v1/auth/password-recovery`,
//! `/auth/reset-password`, `/auth/verify-email`, `/auth/resend-verification`,
//! `/users/me/resend-verification` and `/users/{user_id}/resend-verification`.

use super::{
    error::ApiError,
    extract::{ApiJson, Client, CurrentUser, UserIdPath},
    openapi::{AdminOnly, ErrorDetail, JsonBody, SignedIn, ValidationError},
};
use crate::state::AppState;
use axum::{extract::State, http::StatusCode, Json};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Value};

/// The same answer for every address (whether an account has it or not).
pub const RECOVERY_SENT: &str =
    "If an account with this email exists, a link to reset its password has been sent";
/// The same answer for every address (whether an account has it or not).
pub const VERIFICATION_SENT: &str =
    "If an unverified account with this email exists, a new verification link has been sent";

/// A body with one email address.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct EmailBody {
    #[schema(format = "email", max_length = 254)]
    email: String,
}

/// Body of `POST /api/v1/auth/reset-password`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ResetPasswordBody {
    /// The token from the emailed link (`/reset-password?token=...`).
    token: String,
    /// Subject to the same policy as every password (the length bounds are
    /// the server's).
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

/// Body of `POST /api/v1/auth/verify-email`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct TokenBody {
    /// The token from the emailed link (`/verify-email?token=...`).
    token: String,
}

fn accepted(message: &str) -> (StatusCode, Json<Value>) {
    (StatusCode::ACCEPTED, Json(json!({ "detail": message })))
}

/// Ask for a password-reset link. The answer is the same whether or not an
/// account has this address; a link (valid 1 hour, once) goes to active accounts.
#[utoipa::path(post, path = "/api/v1/auth/password-recovery", tag = "auth",
    request_body(content = EmailBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted (the same for every address)", body = ErrorDetail),
        (status = 422, description = "Not an email address", body = ValidationError),
        (status = 429, description = "Too many requests from this address", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        JsonBody
    ))]
pub async fn password_recovery(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state
        .services
        .recovery
        .request_password_reset(&body.email, &client)
        .await?;
    Ok(accepted(RECOVERY_SENT))
}

/// Set a new password with the token of a reset link. Every session of the
/// user ends; the link cannot be used again.
#[utoipa::path(post, path = "/api/v1/auth/reset-password", tag = "auth",
    request_body(content = ResetPasswordBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Password changed", body = ErrorDetail),
        (status = 400, description = "The link is not valid, used, replaced by a newer one, or expired", body = ErrorDetail),
        (status = 422, description = "The new password does not meet the policy", body = ValidationError),
        JsonBody
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<ResetPasswordBody>,
) -> Result<Json<Value>, ApiError> {
    state
        .services
        .recovery
        .reset_password(&body.token, body.new_password, &client)
        .await?;
    Ok(Json(json!({ "detail": "Password updated" })))
}

/// Confirm an email address with the token of a verification link.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth",
    request_body(content = TokenBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Verified", body = ErrorDetail),
        (status = 400, description = "The link is not valid, used, replaced by a newer one, or expired", body = ErrorDetail),
        (status = 422, description = "Malformed body", body = ValidationError),
        JsonBody
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<TokenBody>,
) -> Result<Json<Value>, ApiError> {
    state
        .services
        .recovery
        .verify_email(&body.token, &client)
        .await?;
    Ok(Json(json!({ "detail": "Email verified" })))
}

/// Ask for a new verification link without signing in (for example after
/// sign-in answered 403 "Email not verified"). The answer is the same for
/// every address.
#[utoipa::path(post, path = "/api/v1/auth/resend-verification", tag = "auth",
    request_body(content = EmailBody, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted (the same for every address)", body = ErrorDetail),
        (status = 422, description = "Not an email address", body = ValidationError),
        (status = 429, description = "Too many requests from this address", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        JsonBody
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<EmailBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state
        .services
        .recovery
        .request_verification(&body.email, &client)
        .await?;
    Ok(accepted(VERIFICATION_SENT))
}

/// Send the caller a new verification link (valid 24 hours).
#[utoipa::path(post, path = "/api/v1/users/me/resend-verification", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 202, description = "Sent", body = ErrorDetail),
        (status = 400, description = "Email already verified", body = ErrorDetail),
        (status = 429, description = "Asked again too soon", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        SignedIn
    ))]
pub async fn resend_mine(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state.services.recovery.resend_verification(&actor).await?;
    Ok(accepted("Verification email sent"))
}

/// Send a user a new verification link (admin).
#[utoipa::path(post, path = "/api/v1/users/{user_id}/resend-verification", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, minimum = 1, description = "User id")),
    responses(
        (status = 202, description = "Sent", body = ErrorDetail),
        (status = 400, description = "Email already verified", body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 422, description = "The id is not a positive integer", body = ValidationError),
        (status = 429, description = "Asked again too soon", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        AdminOnly
    ))]
pub async fn resend_for_user(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(id): UserIdPath,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    state
        .services
        .recovery
        .admin_resend_verification(&actor, id)
        .await?;
    Ok(accepted("Verification email sent"))
}

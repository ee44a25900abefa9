//! `/api/v1/users/me/mfa*`: the caller's two-factor authentication, and an
//! admin's reset of another user's (`/api/v1/users/{user_id}/mfa`).

use super::{
    auth::no_store,
    error::ApiError,
    extract::{ApiJson, CurrentUser, UserIdPath},
    openapi::{AdminOnly, ErrorDetail, JsonBody, SignedIn, ValidationError},
};
use crate::{
    services::second_factor::{Enrolment, RecoveryCodes, Status},
    state::AppState,
};
use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The caller's two-factor authentication.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MfaStatus {
    /// Sign-in asks for a second factor.
    enabled: bool,
    /// An enrolment waits for its first code (`POST .../totp/confirm`).
    pending: bool,
    /// What the second step of a sign-in accepts.
    #[schema(example = json!(["totp", "recovery_code"]))]
    methods: Vec<&'static str>,
    /// Unused recovery codes.
    recovery_codes_left: i64,
}

impl From<Status> for MfaStatus {
    fn from(status: Status) -> Self {
        MfaStatus {
            enabled: status.enabled,
            pending: status.pending,
            methods: status.methods.iter().map(|m| m.as_str()).collect(),
            recovery_codes_left: status.recovery_codes_left,
        }
    }
}

/// A new TOTP secret, for an authenticator app: scan `qr_svg` (or open
/// `otpauth_uri`), or type `secret`. Shown only in this answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnrolment {
    /// Base32, for typing into the app.
    secret: String,
    /// `otpauth://totp/<issuer>:<email>?secret=...&issuer=...` (SHA1, 6 digits, 30 s).
    otpauth_uri: String,
    /// The URI as an SVG QR code.
    qr_svg: String,
}

impl From<Enrolment> for TotpEnrolment {
    fn from(enrolment: Enrolment) -> Self {
        TotpEnrolment {
            secret: enrolment.secret.expose_secret().to_owned(),
            otpauth_uri: enrolment.uri.expose_secret().to_owned(),
            qr_svg: enrolment.qr_svg,
        }
    }
}

/// Recovery codes: each signs in once in place of a code. Shown only in
/// this answer; store them somewhere safe.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodesResponse {
    #[schema(example = json!(["k3vq-8z2m-p0hd-w7rt"]))]
    recovery_codes: Vec<String>,
}

impl From<RecoveryCodes> for RecoveryCodesResponse {
    fn from(codes: RecoveryCodes) -> Self {
        RecoveryCodesResponse {
            recovery_codes: codes.reveal(),
        }
    }
}

/// The caller's two-factor authentication.
#[utoipa::path(get, path = "/api/v1/users/me/mfa", tag = "mfa",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Status", body = MfaStatus),
        SignedIn
    ))]
pub async fn status(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<Json<MfaStatus>, ApiError> {
    let status = state.services.second_factors.status(&actor).await?;
    Ok(Json(status.into()))
}

/// Start setting up an authenticator app: a new secret, pending until
/// `POST .../totp/confirm` with a code. Starting again replaces a pending
/// secret. Needs a recent authentication.
#[utoipa::path(post, path = "/api/v1/users/me/mfa/totp", tag = "mfa",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The secret, its URI and QR code", body = TotpEnrolment,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 403, description = "Recent authentication required (POST /api/v1/auth/confirm)", body = ErrorDetail),
        (status = 409, description = "Two-factor authentication is already on", body = ErrorDetail),
        SignedIn
    ))]
pub async fn start_totp(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    let enrolment = state.services.second_factors.start_totp(&actor).await?;
    Ok(no_store(
        Json(TotpEnrolment::from(enrolment)).into_response(),
    ))
}

/// Body of `POST /api/v1/users/me/mfa/totp/confirm`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CodeBody {
    /// The 6 digits the authenticator app shows now.
    #[schema(example = "123456")]
    code: String,
}

/// Finish setting up the authenticator app with a current code: two-factor
/// authentication is on, and the answer holds the recovery codes (shown
/// only here). Needs a recent authentication.
#[utoipa::path(post, path = "/api/v1/users/me/mfa/totp/confirm", tag = "mfa",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = CodeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "On; the recovery codes", body = RecoveryCodesResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 403, description = "Recent authentication required", body = ErrorDetail),
        (status = 409, description = "No setup in progress", body = ErrorDetail),
        (status = 422, description = "The code is not right", body = ValidationError),
        (status = 429, description = "Too many wrong codes", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        SignedIn, JsonBody
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let codes = state
        .services
        .second_factors
        .confirm_totp(&actor, &body.code)
        .await?;
    Ok(no_store(
        Json(RecoveryCodesResponse::from(codes)).into_response(),
    ))
}

/// Turn two-factor authentication off (the secret and the recovery codes
/// are deleted). Needs a recent authentication.
#[utoipa::path(delete, path = "/api/v1/users/me/mfa/totp", tag = "mfa",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Off", body = ErrorDetail),
        (status = 403, description = "Recent authentication required", body = ErrorDetail),
        (status = 409, description = "Two-factor authentication is not on", body = ErrorDetail),
        SignedIn
    ))]
pub async fn disable_totp(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.services.second_factors.disable(&actor).await?;
    Ok(Json(
        json!({ "detail": "Two-factor authentication turned off" }),
    ))
}

/// New recovery codes: they replace every old one. Needs a recent
/// authentication.
#[utoipa::path(post, path = "/api/v1/users/me/mfa/recovery-codes", tag = "mfa",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The new recovery codes", body = RecoveryCodesResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 403, description = "Recent authentication required", body = ErrorDetail),
        (status = 409, description = "Two-factor authentication is not on", body = ErrorDetail),
        SignedIn
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    let codes = state
        .services
        .second_factors
        .regenerate_recovery_codes(&actor)
        .await?;
    Ok(no_store(
        Json(RecoveryCodesResponse::from(codes)).into_response(),
    ))
}

/// Admin: turn a user's two-factor authentication off (a lost device). The
/// user is told by email. Needs a recent authentication of the admin.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/mfa", tag = "mfa",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, minimum = 1)),
    responses(
        (status = 200, description = "Reset", body = ErrorDetail),
        (status = 404, description = "No such user", body = ErrorDetail),
        (status = 409, description = "Two-factor authentication is not on", body = ErrorDetail),
        (status = 422, description = "Invalid user id", body = ValidationError),
        AdminOnly
    ))]
pub async fn admin_reset(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(user_id): UserIdPath,
) -> Result<Json<serde_json::Value>, ApiError> {
    state
        .services
        .second_factors
        .admin_reset(&actor, user_id)
        .await?;
    Ok(Json(json!({ "detail": "Two-factor authentication reset" })))
}

//! Passkeys: `/api/v1/users/me/passkeys*` (the caller's), and the
//! passwordless sign-in `/api/v1/auth/passkey/{start,finish}`. The options
//! and answers are WebAuthn's JSON forms (binary fields base64url), as
//! `PublicKeyCredential.parseCreationOptionsFromJSON()` and
//! `credential.toJSON()` in a browser read and write them.

use super::{
    auth::{no_store, token_response},
    error::ApiError,
    extract::{
        body_kind, parse_json, read_body, ApiJson, BodyKind, Client, CurrentUser, PasskeyIdPath,
    },
    openapi::{ErrorDetail, JsonBody, SignedIn, ValidationError},
};
use crate::{api::auth::TokenResponse, domain::PasskeyView, state::AppState};
use axum::{
    extract::State,
    response::{IntoResponse, Response},
    Json,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The caller's passkeys, oldest first.
#[utoipa::path(get, path = "/api/v1/users/me/passkeys", tag = "passkeys", operation_id = "list_my_passkeys",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The passkeys (metadata only)", body = Vec<PasskeyView>),
        SignedIn
    ))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<Json<Vec<PasskeyView>>, ApiError> {
    Ok(Json(state.services.passkeys.list(&actor).await?))
}

/// Start adding a passkey: the options for `navigator.credentials.create()`
/// (`{"publicKey": {...}}`; a discoverable credential with user
/// verification), valid 5 minutes. Needs a recent authentication.
#[utoipa::path(post, path = "/api/v1/users/me/passkeys/register/start", tag = "passkeys", operation_id = "start_passkey_registration",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Creation options", body = Object),
        (status = 403, description = "Recent authentication required (POST /api/v1/auth/confirm)", body = ErrorDetail),
        (status = 404, description = "Passkeys are not available on this server (PUBLIC_URL names an IP address)", body = ErrorDetail),
        (status = 409, description = "The account has the most passkeys it may have (20)", body = ErrorDetail),
        SignedIn
    ))]
pub async fn start_registration(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
) -> Result<Response, ApiError> {
    let options = state.services.passkeys.start_registration(&actor).await?;
    Ok(no_store(Json(options).into_response()))
}

/// Body of `POST /api/v1/users/me/passkeys/register/finish`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct FinishRegistrationBody {
    /// What to call it (1 to 64 characters), e.g. `Laptop`.
    #[schema(example = "Laptop")]
    name: String,
    /// The `PublicKeyCredential` that `navigator.credentials.create()`
    /// returned, as JSON (`credential.toJSON()`).
    #[schema(value_type = Object)]
    credential: Value,
}

/// Finish adding a passkey with the authenticator's answer to the options of
/// `register/start`. The user is told by email.
#[utoipa::path(post, path = "/api/v1/users/me/passkeys/register/finish", tag = "passkeys", operation_id = "finish_passkey_registration",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = FinishRegistrationBody, content_type = "application/json"),
    responses(
        (status = 201, description = "The stored passkey", body = PasskeyView),
        (status = 400, description = "Options expired or used, an answer for another site, or one that does not verify", body = ErrorDetail),
        (status = 409, description = "This passkey is registered already, or the account has 20", body = ErrorDetail),
        (status = 422, description = "No name, or not a WebAuthn registration answer", body = ValidationError),
        SignedIn, JsonBody
    ))]
pub async fn finish_registration(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<FinishRegistrationBody>,
) -> Result<Response, ApiError> {
    let passkey = state
        .services
        .passkeys
        .finish_registration(&actor, &body.name, body.credential)
        .await?;
    Ok((axum::http::StatusCode::CREATED, Json(passkey)).into_response())
}

/// Body of `PATCH /api/v1/users/me/passkeys/{passkey_id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RenameBody {
    #[schema(example = "Work laptop")]
    name: String,
}

/// Rename one of the caller's passkeys.
#[utoipa::path(patch, path = "/api/v1/users/me/passkeys/{passkey_id}", tag = "passkeys", operation_id = "rename_passkey",
    security(("bearer" = []), ("oauth2" = [])),
    params(("passkey_id" = i64, Path, description = "The passkey's id")),
    request_body(content = RenameBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Renamed", body = PasskeyView),
        (status = 404, description = "No such passkey of yours", body = ErrorDetail),
        (status = 422, description = "A bad name or id", body = ValidationError),
        SignedIn, JsonBody
    ))]
pub async fn rename(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    PasskeyIdPath(id): PasskeyIdPath,
    ApiJson(body): ApiJson<RenameBody>,
) -> Result<Json<PasskeyView>, ApiError> {
    Ok(Json(
        state
            .services
            .passkeys
            .rename(&actor, id, &body.name)
            .await?,
    ))
}

/// Remove one of the caller's passkeys (the password always remains, so
/// this never removes the last way to sign in). Needs a recent
/// authentication; the user is told by email.
#[utoipa::path(delete, path = "/api/v1/users/me/passkeys/{passkey_id}", tag = "passkeys", operation_id = "remove_passkey",
    security(("bearer" = []), ("oauth2" = [])),
    params(("passkey_id" = i64, Path, description = "The passkey's id")),
    responses(
        (status = 200, description = "Removed", body = ErrorDetail),
        (status = 403, description = "Recent authentication required", body = ErrorDetail),
        (status = 404, description = "No such passkey of yours", body = ErrorDetail),
        (status = 422, description = "A bad id", body = ValidationError),
        SignedIn
    ))]
pub async fn remove(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    PasskeyIdPath(id): PasskeyIdPath,
) -> Result<Response, ApiError> {
    state.services.passkeys.remove(&actor, id).await?;
    Ok(Json(json!({ "detail": "Passkey removed" })).into_response())
}

/// Body of `POST /api/v1/auth/passkey/start` (optional).
#[derive(Deserialize, Default, utoipa::ToSchema)]
pub struct StartSignInBody {
    /// The `mfa_token` of a password sign-in waiting for its second step:
    /// options for one of that account's passkeys instead (finish with
    /// `POST /api/v1/auth/mfa`).
    mfa_token: Option<String>,
}

/// The options of a passwordless sign-in.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasskeySignInStart {
    /// Opaque, single use, valid 5 minutes: send it back with the assertion.
    /// Absent for the second step of a password sign-in (the `mfa_token`
    /// is its key).
    #[serde(skip_serializing_if = "Option::is_none")]
    challenge_id: Option<String>,
    /// The options for `navigator.credentials.get()` (`{"publicKey": {...}}`).
    #[schema(value_type = Object)]
    options: Value,
}

/// Start signing in with a passkey: options for any passkey of this site
/// (no email needed: the authenticator offers the accounts it holds), and
/// the challenge id that finishes it. With an `mfa_token`: new options for
/// the second step of that password sign-in.
#[utoipa::path(post, path = "/api/v1/auth/passkey/start", tag = "passkeys", operation_id = "start_passkey_sign_in",
    request_body(content = Option<StartSignInBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Request options", body = PasskeySignInStart,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "An unknown, used or expired mfa_token", body = ErrorDetail),
        (status = 404, description = "Passkeys are not available on this server, or the account of the mfa_token has none", body = ErrorDetail),
        (status = 422, description = "Malformed body (`mfa_token` not a string)", body = ValidationError),
        JsonBody
    ))]
pub async fn start_sign_in(
    State(state): State<AppState>,
    req: axum::extract::Request,
) -> Result<Response, ApiError> {
    let kind = body_kind(req.headers());
    let bytes = read_body(req, &state).await?;
    // No body (or an empty one) is a passwordless sign-in.
    let body: StartSignInBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        StartSignInBody::default()
    } else if kind == BodyKind::Json {
        parse_json(&bytes)?
    } else {
        return Err(ApiError::Request(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
        ));
    };
    let auth = &state.services.auth;
    let answer = match body.mfa_token {
        Some(mfa_token) => PasskeySignInStart {
            challenge_id: None,
            options: auth.second_factor_passkey_options(&mfa_token).await?,
        },
        None => {
            let ceremony = auth.start_passkey_sign_in().await?;
            PasskeySignInStart {
                challenge_id: Some(ceremony.challenge_id.expose_secret().to_owned()),
                options: ceremony.options,
            }
        }
    };
    Ok(no_store(Json(answer).into_response()))
}

/// Body of `POST /api/v1/auth/passkey/finish`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct FinishSignInBody {
    /// From `POST /api/v1/auth/passkey/start`.
    challenge_id: String,
    /// The `PublicKeyCredential` that `navigator.credentials.get()`
    /// returned, as JSON (`credential.toJSON()`).
    #[schema(value_type = Object)]
    credential: Value,
}

/// Finish signing in with a passkey: the usual token pair. A passkey
/// verifies its user (user verification is required), so this counts as
/// two factors.
#[utoipa::path(post, path = "/api/v1/auth/passkey/finish", tag = "passkeys", operation_id = "finish_passkey_sign_in",
    request_body(content = FinishSignInBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "The challenge expired or was used, or the answer was made for another site", body = ErrorDetail),
        (status = 401, description = "Passkey not accepted (unknown, bad signature, counter gone back), or inactive user", body = ErrorDetail),
        (status = 403, description = "Email not verified (only with REQUIRE_EMAIL_VERIFICATION)", body = ErrorDetail),
        (status = 404, description = "Passkeys are not available on this server", body = ErrorDetail),
        (status = 422, description = "Not a WebAuthn assertion", body = ValidationError),
        (status = 429, description = "Too many failed sign-ins for this account or from this address", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        JsonBody
    ))]
pub async fn finish_sign_in(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<FinishSignInBody>,
) -> Result<Response, ApiError> {
    let pair = state
        .services
        .auth
        .passkey_sign_in(&body.challenge_id, body.credential, &client)
        .await?;
    Ok(token_response(&pair))
}

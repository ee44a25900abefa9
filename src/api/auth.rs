//! `/api/v1/auth/*`: login, refresh, logout.

use super::{
    error::{ApiError, ValidationItem},
    extract::{
        body_kind, parse_json, parse_urlencoded, read_body, ApiJson, BearerToken, BodyKind, Client,
    },
    openapi::{ErrorDetail, JsonBody, ValidationError},
};
use crate::{services::TokenPair, state::AppState};
use axum::{
    extract::{Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The token response (OAuth2 style).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// Short-lived JWT for `Authorization: Bearer`.
    access_token: String,
    /// Opaque token for `/api/v1/auth/refresh`; rotated on every use.
    refresh_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
}

/// JSON credentials: `email` (or `username`) and `password`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LoginJson {
    #[schema(format = "email")]
    email: Option<String>,
    /// Accepted in place of `email`.
    username: Option<String>,
    password: String,
}

/// The OAuth2 password form (`grant_type`, `scope`, `client_id` are accepted and ignored).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LoginForm {
    /// The email address.
    username: String,
    password: String,
    grant_type: Option<String>,
    scope: Option<String>,
}

/// Token responses must never be cached (RFC 6749 section 5.1).
fn token_response(pair: &TokenPair) -> Response {
    let mut response = Json(TokenResponse {
        access_token: pair.access_token.clone(),
        refresh_token: pair.refresh_token.expose_secret().to_owned(),
        token_type: "bearer",
        expires_in: pair.expires_in,
    })
    .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Login credentials: the OAuth2 password form (`username`, `password`) or
/// JSON with `email` (or `username`) and `password`.
#[derive(Deserialize)]
struct LoginBody {
    email: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
}

/// Sign in: opens a new session and returns its tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body(content(
        (LoginJson = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "Incorrect email or password, or inactive user", body = ErrorDetail),
        (status = 403, description = "Email not verified (only with REQUIRE_EMAIL_VERIFICATION)", body = ErrorDetail),
        (status = 422, description = "A field is missing", body = ValidationError),
        (status = 429, description = "Too many failed sign-ins for this account or from this address: \
            \"Too many attempts, try again in N seconds\"", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        JsonBody
    ))]
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    req: Request,
) -> Result<Response, ApiError> {
    let kind = body_kind(req.headers());
    let bytes = read_body(req, &state).await?;
    let (body, email_field): (LoginBody, &str) = match kind {
        BodyKind::Json => (parse_json(&bytes)?, "email"),
        BodyKind::Form => (parse_urlencoded(&bytes, "body")?, "username"),
        BodyKind::Other => {
            return Err(ApiError::Request(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json or application/x-www-form-urlencoded",
            ))
        }
    };
    let mut missing = Vec::new();
    let email = body.email.or(body.username);
    if email.is_none() {
        missing.push(ValidationItem::new(
            "body",
            &[email_field],
            "Field required",
            "missing",
        ));
    }
    if body.password.is_none() {
        missing.push(ValidationItem::new(
            "body",
            &["password"],
            "Field required",
            "missing",
        ));
    }
    let (Some(email), Some(password)) = (email, body.password) else {
        return Err(ApiError::Validation(missing));
    };
    let pair = state.services.auth.login(&email, password, &client).await?;
    Ok(token_response(&pair))
}

/// Body of `POST /api/v1/auth/refresh`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshBody {
    refresh_token: String,
}

/// Exchange a refresh token for a new pair (the old one is rotated out;
/// presenting it again revokes the session).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body(content = RefreshBody, content_type = "application/json"),
    responses(
        (status = 200, description = "A new pair", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "Invalid refresh token, or an access token", body = ErrorDetail),
        (status = 422, description = "Malformed body", body = ValidationError),
        (status = 429, description = "Too many invalid refresh tokens from this address", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        JsonBody
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Response, ApiError> {
    let pair = state
        .services
        .auth
        .refresh(&body.refresh_token, &client)
        .await?;
    Ok(token_response(&pair))
}

/// Sign out: revokes the token's session (its access and refresh tokens).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Signed out", body = ErrorDetail),
        (status = 401, description = "Not authenticated, invalid, or already invalidated", body = ErrorDetail)
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Client(client): Client,
    BearerToken(token): BearerToken,
) -> Result<Response, ApiError> {
    state.services.auth.logout(&token, client).await?;
    Ok(Json(json!({ "detail": "Successfully logged out" })).into_response())
}

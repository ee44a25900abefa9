//! `/api/v1/auth/*`: login, refresh, logout.

use super::{
    error::{ApiError, ValidationItem},
    extract::{
        body_kind, parse_json, parse_urlencoded, read_body, ApiJson, BearerToken, BodyKind, Client,
    },
};
use crate::{services::TokenPair, startup::AppState};
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
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    refresh_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
}

/// Token responses must never be cached (RFC 6749 section 5.1).
fn token_response(pair: &TokenPair) -> Response {
    let mut response = Json(TokenResponse {
        access_token: &pair.access_token,
        refresh_token: pair.refresh_token.expose_secret(),
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

/// `POST /api/v1/auth/login`.
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
#[derive(Deserialize)]
pub struct RefreshBody {
    refresh_token: String,
}

/// `POST /api/v1/auth/refresh`.
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<Response, ApiError> {
    let pair = state.services.auth.refresh(&body.refresh_token).await?;
    Ok(token_response(&pair))
}

/// `POST /api/v1/auth/logout`.
pub async fn logout(
    State(state): State<AppState>,
    BearerToken(token): BearerToken,
) -> Result<Response, ApiError> {
    state.services.auth.logout(&token).await?;
    Ok(Json(json!({ "detail": "Successfully logged out" })).into_response())
}

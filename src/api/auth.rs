//! `/api/v1/auth/*`: login, refresh, logout.

use super::{
    error::{ApiError, ValidationItem},
    extract::{
        body_kind, parse_json, parse_urlencoded, read_body, ApiJson, BearerToken, BodyKind, Client,
        CurrentUser,
    },
    openapi::{ErrorDetail, JsonBody, SignedIn, ValidationError},
};
use crate::{
    services::{SecondFactorChallenge, SignIn, StepUpProof, TokenPair},
    state::AppState,
};
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
    /// For an account with two-factor authentication: its code (or a
    /// recovery code), to sign in with one request.
    otp: Option<String>,
}

/// The OAuth2 password form (`grant_type`, `scope`, `client_id` are accepted and ignored).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LoginForm {
    /// The email address.
    username: String,
    password: String,
    /// For an account with two-factor authentication: its code.
    otp: Option<String>,
    grant_type: Option<String>,
    scope: Option<String>,
}

/// The answer to a right password for an account with two-factor
/// authentication (401): finish with `POST /api/v1/auth/mfa`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecondFactorRequired {
    /// Always `Two-factor code required`.
    #[schema(example = "Two-factor code required")]
    detail: &'static str,
    /// Opaque, single use, valid 5 minutes: send it with the code.
    mfa_token: String,
    /// What the second step accepts: `totp`, `recovery_code`, and
    /// `webauthn` when the account has a passkey.
    #[schema(example = json!(["totp", "recovery_code", "webauthn"]))]
    methods: Vec<&'static str>,
    /// With `webauthn`: the options for `navigator.credentials.get()`
    /// (`{"publicKey": {...}}`, binary fields base64url) for one of the
    /// account's passkeys; send the assertion as `credential` to
    /// `/api/v1/auth/mfa`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    webauthn: Option<serde_json::Value>,
}

/// The 401 of `POST /api/v1/auth/login`: a refusal, or (a right password
/// for an account with two-factor authentication) the second step to take.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum LoginUnauthorized {
    /// `Incorrect email or password`, `Inactive user`, `Incorrect two-factor code`.
    Refused(ErrorDetail),
    /// Continue with `POST /api/v1/auth/mfa`.
    SecondFactor(SecondFactorRequired),
}

/// Never cached (RFC 6749 section 5.1 for tokens; every answer that
/// carries a secret: tokens, TOTP secrets, recovery codes).
pub(super) fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

fn sign_in_response(sign_in: SignIn) -> Response {
    match sign_in {
        SignIn::Complete(pair) => token_response(&pair),
        SignIn::SecondFactorRequired(SecondFactorChallenge {
            mfa_token,
            methods,
            webauthn,
        }) => {
            let mut response = (
                StatusCode::UNAUTHORIZED,
                Json(SecondFactorRequired {
                    detail: "Two-factor code required",
                    mfa_token: mfa_token.expose_secret().to_owned(),
                    methods: methods.iter().map(|m| m.as_str()).collect(),
                    webauthn,
                }),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            no_store(response)
        }
    }
}

/// Token responses must never be cached (RFC 6749 section 5.1).
pub(super) fn token_response(pair: &TokenPair) -> Response {
    no_store(
        Json(TokenResponse {
            access_token: pair.access_token.clone(),
            refresh_token: pair.refresh_token.expose_secret().to_owned(),
            token_type: "bearer",
            expires_in: pair.expires_in,
        })
        .into_response(),
    )
}

/// Login credentials: the OAuth2 password form (`username`, `password`) or
/// JSON with `email` (or `username`) and `password`.
#[derive(Deserialize)]
struct LoginBody {
    email: Option<String>,
    username: Option<String>,
    password: Option<SecretString>,
    otp: Option<String>,
}

/// Sign in: opens a new session and returns its tokens. For an account with
/// two-factor authentication, the right password answers 401 with an
/// `mfa_token` (no tokens) unless `otp` carries a right code.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body(content(
        (LoginJson = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 401, description = "Incorrect email or password, or inactive user (ErrorDetail); \
            a right password for an account with two-factor authentication \
            (SecondFactorRequired: continue with /api/v1/auth/mfa); a wrong `otp`", body = LoginUnauthorized,
            headers(("Cache-Control" = String, description = "no-store"))),
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
    let sign_in = state
        .services
        .auth
        .login(&email, password, body.otp.as_deref(), &client)
        .await?;
    Ok(sign_in_response(sign_in))
}

/// Body of `POST /api/v1/auth/mfa`: the `mfa_token` and either a code or
/// a passkey's assertion.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct MfaBody {
    /// From the 401 of `/api/v1/auth/login`.
    mfa_token: String,
    /// The code of the authenticator app, or a recovery code.
    #[schema(example = "123456")]
    code: Option<String>,
    /// The `PublicKeyCredential` (as JSON, `credential.toJSON()`) that a
    /// passkey returned for the login's `webauthn` options (or those of
    /// `POST /api/v1/auth/passkey/start` with this `mfa_token`).
    #[schema(value_type = Option<Object>)]
    credential: Option<serde_json::Value>,
}

/// The second step of a sign-in with two-factor authentication: the
/// `mfa_token` of the password step and a code, or a passkey's assertion
/// (`credential`). A wrong code leaves the `mfa_token` usable until it
/// expires (wrong codes are throttled); a right one uses it up. A passkey's
/// options are used once, right or wrong: ask `/api/v1/auth/passkey/start`
/// (with the `mfa_token`) for new ones.
#[utoipa::path(post, path = "/api/v1/auth/mfa", tag = "auth",
    request_body(content = MfaBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, description = "Passkey options expired or used, or an answer made for another site", body = ErrorDetail),
        (status = 401, description = "Incorrect two-factor code, passkey not accepted, or an unknown, used or expired mfa_token", body = ErrorDetail),
        (status = 422, description = "Malformed body, or neither or both of code and credential", body = ValidationError),
        (status = 429, description = "Too many wrong codes for this account or from this address", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        JsonBody
    ))]
pub async fn mfa(
    State(state): State<AppState>,
    Client(client): Client,
    ApiJson(body): ApiJson<MfaBody>,
) -> Result<Response, ApiError> {
    let auth = &state.services.auth;
    let pair = match (body.code, body.credential) {
        (Some(code), None) => {
            auth.complete_second_factor(&body.mfa_token, &code, &client)
                .await?
        }
        (None, Some(credential)) => {
            auth.complete_second_factor_with_passkey(&body.mfa_token, credential, &client)
                .await?
        }
        _ => {
            return Err(ApiError::validation(ValidationItem::new(
                "body",
                &["code"],
                "Send either code or credential",
                "missing",
            )))
        }
    };
    Ok(token_response(&pair))
}

/// Body of `POST /api/v1/auth/confirm`: the password, or a code.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ConfirmBody {
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    /// A code of the authenticator app, or a recovery code.
    code: Option<String>,
}

/// Confirm who you are for sensitive actions (step-up): with the password or
/// a two-factor code, the session counts as freshly authenticated for
/// `STEP_UP_MINUTES` (default 10). Sensitive actions answer 403 "Recent
/// authentication required" without it.
#[utoipa::path(post, path = "/api/v1/auth/confirm", tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = ConfirmBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Confirmed", body = ErrorDetail),
        (status = 403, description = "Incorrect password or code", body = ErrorDetail),
        (status = 409, description = "A code, but two-factor authentication is not on", body = ErrorDetail),
        (status = 422, description = "Neither or both of password and code", body = ValidationError),
        (status = 429, description = "Too many wrong attempts", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        SignedIn, JsonBody
    ))]
pub async fn confirm(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<ConfirmBody>,
) -> Result<Response, ApiError> {
    let proof = match (body.password, body.code) {
        (Some(password), None) => StepUpProof::Password(password),
        (None, Some(code)) => StepUpProof::Code(code),
        _ => {
            return Err(ApiError::validation(ValidationItem::new(
                "body",
                &["password"],
                "Send either password or code",
                "missing",
            )))
        }
    };
    state.services.auth.confirm(&actor, proof).await?;
    Ok(Json(json!({ "detail": "Confirmed" })).into_response())
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

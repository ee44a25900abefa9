//! The one place where errors become HTTP responses. Every body is
//! `{"detail": "<message>"}`, except validation errors: 422 with
//! `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}` (the FastAPI
//! shape). Internal causes are logged here, once, and never sent to clients.

use crate::services::ServiceError;
use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::json;

/// One entry of a 422 body.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ValidationItem {
    /// Where: `["body", "email"]`, `["query", "limit"]`, `["path", "user_id"]`.
    #[schema(value_type = Vec<String>)]
    pub loc: Vec<serde_json::Value>,
    /// What is wrong, for a person.
    pub msg: String,
    /// What is wrong, for a program (`missing`, `json_invalid`, `value_error`...).
    #[serde(rename = "type")]
    pub kind: String,
}

impl ValidationItem {
    /// An item located at `source` (`body`, `query`, `path`) and a field path.
    pub fn new(source: &str, path: &[&str], msg: impl Into<String>, kind: &str) -> Self {
        let mut loc = vec![json!(source)];
        loc.extend(path.iter().map(|p| json!(p)));
        ValidationItem {
            loc,
            msg: msg.into(),
            kind: kind.to_owned(),
        }
    }
}

/// Everything a handler can answer with when it does not succeed.
#[derive(Debug)]
pub enum ApiError {
    /// A service refused or failed.
    Service(ServiceError),
    /// No (usable) credentials were sent.
    NotAuthenticated,
    /// The request's shape is wrong (422).
    Validation(Vec<ValidationItem>),
    /// A 4xx about the request itself (body too large, wrong content type...).
    Request(StatusCode, &'static str),
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        ApiError::Service(err)
    }
}

impl ApiError {
    /// A single validation error.
    pub fn validation(item: ValidationItem) -> Self {
        ApiError::Validation(vec![item])
    }
}

fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "detail": message }))).into_response()
}

fn unauthorized(message: &str) -> Response {
    let mut response = detail(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotAuthenticated => unauthorized("Not authenticated"),
            ApiError::Validation(items) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "detail": items })),
            )
                .into_response(),
            ApiError::Request(status, message) => detail(status, message),
            ApiError::Service(err) => service_error_response(err),
        }
    }
}

fn service_error_response(err: ServiceError) -> Response {
    use ServiceError as E;
    let message = err.to_string();
    match err {
        E::InvalidCredentials
        | E::InactiveUser
        | E::InvalidToken
        | E::TokenAlreadyInvalidated
        | E::InvalidRefreshToken
        | E::InvalidTokenType
        | E::IncorrectCode
        | E::InvalidMfaToken
        | E::PasskeyNotAccepted => unauthorized(&message),
        E::Forbidden
        | E::RegistrationDisabled
        | E::IncorrectPassword
        | E::IncorrectConfirmationCode
        | E::CannotChangeOwnRole
        | E::StepUpRequired
        | E::SecondFactorRequiredForAdmins => detail(StatusCode::FORBIDDEN, &message),
        E::MfaAlreadyEnabled | E::MfaNotEnabled | E::NoPendingEnrolment => {
            detail(StatusCode::CONFLICT, &message)
        }
        E::EmailNotVerified => detail(StatusCode::FORBIDDEN, &message),
        E::EmailTaken | E::EmailAlreadyVerified | E::InvalidLink(_) => {
            detail(StatusCode::BAD_REQUEST, &message)
        }
        E::UserNotFound | E::SessionNotFound | E::PasskeyNotFound | E::PasskeysUnavailable => {
            detail(StatusCode::NOT_FOUND, &message)
        }
        E::PasskeyCeremonyExpired | E::PasskeyRegistrationFailed | E::PasskeyWrongSite { .. } => {
            detail(StatusCode::BAD_REQUEST, &message)
        }
        E::PasskeyAlreadyRegistered | E::PasskeyLimit => detail(StatusCode::CONFLICT, &message),
        E::LastAdmin => detail(StatusCode::CONFLICT, &message),
        E::Throttled { retry_after } => {
            let mut response = detail(StatusCode::TOO_MANY_REQUESTS, &message);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        E::Invalid(field) => ApiError::validation(ValidationItem::new(
            "body",
            &[field.field],
            field.message,
            field.kind,
        ))
        .into_response(),
        E::Unavailable(cause) => {
            tracing::error!(error = %cause, "database unavailable");
            detail(StatusCode::SERVICE_UNAVAILABLE, &message)
        }
        E::Internal(cause) => {
            tracing::error!(error = ?cause, "internal error");
            detail(StatusCode::INTERNAL_SERVER_ERROR, &message)
        }
    }
}

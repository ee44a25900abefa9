//! The JSON REST API under `/api/v1`, and `/health`.
//!
//! Handlers are thin: extract and parse the request, call one service method,
//! map the result. Rules live in `services`; status codes and error bodies are
//! decided in [`error`] only.

pub mod audit;
pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod mfa;
pub mod openapi;
pub mod passkeys;
pub mod recovery;
pub mod sessions;
pub mod users;

use crate::state::AppState;
use axum::{
    extract::DefaultBodyLimit,
    http::StatusCode,
    routing::{delete, get, patch, post},
    Router,
};
use error::ApiError;

/// Largest request body the API accepts (413 beyond): the one cap of
/// every route.
pub use crate::web::body::MAX_BODY_BYTES;

/// The `/api/v1` routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/mfa", post(auth::mfa))
        .route("/auth/confirm", post(auth::confirm))
        .route("/auth/passkey/start", post(passkeys::start_sign_in))
        .route("/auth/passkey/finish", post(passkeys::finish_sign_in))
        .route("/auth/password-recovery", post(recovery::password_recovery))
        .route("/auth/reset-password", post(recovery::reset_password))
        .route("/auth/verify-email", post(recovery::verify_email))
        .route(
            "/auth/resend-verification",
            post(recovery::resend_verification),
        )
        .route("/users/me/resend-verification", post(recovery::resend_mine))
        .route("/users/me/mfa", get(mfa::status))
        .route(
            "/users/me/mfa/totp",
            post(mfa::start_totp).delete(mfa::disable_totp),
        )
        .route("/users/me/mfa/totp/confirm", post(mfa::confirm_totp))
        .route(
            "/users/me/mfa/recovery-codes",
            post(mfa::regenerate_recovery_codes),
        )
        .route("/users/{user_id}/mfa", delete(mfa::admin_reset))
        .route("/users/me/passkeys", get(passkeys::list))
        .route(
            "/users/me/passkeys/register/start",
            post(passkeys::start_registration),
        )
        .route(
            "/users/me/passkeys/register/finish",
            post(passkeys::finish_registration),
        )
        .route(
            "/users/me/passkeys/{passkey_id}",
            patch(passkeys::rename).delete(passkeys::remove),
        )
        .route(
            "/users/{user_id}/resend-verification",
            post(recovery::resend_for_user),
        )
        .route("/users", get(users::list).post(users::create))
        .route("/users/", get(users::list).post(users::create))
        .route("/audit", get(audit::list))
        .route("/users/me/audit", get(audit::list_mine))
        .route(
            "/users/me",
            get(users::me)
                .put(users::update_me)
                .patch(users::update_me)
                .delete(users::delete_me),
        )
        .route(
            "/users/me/sessions",
            get(sessions::list_mine).delete(sessions::revoke_my_others),
        )
        .route(
            "/users/me/sessions/{session_id}",
            delete(sessions::revoke_mine),
        )
        .route(
            "/users/{user_id}/sessions",
            get(sessions::list_for_user).delete(sessions::revoke_all_for_user),
        )
        .route(
            "/users/{user_id}",
            get(users::get)
                .put(users::update)
                .patch(users::update)
                .delete(users::delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The health routes (outside `/api/v1`, for load balancers).
pub fn health_router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health::live))
        .route("/health/ready", get(health::ready))
}

/// The API docs: the OpenAPI document (its password bounds are `policy`'s)
/// and the Swagger UI page.
pub fn docs_router(policy: &crate::domain::PasswordPolicy) -> Router<AppState> {
    let spec = std::sync::Arc::new(openapi::spec_json(policy));
    Router::new()
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        spec.as_str().to_owned(),
                    )
                }
            }),
        )
        .route("/docs", get(openapi::docs_page))
}

async fn not_found() -> ApiError {
    ApiError::Request(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::Request(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

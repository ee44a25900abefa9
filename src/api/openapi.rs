//! The OpenAPI 3.1 description of `/api/v1` and `/health*`, generated from the
//! handlers' annotations (no hand-written YAML to drift), served at
//! `/api/v1/openapi.json`, and the offline Swagger UI at `/docs`.

use super::{audit, auth, error::ValidationItem, health, mfa, passkeys, recovery, sessions, users};
use crate::domain::{
    AuditEventType, AuditEventView, PasskeyKind, PasskeyView, PasswordPolicy, Role, SessionView,
    UserView, MAX_PASSWORD_CHARS,
};
use axum::{
    http::{header, HeaderValue},
    response::{Html, IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    openapi::security::{
        Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes, SecurityScheme,
    },
    openapi::{RefOr, Schema},
    Modify, OpenApi, ToSchema,
};

/// Every error except validation errors: `{"detail": "<message>"}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for a person.
    pub detail: String,
}

/// A validation error (422): where and why, per offending input.
#[derive(Serialize, ToSchema)]
pub struct ValidationError {
    pub detail: Vec<ValidationItem>,
}

/// The refusal of every route that needs a bearer token (listed in its
/// `responses(...)` as `SignedIn`).
#[derive(utoipa::IntoResponses)]
pub enum SignedIn {
    #[response(status = 401, description = "Not authenticated")]
    NotAuthenticated(ErrorDetail),
}

/// The refusals of every admin route: no valid token, or not an admin.
#[derive(utoipa::IntoResponses)]
pub enum AdminOnly {
    #[response(status = 401, description = "Not authenticated")]
    NotAuthenticated(ErrorDetail),
    #[response(status = 403, description = "Not an admin")]
    NotAnAdmin(ErrorDetail),
}

/// The refusals of every route that takes a JSON body, before it is read:
/// too large, or not JSON.
#[derive(utoipa::IntoResponses)]
pub enum JsonBody {
    #[response(status = 413, description = "Body over 16 KiB")]
    TooLarge(ErrorDetail),
    #[response(status = 415, description = "Unsupported content type")]
    NotJson(ErrorDetail),
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "leptos-auth",
        description = "User management and authentication: JWT access tokens, rotating refresh tokens, users CRUD.",
        license(name = "MIT")
    ),
    paths(
        auth::login,
        auth::refresh,
        auth::logout,
        auth::mfa,
        auth::confirm,
        mfa::status,
        mfa::start_totp,
        mfa::confirm_totp,
        mfa::disable_totp,
        mfa::regenerate_recovery_codes,
        mfa::admin_reset,
        passkeys::list,
        passkeys::start_registration,
        passkeys::finish_registration,
        passkeys::rename,
        passkeys::remove,
        passkeys::start_sign_in,
        passkeys::finish_sign_in,
        recovery::password_recovery,
        recovery::reset_password,
        recovery::verify_email,
        recovery::resend_verification,
        recovery::resend_mine,
        recovery::resend_for_user,
        users::create,
        users::me,
        users::update_me,
        users::delete_me,
        users::list,
        users::get,
        users::update,
        users::delete,
        sessions::list_mine,
        sessions::revoke_mine,
        sessions::revoke_my_others,
        sessions::list_for_user,
        sessions::revoke_all_for_user,
        audit::list,
        audit::list_mine,
        health::live,
        health::ready,
    ),
    components(schemas(
        UserView,
        SessionView,
        AuditEventView,
        AuditEventType,
        Role,
        ErrorDetail,
        ValidationError,
        ValidationItem,
        auth::TokenResponse,
        auth::LoginJson,
        auth::LoginForm,
        auth::RefreshBody,
        auth::SecondFactorRequired,
        auth::LoginUnauthorized,
        auth::MfaBody,
        auth::ConfirmBody,
        mfa::MfaStatus,
        mfa::TotpEnrolment,
        mfa::RecoveryCodesResponse,
        mfa::CodeBody,
        PasskeyView,
        PasskeyKind,
        passkeys::FinishRegistrationBody,
        passkeys::RenameBody,
        passkeys::StartSignInBody,
        passkeys::PasskeySignInStart,
        passkeys::FinishSignInBody,
        users::CreateUserBody,
        users::UpdateMeBody,
        users::DeleteMeBody,
        users::UpdateUserBody,
        recovery::EmailBody,
        recovery::ResetPasswordBody,
        recovery::TokenBody,
        health::HealthStatus,
    )),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Sign-in, token refresh, sign-out, email verification and password reset"),
        (name = "users", description = "Registration, the caller's account, and user administration"),
        (name = "mfa", description = "Two-factor authentication: authenticator apps (TOTP) and recovery codes"),
        (name = "passkeys", description = "Passkeys (WebAuthn): add and manage them, sign in without a password, or use one as the second factor"),
        (name = "sessions", description = "Device sessions: list them, end them"),
        (name = "audit", description = "The security audit log"),
        (name = "health", description = "Liveness and readiness")
    )
)]
pub struct ApiDoc;

/// Bearer tokens, and the OAuth2 password flow so "Authorize" works in the docs.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/api/v1/auth/login",
                Scopes::new(),
            ))])),
        );
        // PUT and PATCH share a handler; operation ids must still be unique.
        for item in openapi.paths.paths.values_mut() {
            for (operation, method) in [(&mut item.put, "put"), (&mut item.patch, "patch")] {
                if let Some(operation) = operation {
                    if let Some(id) = &operation.operation_id {
                        operation.operation_id = Some(format!("{id}_{method}"));
                    }
                }
            }
        }
    }
}

/// The properties that take a new password, as (schema, property): their
/// length bounds are the configured policy's, not numbers written here.
/// Current passwords have none (an old password may predate the policy).
pub const NEW_PASSWORD_FIELDS: [(&str, &str); 4] = [
    ("CreateUserBody", "password"),
    ("UpdateMeBody", "password"),
    ("UpdateUserBody", "password"),
    ("ResetPasswordBody", "new_password"),
];

/// Sets `minLength`/`maxLength` of every [`NEW_PASSWORD_FIELDS`] property
/// from the password policy in force (`PASSWORD_MIN_LENGTH`).
struct PasswordBounds<'a>(&'a PasswordPolicy);

impl Modify for PasswordBounds<'_> {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for (schema, property) in NEW_PASSWORD_FIELDS {
            let field = match components.schemas.get_mut(schema) {
                Some(RefOr::T(Schema::Object(object))) => object.properties.get_mut(property),
                _ => None,
            };
            match field {
                Some(RefOr::T(Schema::Object(field))) => {
                    field.min_length = Some(self.0.min_chars());
                    field.max_length = Some(MAX_PASSWORD_CHARS);
                }
                _ => tracing::warn!(schema, property, "no password property to bound"),
            }
        }
    }
}

/// The spec as JSON (built once per router), with the password bounds of
/// `policy`.
pub fn spec_json(policy: &PasswordPolicy) -> String {
    let mut spec = ApiDoc::openapi();
    PasswordBounds(policy).modify(&mut spec);
    spec.to_pretty_json().unwrap_or_else(|_| "{}".to_owned())
}

/// `GET /docs`: Swagger UI, served entirely by this server (no CDN). The
/// other security headers come from `web::headers::docs_headers`.
pub async fn docs_page() -> Response {
    let mut response = Html(DOCS_HTML).into_response();
    let headers = response.headers_mut();
    // Swagger UI sets inline styles; it needs nothing else from outside.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

const DOCS_HTML: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>leptos-auth API</title>
  <link rel="icon" href="/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"#;

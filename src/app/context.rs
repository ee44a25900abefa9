//! What server functions need from the request, read from the Leptos context
//! (leptos_axum provides the request parts and the response options), and
//! the one translation of service errors for the pages.

use super::error::{AppError, EMAIL_NOT_VERIFIED};
use crate::{
    services::{Actor, ClientInfo, ServiceError, StepUpProof},
    state::AppState,
    web::{cookies::SessionCookies, session::BrowserSession},
};
use axum::http::{request::Parts, StatusCode};
use leptos::prelude::{expect_context, use_context};
use leptos_axum::ResponseOptions;
use tower_cookies::Cookies;

/// The application state. Read it before the first `.await` of a server
/// function: while a page renders on the server, the context is gone after
/// one (and this panics).
pub fn state() -> AppState {
    expect_context::<AppState>()
}

fn parts() -> Option<Parts> {
    use_context::<Parts>()
}

/// The signed-in user of this request, if any.
pub fn actor() -> Option<Actor> {
    parts().and_then(|p| {
        p.extensions
            .get::<BrowserSession>()
            .and_then(|s| s.0.clone())
    })
}

/// The signed-in user, or [`AppError::Unauthenticated`] (401).
pub fn require_actor() -> Result<Actor, AppError> {
    actor().ok_or_else(|| fail(AppError::Unauthenticated))
}

/// The cookie jar of this request (its changes go out with the response).
pub fn cookies() -> Result<Cookies, AppError> {
    parts()
        .and_then(|p| p.extensions.get::<Cookies>().cloned())
        .ok_or_else(|| fail(AppError::Internal))
}

/// The session cookie settings of this instance.
pub fn session_cookies() -> SessionCookies {
    SessionCookies::new(&state().config)
}

/// The client's user agent and address.
pub fn client() -> ClientInfo {
    parts()
        .map(|p| crate::client::of(&p.extensions))
        .unwrap_or_default()
}

pub use super::error::CONFIRM_FIELD;

/// Whether this request renders a page (rather than calling `/fn/...`).
fn rendering_a_page() -> bool {
    parts().is_some_and(|p| !p.uri.path().starts_with("/fn/"))
}

/// Marks `error` as the answer and returns it. While a page is rendered on
/// the server (its data comes from server functions called in-process), the
/// page takes the error's status. A server-function call (`/fn/...`) gets
/// its status from [`super::fn_errors`] instead, for every error, leptos'
/// own included, and a plain HTML form post keeps its redirect back to the
/// form.
pub fn fail(error: AppError) -> AppError {
    if rendering_a_page() {
        if let Some(response) = use_context::<ResponseOptions>() {
            response.set_status(error.status());
        }
    }
    error
}

/// Refuses a form whose two password fields differ, as an error of its
/// `confirm` field (the service never sees a password the user mistyped).
pub fn confirmed(password: &str, confirm: &str, message: &'static str) -> Result<(), AppError> {
    if password == confirm {
        Ok(())
    } else {
        Err(fail(AppError::invalid("confirm", message)))
    }
}

/// Confirms who the caller is before a sensitive action, when the session
/// needs it and the form carried a password or code (`secret`, from the
/// form's `field`): the action then goes ahead in the same post. Without
/// one, the action's own step-up check refuses and the form asks.
pub async fn step_up(
    actor: &Actor,
    secret: Option<&str>,
    field: &'static str,
) -> Result<(), AppError> {
    let Some(secret) = secret.filter(|s| !s.trim().is_empty()) else {
        return Ok(());
    };
    // The state is read before the first await: while a page renders, the
    // context is not there after one.
    let state = state();
    let services = &state.services;
    if !confirmation_needed(&state, actor).await? {
        return Ok(());
    }
    let proof = StepUpProof::PasswordOrCode(secret.to_owned().into());
    services
        .auth
        .confirm(actor, proof)
        .await
        .map_err(|err| match err {
            ServiceError::IncorrectPassword | ServiceError::IncorrectConfirmationCode => {
                fail(AppError::invalid(
                    field,
                    if field == CONFIRM_FIELD {
                        "That password (or code) is not right"
                    } else {
                        "Your current password is incorrect"
                    },
                ))
            }
            other => service_error(other),
        })
}

/// Whether the caller's session must confirm (password or code) before a
/// sensitive action: the forms then ask inside themselves. `state` is taken
/// before any await of the caller (see [`state`]).
pub async fn confirmation_needed(state: &AppState, actor: &Actor) -> Result<bool, AppError> {
    state
        .services
        .step_up
        .is_needed(actor)
        .await
        .map_err(service_error)
}

/// The end of a server function that changes something: on success the
/// browser goes to `to` (a page that says what happened); a failure is
/// translated for the page.
pub fn redirect_after<T>(
    result: Result<T, ServiceError>,
    to: impl AsRef<str>,
) -> Result<(), AppError> {
    result.map_err(service_error)?;
    leptos_axum::redirect(to.as_ref());
    Ok(())
}

/// Translates a service error for the pages (the only place that does), and
/// sets the matching HTTP status.
pub fn service_error(err: ServiceError) -> AppError {
    use ServiceError as E;
    let refused = |status: StatusCode, message: &str| AppError::Refused {
        status: status.as_u16(),
        message: message.to_owned(),
    };
    let invalid = |field: &str, message: String| AppError::Invalid {
        field: field.to_owned(),
        message,
    };
    let error = match err {
        E::InvalidCredentials | E::InactiveUser => {
            refused(StatusCode::UNAUTHORIZED, &err.to_string())
        }
        E::InvalidToken
        | E::TokenAlreadyInvalidated
        | E::InvalidRefreshToken
        | E::InvalidTokenType => AppError::Unauthenticated,
        E::Forbidden => AppError::Forbidden,
        E::RegistrationDisabled => refused(
            StatusCode::FORBIDDEN,
            "Registration is closed on this server. Ask an administrator for an account.",
        ),
        E::EmailTaken => invalid(
            "email",
            "An account with this email already exists".to_owned(),
        ),
        E::IncorrectPassword => invalid(
            "current_password",
            "Your current password is incorrect".to_owned(),
        ),
        E::CannotChangeOwnRole => refused(StatusCode::FORBIDDEN, "You cannot change your own role"),
        E::EmailNotVerified => refused(StatusCode::FORBIDDEN, EMAIL_NOT_VERIFIED),
        E::EmailAlreadyVerified | E::InvalidLink(_) => {
            refused(StatusCode::BAD_REQUEST, &err.to_string())
        }
        E::UserNotFound => {
            AppError::NotFound("This user does not exist (it may have been deleted)".to_owned())
        }
        E::SessionNotFound => AppError::NotFound("This session has already ended".to_owned()),
        E::LastAdmin => refused(
            StatusCode::CONFLICT,
            "This is the last active admin. Without an active admin nobody could manage users, so \
             make another user an admin first, then try again.",
        ),
        E::Throttled { .. } => refused(StatusCode::TOO_MANY_REQUESTS, &err.to_string()),
        E::StepUpRequired => invalid(
            CONFIRM_FIELD,
            "For your security, confirm it is you: enter your password (or a two-factor code)"
                .to_owned(),
        ),
        E::IncorrectConfirmationCode => invalid(CONFIRM_FIELD, "That code is not right".to_owned()),
        E::IncorrectCode => invalid(
            "code",
            "That code is not right. Enter the code your app shows now, or a recovery code."
                .to_owned(),
        ),
        E::InvalidMfaToken => refused(
            StatusCode::UNAUTHORIZED,
            "This sign-in has expired. Please sign in again.",
        ),
        E::MfaAlreadyEnabled | E::MfaNotEnabled | E::NoPendingEnrolment => {
            refused(StatusCode::CONFLICT, &err.to_string())
        }
        E::PasskeyNotAccepted => refused(
            StatusCode::UNAUTHORIZED,
            "That passkey was not accepted. Try again, or sign in with your password.",
        ),
        E::PasskeyNotFound => {
            AppError::NotFound("This passkey has already been removed".to_owned())
        }
        E::PasskeysUnavailable => refused(StatusCode::NOT_FOUND, &err.to_string()),
        E::PasskeyCeremonyExpired | E::PasskeyRegistrationFailed | E::PasskeyWrongSite { .. } => {
            refused(StatusCode::BAD_REQUEST, &err.to_string())
        }
        E::PasskeyAlreadyRegistered | E::PasskeyLimit => {
            refused(StatusCode::CONFLICT, &err.to_string())
        }
        E::SecondFactorRequiredForAdmins => {
            let refusal = refused(
                StatusCode::FORBIDDEN,
                "Administrators on this server must turn on two-factor authentication first.",
            );
            // A page goes to the setup instead (its status is the redirect's).
            if rendering_a_page() {
                leptos_axum::redirect("/profile/two-factor?notice=admins-need-2fa");
                return refusal;
            }
            refusal
        }
        E::Invalid(field) => invalid(field.field, field.message),
        E::Unavailable(cause) => {
            tracing::error!(error = %cause, "database unavailable");
            AppError::Unavailable
        }
        E::Internal(cause) => {
            tracing::error!(error = ?cause, "internal error in a server function");
            AppError::Internal
        }
    };
    fail(error)
}

//! Server functions: the pages' only way to act. Each one is thin: read the
//! signed-in user, call one service method, map the result (rules live in
//! `services`, shared with the JSON API). State-changing functions are POSTs
//! (the default encoding), guarded by the CSRF middleware.

use super::error::AppError;
use crate::domain::{AuditPage, PasswordStrength, SessionView, UserPage, UserView};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
use super::context as ctx;

/// Public facts the sign-up page needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteInfo {
    pub registration_open: bool,
    pub min_password_length: usize,
}

/// Page size of the admin user list unless chosen.
pub const DEFAULT_PAGE_SIZE: i64 = 20;
/// Page sizes offered in the admin user list.
pub const PAGE_SIZES: [i64; 4] = [10, 20, 50, 100];
/// Events shown in the profile's "Recent security activity".
pub const RECENT_ACTIVITY: i64 = 20;

/// The signed-in user, if any (the navigation bar).
#[server(prefix = "/fn", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<UserView>, AppError> {
    Ok(ctx::actor().map(|actor| actor.user.view()))
}

/// Registration switch and password rules.
#[server(prefix = "/fn", endpoint = "site_info")]
pub async fn get_site_info() -> Result<SiteInfo, AppError> {
    let users = &ctx::state().services.users;
    Ok(SiteInfo {
        registration_open: users.registration_open(),
        min_password_length: users.policy().min_chars(),
    })
}

/// `path` with `?next=` when `next` is a path on this site.
#[cfg(feature = "ssr")]
fn with_next(path: &str, next: Option<&str>) -> String {
    match next.filter(|n| crate::domain::safe_next(Some(n)) == *n) {
        Some(next) => format!(
            "{path}?next={}",
            form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ),
        None => path.to_owned(),
    }
}

/// Signs in: opens a session like the API login, sets the cookies, and goes
/// to `next` when it is a path on this site (else `/profile`). An account
/// with two-factor authentication goes on to `/login/two-factor` (the
/// pending step rides in an HttpOnly cookie).
#[server(prefix = "/fn", endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::services::SignIn;
    let state = ctx::state();
    let sign_in = state
        .services
        .auth
        .login(&email, password.into(), None, &ctx::client())
        .await
        .map_err(ctx::service_error)?;
    let cookies = ctx::cookies()?;
    match sign_in {
        SignIn::Complete(pair) => {
            ctx::session_cookies().set(&cookies, &pair);
            leptos_axum::redirect(&crate::domain::safe_next(next.as_deref()));
        }
        SignIn::SecondFactorRequired(challenge) => {
            use secrecy::ExposeSecret;
            ctx::session_cookies().set_flow(
                &cookies,
                crate::web::cookies::Flow::SecondFactor,
                challenge.mfa_token.expose_secret(),
            );
            leptos_axum::redirect(&with_next("/login/two-factor", next.as_deref()));
        }
    }
    Ok(())
}

/// Whether this browser is between the two steps of a sign-in.
#[server(prefix = "/fn", endpoint = "second_step_pending")]
pub async fn second_step_pending() -> Result<bool, AppError> {
    Ok(ctx::session_cookies()
        .flow_token(&ctx::cookies()?, crate::web::cookies::Flow::SecondFactor)
        .is_some())
}

/// Whether the pending second step of this browser's sign-in takes a passkey.
#[server(prefix = "/fn", endpoint = "second_step_offers_passkey")]
pub async fn second_step_offers_passkey() -> Result<bool, AppError> {
    use crate::services::second_factor::Method;
    let state = ctx::state();
    let Some(token) = ctx::session_cookies()
        .flow_token(&ctx::cookies()?, crate::web::cookies::Flow::SecondFactor)
    else {
        return Ok(false);
    };
    let methods = state
        .services
        .auth
        .second_factor_methods(&token)
        .await
        .map_err(ctx::service_error)?;
    Ok(methods.contains(&Method::Webauthn))
}

/// The second step of a sign-in: a code of the authenticator app or a
/// recovery code. A wrong code comes back to the form; an expired step
/// goes back to the password.
#[server(prefix = "/fn", endpoint = "login_second_factor")]
pub async fn login_second_factor(code: String, next: Option<String>) -> Result<(), AppError> {
    use crate::{services::ServiceError, web::cookies::Flow};
    let cookies = ctx::cookies()?;
    let session_cookies = ctx::session_cookies();
    let expired = with_next("/login", next.as_deref());
    let expired = format!(
        "{expired}{}notice=sign-in-expired",
        if expired.contains('?') { "&" } else { "?" }
    );
    let Some(token) = session_cookies.flow_token(&cookies, Flow::SecondFactor) else {
        leptos_axum::redirect(&expired);
        return Ok(());
    };
    match ctx::state()
        .services
        .auth
        .complete_second_factor(&token, &code, &ctx::client())
        .await
    {
        Ok(pair) => {
            session_cookies.clear_flow(&cookies, Flow::SecondFactor);
            session_cookies.set(&cookies, &pair);
            leptos_axum::redirect(&crate::domain::safe_next(next.as_deref()));
            Ok(())
        }
        Err(ServiceError::InvalidMfaToken) => {
            session_cookies.clear_flow(&cookies, Flow::SecondFactor);
            leptos_axum::redirect(&expired);
            Ok(())
        }
        Err(err) => Err(ctx::service_error(err)),
    }
}

/// Creates an account, signs it in, and goes to the profile.
#[server(prefix = "/fn", endpoint = "register")]
pub async fn register(email: String, password: String, confirm: String) -> Result<(), AppError> {
    ctx::confirmed(&password, &confirm, "The passwords do not match")?;
    let state = ctx::state();
    let services = &state.services;
    let input = crate::services::NewUserInput {
        email,
        password: password.into(),
        role: None,
        is_active: None,
    };
    let user = services
        .users
        .sign_up(input, &ctx::client())
        .await
        .map_err(ctx::service_error)?;
    let pair = match services.auth.open_session(&user, &ctx::client()).await {
        // REQUIRE_EMAIL_VERIFICATION: no session until the link is opened.
        Err(crate::services::ServiceError::EmailNotVerified) => {
            leptos_axum::redirect("/login?notice=verify-to-sign-in");
            return Ok(());
        }
        result => result.map_err(ctx::service_error)?,
    };
    ctx::session_cookies().set(&ctx::cookies()?, &pair);
    leptos_axum::redirect("/profile?notice=welcome");
    Ok(())
}

/// Asks for a password-reset link; the answer is the same for every address.
#[server(prefix = "/fn", endpoint = "forgot_password")]
pub async fn forgot_password(email: String) -> Result<(), AppError> {
    ctx::redirect_after(
        ctx::state()
            .services
            .recovery
            .request_password_reset(&email, &ctx::client())
            .await,
        "/forgot-password?notice=reset-sent",
    )
}

/// Whether a reset link can still be used (before its form is shown).
#[server(prefix = "/fn", endpoint = "check_reset_link")]
pub async fn check_reset_link(token: String) -> Result<(), AppError> {
    ctx::state()
        .services
        .recovery
        .check_reset_link(&token)
        .await
        .map_err(ctx::service_error)
}

/// Sets a new password with a reset link; every session ends, this
/// browser's included, and the user signs in with the new password.
#[server(prefix = "/fn", endpoint = "reset_password")]
pub async fn reset_password(
    token: String,
    password: String,
    confirm: String,
) -> Result<(), AppError> {
    ctx::confirmed(&password, &confirm, "The passwords do not match")?;
    ctx::state()
        .services
        .recovery
        .reset_password(&token, password.into(), &ctx::client())
        .await
        .map_err(ctx::service_error)
        .map_err(|err| match err {
            // The policy speaks of the field the API calls `new_password`.
            AppError::Invalid { field, message } if field == "new_password" => {
                AppError::invalid("password", message)
            }
            other => other,
        })?;
    ctx::session_cookies().clear(&ctx::cookies()?);
    leptos_axum::redirect("/login?notice=password-reset");
    Ok(())
}

/// Confirms an address with a verification link; returns the address.
#[server(prefix = "/fn", endpoint = "verify_email")]
pub async fn verify_email(token: String) -> Result<String, AppError> {
    let user = ctx::state()
        .services
        .recovery
        .verify_email(&token, &ctx::client())
        .await
        .map_err(ctx::service_error)?;
    Ok(user.email)
}

/// From the sign-in page: a new verification link for an unverified
/// account (the answer is the same for every address).
#[server(prefix = "/fn", endpoint = "request_verification")]
pub async fn request_verification(email: String) -> Result<(), AppError> {
    ctx::redirect_after(
        ctx::state()
            .services
            .recovery
            .request_verification(&email, &ctx::client())
            .await,
        "/login?notice=verification-sent",
    )
}

/// A new verification link for the signed-in user.
#[server(prefix = "/fn", endpoint = "resend_my_verification")]
pub async fn resend_my_verification() -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::redirect_after(
        ctx::state()
            .services
            .recovery
            .resend_verification(&actor)
            .await,
        "/profile?notice=verification-resent",
    )
}

/// The password policy's verdict, for the live strength meter.
#[server(prefix = "/fn", endpoint = "password_strength")]
pub async fn check_password_strength(
    password: String,
    email: String,
) -> Result<PasswordStrength, AppError> {
    Ok(ctx::state()
        .services
        .users
        .password_strength(&password, &email))
}

/// Signs out: revokes the session and clears the cookies.
#[server(prefix = "/fn", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let cookies = ctx::cookies()?;
    if let Some(actor) = ctx::actor() {
        ctx::state()
            .services
            .auth
            .logout_session(&actor)
            .await
            .map_err(ctx::service_error)?;
    }
    ctx::session_cookies().clear(&cookies);
    leptos_axum::redirect("/?notice=signed-out");
    Ok(())
}

/// The signed-in user's account.
#[server(prefix = "/fn", endpoint = "my_account")]
pub async fn my_account() -> Result<UserView, AppError> {
    Ok(ctx::require_actor()?.user.view())
}

#[cfg(feature = "ssr")]
async fn update_me(input: crate::services::UpdateMeInput, notice: &str) -> Result<(), AppError> {
    use secrecy::ExposeSecret;
    let actor = ctx::require_actor()?;
    // The current password the form asks for also confirms the session.
    let current = input
        .current_password
        .as_ref()
        .map(|p| p.expose_secret().to_owned());
    ctx::step_up(&actor, current.as_deref(), "current_password").await?;
    ctx::redirect_after(
        ctx::state().services.users.update_me(&actor, input).await,
        format!("/profile?notice={notice}"),
    )
}

/// Changes the signed-in user's email (needs the current password).
#[server(prefix = "/fn", endpoint = "change_email")]
pub async fn change_email(email: String, current_password: String) -> Result<(), AppError> {
    let input = crate::services::UpdateMeInput {
        email: Some(email),
        current_password: Some(current_password.into()),
        ..Default::default()
    };
    update_me(input, "email-changed").await
}

/// Changes the signed-in user's password; every other session is signed out.
#[server(prefix = "/fn", endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    password: String,
    confirm: String,
) -> Result<(), AppError> {
    ctx::confirmed(&password, &confirm, "The new passwords do not match")?;
    let input = crate::services::UpdateMeInput {
        password: Some(password.into()),
        current_password: Some(current_password.into()),
        ..Default::default()
    };
    update_me(input, "password-changed").await
}

/// Deletes the signed-in user's account (current password and a confirmation).
#[server(prefix = "/fn", endpoint = "delete_account")]
pub async fn delete_account(
    current_password: String,
    confirm: Option<String>,
) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    if confirm.as_deref() != Some("yes") {
        return Err(ctx::fail(AppError::invalid(
            "confirm",
            "Tick the box to confirm that you want to delete your account",
        )));
    }
    ctx::step_up(&actor, Some(&current_password), "current_password").await?;
    ctx::state()
        .services
        .users
        .delete_me(&actor, current_password.into())
        .await
        .map_err(ctx::service_error)?;
    ctx::session_cookies().clear(&ctx::cookies()?);
    leptos_axum::redirect("/?notice=account-deleted");
    Ok(())
}

/// The signed-in user's live sessions (devices), newest first.
#[server(prefix = "/fn", endpoint = "my_sessions")]
pub async fn my_sessions() -> Result<Vec<SessionView>, AppError> {
    let actor = ctx::require_actor()?;
    ctx::state()
        .services
        .sessions
        .list_mine(&actor)
        .await
        .map_err(ctx::service_error)
}

/// Signs one of the user's other devices out.
#[server(prefix = "/fn", endpoint = "end_session")]
pub async fn end_session(id: i64) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::redirect_after(
        ctx::state().services.sessions.revoke_mine(&actor, id).await,
        "/profile?notice=device-signed-out",
    )
}

/// Signs out every other device of the user.
#[server(prefix = "/fn", endpoint = "end_other_sessions")]
pub async fn end_other_sessions() -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::redirect_after(
        ctx::state()
            .services
            .sessions
            .revoke_my_others(&actor)
            .await,
        "/profile?notice=others-signed-out",
    )
}

/// Admin: a page of users with filters (`role`: admin|regular, `status`:
/// active|inactive); `page` counts from 1, `per_page` is one of
/// [`PAGE_SIZES`] (else [`DEFAULT_PAGE_SIZE`]).
#[server(prefix = "/fn", endpoint = "list_users")]
pub async fn list_users(
    q: Option<String>,
    role: Option<String>,
    status: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
) -> Result<UserPage, AppError> {
    let actor = ctx::require_actor()?;
    let window = listing::page(page, per_page);
    let filter = crate::domain::UserFilter::new(
        q.as_deref().map(str::trim),
        role.and_then(|r| r.parse().ok()),
        match status.as_deref() {
            Some("active") => Some(true),
            Some("inactive") => Some(false),
            _ => None,
        },
    );
    let result = ctx::state()
        .services
        .users
        .list(&actor, &filter, window)
        .await
        .map_err(ctx::service_error)?;
    Ok(UserPage {
        users: result.users.iter().map(|u| u.view()).collect(),
        total: result.total,
        offset: window.offset(),
        limit: window.limit(),
    })
}

/// Admin: creates a user with a role.
#[server(prefix = "/fn", endpoint = "create_user")]
pub async fn create_user(email: String, password: String, role: String) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    let role = role
        .parse()
        .map_err(|_| ctx::fail(AppError::invalid("role", "Choose a role")))?;
    let input = crate::services::NewUserInput {
        email,
        password: password.into(),
        role: Some(role),
        is_active: Some(true),
    };
    let user = ctx::state()
        .services
        .users
        .create_user(&actor, input)
        .await
        .map_err(ctx::service_error)?;
    leptos_axum::redirect(&format!("/admin/users/{}?notice=created", user.id));
    Ok(())
}

/// Admin: one user.
#[server(prefix = "/fn", endpoint = "get_user")]
pub async fn get_user(id: i64) -> Result<UserView, AppError> {
    let actor = ctx::require_actor()?;
    let user = ctx::state()
        .services
        .users
        .get(&actor, id)
        .await
        .map_err(ctx::service_error)?;
    Ok(user.view())
}

#[cfg(feature = "ssr")]
async fn admin_update(
    id: i64,
    input: crate::services::UpdateUserInput,
    confirm_secret: Option<String>,
    notice: &str,
) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    ctx::redirect_after(
        ctx::state().services.users.update(&actor, id, input).await,
        format!("/admin/users/{id}?notice={notice}"),
    )
}

/// Admin: changes a user's email and role.
#[server(prefix = "/fn", endpoint = "update_user")]
pub async fn update_user(
    id: i64,
    email: String,
    role: String,
    confirm_secret: Option<String>,
) -> Result<(), AppError> {
    let role = role
        .parse()
        .map_err(|_| ctx::fail(AppError::invalid("role", "Choose a role")))?;
    let input = crate::services::UpdateUserInput {
        email: Some(email),
        role: Some(role),
        ..Default::default()
    };
    admin_update(id, input, confirm_secret, "saved").await
}

/// Admin: activates or deactivates a user (deactivation signs them out everywhere).
#[server(prefix = "/fn", endpoint = "set_user_active")]
pub async fn set_user_active(
    id: i64,
    active: bool,
    confirm_secret: Option<String>,
) -> Result<(), AppError> {
    let input = crate::services::UpdateUserInput {
        is_active: Some(active),
        ..Default::default()
    };
    let notice = if active { "activated" } else { "deactivated" };
    admin_update(id, input, confirm_secret, notice).await
}

/// Admin: sets a new password for a user (signs them out everywhere).
#[server(prefix = "/fn", endpoint = "set_user_password")]
pub async fn set_user_password(
    id: i64,
    password: String,
    confirm: String,
    confirm_secret: Option<String>,
) -> Result<(), AppError> {
    ctx::confirmed(&password, &confirm, "The passwords do not match")?;
    let input = crate::services::UpdateUserInput {
        password: Some(password.into()),
        ..Default::default()
    };
    admin_update(id, input, confirm_secret, "password-set").await
}

/// Admin: sends a user a new verification link.
#[server(prefix = "/fn", endpoint = "resend_user_verification")]
pub async fn resend_user_verification(id: i64) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::redirect_after(
        ctx::state()
            .services
            .recovery
            .admin_resend_verification(&actor, id)
            .await,
        format!("/admin/users/{id}?notice=verification-resent"),
    )
}

/// Admin: a user's live sessions.
#[server(prefix = "/fn", endpoint = "user_sessions")]
pub async fn user_sessions(id: i64) -> Result<Vec<SessionView>, AppError> {
    let actor = ctx::require_actor()?;
    ctx::state()
        .services
        .sessions
        .list_for_user(&actor, id)
        .await
        .map_err(ctx::service_error)
}

/// Admin: signs a user out everywhere.
#[server(prefix = "/fn", endpoint = "sign_out_user")]
pub async fn sign_out_user(id: i64) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::redirect_after(
        ctx::state()
            .services
            .sessions
            .revoke_all_for_user(&actor, id)
            .await,
        format!("/admin/users/{id}?notice=signed-out-everywhere"),
    )
}

/// Admin: deletes a user after a confirmation.
#[server(prefix = "/fn", endpoint = "delete_user")]
pub async fn delete_user(
    id: i64,
    confirm: Option<String>,
    confirm_secret: Option<String>,
) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    if confirm.as_deref() != Some("yes") {
        return Err(ctx::fail(AppError::invalid(
            "confirm",
            "Tick the box to confirm the deletion",
        )));
    }
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    ctx::redirect_after(
        ctx::state().services.users.delete(&actor, id).await,
        "/admin/users?notice=deleted",
    )
}

/// The signed-in user's two-factor authentication, and whether a sensitive
/// action needs a confirmation first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoFactorView {
    pub enabled: bool,
    pub pending: bool,
    pub recovery_codes_left: i64,
    /// The session must confirm (password or code) before a sensitive action.
    pub confirmation_needed: bool,
}

/// The signed-in user's two-factor authentication.
#[server(prefix = "/fn", endpoint = "my_two_factor")]
pub async fn my_two_factor() -> Result<TwoFactorView, AppError> {
    let actor = ctx::require_actor()?;
    let state = ctx::state();
    let status = state
        .services
        .second_factors
        .status(&actor)
        .await
        .map_err(ctx::service_error)?;
    Ok(TwoFactorView {
        enabled: status.enabled,
        pending: status.pending,
        recovery_codes_left: status.recovery_codes_left,
        confirmation_needed: ctx::confirmation_needed(&state, &actor).await?,
    })
}

/// Whether the signed-in user's session must confirm before a sensitive
/// action (the forms then ask for the password or a code).
#[server(prefix = "/fn", endpoint = "confirmation_needed")]
pub async fn confirmation_needed() -> Result<bool, AppError> {
    let actor = ctx::require_actor()?;
    ctx::confirmation_needed(&ctx::state(), &actor).await
}

/// Starts setting up an authenticator app, then shows it on `/profile/two-factor`.
#[server(prefix = "/fn", endpoint = "start_two_factor")]
pub async fn start_two_factor(confirm_secret: Option<String>) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    ctx::redirect_after(
        ctx::state()
            .services
            .second_factors
            .start_totp(&actor)
            .await,
        "/profile/two-factor",
    )
}

/// The setup waiting for its first code: what the app scans or the user types.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingSetup {
    /// Base32, for typing.
    pub secret: String,
    /// The `otpauth://` URI as an inline SVG QR code.
    pub qr_svg: String,
}

/// The signed-in user's pending setup, if any.
#[server(prefix = "/fn", endpoint = "two_factor_setup")]
pub async fn two_factor_setup() -> Result<Option<PendingSetup>, AppError> {
    use secrecy::ExposeSecret;
    let actor = ctx::require_actor()?;
    let setup = ctx::state()
        .services
        .second_factors
        .pending_enrolment(&actor)
        .await
        .map_err(ctx::service_error)?;
    Ok(setup.map(|setup| PendingSetup {
        secret: setup.secret.expose_secret().to_owned(),
        qr_svg: setup.qr_svg,
    }))
}

/// Keeps new recovery codes for `/profile/recovery-codes` (one reading).
#[cfg(feature = "ssr")]
async fn show_recovery_codes(
    actor: &crate::services::Actor,
    codes: crate::services::second_factor::RecoveryCodes,
) -> Result<(), AppError> {
    use secrecy::ExposeSecret;
    let token = ctx::state()
        .services
        .second_factors
        .stash_recovery_codes(actor, &codes)
        .await
        .map_err(ctx::service_error)?;
    ctx::session_cookies().set_flow(
        &ctx::cookies()?,
        crate::web::cookies::Flow::RecoveryCodes,
        token.expose_secret(),
    );
    leptos_axum::redirect("/profile/recovery-codes");
    Ok(())
}

/// Finishes the setup with a current code: two-factor authentication is
/// on, and the recovery codes are shown once.
#[server(prefix = "/fn", endpoint = "confirm_two_factor")]
pub async fn confirm_two_factor(
    code: String,
    confirm_secret: Option<String>,
) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    let codes = ctx::state()
        .services
        .second_factors
        .confirm_totp(&actor, &code)
        .await
        .map_err(ctx::service_error)?;
    show_recovery_codes(&actor, codes).await
}

/// New recovery codes (the old ones stop working), shown once.
#[server(prefix = "/fn", endpoint = "regenerate_recovery_codes")]
pub async fn regenerate_recovery_codes(confirm_secret: Option<String>) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    let codes = ctx::state()
        .services
        .second_factors
        .regenerate_recovery_codes(&actor)
        .await
        .map_err(ctx::service_error)?;
    show_recovery_codes(&actor, codes).await
}

/// The recovery codes just issued to this browser, once; `None` after that.
#[server(prefix = "/fn", endpoint = "take_recovery_codes")]
pub async fn take_recovery_codes() -> Result<Option<Vec<String>>, AppError> {
    let actor = ctx::require_actor()?;
    let Some(token) = ctx::session_cookies()
        .flow_token(&ctx::cookies()?, crate::web::cookies::Flow::RecoveryCodes)
    else {
        return Ok(None);
    };
    ctx::state()
        .services
        .second_factors
        .take_recovery_codes(&actor, &token)
        .await
        .map_err(ctx::service_error)
}

/// Turns two-factor authentication off.
#[server(prefix = "/fn", endpoint = "disable_two_factor")]
pub async fn disable_two_factor(confirm_secret: Option<String>) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    ctx::redirect_after(
        ctx::state().services.second_factors.disable(&actor).await,
        "/profile?notice=two-factor-off",
    )
}

/// Admin: turns a user's two-factor authentication off (a lost device).
#[server(prefix = "/fn", endpoint = "reset_user_two_factor")]
pub async fn reset_user_two_factor(
    id: i64,
    confirm_secret: Option<String>,
) -> Result<(), AppError> {
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    ctx::redirect_after(
        ctx::state()
            .services
            .second_factors
            .admin_reset(&actor, id)
            .await,
        format!("/admin/users/{id}?notice=two-factor-reset"),
    )
}

/// The signed-in user's most recent security events (at most
/// [`RECENT_ACTIVITY`]), newest first, and how many there are in all.
#[server(prefix = "/fn", endpoint = "my_audit_events")]
pub async fn my_audit_events() -> Result<AuditPage, AppError> {
    let actor = ctx::require_actor()?;
    ctx::state()
        .services
        .audit
        .list_mine(&actor, listing::page(Some(1), Some(RECENT_ACTIVITY)))
        .await
        .map_err(ctx::service_error)
}

/// Admin: a page of the audit log, newest first. The filters come as the
/// page's GET form sends them: `user_id` (events this user did or that
/// concern them), `event_type` (e.g. `login_failed`), `since` and `until`
/// (`YYYY-MM-DD`, whole UTC days, both included); paging as in
/// [`list_users`].
#[server(prefix = "/fn", endpoint = "list_audit_events")]
pub async fn list_audit_events(
    user_id: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    page: Option<i64>,
    per_page: Option<i64>,
) -> Result<AuditPage, AppError> {
    let actor = ctx::require_actor()?;
    // Not allowed at all comes before a malformed filter.
    actor.require_admin().map_err(ctx::service_error)?;
    let query = listing::audit_query(
        user_id.as_deref(),
        event_type.as_deref(),
        since.as_deref(),
        until.as_deref(),
    )
    .map_err(ctx::fail)?;
    ctx::state()
        .services
        .audit
        .list(&actor, &query, listing::page(page, per_page))
        .await
        .map_err(ctx::service_error)
}

/// Reading the paging and the audit filters of the admin pages.
#[cfg(feature = "ssr")]
mod listing {
    use super::{AppError, DEFAULT_PAGE_SIZE, PAGE_SIZES};
    use crate::domain::{AuditEventType, AuditQuery, ListingError, Page};
    use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

    /// Page `number` (from 1, default 1) of `per_page` items: a size the
    /// pages offer, else the default; a number out of range shows the
    /// nearest page.
    pub fn page(number: Option<i64>, per_page: Option<i64>) -> Page {
        let size = per_page
            .filter(|n| PAGE_SIZES.contains(n))
            .unwrap_or(DEFAULT_PAGE_SIZE);
        Page::numbered(number.unwrap_or(1), size).unwrap_or(Page::FIRST)
    }

    const USER_ID: &str = "Enter a user id (a positive whole number)";

    fn filled(value: Option<&str>) -> Option<&str> {
        value.map(str::trim).filter(|v| !v.is_empty())
    }

    /// A `YYYY-MM-DD` date input.
    fn day(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>, AppError> {
        filled(value)
            .map(|v| {
                NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| AppError::invalid(field, "Enter a date as YYYY-MM-DD"))
            })
            .transpose()
    }

    /// The first instant of a UTC day.
    pub fn start_of_day(day: NaiveDate) -> DateTime<Utc> {
        day.and_time(NaiveTime::MIN).and_utc()
    }

    /// The last instant of a UTC day that both databases store (microseconds).
    pub fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
        let last = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or(NaiveTime::MIN);
        day.and_time(last).and_utc()
    }

    /// The service query of the form's values (empty values are no filter).
    pub fn audit_query(
        user_id: Option<&str>,
        event_type: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
    ) -> Result<AuditQuery, AppError> {
        let user_id = filled(user_id)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| AppError::invalid("user_id", USER_ID))
            })
            .transpose()?;
        let event_type = filled(event_type)
            .map(|v| {
                v.parse::<AuditEventType>().map_err(|_| {
                    AppError::invalid("event_type", "Choose an event type from the list")
                })
            })
            .transpose()?;
        let since = day("since", since)?;
        let until = day("until", until)?;
        AuditQuery::new(
            user_id,
            event_type,
            since.map(start_of_day),
            until.map(end_of_day),
        )
        .map_err(|err| match err {
            ListingError::UntilBeforeSince => {
                AppError::invalid("until", "The end date is before the start date")
            }
            _ => AppError::invalid("user_id", USER_ID),
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn dates_become_whole_utc_days() {
            let q =
                audit_query(None, None, Some("2026-01-31"), Some(" 2026-01-31 ")).expect("valid");
            assert_eq!(
                q.since().map(|t| t.to_rfc3339()).as_deref(),
                Some("2026-01-31T00:00:00+00:00")
            );
            assert_eq!(
                q.until().map(|t| t.to_rfc3339()).as_deref(),
                Some("2026-01-31T23:59:59.999999+00:00")
            );
            assert_eq!((q.user_id(), q.event_type()), (None, None));
        }

        #[test]
        fn empty_values_are_no_filter() {
            let q = audit_query(Some(""), Some(" "), Some(""), None).expect("valid");
            assert!(
                q.user_id().is_none()
                    && q.event_type().is_none()
                    && q.since().is_none()
                    && q.until().is_none()
            );
            let q = audit_query(Some("12"), Some("session_revoked"), None, None).expect("valid");
            assert_eq!(q.user_id(), Some(12));
            assert_eq!(q.event_type(), Some(AuditEventType::SessionRevoked));
        }

        #[test]
        fn page_numbers_and_sizes_are_read_leniently() {
            let p = page(Some(3), Some(50));
            assert_eq!((p.offset(), p.limit()), (100, 50));
            let p = page(None, Some(7));
            assert_eq!((p.offset(), p.limit()), (0, DEFAULT_PAGE_SIZE));
            assert_eq!(page(Some(-4), None).offset(), 0);
            assert!(page(Some(i64::MAX), Some(100)).offset() <= crate::domain::MAX_OFFSET);
        }

        #[test]
        fn malformed_values_name_their_field() {
            let field = |r: Result<AuditQuery, AppError>| match r {
                Err(AppError::Invalid { field, .. }) => field,
                other => panic!("expected a field error, got {other:?}"),
            };
            assert_eq!(field(audit_query(Some("abc"), None, None, None)), "user_id");
            assert_eq!(field(audit_query(Some("0"), None, None, None)), "user_id");
            assert_eq!(field(audit_query(Some("-3"), None, None, None)), "user_id");
            assert_eq!(
                field(audit_query(None, Some("LoginFailed"), None, None)),
                "event_type"
            );
            assert_eq!(
                field(audit_query(None, None, Some("2026-02-30"), None)),
                "since"
            );
            assert_eq!(
                field(audit_query(None, None, None, Some("31/01/2026"))),
                "until"
            );
            assert_eq!(
                field(audit_query(
                    None,
                    None,
                    Some("2026-02-01"),
                    Some("2026-01-31")
                )),
                "until"
            );
        }
    }
}

/// The signed-in user's passkeys, and whether passkeys work on this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeysView {
    /// `None` when passkeys work here; else why not (for the page).
    pub unavailable: Option<String>,
    pub passkeys: Vec<crate::domain::PasskeyView>,
    /// The session must confirm (password or code) before adding or removing one.
    pub confirmation_needed: bool,
}

/// The signed-in user's passkeys.
#[server(prefix = "/fn", endpoint = "my_passkeys")]
pub async fn my_passkeys() -> Result<PasskeysView, AppError> {
    let actor = ctx::require_actor()?;
    let state = ctx::state();
    let passkeys = &state.services.passkeys;
    let unavailable = passkeys.availability().err().map(str::to_owned);
    let list = passkeys.list(&actor).await.map_err(ctx::service_error)?;
    Ok(PasskeysView {
        unavailable,
        passkeys: list,
        confirmation_needed: ctx::confirmation_needed(&state, &actor).await?,
    })
}

/// Starts adding a passkey (called by `/passkeys.js`): the options for
/// `navigator.credentials.create()`. Confirms the session first when the
/// form carried the password or a code.
#[server(prefix = "/fn", endpoint = "passkey_register_start")]
pub async fn passkey_register_start(
    confirm_secret: Option<String>,
) -> Result<serde_json::Value, AppError> {
    let state = ctx::state();
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    state
        .services
        .passkeys
        .start_registration(&actor)
        .await
        .map_err(ctx::service_error)
}

/// Finishes adding a passkey: its name and the authenticator's answer (the
/// `PublicKeyCredential` as JSON text).
#[server(prefix = "/fn", endpoint = "passkey_register_finish")]
pub async fn passkey_register_finish(
    name: String,
    credential: String,
) -> Result<crate::domain::PasskeyView, AppError> {
    let state = ctx::state();
    let actor = ctx::require_actor()?;
    let credential = parse_credential(&credential)?;
    state
        .services
        .passkeys
        .finish_registration(&actor, &name, credential)
        .await
        .map_err(ctx::service_error)
}

/// The authenticator's answer sent by the page, or a clear refusal.
#[cfg(feature = "ssr")]
fn parse_credential(text: &str) -> Result<serde_json::Value, AppError> {
    serde_json::from_str(text).map_err(|_| AppError::Invalid {
        field: "credential".to_owned(),
        message: "The browser's passkey answer was not readable: please try again".to_owned(),
    })
}

/// Renames one of the signed-in user's passkeys (a plain form).
#[server(prefix = "/fn", endpoint = "rename_passkey")]
pub async fn rename_passkey(id: i64, name: String) -> Result<(), AppError> {
    let state = ctx::state();
    let actor = ctx::require_actor()?;
    ctx::redirect_after(
        state.services.passkeys.rename(&actor, id, &name).await,
        "/profile?notice=passkey-renamed#passkeys",
    )
}

/// Removes one of the signed-in user's passkeys (a plain form, with the
/// step-up confirmation when the session needs one).
#[server(prefix = "/fn", endpoint = "remove_passkey")]
pub async fn remove_passkey(id: i64, confirm_secret: Option<String>) -> Result<(), AppError> {
    let state = ctx::state();
    let actor = ctx::require_actor()?;
    ctx::step_up(&actor, confirm_secret.as_deref(), ctx::CONFIRM_FIELD).await?;
    ctx::redirect_after(
        state.services.passkeys.remove(&actor, id).await,
        "/profile?notice=passkey-removed#passkeys",
    )
}

/// Whether passkeys work on this server (the sign-in page offers them only then).
#[server(prefix = "/fn", endpoint = "passkeys_available")]
pub async fn passkeys_available() -> Result<bool, AppError> {
    Ok(ctx::state().services.passkeys.availability().is_ok())
}

/// A passwordless sign-in in progress (for `/passkeys.js`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyChallenge {
    /// Single use, 5 minutes; kept in the page's memory only.
    pub challenge_id: String,
    /// The options for `navigator.credentials.get()`.
    pub options: serde_json::Value,
}

/// Starts a passwordless sign-in on `/login`.
#[server(prefix = "/fn", endpoint = "passkey_sign_in_start")]
pub async fn passkey_sign_in_start() -> Result<PasskeyChallenge, AppError> {
    use secrecy::ExposeSecret;
    let state = ctx::state();
    let ceremony = state
        .services
        .auth
        .start_passkey_sign_in()
        .await
        .map_err(ctx::service_error)?;
    Ok(PasskeyChallenge {
        challenge_id: ceremony.challenge_id.expose_secret().to_owned(),
        options: ceremony.options,
    })
}

/// Finishes a passwordless sign-in: sets the session cookies and answers
/// where to go (`next` when it is a path on this site, else `/profile`).
#[server(prefix = "/fn", endpoint = "passkey_sign_in_finish")]
pub async fn passkey_sign_in_finish(
    challenge_id: String,
    credential: String,
    next: Option<String>,
) -> Result<String, AppError> {
    let state = ctx::state();
    let credential = parse_credential(&credential)?;
    let pair = state
        .services
        .auth
        .passkey_sign_in(&challenge_id, credential, &ctx::client())
        .await
        .map_err(ctx::service_error)?;
    let cookies = ctx::cookies()?;
    ctx::session_cookies().set(&cookies, &pair);
    Ok(crate::domain::safe_next(next.as_deref()))
}

/// Options for the second step of a sign-in with a passkey (the pending
/// step rides in its HttpOnly cookie).
#[server(prefix = "/fn", endpoint = "passkey_second_step_start")]
pub async fn passkey_second_step_start() -> Result<serde_json::Value, AppError> {
    use crate::web::cookies::Flow;
    let state = ctx::state();
    let cookies = ctx::cookies()?;
    let Some(token) = ctx::session_cookies().flow_token(&cookies, Flow::SecondFactor) else {
        return Err(ctx::service_error(
            crate::services::ServiceError::InvalidMfaToken,
        ));
    };
    state
        .services
        .auth
        .second_factor_passkey_options(&token)
        .await
        .map_err(ctx::service_error)
}

/// The second step of a sign-in with a passkey's answer; answers where to go.
#[server(prefix = "/fn", endpoint = "passkey_second_step_finish")]
pub async fn passkey_second_step_finish(
    credential: String,
    next: Option<String>,
) -> Result<String, AppError> {
    use crate::web::cookies::Flow;
    let state = ctx::state();
    let credential = parse_credential(&credential)?;
    let cookies = ctx::cookies()?;
    let session_cookies = ctx::session_cookies();
    let Some(token) = session_cookies.flow_token(&cookies, Flow::SecondFactor) else {
        return Err(ctx::service_error(
            crate::services::ServiceError::InvalidMfaToken,
        ));
    };
    let pair = state
        .services
        .auth
        .complete_second_factor_with_passkey(&token, credential, &ctx::client())
        .await
        .map_err(ctx::service_error)?;
    session_cookies.clear_flow(&cookies, Flow::SecondFactor);
    session_cookies.set(&cookies, &pair);
    Ok(crate::domain::safe_next(next.as_deref()))
}

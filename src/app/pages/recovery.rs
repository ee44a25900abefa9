//! Pages reached from emailed links, and asking for them: `/forgot-password`,
//! `/reset-password?token=...`, `/verify-email?token=...`, and the form that
//! asks for a new verification link.

use crate::app::components::PageMeta;

use crate::app::{
    components::{action_error, Field, FormError, Submit},
    error::AppError,
    server::{
        check_reset_link, get_site_info, verify_email, ForgotPassword, RequestVerification,
        ResetPassword,
    },
};
use leptos::{form::ActionForm, prelude::*};
use leptos_router::hooks::use_query_map;

/// The `token` of the page's address.
fn token_from_query() -> impl Fn() -> String + Copy + Send + Sync + 'static {
    let query = use_query_map();
    move || query.read().get("token").unwrap_or_default()
}

/// `/forgot-password`: asks for a reset link. The answer is the same for
/// every address.
#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let action = ServerAction::<ForgotPassword>::new();
    let error = action_error(action);
    view! {
        <PageMeta title="Forgot your password?" description="Ask for a link to choose a new password for your leptos-auth account."/>
        <section class="card narrow">
            <h1>"Forgot your password?"</h1>
            <p class="muted">"Enter the email address of your account and we will send you a link to choose a new password."</p>
            <ActionForm action=action>
                <FormError error/>
                <Field name="email" label="Email" kind="email" autocomplete="email" error/>
                <Submit label="Send the link" busy="Sending…"/>
            </ActionForm>
            <p class="muted"><a href="/login">"Back to sign in"</a></p>
        </section>
    }
}

/// `/reset-password?token=...`: checks the link, then asks for the new password.
#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let token = token_from_query();
    let link = Resource::new(token, check_reset_link);
    let info = Resource::new(|| (), |_| get_site_info());
    view! {
        <PageMeta title="Choose a new password" description="Choose a new password for your leptos-auth account."/>
        <section class="card narrow">
            <h1>"Choose a new password"</h1>
            <Suspense fallback=|| view! { <p>"Checking the link…"</p> }>
                {move || Suspend::new(async move {
                    let min_length = info.await.map(|i| i.min_password_length).unwrap_or(12);
                    match link.await {
                        Ok(()) => view! { <ResetPasswordForm token=token() min_length/> }.into_any(),
                        Err(err) => view! { <LinkProblem error=err retry_href="/forgot-password" retry_label="Ask for a new link"/> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn ResetPasswordForm(token: String, min_length: usize) -> impl IntoView {
    let action = ServerAction::<ResetPassword>::new();
    let error = action_error(action);
    view! {
        <ActionForm action=action>
            <input type="hidden" name="token" value=token/>
            <FormError error/>
            <Field name="password" label="New password" kind="password" autocomplete="new-password" error/>
            <p class="help">
                {format!("At least {min_length} characters. Long passphrases are best. Every device signed in to your account will be signed out.")}
            </p>
            <Field name="confirm" label="Confirm new password" kind="password" autocomplete="new-password" error/>
            <Submit label="Set the new password" busy="Saving…"/>
        </ActionForm>
    }
}

/// `/verify-email?token=...`: opening the link confirms the address.
#[component]
pub fn VerifyEmailPage() -> impl IntoView {
    let token = token_from_query();
    let verified = Resource::new(token, verify_email);
    view! {
        <PageMeta title="Confirm your email address" description="Confirm the email address of your leptos-auth account."/>
        <section class="card narrow">
            <h1>"Confirm your email address"</h1>
            <Suspense fallback=|| view! { <p>"Confirming…"</p> }>
                {move || Suspend::new(async move {
                    match verified.await {
                        Ok(email) => view! {
                            <p class="notice" role="status" data-testid="email-verified">
                                {format!("Thank you: {email} is confirmed.")}
                            </p>
                            <p><a href="/profile" class="button">"Go to your profile"</a></p>
                        }
                        .into_any(),
                        Err(err) => view! {
                            <LinkProblem error=err retry_href="/profile" retry_label="Ask for a new link from your profile"/>
                            <p class="muted">"Not signed in? Ask for a new link on the "<a href="/login">"sign-in page"</a>"."</p>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Why a link cannot be used, and where to get a new one.
#[component]
fn LinkProblem(
    error: AppError,
    retry_href: &'static str,
    retry_label: &'static str,
) -> impl IntoView {
    view! {
        <p class="form-error" role="alert" data-testid="link-problem">{error.to_string()}</p>
        <p><a href=retry_href>{retry_label}</a></p>
    }
}

/// Asks for a new verification link without signing in (shown on the
/// sign-in page when sign-in waits for a confirmed address).
#[component]
pub fn RequestVerificationForm() -> impl IntoView {
    let action = ServerAction::<RequestVerification>::new();
    let error = action_error(action);
    view! {
        <ActionForm action=action attr:class="stacked" attr:data-testid="resend-verification">
            <FormError error/>
            <Field name="email" id_prefix="rv-" label="Email" kind="email" autocomplete="email" error/>
            <Submit label="Send a new confirmation link" busy="Sending…" class="secondary"/>
        </ActionForm>
    }
}

use crate::{
    app::{
        components::{action_error, refresh_after, Field, FormError, Submit},
        server::{check_password_strength, get_site_info, Login, Register},
    },
    domain::PasswordStrength,
};
use leptos::{form::ActionForm, prelude::*, task::spawn_local};
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use std::time::Duration;

/// `/login`: email and password; honours `?next=` (same-site paths only,
/// checked on the server).
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let action = ServerAction::<Login>::new();
    refresh_after(action);
    let error = action_error(action);
    view! {
        <Title text="Sign in"/>
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=action>
                <input type="hidden" name="next" value=next/>
                <FormError error/>
                <Field name="email" label="Email" kind="email" autocomplete="email" error/>
                <Field name="password" label="Password" kind="password" autocomplete="current-password" error/>
                <Submit pending=action.pending().into() label="Sign in" busy="Signing in…"/>
            </ActionForm>
            <p class="muted">"No account yet? "<a href="/register">"Create one"</a></p>
        </section>
    }
}

/// `/register`: email, password (with a live strength meter driven by the
/// server's policy), confirmation.
#[component]
pub fn RegisterPage() -> impl IntoView {
    let info = Resource::new(|| (), |_| get_site_info());
    view! {
        <Title text="Create an account"/>
        <section class="card narrow">
            <h1>"Create an account"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match info.await {
                        Ok(info) if info.registration_open => view! { <RegisterForm min_length=info.min_password_length/> }.into_any(),
                        Ok(_) => view! {
                            <p class="notice" role="status" data-testid="registration-closed">
                                "Registration is closed on this server. Ask an administrator to create an account for you."
                            </p>
                        }
                        .into_any(),
                        Err(err) => crate::app::components::page_error(err),
                    }
                })}
            </Suspense>
            <p class="muted">"Already have an account? "<a href="/login">"Sign in"</a></p>
        </section>
    }
}

#[component]
fn RegisterForm(min_length: usize) -> impl IntoView {
    let action = ServerAction::<Register>::new();
    refresh_after(action);
    let error = action_error(action);
    let (email, set_email) = signal(String::new());
    let (password, set_password) = signal(String::new());
    let (confirm, set_confirm) = signal(String::new());
    let strength = RwSignal::new(None::<PasswordStrength>);
    let timer = StoredValue::new(None::<TimeoutHandle>);

    // Ask the server's policy about the password, 300 ms after the last keystroke.
    let check = move || {
        if let Some(handle) = timer.get_value() {
            handle.clear();
        }
        let pw = password.get_untracked();
        if pw.is_empty() {
            strength.set(None);
            return;
        }
        let handle = set_timeout_with_handle(
            move || {
                let mail = email.get_untracked();
                spawn_local(async move {
                    if let Ok(verdict) = check_password_strength(pw.clone(), mail).await {
                        // Ignore answers about a password that has changed since.
                        if password.get_untracked() == pw {
                            strength.set(Some(verdict));
                        }
                    }
                });
            },
            Duration::from_millis(300),
        )
        .ok();
        timer.set_value(handle);
    };
    let mismatch = move || !confirm.get().is_empty() && confirm.get() != password.get();
    let password_error = move || error.get().and_then(|e| e.for_field("password"));
    let confirm_error = move || {
        error
            .get()
            .and_then(|e| e.for_field("confirm"))
            .or_else(|| mismatch().then(|| "The passwords do not match".to_owned()))
    };

    view! {
        <ActionForm action=action>
            <FormError error/>
            <div class="field">
                <label for="email">"Email"</label>
                <input id="email" name="email" type="email" autocomplete="email" required
                    aria-describedby="email-error"
                    aria-invalid=move || error.get().and_then(|e| e.for_field("email")).is_some().to_string()
                    on:input=move |ev| { set_email.set(event_target_value(&ev)); check(); }/>
                <p class="field-error" id="email-error" role="alert">{move || error.get().and_then(|e| e.for_field("email"))}</p>
            </div>
            <div class="field">
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="new-password" required
                    minlength=min_length maxlength="128" aria-describedby="password-help password-error strength"
                    aria-invalid=move || password_error().is_some().to_string()
                    on:input=move |ev| { set_password.set(event_target_value(&ev)); check(); }/>
                <p class="help" id="password-help">
                    {format!("At least {min_length} characters. Long passphrases are best; no special characters required.")}
                </p>
                <StrengthMeter strength/>
                <p class="field-error" id="password-error" role="alert">{password_error}</p>
            </div>
            <div class="field">
                <label for="confirm">"Confirm password"</label>
                <input id="confirm" name="confirm" type="password" autocomplete="new-password" required
                    aria-describedby="confirm-error" aria-invalid=move || confirm_error().is_some().to_string()
                    on:input=move |ev| set_confirm.set(event_target_value(&ev))/>
                <p class="field-error" id="confirm-error" role="alert">{confirm_error}</p>
            </div>
            <Submit pending=action.pending().into() label="Create account" busy="Creating account…"/>
        </ActionForm>
    }
}

/// The live verdict of the password policy.
#[component]
pub fn StrengthMeter(strength: RwSignal<Option<PasswordStrength>>) -> impl IntoView {
    const LABELS: [&str; 5] = ["Very weak", "Weak", "Fair", "Strong", "Very strong"];
    view! {
        <div class="strength" id="strength" aria-live="polite" data-testid="strength">
            {move || strength.get().map(|s| {
                let label = LABELS[usize::from(s.score.min(4))];
                let class = if s.acceptable { "strength-ok" } else { "strength-weak" };
                view! {
                    <meter min="0" max="4" low="2.5" high="3.5" optimum="4" value=s.score.to_string() aria-label="Password strength"></meter>
                    <span class=class>{label}{if s.acceptable { " · accepted" } else { "" }}</span>
                    <span class="strength-feedback">{s.feedback}</span>
                }
            })}
        </div>
    }
}

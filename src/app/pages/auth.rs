use crate::app::components::PageMeta;
use crate::{
    app::{
        components::{action_error, Field, FormError, Submit},
        error::AppError,
        pages::passkeys::{PasskeyScript, PasskeysNeedJavaScript},
        pages::recovery::RequestVerificationForm,
        server::{check_password_strength, get_site_info, passkeys_available, Login, Register},
    },
    domain::PasswordStrength,
};
use leptos::{form::ActionForm, prelude::*, task::spawn_local};
use leptos_router::hooks::use_query_map;
use std::time::Duration;

/// `/login`: email and password; honours `?next=` (same-site paths only,
/// checked on the server). A plain form: it posts, and a refusal comes back
/// in the URL. When sign-in is throttled the error says how long to wait;
/// with JavaScript the submit button also counts the seconds down and stays
/// disabled until then.
#[component]
pub fn LoginPage() -> impl IntoView {
    let next = use_query_map()
        .read_untracked()
        .get("next")
        .unwrap_or_default();
    let action = ServerAction::<Login>::new();
    // Passkeys are offered only where they work (`PUBLIC_URL` names a host).
    let passkeys = Resource::new(|| (), |_| passkeys_available());
    let error = action_error(action).get_untracked();
    let unverified = error.as_ref().is_some_and(AppError::is_email_not_verified);
    let field_error = Signal::stored(error.clone());
    view! {
        <PageMeta title="Sign in" description="Sign in to your leptos-auth account with your email address and password."/>
        <section class="card narrow">
            <h1>"Sign in"</h1>
            <ActionForm action=action>
                <input type="hidden" name="next" value=next/>
                <Field name="email" label="Email" kind="email" autocomplete="email webauthn" error=field_error/>
                <Field name="password" label="Password" kind="password" autocomplete="current-password" error=field_error/>
                <SignInControls error/>
            </ActionForm>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    matches!(passkeys.await, Ok(true)).then(|| view! {
                        <div data-passkey="sign-in" hidden>
                            <p class="form-error" role="alert" data-passkey-error hidden></p>
                            <button type="button" class="button secondary" data-testid="passkey-sign-in">"Sign in with a passkey"</button>
                        </div>
                        <PasskeysNeedJavaScript text="Signing in with a passkey needs JavaScript; your email and password work without it."/>
                        <PasskeyScript/>
                    })
                })}
            </Suspense>
            {unverified.then(|| view! { <RequestVerificationForm/> })}
            <p class="muted"><a href="/forgot-password" data-testid="forgot-password">"Forgot your password?"</a></p>
            <p class="muted">"No account yet? "<a href="/register">"Create one"</a></p>
        </section>
    }
}

/// The sign-in form's message and button (an island): with JavaScript, a
/// throttled sign-in's wait counts down on the button, which stays disabled
/// until the wait is over, and the stale "try again in N seconds" then
/// gives way to a status saying so.
#[island]
fn SignInControls(error: Option<AppError>) -> impl IntoView {
    let retry_after = error.as_ref().and_then(AppError::retry_after);
    let wait = throttle_countdown(retry_after);
    let shown_error = Signal::derive(move || {
        error
            .clone()
            .filter(|e| !(wait.over.get() && e.retry_after().is_some()))
    });
    let pending = RwSignal::new(false);
    view! {
        <FormError error=shown_error/>
        <Show when=move || wait.over.get()>
            <p class="notice" role="status" data-testid="throttle-over">"The wait is over: you can try signing in again."</p>
        </Show>
        <button type="submit" class="button" disabled=move || { wait.seconds.get() > 0 }
            aria-busy=move || pending.get().to_string() on:click=crate::app::components::submit_once(pending)>
            {move || match (pending.get(), wait.seconds.get()) {
                (true, _) => "Signing in…".to_owned(),
                (false, 0) => "Sign in".to_owned(),
                (false, seconds) => format!("Sign in ({seconds} s)"),
            }}
        </button>
    }
}

/// The browser-side countdown of a throttled sign-in.
#[derive(Clone, Copy)]
struct Countdown {
    /// Whole seconds left (0: no wait).
    seconds: RwSignal<u64>,
    /// Whether the wait has run out.
    over: RwSignal<bool>,
}

/// Counts down a throttled sign-in's wait. Effects run only in the
/// browser, so the server-rendered page (and a browser without JavaScript)
/// simply shows the message.
fn throttle_countdown(retry_after: Option<u64>) -> Countdown {
    let countdown = Countdown {
        seconds: RwSignal::new(0),
        over: RwSignal::new(false),
    };
    let ticker = StoredValue::new(None::<IntervalHandle>);
    let stop = move || {
        if let Some(handle) = ticker.try_update_value(Option::take).flatten() {
            handle.clear();
        }
    };
    Effect::new(move |_| {
        let Some(total) = retry_after else {
            return;
        };
        // Measured against the clock, so a throttled background tab still
        // ends the wait on time.
        let deadline = now_millis() + total.min(86_400) as f64 * 1000.0;
        let left = move || ((deadline - now_millis()).max(0.0) / 1000.0).ceil() as u64;
        countdown.seconds.set(left());
        let handle = set_interval_with_handle(
            move || {
                let seconds = left();
                countdown.seconds.set(seconds);
                if seconds == 0 {
                    countdown.over.set(true);
                    stop();
                }
            },
            Duration::from_millis(250),
        )
        .ok();
        ticker.set_value(handle);
    });
    on_cleanup(stop);
    countdown
}

/// Milliseconds since the epoch, by the browser's clock.
fn now_millis() -> f64 {
    chrono::Utc::now().timestamp_millis() as f64
}

/// `/register`: email, password (with a live strength meter driven by the
/// server's policy), confirmation. A plain form; its fields are an island.
#[component]
pub fn RegisterPage() -> impl IntoView {
    let info = Resource::new(|| (), |_| get_site_info());
    let action = ServerAction::<Register>::new();
    let error = action_error(action).get_untracked();
    view! {
        <PageMeta title="Create an account" description="Create a leptos-auth account with your email address and a password."/>
        <section class="card narrow">
            <h1>"Create an account"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let error = error.clone();
                    Suspend::new(async move {
                    match info.await {
                        Ok(info) if info.registration_open => view! {
                            <ActionForm action=action>
                                <FormError error=Signal::stored(error.clone())/>
                                <RegisterFields min_length=info.min_password_length error/>
                                <Submit label="Create account" busy="Creating account…"/>
                            </ActionForm>
                        }
                        .into_any(),
                        Ok(_) => view! {
                            <p class="notice" role="status" data-testid="registration-closed">
                                "Registration is closed on this server. Ask an administrator to create an account for you."
                            </p>
                        }
                        .into_any(),
                        Err(err) => crate::app::components::page_error(err),
                    }
                })}}
            </Suspense>
            <p class="muted">"Already have an account? "<a href="/login">"Sign in"</a></p>
        </section>
    }
}

/// The sign-up fields (an island): with JavaScript, the server's password
/// policy rates the password while it is typed, and a confirmation that
/// does not match is pointed out before the form is sent.
#[island]
fn RegisterFields(min_length: usize, error: Option<AppError>) -> impl IntoView {
    let error = Signal::stored(error);
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
                // The form may be gone by now (e.g. submitted at once).
                let Some(mail) = email.try_get_untracked() else {
                    return;
                };
                spawn_local(async move {
                    if let Ok(verdict) = check_password_strength(pw.clone(), mail).await {
                        // Ignore answers about a password that has changed since.
                        if password.try_get_untracked().as_ref() == Some(&pw) {
                            strength.try_set(Some(verdict));
                        }
                    }
                });
            },
            Duration::from_millis(300),
        )
        .ok();
        timer.set_value(handle);
    };
    on_cleanup(move || {
        if let Some(handle) = timer.try_update_value(Option::take).flatten() {
            handle.clear();
        }
    });
    // Whatever was typed before the page became interactive (while the
    // wasm loaded) counts too.
    let (email_input, password_input, confirm_input) = (
        NodeRef::<leptos::html::Input>::new(),
        NodeRef::<leptos::html::Input>::new(),
        NodeRef::<leptos::html::Input>::new(),
    );
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        let (Some(mail), Some(pw), Some(again)) =
            (email_input.get(), password_input.get(), confirm_input.get())
        else {
            return false;
        };
        set_email.set(mail.value());
        set_confirm.set(again.value());
        if !pw.value().is_empty() {
            set_password.set(pw.value());
            check();
        }
        true
    });
    let mismatch = move || !confirm.get().is_empty() && confirm.get() != password.get();
    let password_error = move || error.get().and_then(|e| e.for_field("password"));
    let confirm_error = move || {
        error
            .get()
            .and_then(|e| e.for_field("confirm"))
            .or_else(|| mismatch().then(|| "The passwords do not match".to_owned()))
    };

    view! {
            <div class="field">
                <label for="email">"Email"</label>
                <input id="email" name="email" type="email" autocomplete="email" required node_ref=email_input
                    aria-describedby="email-error"
                    aria-invalid=move || error.get().and_then(|e| e.for_field("email")).is_some().to_string()
                    on:input=move |ev| { set_email.set(event_target_value(&ev)); check(); }/>
                <p class="field-error" id="email-error" role="alert">{move || error.get().and_then(|e| e.for_field("email"))}</p>
            </div>
            <div class="field">
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="new-password" required node_ref=password_input
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
                <input id="confirm" name="confirm" type="password" autocomplete="new-password" required node_ref=confirm_input
                    aria-describedby="confirm-error" aria-invalid=move || confirm_error().is_some().to_string()
                    on:input=move |ev| set_confirm.set(event_target_value(&ev))/>
                <p class="field-error" id="confirm-error" role="alert">{confirm_error}</p>
            </div>
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

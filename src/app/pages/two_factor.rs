//! Two-factor authentication pages: the second step of a sign-in, the
//! setup of an authenticator app, the recovery codes shown once, and the
//! profile's section. Plain forms: all of it works without JavaScript.

use crate::app::pages::passkeys::{PasskeyScript, PasskeysNeedJavaScript};
use crate::app::{
    components::{action_error, page_error, ConfirmField, Field, FormError, PageMeta, Submit},
    server::{
        my_two_factor, second_step_offers_passkey, second_step_pending, take_recovery_codes,
        two_factor_setup, ConfirmTwoFactor, DisableTwoFactor, LoginSecondFactor,
        RegenerateRecoveryCodes, StartTwoFactor,
    },
};
use crate::domain::encode_query_value;
use leptos::{form::ActionForm, prelude::*};
use leptos_router::hooks::use_query_map;

/// `/login/two-factor`: the second step of a sign-in, after the password:
/// a code of the authenticator app, or (`?method=recovery`) a recovery
/// code. `?next=` goes on to where the sign-in was headed.
#[component]
pub fn LoginSecondStepPage() -> impl IntoView {
    let query = use_query_map().read_untracked();
    let next = query.get("next").unwrap_or_default();
    let recovery = query.get("method").as_deref() == Some("recovery");
    let next_query = if next.is_empty() {
        String::new()
    } else {
        format!("next={}", encode_query_value(&next))
    };
    let switch_href = match (recovery, next_query.is_empty()) {
        (false, true) => "/login/two-factor?method=recovery".to_owned(),
        (false, false) => format!("/login/two-factor?method=recovery&{next_query}"),
        (true, true) => "/login/two-factor".to_owned(),
        (true, false) => format!("/login/two-factor?{next_query}"),
    };
    let restart_href = if next_query.is_empty() {
        "/login".to_owned()
    } else {
        format!("/login?{next_query}")
    };
    let pending = Resource::new(|| (), |_| second_step_pending());
    let passkey = Resource::new(|| (), |_| second_step_offers_passkey());
    let action = ServerAction::<LoginSecondFactor>::new();
    let error = action_error(action);
    view! {
        <PageMeta title="Two-factor sign-in" description="The second step of signing in to leptos-auth: a code from your authenticator app, or a recovery code."/>
        <section class="card narrow">
            <h1>"Two-factor authentication"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let (next, switch_href, restart_href) = (next.clone(), switch_href.clone(), restart_href.clone());
                    Suspend::new(async move {
                        let offers_passkey = matches!(passkey.await, Ok(true));
                        match pending.await {
                            Ok(true) => view! {
                                {offers_passkey.then(|| view! {
                                    <div data-passkey="second-factor" hidden>
                                        <input type="hidden" name="next" value=next.clone()/>
                                        <p class="form-error" role="alert" data-passkey-error hidden></p>
                                        <button type="button" class="button" data-testid="passkey-second-factor">"Use your passkey"</button>
                                        <p class="muted">"Or enter a code:"</p>
                                    </div>
                                    <PasskeysNeedJavaScript text="Your passkey can stand in for the code when JavaScript is on."/>
                                    <PasskeyScript/>
                                })}
                                <ActionForm action=action>
                                    <input type="hidden" name="next" value=next/>
                                    <FormError error/>
                                    {if recovery {
                                        view! {
                                            <p class="muted">"Enter one of the recovery codes you saved when you turned on two-factor authentication. Each code works once."</p>
                                            <Field name="code" label="Recovery code" autocomplete="off" error/>
                                        }.into_any()
                                    } else {
                                        view! {
                                            <p class="muted">"Open your authenticator app and enter the 6-digit code it shows for this account."</p>
                                            <Field name="code" label="Code from your authenticator app" autocomplete="one-time-code" inputmode="numeric" error/>
                                        }.into_any()
                                    }}
                                    <Submit label="Sign in" busy="Checking…"/>
                                </ActionForm>
                                <p class="muted">
                                    <a href=switch_href data-testid="switch-method">
                                        {if recovery { "Use your authenticator app instead" } else { "Use a recovery code" }}
                                    </a>
                                </p>
                            }
                            .into_any(),
                            Ok(false) => view! {
                                <p>"This sign-in has expired or was already completed."</p>
                                <p><a class="button" href=restart_href>"Sign in again"</a></p>
                            }
                            .into_any(),
                            Err(err) => page_error(err),
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

/// The profile's "Two-factor authentication" section: whether it is on,
/// how many recovery codes are left, and the forms to set it up, get new
/// recovery codes or turn it off (each asks for a confirmation when the
/// session needs one).
#[component]
pub fn TwoFactorSection() -> impl IntoView {
    let status = Resource::new(|| (), |_| my_two_factor());
    let start = ServerAction::<StartTwoFactor>::new();
    let disable = ServerAction::<DisableTwoFactor>::new();
    let regenerate = ServerAction::<RegenerateRecoveryCodes>::new();
    let (start_error, disable_error, regenerate_error) = (
        action_error(start),
        action_error(disable),
        action_error(regenerate),
    );
    view! {
        <section class="card" aria-labelledby="two-factor-heading" data-testid="two-factor">
            <h2 id="two-factor-heading">"Two-factor authentication"</h2>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(status) if status.enabled => {
                            let left = status.recovery_codes_left;
                            let needed = status.confirmation_needed;
                            view! {
                                <p><span class="status active" data-testid="two-factor-status">"On"</span>
                                    " Signing in asks for a code from your authenticator app."</p>
                                <p data-testid="recovery-codes-left">
                                    {match left {
                                        0 => "No recovery codes left: make new ones now.".to_owned(),
                                        1 => "1 recovery code left.".to_owned(),
                                        n => format!("{n} recovery codes left."),
                                    }}
                                </p>
                                <ActionForm action=regenerate>
                                    <FormError error=regenerate_error/>
                                    <p class="muted">"New recovery codes replace all the old ones."</p>
                                    <ConfirmField needed error=regenerate_error id_prefix="rc-"/>
                                    <Submit label="Make new recovery codes" busy="Making…" class="secondary"/>
                                </ActionForm>
                                <ActionForm action=disable>
                                    <FormError error=disable_error/>
                                    <ConfirmField needed error=disable_error id_prefix="off-"/>
                                    <Submit label="Turn off two-factor authentication" busy="Turning off…" class="danger"/>
                                </ActionForm>
                            }
                            .into_any()
                        }
                        Ok(status) => {
                            let needed = status.confirmation_needed;
                            view! {
                                <p><span class="status inactive" data-testid="two-factor-status">"Off"</span>
                                    " Protect your account with a code from an authenticator app (such as Aegis, Google Authenticator or 1Password) at every sign-in."</p>
                                {status.pending.then(|| view! {
                                    <p><a href="/profile/two-factor" data-testid="continue-setup">"Continue the setup you started"</a></p>
                                })}
                                <ActionForm action=start>
                                    <FormError error=start_error/>
                                    <ConfirmField needed error=start_error id_prefix="on-"/>
                                    <Submit label="Set up two-factor authentication" busy="Starting…"/>
                                </ActionForm>
                            }
                            .into_any()
                        }
                        Err(err) => view! { <p class="form-error" role="alert">{err.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// The secret in groups of four, as authenticator apps accept it typed.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `/profile/two-factor`: the setup of an authenticator app (a QR code and
/// the key to type), confirmed with a first code. Without a setup in
/// progress, a button that starts one (where `REQUIRE_2FA_FOR_ADMINS`
/// sends an admin who has none).
#[component]
pub fn TwoFactorSetupPage() -> impl IntoView {
    let setup = Resource::new(|| (), |_| two_factor_setup());
    let status = Resource::new(|| (), |_| my_two_factor());
    let confirm = ServerAction::<ConfirmTwoFactor>::new();
    let start = ServerAction::<StartTwoFactor>::new();
    let (confirm_error, start_error) = (action_error(confirm), action_error(start));
    view! {
        <PageMeta title="Set up two-factor authentication" description="Connect an authenticator app to your leptos-auth account."/>
        <section class="card">
            <h1>"Set up two-factor authentication"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match (setup.await, status.await) {
                        (Ok(Some(setup)), Ok(status)) => view! {
                            <ol class="steps">
                                <li>"Open an authenticator app on your phone and add an account by scanning this QR code."</li>
                            </ol>
                            <div class="qr" data-testid="totp-qr" inner_html=setup.qr_svg></div>
                            <p class="muted">"Cannot scan it? Type this key into the app instead (time-based, 6 digits):"</p>
                            <p><code class="secret" data-testid="totp-secret">{grouped(&setup.secret)}</code></p>
                            <ol class="steps" start="2">
                                <li>"Enter the 6-digit code the app shows, to check that it works."</li>
                            </ol>
                            <ActionForm action=confirm>
                                <FormError error=confirm_error/>
                                <Field name="code" label="Code from the app" autocomplete="one-time-code" inputmode="numeric" error=confirm_error/>
                                <ConfirmField needed=status.confirmation_needed error=confirm_error/>
                                <Submit label="Turn on two-factor authentication" busy="Checking…"/>
                            </ActionForm>
                        }
                        .into_any(),
                        (Ok(None), Ok(status)) if status.enabled => view! {
                            <p>"Two-factor authentication is on for your account."</p>
                            <p><a href="/profile">"Back to your profile"</a></p>
                        }
                        .into_any(),
                        (Ok(None), Ok(status)) => view! {
                            <p>"Signing in will ask for a code from an authenticator app on your phone, as well as your password."</p>
                            <ActionForm action=start>
                                <FormError error=start_error/>
                                <ConfirmField needed=status.confirmation_needed error=start_error/>
                                <Submit label="Start the setup" busy="Starting…"/>
                            </ActionForm>
                        }
                        .into_any(),
                        (Err(err), _) | (_, Err(err)) => page_error(err),
                    }
                })}
            </Suspense>
        </section>
    }
}

/// `/profile/recovery-codes`: the recovery codes just issued, shown once.
#[component]
pub fn RecoveryCodesPage() -> impl IntoView {
    let codes = Resource::new(|| (), |_| take_recovery_codes());
    view! {
        <PageMeta title="Your recovery codes" description="Recovery codes for signing in to leptos-auth without your authenticator app."/>
        <section class="card">
            <h1>"Your recovery codes"</h1>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match codes.await {
                        Ok(Some(codes)) => view! {
                            <p class="notice" role="status">"Two-factor authentication is on. Save these codes somewhere safe now: they are shown only once."</p>
                            <p>"If you lose your phone, each code signs you in once in place of a code from the app."</p>
                            <ol class="recovery-codes" data-testid="recovery-codes">
                                {codes.into_iter().map(|code| view! { <li><code>{code}</code></li> }).collect_view()}
                            </ol>
                            <p><a class="button" href="/profile">"I have saved them"</a></p>
                        }
                        .into_any(),
                        Ok(None) => view! {
                            <p>"These recovery codes were already shown. If you did not save them, make new ones on your profile (the old ones then stop working)."</p>
                            <p><a href="/profile">"Back to your profile"</a></p>
                        }
                        .into_any(),
                        Err(err) => page_error(err),
                    }
                })}
            </Suspense>
        </section>
    }
}

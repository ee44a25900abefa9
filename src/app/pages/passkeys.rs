//! The profile's "Passkeys" section. Listing, renaming and removing are
//! plain forms (they work without JavaScript); adding one is a WebAuthn
//! ceremony in the browser, run by `/passkeys.js` (a small script beside
//! the wasm: it calls `navigator.credentials` and the passkey server
//! functions). Without JavaScript, or in a browser without passkeys, the
//! section says so and the password (and two-factor code) keep working.

use crate::app::{
    components::{action_error, ConfirmField, Field, FormError, Submit},
    server::{my_passkeys, RemovePasskey, RenamePasskey},
};
use crate::domain::{time_ago, PasskeyView};
use leptos::{form::ActionForm, prelude::*};

/// The script that runs the passkey ceremonies on the pages that offer them.
#[component]
pub fn PasskeyScript() -> impl IntoView {
    view! { <script type="module" src="/passkeys.js"></script> }
}

/// What a page says where passkeys need JavaScript (hidden by the script
/// when it runs in a browser that supports them).
#[component]
pub fn PasskeysNeedJavaScript(#[prop(into)] text: String) -> impl IntoView {
    view! { <p class="muted" data-passkey-fallback>{text}</p> }
}

/// The profile's "Passkeys" section.
#[component]
pub fn PasskeysSection() -> impl IntoView {
    let data = Resource::new(|| (), |_| my_passkeys());
    view! {
        <section class="card" id="passkeys" aria-labelledby="passkeys-heading" data-testid="passkeys">
            <h2 id="passkeys-heading">"Passkeys"</h2>
            <p class="muted">"A passkey signs you in with your fingerprint, face, screen lock or security key instead of your password. It works only on this site, so it cannot be phished."</p>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Ok(view) => match view.unavailable {
                            Some(why) => view! {
                                <p data-testid="passkeys-unavailable">"Passkeys are not available on this server: " {why}</p>
                            }
                            .into_any(),
                            None => {
                                let needed = view.confirmation_needed;
                                view! {
                                    <PasskeyList passkeys=view.passkeys needed/>
                                    <AddPasskeyForm needed/>
                                }
                                .into_any()
                            }
                        },
                        Err(err) => view! { <p class="form-error" role="alert">{err.to_string()}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
        <PasskeyScript/>
    }
}

#[component]
fn PasskeyList(passkeys: Vec<PasskeyView>, needed: bool) -> impl IntoView {
    if passkeys.is_empty() {
        return view! { <p data-testid="no-passkeys">"You have no passkeys yet."</p> }.into_any();
    }
    let now = chrono::Utc::now();
    view! {
        <ul class="passkeys" data-testid="passkey-list">
            {passkeys.into_iter().map(|passkey| view! { <PasskeyItem passkey now needed/> }).collect_view()}
        </ul>
    }
    .into_any()
}

#[component]
fn PasskeyItem(
    passkey: PasskeyView,
    now: chrono::DateTime<chrono::Utc>,
    needed: bool,
) -> impl IntoView {
    let rename = ServerAction::<RenamePasskey>::new();
    let remove = ServerAction::<RemovePasskey>::new();
    let (rename_error, remove_error) = (action_error(rename), action_error(remove));
    let (rename_id, remove_id) = (passkey.id.to_string(), passkey.id.to_string());
    let (rename_prefix, remove_prefix) =
        (format!("pk{}-", passkey.id), format!("pk{}-", passkey.id));
    let used = match passkey.last_used_at {
        Some(at) => format!("last used {}", time_ago(at, now)),
        None => "never used yet".to_owned(),
    };
    view! {
        <li class="passkey" data-testid="passkey">
            <p>
                <strong data-testid="passkey-name">{passkey.name.clone()}</strong>
                <span class="muted">" · " {passkey.kind.label()} " · added " {passkey.created_at.format("%B %-d, %Y").to_string()} " · " {used}</span>
            </p>
            <details>
                <summary>"Rename or remove"</summary>
                <ActionForm action=rename>
                    <input type="hidden" name="id" value=rename_id.clone()/>
                    <FormError error=rename_error/>
                    <Field name="name" id_prefix=rename_prefix.clone() label="New name" autocomplete="off" error=rename_error/>
                    <Submit label="Rename" busy="Saving…" class="secondary"/>
                </ActionForm>
                <ActionForm action=remove>
                    <input type="hidden" name="id" value=remove_id.clone()/>
                    <FormError error=remove_error/>
                    <ConfirmField needed error=remove_error id_prefix=remove_prefix.clone()/>
                    <Submit label="Remove this passkey" busy="Removing…" class="danger"/>
                </ActionForm>
            </details>
        </li>
    }
}

/// The form `/passkeys.js` runs: a name and, when the session needs it, the
/// step-up confirmation; hidden until the script finds passkey support.
#[component]
fn AddPasskeyForm(needed: bool) -> impl IntoView {
    let no_error = Signal::stored(None);
    view! {
        <form data-passkey="register" hidden>
            <p class="form-error" role="alert" data-passkey-error hidden></p>
            <Field name="name" id_prefix="new-passkey-" label="Name of the new passkey (e.g. Laptop)" autocomplete="off" error=no_error/>
            <ConfirmField needed error=no_error id_prefix="new-passkey-"/>
            <button type="submit" class="button" data-testid="add-passkey">"Add a passkey"</button>
        </form>
        <PasskeysNeedJavaScript text="Adding a passkey needs JavaScript and a browser that supports passkeys. Your password and two-factor code keep working without them."/>
    }
}

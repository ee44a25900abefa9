use crate::app::{
    components::{action_error, page_error, refresh_after, Field, FormError, Submit},
    server::{my_account, ChangeEmail, ChangePassword, DeleteAccount},
    DataVersion,
};
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::Title;
use leptos_router::hooks::use_location;

/// `/profile`: the account, and changing email, password, or deleting it.
#[component]
pub fn ProfilePage() -> impl IntoView {
    let location = use_location();
    let version = expect_context::<DataVersion>().0;
    let account = Resource::new(
        move || (location.search.get(), version.get()),
        |_| my_account(),
    );
    view! {
        <Title text="Your profile"/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match account.await {
                    Ok(me) => view! {
                        <section class="card">
                            <h1>"Your profile"</h1>
                            <dl class="details">
                                <dt>"Email"</dt><dd data-testid="profile-email">{me.email.clone()}</dd>
                                <dt>"Role"</dt><dd>{me.role.to_string()}</dd>
                                <dt>"Member since"</dt><dd>{me.created_at.format("%B %-d, %Y").to_string()}</dd>
                            </dl>
                        </section>
                        <ChangeEmailForm/>
                        <ChangePasswordForm/>
                        <DeleteAccountForm/>
                    }
                    .into_any(),
                    Err(err) => page_error(err),
                }
            })}
        </Suspense>
    }
}

#[component]
fn ChangeEmailForm() -> impl IntoView {
    let action = ServerAction::<ChangeEmail>::new();
    refresh_after(action);
    let error = action_error(action);
    view! {
        <section class="card">
            <h2>"Change email"</h2>
            <ActionForm action=action>
                <FormError error/>
                <Field name="email" id_prefix="ce-" label="New email" kind="email" autocomplete="email" error/>
                <Field name="current_password" id_prefix="ce-" label="Current password" kind="password" autocomplete="current-password" error/>
                <Submit pending=action.pending().into() label="Change email" busy="Saving…"/>
            </ActionForm>
        </section>
    }
}

#[component]
fn ChangePasswordForm() -> impl IntoView {
    let action = ServerAction::<ChangePassword>::new();
    refresh_after(action);
    let error = action_error(action);
    view! {
        <section class="card">
            <h2>"Change password"</h2>
            <p class="muted">"Changing your password signs you out on every other device."</p>
            <ActionForm action=action>
                <FormError error/>
                <Field name="current_password" id_prefix="cp-" label="Current password" kind="password" autocomplete="current-password" error/>
                <Field name="password" id_prefix="cp-" label="New password" kind="password" autocomplete="new-password" error/>
                <Field name="confirm" id_prefix="cp-" label="Confirm new password" kind="password" autocomplete="new-password" error/>
                <Submit pending=action.pending().into() label="Change password" busy="Saving…"/>
            </ActionForm>
        </section>
    }
}

#[component]
fn DeleteAccountForm() -> impl IntoView {
    let action = ServerAction::<DeleteAccount>::new();
    refresh_after(action);
    let error = action_error(action);
    let confirm_error = move || error.get().and_then(|e| e.for_field("confirm"));
    view! {
        <section class="card danger">
            <h2>"Delete account"</h2>
            <p class="muted">"This removes your account and signs you out everywhere. It cannot be undone."</p>
            <ActionForm action=action>
                <FormError error/>
                <Field name="current_password" id_prefix="da-" label="Current password" kind="password" autocomplete="current-password" error/>
                <div class="field checkbox">
                    <input id="da-confirm" type="checkbox" name="confirm" value="yes" aria-describedby="da-confirm-error"/>
                    <label for="da-confirm">"I understand that my account will be deleted for good"</label>
                    <p class="field-error" id="da-confirm-error" role="alert">{confirm_error}</p>
                </div>
                <Submit pending=action.pending().into() label="Delete my account" busy="Deleting…" class="danger"/>
            </ActionForm>
        </section>
    }
}

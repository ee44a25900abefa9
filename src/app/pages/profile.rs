use crate::app::components::PageMeta;
use crate::{
    app::{
        components::{action_error, page_error, Field, FormError, Submit},
        server::{
            my_account, my_audit_events, my_sessions, ChangeEmail, ChangePassword, DeleteAccount,
            EndOtherSessions, EndSession, ResendMyVerification,
        },
    },
    domain::{device_name, time_ago, AuditEventView, SessionView},
};
use leptos::{form::ActionForm, prelude::*};

/// `/profile`: the account, and changing email, password, or deleting it.
#[component]
pub fn ProfilePage() -> impl IntoView {
    let account = Resource::new(|| (), |_| my_account());
    view! {
        <PageMeta title="Your profile" description="Your leptos-auth account: email, two-factor authentication, devices, recent security activity, password and account deletion."/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match account.await {
                    Ok(me) => view! {
                        <section class="card">
                            <h1>"Your profile"</h1>
                            <dl class="details">
                                <dt>"Email"</dt><dd data-testid="profile-email">{me.email.clone()}</dd>
                                <dt>"Confirmed"</dt><dd data-testid="profile-email-verified"><EmailVerification verified=me.email_verified/></dd>
                                <dt>"Role"</dt><dd>{me.role.to_string()}</dd>
                                <dt>"Member since"</dt><dd>{me.created_at.format("%B %-d, %Y").to_string()}</dd>
                            </dl>
                        </section>
                        <crate::app::pages::two_factor::TwoFactorSection/>
                        <crate::app::pages::passkeys::PasskeysSection/>
                        <Devices/>
                        <RecentActivity/>
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

/// Whether the address is confirmed; if not, a button for a new link.
#[component]
fn EmailVerification(verified: bool) -> impl IntoView {
    let action = ServerAction::<ResendMyVerification>::new();
    let error = action_error(action);
    if verified {
        return view! { <span class="status active">"Yes"</span> }.into_any();
    }
    view! {
        <span class="status pending">"Not yet"</span>
        " "
        <ActionForm action=action attr:class="inline-form">
            <button type="submit" class="link-button">
                "Send me a new confirmation link"
            </button>
        </ActionForm>
        <FormError error/>
    }
    .into_any()
}

#[component]
fn ChangeEmailForm() -> impl IntoView {
    let action = ServerAction::<ChangeEmail>::new();
    let error = action_error(action);
    view! {
        <section class="card">
            <h2>"Change email"</h2>
            <ActionForm action=action>
                <FormError error/>
                <Field name="email" id_prefix="ce-" label="New email" kind="email" autocomplete="email" error/>
                <Field name="current_password" id_prefix="ce-" label="Current password" kind="password" autocomplete="current-password" error/>
                <Submit label="Change email" busy="Saving…"/>
            </ActionForm>
        </section>
    }
}

#[component]
fn ChangePasswordForm() -> impl IntoView {
    let action = ServerAction::<ChangePassword>::new();
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
                <Submit label="Change password" busy="Saving…"/>
            </ActionForm>
        </section>
    }
}

#[component]
fn DeleteAccountForm() -> impl IntoView {
    let action = ServerAction::<DeleteAccount>::new();
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
                <Submit label="Delete my account" busy="Deleting…" class="danger"/>
            </ActionForm>
        </section>
    }
}

/// The user's devices (live sessions), with a sign-out button for each other one.
#[component]
fn Devices() -> impl IntoView {
    // Reference-counted: a load still pending when the page re-renders this
    // section must not touch a disposed resource.
    let sessions = ArcResource::new(|| (), |_| my_sessions());
    let end_one = ServerAction::<EndSession>::new();
    let end_others = ServerAction::<EndOtherSessions>::new();
    let error = Signal::derive(move || {
        action_error(end_one)
            .get()
            .or_else(|| action_error(end_others).get())
    });
    view! {
        <section class="card" aria-labelledby="devices-heading">
            <h2 id="devices-heading">"Devices"</h2>
            <p class="muted">"Where you are signed in. Sign out any device you do not recognise."</p>
            <FormError error/>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let sessions = sessions.clone();
                    Suspend::new(async move {
                    match sessions.await {
                        Ok(list) => {
                            let others = list.iter().filter(|s| !s.current).count();
                            let now = chrono::Utc::now();
                            view! {
                                <ul class="devices" data-testid="devices">
                                    {list.into_iter().map(|s| view! { <DeviceRow session=s now end_one/> }).collect_view()}
                                </ul>
                                <Show when=move || { others > 0 }>
                                    <ActionForm action=end_others>
                                        <Submit label="Sign out everywhere else" busy="Signing out…" class="secondary"/>
                                    </ActionForm>
                                </Show>
                            }
                            .into_any()
                        }
                        Err(err) => page_error(err),
                    }
                })}}
            </Suspense>
        </section>
    }
}

#[component]
fn DeviceRow(
    session: SessionView,
    now: chrono::DateTime<chrono::Utc>,
    end_one: ServerAction<EndSession>,
) -> impl IntoView {
    let name = device_name(session.user_agent.as_deref());
    let button_label = format!("Sign out {name}");
    let details = format!(
        "{} · last active {}",
        session
            .ip
            .clone()
            .unwrap_or_else(|| "unknown address".to_owned()),
        time_ago(session.last_used_at, now)
    );
    let current = session.current;
    let id = session.id;
    view! {
        <li class="device" data-testid="device">
            <div>
                <strong>{name}</strong>
                {current.then(|| view! { <span class="badge">"This device"</span> })}
                <p class="muted">{details}</p>
            </div>
            {(!current).then(|| view! {
                <ActionForm action=end_one>
                    <input type="hidden" name="id" value=id/>
                    <button type="submit" class="button secondary small" aria-label=button_label>"Sign out"</button>
                </ActionForm>
            })}
        </li>
    }
}

/// The latest security events of the user's account (sign-ins, failed
/// attempts, changes), so they can spot what they did not do.
#[component]
fn RecentActivity() -> impl IntoView {
    // Reference-counted, like the devices' list.
    let events = ArcResource::new(|| (), |_| my_audit_events());
    view! {
        <section class="card" aria-labelledby="activity-heading">
            <h2 id="activity-heading">"Recent security activity"</h2>
            <p class="muted">
                "Sign-ins, failed attempts and changes to your account. "
                "If you see something you did not do, change your password and sign out your other devices."
            </p>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let events = events.clone();
                    Suspend::new(async move {
                    match events.await {
                        Ok(page) if page.events.is_empty() => view! {
                            <p class="muted" data-testid="activity">"Nothing yet."</p>
                        }
                        .into_any(),
                        Ok(page) => {
                            let now = chrono::Utc::now();
                            let more = page.total - page.events.len() as i64;
                            view! {
                                <ul class="activity" data-testid="activity">
                                    {page.events.into_iter().map(|event| view! { <ActivityRow event now/> }).collect_view()}
                                </ul>
                                {(more > 0).then(|| view! {
                                    <p class="muted">{format!("Showing the latest {} of {} events.", page.limit, page.total)}</p>
                                })}
                            }
                            .into_any()
                        }
                        Err(err) => page_error(err),
                    }
                })}}
            </Suspense>
        </section>
    }
}

#[component]
fn ActivityRow(event: AuditEventView, now: chrono::DateTime<chrono::Utc>) -> impl IntoView {
    // An administrator's device is not shown to the user (nor sent: the
    // summary says "by an administrator").
    let origin = if event.by_administrator {
        String::new()
    } else {
        let device = device_name(event.user_agent.as_deref());
        let address = event
            .ip
            .clone()
            .unwrap_or_else(|| "unknown address".to_owned());
        format!(" · {device} · {address}")
    };
    view! {
        <li class="activity-item" data-testid="activity-item" data-event-type=event.event_type.as_str()>
            <strong>{event.summary()}</strong>
            <p class="muted">
                <time datetime=event.at.to_rfc3339() title=event.at.format("%Y-%m-%d %H:%M:%S UTC").to_string()>
                    {time_ago(event.at, now)}
                </time>
                {origin}
            </p>
        </li>
    }
}

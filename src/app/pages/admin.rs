use crate::app::components::PageMeta;
use crate::{
    app::{
        components::{
            action_error, page_error, ConfirmField, Field, FormError, PageSizeSelect, Pager, Submit,
        },
        server::{
            confirmation_needed, get_user, list_users, user_sessions, CreateUser, DeleteUser,
            ResendUserVerification, ResetUserTwoFactor, SetUserActive, SetUserPassword,
            SignOutUser, UpdateUser, DEFAULT_PAGE_SIZE,
        },
    },
    domain::{device_name, time_ago, Role, UserView},
};
use leptos::{form::ActionForm, prelude::*};
use leptos_router::{
    components::Form,
    hooks::{use_params_map, use_query_map},
};

/// `/admin/users`: the user table with search, filters and paging, and a
/// form to create users.
#[component]
pub fn UsersPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |name: &str| query.read().get(name).filter(|v| !v.is_empty());
    let page = Resource::new(
        move || {
            (
                param("q"),
                param("role"),
                param("status"),
                param("page").and_then(|p| p.parse::<i64>().ok()),
                param("per_page").and_then(|p| p.parse::<i64>().ok()),
            )
        },
        |(q, role, status, page, per_page)| list_users(q, role, status, page, per_page),
    );
    view! {
        <PageMeta title="Users" description="Manage the users of this leptos-auth server: search, filter, create and edit accounts."/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(result) => view! {
                        <section class="card">
                            <AdminNav current="users"/>
                            <h1>"Users"</h1>
                            <Filters/>
                            <UserTable page=result.clone()/>
                            <Pager path="/admin/users" keep=&["q", "role", "status", "per_page"] total=result.total offset=result.offset limit=result.limit/>
                        </section>
                        <CreateUserForm/>
                    }
                    .into_any(),
                    Err(err) => page_error(err),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Filters() -> impl IntoView {
    let query = use_query_map();
    let get = move |name: &str| query.read_untracked().get(name).unwrap_or_default();
    let q = get("q");
    let role = get("role");
    let status = get("status");
    let per_page = get("per_page").parse::<i64>().unwrap_or(DEFAULT_PAGE_SIZE);
    view! {
        <Form method="GET" action="/admin/users" attr:class="filters" attr:role="search">
            <div class="field">
                <label for="q">"Search by email"</label>
                <input id="q" name="q" type="search" value=q placeholder="name@example.com"/>
            </div>
            <FilterSelect name="role" label="Role" selected=role options=&[("admin", "Admin"), ("regular", "Regular")]/>
            <FilterSelect name="status" label="Status" selected=status options=&[("active", "Active"), ("inactive", "Inactive")]/>
            <PageSizeSelect selected=per_page/>
            <button type="submit" class="button">"Search"</button>
        </Form>
    }
}

/// A filter with an "Any" choice (empty value) and the given options.
#[component]
pub fn FilterSelect(
    name: &'static str,
    label: &'static str,
    selected: String,
    #[prop(into)] options: Vec<(&'static str, &'static str)>,
    /// What is wrong with the value given, if anything.
    #[prop(default = None)]
    error: Option<String>,
) -> impl IntoView {
    let error_id = format!("{name}-error");
    let invalid = if error.is_some() { "true" } else { "false" };
    view! {
        <div class="field">
            <label for=name>{label}</label>
            <select id=name name=name aria-invalid=invalid aria-describedby=error_id.clone()>
                <option value="" selected=selected.is_empty()>"Any"</option>
                {options
                    .into_iter()
                    .map(|(value, text)| view! { <option value=value selected=selected == value>{text}</option> })
                    .collect_view()}
            </select>
            <p class="field-error" id=error_id role="alert">{error}</p>
        </div>
    }
}

/// Links between the admin pages; `current` is "users" or "audit".
#[component]
pub fn AdminNav(current: &'static str) -> impl IntoView {
    let here = move |page: &str| (current == page).then_some("page");
    view! {
        <nav class="subnav" aria-label="Administration">
            <a href="/admin/users" aria-current=here("users")>"Users"</a>
            <a href="/admin/audit" aria-current=here("audit")>"Audit log"</a>
        </nav>
    }
}

#[component]
fn UserTable(page: crate::domain::UserPage) -> impl IntoView {
    let count = page.total;
    view! {
        <p class="muted" data-testid="user-count">{format!("{count} user{} found", if count == 1 { "" } else { "s" })}</p>
        <div class="table-wrap">
            <table>
                <thead>
                    <tr><th scope="col">"Email"</th><th scope="col">"Role"</th><th scope="col">"Status"</th><th scope="col">"Two-factor"</th><th scope="col">"Created"</th></tr>
                </thead>
                <tbody>
                    {page.users.into_iter().map(|u| view! {
                        <tr>
                            <td><a href=format!("/admin/users/{}", u.id)>{u.email.clone()}</a></td>
                            <td>{u.role.to_string()}</td>
                            <td>{status_badge(u.is_active)}</td>
                            <td>{if u.mfa_enabled { "On" } else { "Off" }}</td>
                            <td>{u.created_at.format("%Y-%m-%d").to_string()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

fn status_badge(active: bool) -> impl IntoView {
    if active {
        view! { <span class="status active">"Active"</span> }
    } else {
        view! { <span class="status inactive">"Inactive"</span> }
    }
}

#[component]
fn CreateUserForm() -> impl IntoView {
    let action = ServerAction::<CreateUser>::new();
    let error = action_error(action);
    view! {
        <section class="card">
            <h2>"Create a user"</h2>
            <ActionForm action=action>
                <FormError error/>
                <Field name="email" id_prefix="new-" label="Email" kind="email" autocomplete="off" error/>
                <Field name="password" id_prefix="new-" label="Password" kind="password" autocomplete="new-password" error/>
                <RoleSelect id="new-role" selected=Role::Regular/>
                <Submit label="Create user" busy="Creating…"/>
            </ActionForm>
        </section>
    }
}

#[component]
fn RoleSelect(id: &'static str, selected: Role) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>"Role"</label>
            <select id=id name="role">
                <option value="regular" selected=selected == Role::Regular>"Regular"</option>
                <option value="admin" selected=selected == Role::Admin>"Admin"</option>
            </select>
        </div>
    }
}

/// `/admin/users/:id`: details, edit, activation, new password, deletion.
#[component]
pub fn UserPage() -> impl IntoView {
    let params = use_params_map();
    let user = Resource::new(
        move || params.read().get("id"),
        |id| async move {
            match id
                .and_then(|id| id.parse::<i64>().ok())
                .filter(|id| *id > 0)
            {
                Some(id) => get_user(id).await,
                None => Err(crate::app::error::AppError::NotFound(
                    "There is no user with this id".to_owned(),
                )),
            }
        },
    );
    let confirmation = Resource::new(|| (), |_| confirmation_needed());
    view! {
        <PageMeta title="User" description="One user of this leptos-auth server: details, sessions, role, activation, password and deletion."/>
        <p><a href="/admin/users">"← All users"</a></p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match (user.await, confirmation.await) {
                    (Ok(user), Ok(needed)) => view! { <UserDetails user needed/> }.into_any(),
                    (Err(err), _) | (_, Err(err)) => page_error(err),
                }
            })}
        </Suspense>
    }
}

/// `needed`: the admin's session must confirm before a change (the forms
/// then ask for the password or a code).
#[component]
fn UserDetails(user: UserView, needed: bool) -> impl IntoView {
    let id = user.id;
    let heading = user.email.clone();
    let current_email = user.email.clone();
    let delete_label = format!("Delete {} and all their sessions for good", user.email);
    let edit = ServerAction::<UpdateUser>::new();
    let activation = ServerAction::<SetUserActive>::new();
    let password = ServerAction::<SetUserPassword>::new();
    let delete = ServerAction::<DeleteUser>::new();
    let reset = ServerAction::<ResetUserTwoFactor>::new();
    let reset_error = action_error(reset);
    let mfa_enabled = user.mfa_enabled;
    let resend = ServerAction::<ResendUserVerification>::new();
    let resend_error = action_error(resend);
    let verified = user.email_verified;
    let (edit_error, activation_error, password_error, delete_error) = (
        action_error(edit),
        action_error(activation),
        action_error(password),
        action_error(delete),
    );
    let delete_confirm_error = move || delete_error.get().and_then(|e| e.for_field("confirm"));
    let active = user.is_active;
    view! {
        <section class="card">
            <h1 data-testid="user-email">{heading}</h1>
            <dl class="details">
                <dt>"Role"</dt><dd>{user.role.to_string()}</dd>
                <dt>"Status"</dt><dd data-testid="user-status">{status_badge(user.is_active)}</dd>
                <dt>"Email verified"</dt>
                <dd data-testid="user-email-verified">
                    {if verified { "Yes" } else { "Not yet" }}
                    <Show when=move || !verified>
                        <ActionForm action=resend attr:class="inline-form">
                            <input type="hidden" name="id" value=id/>
                            " "
                            <button type="submit" class="link-button">
                                "Resend the verification email"
                            </button>
                        </ActionForm>
                        <FormError error=resend_error/>
                    </Show>
                </dd>
                <dt>"Two-factor"</dt><dd data-testid="user-two-factor">{if mfa_enabled { "On" } else { "Off" }}</dd>
                <dt>"Created"</dt><dd>{user.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}</dd>
                <dt>"Updated"</dt><dd>{user.updated_at.format("%Y-%m-%d %H:%M UTC").to_string()}</dd>
            </dl>
            <p>
                <a href=format!("/admin/audit?user_id={id}") data-testid="user-activity-link">"Security activity"</a>
                " · sign-ins, sign-outs and changes done by or to this user"
            </p>
            <p class="muted">
                "The app always keeps at least one active admin: the last one cannot be demoted, deactivated or deleted. "
                "Make another user an admin first."
            </p>
        </section>
        <UserSessions id/>
        <section class="card">
            <h2>"Edit"</h2>
            <ActionForm action=edit>
                <input type="hidden" name="id" value=id/>
                <FormError error=edit_error/>
                <Field name="email" id_prefix="edit-" label="Email" kind="email" autocomplete="off" value=current_email error=edit_error/>
                <RoleSelect id="edit-role" selected=user.role/>
                <ConfirmField needed error=edit_error id_prefix="edit-"/>
                <Submit label="Save changes" busy="Saving…"/>
            </ActionForm>
        </section>
        <section class="card">
            <h2>{if active { "Deactivate" } else { "Activate" }}</h2>
            <p class="muted">{if active { "A deactivated user cannot sign in, and is signed out everywhere at once." } else { "An activated user can sign in again." }}</p>
            <ActionForm action=activation>
                <input type="hidden" name="id" value=id/>
                <input type="hidden" name="active" value=(!active).to_string()/>
                <FormError error=activation_error/>
                <ConfirmField needed error=activation_error id_prefix="act-"/>
                <Submit label=if active { "Deactivate user" } else { "Activate user" } busy="Saving…" class=if active { "danger" } else { "" }/>
            </ActionForm>
        </section>
        <Show when=move || mfa_enabled>
            <section class="card">
                <h2>"Two-factor authentication"</h2>
                <p class="muted">"For a user who lost their authenticator app and their recovery codes: turns two-factor authentication off, and tells them by email. They can set it up again from their profile."</p>
                <ActionForm action=reset>
                    <input type="hidden" name="id" value=id/>
                    <FormError error=reset_error/>
                    <ConfirmField needed error=reset_error id_prefix="mfa-"/>
                    <Submit label="Reset two-factor authentication" busy="Resetting…" class="danger"/>
                </ActionForm>
            </section>
        </Show>
        <section class="card">
            <h2>"Set a new password"</h2>
            <p class="muted">"The user is signed out everywhere and must sign in with the new password."</p>
            <ActionForm action=password>
                <input type="hidden" name="id" value=id/>
                <FormError error=password_error/>
                <Field name="password" id_prefix="pw-" label="New password" kind="password" autocomplete="new-password" error=password_error/>
                <Field name="confirm" id_prefix="pw-" label="Confirm new password" kind="password" autocomplete="new-password" error=password_error/>
                <ConfirmField needed error=password_error id_prefix="pw-"/>
                <Submit label="Set password" busy="Saving…"/>
            </ActionForm>
        </section>
        <section class="card danger">
            <h2>"Delete user"</h2>
            <ActionForm action=delete>
                <input type="hidden" name="id" value=id/>
                <FormError error=delete_error/>
                <div class="field checkbox">
                    <input id="del-confirm" type="checkbox" name="confirm" value="yes" aria-describedby="del-confirm-error"/>
                    <label for="del-confirm">{delete_label}</label>
                    <p class="field-error" id="del-confirm-error" role="alert">{delete_confirm_error}</p>
                </div>
                <ConfirmField needed error=delete_error id_prefix="del-"/>
                <Submit label="Delete user" busy="Deleting…" class="danger"/>
            </ActionForm>
        </section>
    }
}

/// The user's live sessions and a button that ends them all.
#[component]
fn UserSessions(id: i64) -> impl IntoView {
    // Reference-counted: a load still pending when the page re-renders this
    // section must not touch a disposed resource.
    let sessions = ArcResource::new(|| (), move |_| user_sessions(id));
    let sign_out = ServerAction::<SignOutUser>::new();
    let error = action_error(sign_out);
    view! {
        <section class="card">
            <h2>"Sessions"</h2>
            <FormError error/>
            <Suspense fallback=|| view! { <p>"Loading…"</p> }>
                {move || {
                    let sessions = sessions.clone();
                    Suspend::new(async move {
                    match sessions.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted" data-testid="user-sessions">"Not signed in anywhere."</p> }.into_any(),
                        Ok(list) => {
                            let now = chrono::Utc::now();
                            view! {
                                <ul class="devices" data-testid="user-sessions">
                                    {list.into_iter().map(|s| view! {
                                        <li class="device">
                                            <div>
                                                <strong>{device_name(s.user_agent.as_deref())}</strong>
                                                <p class="muted">{format!("{} · last active {} · signed in {}",
                                                    s.ip.clone().unwrap_or_else(|| "unknown address".to_owned()),
                                                    time_ago(s.last_used_at, now),
                                                    s.created_at.format("%Y-%m-%d %H:%M UTC"))}</p>
                                            </div>
                                        </li>
                                    }).collect_view()}
                                </ul>
                                <ActionForm action=sign_out>
                                    <input type="hidden" name="id" value=id/>
                                    <Submit label="Sign out everywhere" busy="Signing out…" class="secondary"/>
                                </ActionForm>
                            }
                            .into_any()
                        }
                        Err(err) => view! { <p class="form-error" role="alert">{err.to_string()}</p> }.into_any(),
                    }
                })}}
            </Suspense>
        </section>
    }
}

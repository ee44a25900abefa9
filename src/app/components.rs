//! Small building blocks shared by the pages: form errors, submit buttons,
//! notices, and the handling of page-level errors.

use super::error::AppError;
use crate::domain::encode_query_value;
use leptos::{prelude::*, server_fn::ServerFn};
use leptos_router::{
    components::Redirect,
    hooks::{use_location, use_query_map},
};

/// The error of an action's last run, if it failed.
pub fn action_error<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Signal::derive(move || action.value().get().and_then(|result| result.err()))
}

/// The page's title and its meta description (what search results show).
#[component]
pub fn PageMeta(title: &'static str, description: &'static str) -> impl IntoView {
    view! {
        <leptos_meta::Title text=title/>
        <leptos_meta::Meta name="description" content=description/>
    }
}

/// The message of a failed form (not about one field), announced to screen readers.
#[component]
pub fn FormError(error: Signal<Option<AppError>>) -> impl IntoView {
    view! {
        <Show when=move || error.get().and_then(|e| e.general()).is_some()>
            <p class="form-error" role="alert">{move || error.get().and_then(|e| e.general())}</p>
        </Show>
    }
}

/// A labelled input with its own error message.
#[component]
pub fn Field(
    /// Form field name (also the id, prefixed by `id_prefix`).
    name: &'static str,
    /// Visible label.
    label: &'static str,
    /// Input type.
    #[prop(default = "text")]
    kind: &'static str,
    /// `autocomplete` attribute.
    #[prop(default = "off")]
    autocomplete: &'static str,
    /// Prefix for the element id, to keep ids unique on pages with several forms.
    #[prop(default = String::new(), into)]
    id_prefix: String,
    /// Initial value.
    #[prop(optional, into)]
    value: Option<String>,
    /// The form's error.
    error: Signal<Option<AppError>>,
    /// Whether the field must be filled.
    #[prop(default = true)]
    required: bool,
    /// Reference to the input element.
    #[prop(optional)]
    node_ref: NodeRef<leptos::html::Input>,
    /// `inputmode` attribute (e.g. `numeric` for a code).
    #[prop(optional)]
    inputmode: Option<&'static str>,
) -> impl IntoView {
    let id = format!("{id_prefix}{name}");
    let error_id = format!("{id}-error");
    let message = move || error.get().and_then(|e| e.for_field(name));
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input
                id=id
                name=name
                type=kind
                autocomplete=autocomplete
                required=required
                value=value
                inputmode=inputmode
                node_ref=node_ref
                aria-invalid=move || if message().is_some() { "true" } else { "false" }
                aria-describedby=error_id.clone()
            />
            <p class="field-error" id=error_id role="alert">{message}</p>
        </div>
    }
}

/// The step-up confirmation of a sensitive form: a field for the password
/// or a two-factor code, shown when the session needs one (`needed`, from
/// the page's data) or when the form came back asking for it.
#[component]
pub fn ConfirmField(
    needed: bool,
    error: Signal<Option<AppError>>,
    /// Prefix for the element id (several forms on one page).
    #[prop(default = String::new(), into)]
    id_prefix: String,
) -> impl IntoView {
    use super::error::CONFIRM_FIELD;
    let asked = move || {
        needed
            || error
                .get()
                .and_then(|e| e.for_field(CONFIRM_FIELD))
                .is_some()
    };
    view! {
        <Show when=asked>
            <p class="muted confirm-note">"For your security, confirm it is you first."</p>
            <Field name=CONFIRM_FIELD id_prefix=id_prefix.clone() label="Your password, or a two-factor code" kind="password" autocomplete="current-password" error/>
        </Show>
    }
}

/// A form's submit button (an island). Without JavaScript a plain button;
/// with it, once a valid form is on its way the label says so (`busy`) and
/// another click does not send the form again.
#[island]
pub fn Submit(
    /// Label at rest.
    #[prop(into)]
    label: String,
    /// Label while the form is being sent.
    #[prop(into)]
    busy: String,
    /// Extra CSS class.
    #[prop(optional, into)]
    class: Option<String>,
) -> impl IntoView {
    let class = format!("button {}", class.unwrap_or_default());
    let pending = RwSignal::new(false);
    // `data-interactive` appears once the island has hydrated (effects run
    // only in the browser), for the browser tests.
    let interactive = RwSignal::new(false);
    Effect::new(move |_| interactive.set(true));
    view! {
        <button type="submit" class=class aria-busy=move || pending.get().to_string()
            data-interactive=move || interactive.get().then_some("true")
            on:click=submit_once(pending)>
            {move || if pending.get() { busy.clone() } else { label.clone() }}
        </button>
    }
}

/// The click handler of a submit button that marks its form as sent
/// (`pending`) when the form is valid (the browser will send it), and
/// swallows clicks while it is. It never disables the button: a button
/// disabled while its click is handled would not submit.
pub fn submit_once(pending: RwSignal<bool>) -> impl Fn(leptos::ev::MouseEvent) + Copy {
    move |ev: leptos::ev::MouseEvent| {
        use leptos::wasm_bindgen::JsCast;
        if pending.get_untracked() {
            ev.prevent_default();
            return;
        }
        let valid = ev
            .target()
            .and_then(|target| target.dyn_into::<leptos::web_sys::HtmlButtonElement>().ok())
            .and_then(|button| button.form())
            .is_some_and(|form| form.check_validity());
        if valid {
            pending.set(true);
        }
    }
}

/// The confirmation message named by `?notice=` after an action.
#[component]
pub fn Notice() -> impl IntoView {
    let query = use_query_map();
    let message = move || {
        query
            .read()
            .get("notice")
            .and_then(|code| notice_text(&code))
    };
    view! {
        <Show when=move || message().is_some()>
            <p class="notice" role="status" data-testid="notice">{message}</p>
        </Show>
    }
}

fn notice_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "welcome" => "Welcome! Your account is ready and you are signed in. We sent you a link to confirm your email address.",
        "verify-to-sign-in" => "Your account is ready. We sent you a link to confirm your email address: open it, then sign in.",
        "verification-sent" => "If the address belongs to an account that still needs confirming, a new link is on its way. It works for 24 hours.",
        "verification-resent" => "A new confirmation link was sent. It works for 24 hours.",
        "reset-sent" => "If an account with this email exists, we sent it a link to choose a new password. The link works for 1 hour.",
        "password-reset" => "Your new password is set and every device was signed out. Sign in with the new password.",
        "signed-out" => "You have been signed out.",
        "email-changed" => "Your email address was changed. We sent a link to the new address: open it to confirm the address.",
        "password-changed" => "Your password was changed. All your other sessions were signed out.",
        "account-deleted" => "Your account was deleted.",
        "created" => "The user was created.",
        "saved" => "The changes were saved.",
        "activated" => "The user was activated.",
        "deactivated" => "The user was deactivated and signed out everywhere.",
        "password-set" => "The new password was set; the user was signed out everywhere.",
        "deleted" => "The user was deleted.",
        "signed-out-everywhere" => "The user was signed out everywhere.",
        "device-signed-out" => "That device was signed out.",
        "others-signed-out" => "All your other devices were signed out.",
        "sign-in-expired" => "That sign-in took too long. Please sign in again.",
        "two-factor-off" => "Two-factor authentication is off. Signing in asks only for your password now.",
        "admins-need-2fa" => "Administrators on this server must use two-factor authentication. Set it up to continue.",
        "two-factor-reset" => "Two-factor authentication was reset for this user; they were told by email.",
        "passkey-added" => "Your passkey was added. You can now sign in with it, without your password.",
        "passkey-renamed" => "The passkey was renamed.",
        "passkey-removed" => "The passkey was removed. It can no longer sign in to your account.",
        _ => return None,
    })
}

/// What a page shows when its data could not be loaded: the sign-in page
/// (with a way back) when signed out, the 403 page when not allowed.
pub fn page_error(error: AppError) -> AnyView {
    match error {
        AppError::Unauthenticated => view! { <RedirectToLogin/> }.into_any(),
        AppError::Forbidden => view! { <super::pages::errors::Forbidden/> }.into_any(),
        AppError::NotFound(message) => view! {
            <section class="card">
                <h1>"Not found"</h1>
                <p>{message}</p>
            </section>
        }
        .into_any(),
        other => view! { <super::pages::errors::ErrorPanel message=other.to_string()/> }.into_any(),
    }
}

/// Sends the visitor to `/login?next=<this page>`.
#[component]
fn RedirectToLogin() -> impl IntoView {
    let location = use_location();
    let path = location.pathname.get_untracked();
    let search = location.search.get_untracked();
    let here = if search.is_empty() {
        path
    } else {
        format!("{path}?{}", search.trim_start_matches('?'))
    };
    view! { <Redirect path=format!("/login?next={}", encode_query_value(&here))/> }
}

/// Previous/next links of a paged list at `path`, keeping the query
/// parameters named in `keep` (the filters and `per_page`) and setting
/// `page` (left out for the first page). `newer_first` words the links for
/// lists ordered newest first ("← Newer" / "Older →").
#[component]
pub fn Pager(
    path: &'static str,
    keep: &'static [&'static str],
    total: i64,
    offset: i64,
    limit: i64,
    #[prop(default = false)] newer_first: bool,
) -> impl IntoView {
    let query = use_query_map();
    let limit = limit.max(1);
    let current = offset / limit + 1;
    let pages = ((total + limit - 1) / limit).max(1);
    let link = move |target: i64| {
        let map = query.read_untracked();
        let mut params: Vec<String> = keep
            .iter()
            .filter_map(|k| {
                map.get(k)
                    .filter(|v| !v.is_empty())
                    .map(|v| format!("{k}={}", encode_query_value(&v)))
            })
            .collect();
        if target > 1 {
            params.push(format!("page={target}"));
        }
        if params.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", params.join("&"))
        }
    };
    let (back, forward) = if newer_first {
        ("← Newer", "Older →")
    } else {
        ("← Previous", "Next →")
    };
    let previous = (current > 1).then(|| link((current - 1).min(pages)));
    let next = (current < pages).then(|| link(current + 1));
    view! {
        <nav class="pager" aria-label="Pages">
            {previous.map(|href| view! { <a href=href rel="prev">{back}</a> })}
            <span>{format!("Page {} of {pages}", current.min(pages))}</span>
            {next.map(|href| view! { <a href=href rel="next">{forward}</a> })}
        </nav>
    }
}

/// The "Per page" choice of a paged list's filter form (`per_page`).
#[component]
pub fn PageSizeSelect(selected: i64) -> impl IntoView {
    view! {
        <div class="field">
            <label for="per_page">"Per page"</label>
            <select id="per_page" name="per_page">
                {super::server::PAGE_SIZES
                    .iter()
                    .map(|n| view! { <option value=n.to_string() selected=*n == selected>{n.to_string()}</option> })
                    .collect_view()}
            </select>
        </div>
    }
}

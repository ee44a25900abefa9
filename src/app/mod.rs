//! The Leptos application, rendered on the server for every page request.
//! Built with islands: a page is server HTML whose forms are plain HTML
//! forms (they work without JavaScript: post, then a redirect), and only the
//! few components marked `#[island]` hydrate in the browser, where they add
//! what needs a script: a live password-strength meter, a sign-in
//! countdown, a submit button that says the form is on its way. Pages act only through
//! the server functions in [`server`], which call the same services as the
//! JSON API.

pub mod components;
/// What server functions read from the request, and their error translation.
#[cfg(feature = "ssr")]
pub mod context;
pub mod error;
/// The HTTP status of every server-function error.
#[cfg(feature = "ssr")]
pub mod fn_errors;
pub mod pages;
pub mod server;

use components::Notice;
use leptos::{form::ActionForm, prelude::*};
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    path, SsrMode,
};
use server::{current_user, Logout};

/// The HTML document around the app (server side only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component: stylesheet, layout and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|text: String| if text.is_empty() { "leptos-auth".to_owned() } else { format!("{text} · leptos-auth") }/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <Header/>
            <main id="main" class="content">
                <Notice/>
                <Routes fallback=pages::errors::NotFound>
                    <Route path=path!("/") view=pages::home::HomePage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=pages::auth::LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/login/two-factor") view=pages::two_factor::LoginSecondStepPage ssr=SsrMode::Async/>
                    <Route path=path!("/register") view=pages::auth::RegisterPage ssr=SsrMode::Async/>
                    <Route path=path!("/forgot-password") view=pages::recovery::ForgotPasswordPage ssr=SsrMode::Async/>
                    <Route path=path!("/reset-password") view=pages::recovery::ResetPasswordPage ssr=SsrMode::Async/>
                    <Route path=path!("/verify-email") view=pages::recovery::VerifyEmailPage ssr=SsrMode::Async/>
                    <Route path=path!("/profile") view=pages::profile::ProfilePage ssr=SsrMode::Async/>
                    <Route path=path!("/profile/two-factor") view=pages::two_factor::TwoFactorSetupPage ssr=SsrMode::Async/>
                    <Route path=path!("/profile/recovery-codes") view=pages::two_factor::RecoveryCodesPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users") view=pages::admin::UsersPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/users/:id") view=pages::admin::UserPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/audit") view=pages::audit::AuditPage ssr=SsrMode::Async/>
                </Routes>
            </main>
            <footer class="site-footer">
                <p>"leptos-auth · user management and authentication in Rust"</p>
            </footer>
        </Router>
    }
}

/// Header with navigation that depends on who is signed in.
#[component]
fn Header() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    let logout = ServerAction::<Logout>::new();
    view! {
        <header class="site-header">
            <a class="brand" href="/">"leptos-auth"</a>
            <nav aria-label="Main">
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match user.await {
                            Ok(Some(me)) => {
                                let is_admin = me.role == crate::domain::Role::Admin;
                                view! {
                                    <span class="nav-user" data-testid="nav-user">{me.email.clone()}</span>
                                    <A href="/profile">"Profile"</A>
                                    <Show when=move || is_admin>
                                        <A href="/admin/users">"Admin"</A>
                                    </Show>
                                    <ActionForm action=logout attr:class="inline-form">
                                        <button type="submit" class="link-button">"Sign out"</button>
                                    </ActionForm>
                                }
                                    .into_any()
                            }
                            _ => view! {
                                <A href="/login">"Sign in"</A>
                                <A href="/register" attr:class="button small">"Create account"</A>
                            }
                                .into_any(),
                        }
                    })}
                </Transition>
            </nav>
        </header>
    }
}

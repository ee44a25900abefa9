use crate::app::components::PageMeta;
use leptos::prelude::*;

fn set_status(_code: u16) {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        if let Ok(status) = http::StatusCode::from_u16(_code) {
            response.set_status(status);
        }
    }
}

/// Shown for unknown routes (status 404).
#[component]
pub fn NotFound() -> impl IntoView {
    set_status(404);
    view! {
        <PageMeta title="Page not found" description="There is nothing at this address on this leptos-auth server."/>
        <section class="card error-page">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. "<a href="/">"Go to the home page"</a></p>
        </section>
    }
}

/// Shown to signed-in users who may not see a page (status 403).
#[component]
pub fn Forbidden() -> impl IntoView {
    set_status(403);
    view! {
        <PageMeta title="Access denied" description="This page of the leptos-auth server is for administrators."/>
        <section class="card error-page" data-testid="forbidden">
            <h1>"Access denied"</h1>
            <p>"This page is for administrators. If you need access, ask an administrator of this site."</p>
            <p><a href="/profile">"Go to your profile"</a></p>
        </section>
    }
}

/// A failure that is not the visitor's doing. Never shows internals: the
/// message comes from [`crate::app::error::AppError`], whose texts are fixed.
#[component]
pub fn ErrorPanel(message: String) -> impl IntoView {
    view! {
        <PageMeta title="Something went wrong" description="The leptos-auth server could not complete the request."/>
        <section class="card error-page">
            <h1>"Something went wrong"</h1>
            <p role="alert">{message}</p>
            <p><a href="/">"Go to the home page"</a></p>
        </section>
    }
}

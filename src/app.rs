//! The Leptos application. Rendered on the server for every page request and
//! hydrated in the browser by the wasm bundle.

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

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
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component: stylesheet, title and routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/leptos-auth.css"/>
        <Title text="leptos-auth"/>
        <Router>
            <header class="site-header">
                <a class="brand" href="/">"leptos-auth"</a>
            </header>
            <main class="content">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage/>
                </Routes>
            </main>
            <footer class="site-footer">
                <p>"leptos-auth: user management and authentication in Rust"</p>
            </footer>
        </Router>
    }
}

/// The landing page. The "interactive" badge flips once the wasm bundle has
/// hydrated the page, which proves the whole toolchain (SSR, wasm, CSS) works.
#[component]
fn HomePage() -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    view! {
        <Title text="Welcome · leptos-auth"/>
        <section class="hero">
            <h1>"Authentication that is done right"</h1>
            <p class="lead">
                "Accounts, sign-in with rotating refresh tokens, and user administration, "
                "served as pages and as a JSON API under "<code>"/api/v1"</code>"."
            </p>
            <p>
                <span class="badge" data-testid="hydration-status">
                    {move || if hydrated.get() { "interactive" } else { "server-rendered" }}
                </span>
            </p>
            <ul class="links">
                <li><a href="/health">"Health"</a></li>
                <li><code>"POST /api/v1/auth/login"</code></li>
                <li><code>"GET /api/v1/users/me"</code></li>
            </ul>
        </section>
    }
}

/// Shown for unknown routes.
#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <Title text="Page not found · leptos-auth"/>
        <section class="error-page">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. "<a href="/">"Go to the home page"</a></p>
        </section>
    }
}

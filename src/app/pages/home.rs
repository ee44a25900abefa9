use crate::app::components::PageMeta;
use crate::app::server::current_user;
use leptos::prelude::*;

/// The landing page. The "interactive" badge flips once the wasm bundle has
/// hydrated the page's islands, which proves the whole toolchain (SSR,
/// wasm, CSS) works.
#[component]
pub fn HomePage() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    view! {
        <PageMeta title="Welcome" description="leptos-auth: accounts, sign-in with rotating refresh tokens and user administration, as pages and as a JSON API."/>
        <section class="hero">
            <h1>"Authentication that is done right"</h1>
            <p class="lead">
                "Accounts, sign-in with rotating refresh tokens, and user administration, "
                "served as pages and as a JSON API under "<code>"/api/v1"</code>"."
            </p>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some(me)) => view! {
                            <p class="actions">
                                "Signed in as "<strong>{me.email}</strong>". "
                                <a class="button" href="/profile">"Go to your profile"</a>
                            </p>
                        }
                        .into_any(),
                        _ => view! {
                            <p class="actions">
                                <a class="button" href="/register">"Create an account"</a>
                                <a class="button secondary" href="/login">"Sign in"</a>
                            </p>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
            <p><HydrationBadge/></p>
        </section>
    }
}

/// "server-rendered" in the server's HTML, "interactive" once hydrated.
#[island]
fn HydrationBadge() -> impl IntoView {
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    view! {
        <span class="badge" data-testid="hydration-status">
            {move || if hydrated.get() { "interactive" } else { "server-rendered" }}
        </span>
    }
}

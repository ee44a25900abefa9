//! The application state: what every handler and server function shares,
//! built once at startup (`AppState::initialize`) and handed to axum with
//! `with_state` and to the server functions through the Leptos context.

use crate::{
    config::Config,
    db::Pool,
    services::{ServiceError, Services},
};
use anyhow::Context;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use std::sync::Arc;

/// Shared by every handler and server function: built once, and a clone is
/// one reference count. axum clones the state into the handler of every
/// request at every layer, and cloning the services themselves (each holds
/// its repositories, hasher, outbox...) is measurably costly on the hottest
/// routes (BENCHMARKS.md, analysis: "The state is one `Arc`").
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

/// What [`AppState`] points at (fields reached through `Deref`).
pub struct SharedState {
    /// Leptos rendering options (site root, output name...).
    pub leptos_options: LeptosOptions,
    /// The business layer.
    pub services: Services,
    /// The settings of this instance.
    pub config: Arc<Config>,
}

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// Leptos' handlers take their options from the router state.
impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> LeptosOptions {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// Connects to the database, applies migrations, wires the services and
    /// ensures the `ADMIN_EMAIL` admin exists when configured.
    pub async fn initialize(config: Config) -> anyhow::Result<(AppState, Pool)> {
        let pool = Pool::connect(&config.database)
            .await
            .context("opening the database")?;
        pool.migrate().await.context("applying migrations")?;
        let services = Services::new(&config, pool.serving_repositories(config.auth_cache))?;
        ensure_configured_admin(&config, &services).await?;
        let state = AppState(Arc::new(SharedState {
            leptos_options: leptos_options(&config)?,
            services,
            config: Arc::new(config),
        }));
        Ok((state, pool))
    }
}

/// The Leptos options this instance serves with (also shown by `config check`).
pub(crate) fn leptos_options(config: &Config) -> anyhow::Result<LeptosOptions> {
    let mut options = leptos::config::get_configuration(None)
        .context("reading the Leptos site configuration")?
        .leptos_options;
    options.site_addr = config.site_addr;
    if std::env::var_os("LEPTOS_SITE_ROOT").is_none() {
        if let Some(site) = site_next_to_binary() {
            options.site_root = site.display().to_string().into();
        }
    }
    Ok(options)
}

/// The `site` folder beside the executable (the `make dist` and container
/// layout), so the binary serves its assets from any working directory.
fn site_next_to_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?.canonicalize().ok()?;
    let site = exe.parent()?.join("site");
    site.join("pkg").is_dir().then_some(site)
}

async fn ensure_configured_admin(config: &Config, services: &Services) -> anyhow::Result<()> {
    let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) else {
        return Ok(());
    };
    match services
        .users
        .ensure_admin(email.as_str(), password.clone())
        .await
    {
        Ok((user, true)) => tracing::info!(
            user_id = user.id,
            "created the admin account from ADMIN_EMAIL"
        ),
        Ok((user, false)) => {
            tracing::info!(user_id = user.id, "the ADMIN_EMAIL account is an admin")
        }
        Err(ServiceError::Invalid(field)) => {
            anyhow::bail!("invalid configuration: ADMIN_PASSWORD: {}", field.message)
        }
        Err(err) => {
            return Err(anyhow::Error::new(err).context("ensuring the ADMIN_EMAIL admin exists"))
        }
    }
    Ok(())
}

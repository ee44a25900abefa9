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
    /// The same instance serving with other Leptos options (tests serve a
    /// site folder of their own).
    pub fn with_leptos_options(&self, leptos_options: LeptosOptions) -> AppState {
        AppState(Arc::new(SharedState {
            leptos_options,
            services: self.services.clone(),
            config: self.config.clone(),
        }))
    }

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
    detect_hashed_names(
        &mut options,
        std::env::var_os("LEPTOS_HASH_FILES").is_some(),
        std::env::current_exe().ok().as_deref(),
    );
    Ok(options)
}

/// Turns `hash_files` on when cargo-leptos's hash file
/// (`LEPTOS_HASH_FILE_NAME`, default `hash.txt`) lies beside the executable
/// `exe`, unless `LEPTOS_HASH_FILES` was set (`explicit`), which then
/// decides. A build made with `hash-files` writes that file there, and
/// leptos's `HydrationScripts` and `HashedStylesheet` read the hashed names
/// from there (the path as `current_exe` gives it, not canonicalized, as
/// they do). The binary is run directly (`make run`, `dist/`, the
/// container), where cargo-leptos's `LEPTOS_HASH_FILES` is not set: the
/// hash file says what it was built with.
fn detect_hashed_names(options: &mut LeptosOptions, explicit: bool, exe: Option<&std::path::Path>) {
    if !explicit {
        options.hash_files = exe
            .and_then(std::path::Path::parent)
            .is_some_and(|dir| dir.join(options.hash_file.as_ref()).is_file());
    }
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

#[cfg(test)]
mod tests {
    use super::detect_hashed_names;
    use leptos::prelude::LeptosOptions;

    fn detected(explicit: Option<bool>, exe: &std::path::Path, hash_file: &str) -> bool {
        let mut options = LeptosOptions::builder()
            .output_name("leptos-auth")
            .hash_file(std::sync::Arc::from(hash_file))
            .hash_files(explicit.unwrap_or(false))
            .build();
        detect_hashed_names(&mut options, explicit.is_some(), Some(exe));
        options.hash_files
    }

    #[test]
    fn a_hash_file_beside_the_binary_turns_hashed_names_on() {
        let dir = tempfile::tempdir().expect("temp dir");
        let exe = dir.path().join("leptos-auth");
        std::fs::write(&exe, b"").expect("binary");
        assert!(!detected(None, &exe, "hash.txt"), "no hash file");

        std::fs::write(dir.path().join("hash.txt"), "js: a\nwasm: b\ncss: c\n").expect("hash file");
        assert!(detected(None, &exe, "hash.txt"));
        // The name comes from the options (LEPTOS_HASH_FILE_NAME).
        assert!(!detected(None, &exe, "hashes.txt"));
        // Beside the binary, not anywhere else.
        let elsewhere = dir.path().join("bin").join("leptos-auth");
        assert!(!detected(None, &elsewhere, "hash.txt"));
        // A directory of that name is not a hash file.
        std::fs::create_dir(dir.path().join("hashes.txt")).expect("dir");
        assert!(!detected(None, &exe, "hashes.txt"));

        // LEPTOS_HASH_FILES, when set, decides either way.
        assert!(!detected(Some(false), &exe, "hash.txt"));
        assert!(detected(Some(true), &elsewhere, "hash.txt"));
    }
}

//! Authentication: the token key and lifetimes, sessions, accounts and
//! passwords, Argon2 and the brute-force throttling.

use super::setting::{declare, read_and_default, verbatim, Env, Setting, MASK, UNBOUNDED};
use super::{default_parallelism, AppEnv, ConfigError};
use crate::domain::{Email, MAX_PASSWORD_CHARS, MIN_PASSWORD_FLOOR};
use secrecy::SecretString;
use std::{path::Path, time::Duration};

/// Minimum length of `JWT_SECRET` in bytes (256 bits, RFC 8725 section 3.5).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// The default issuer and audience of tokens.
fn leptos_auth() -> String {
    "leptos-auth".to_owned()
}

/// What a limit of 0 means.
const OFF: &str = "turns the limit off";

declare! {
    /// HS256 key, at least 32 bytes; unset in development, one is generated
    /// into `DATA_DIR/jwt-secret` (see [`jwt_secret`]).
    JWT_SECRET: SecretString = Setting::text(
        None,
        |raw| {
            if raw.len() < MIN_JWT_SECRET_BYTES {
                return Err(format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes long (got {})",
                    raw.len()
                ));
            }
            Ok(SecretString::from(raw))
        },
        |_| MASK.to_owned(),
    );
    /// The `iss` claim, required on every token.
    JWT_ISSUER: String = Setting::text(Some(leptos_auth), verbatim, String::clone);
    /// The `aud` claim, required on every token.
    JWT_AUDIENCE: String = Setting::text(Some(leptos_auth), verbatim, String::clone);
    /// Access-token lifetime in minutes.
    ACCESS_TOKEN_EXPIRE_MINUTES: Duration = Setting::minutes(15, 1..=24 * 60);
    /// A session ends after this many days without a refresh.
    SESSION_IDLE_DAYS: Duration =
        Setting::days(7, 1..=365).older_name("REFRESH_TOKEN_EXPIRE_DAYS");
    /// A session ends this many days after its sign-in, however often it is
    /// refreshed.
    SESSION_MAX_DAYS: Duration = Setting::days(30, 1..=3650);
    /// A refresh token rotated out less than this many seconds ago is a
    /// racing refresh, not reuse.
    REFRESH_REUSE_GRACE_SECONDS: Duration =
        Setting::seconds(10, 0..=300).zero_means("refuses every reuse");
    /// Failed sign-ins for one account within the window before further
    /// attempts wait.
    LOGIN_MAX_FAILURES: u32 = Setting::count(5, 0..=UNBOUNDED).zero_means(OFF);
    /// How long a failed sign-in counts, in minutes.
    LOGIN_WINDOW_MINUTES: Duration = Setting::minutes(15, 1..=24 * 60);
    /// Failed sign-ins from one client address per hour, across accounts.
    LOGIN_IP_MAX_FAILURES_PER_HOUR: u32 = Setting::count(100, 0..=UNBOUNDED).zero_means(OFF);
    /// Sign-ups from one client address per hour.
    REGISTRATION_MAX_PER_IP_PER_HOUR: u32 = Setting::count(20, 0..=UNBOUNDED).zero_means(OFF);
    /// Invalid refresh tokens from one client address per hour.
    REFRESH_IP_MAX_FAILURES_PER_HOUR: u32 = Setting::count(100, 0..=UNBOUNDED).zero_means(OFF);
    /// The shortest time, in seconds, between two password-reset (or two
    /// verification) messages to one account.
    EMAIL_REQUEST_INTERVAL_SECONDS: Duration =
        Setting::seconds(60, 0..=UNBOUNDED).zero_means(OFF);
    /// Password-reset and verification requests from one client address per hour.
    EMAIL_REQUESTS_PER_IP_PER_HOUR: u32 = Setting::count(20, 0..=UNBOUNDED).zero_means(OFF);
    /// Whether anyone may sign up; admins can always create users.
    ALLOW_REGISTRATION: bool = Setting::flag(true);
    /// With `ADMIN_PASSWORD`, an admin ensured at startup (see [`admin`]).
    ADMIN_EMAIL: Option<Email> = Setting::text(
        Some(|| None),
        |raw| Email::parse(raw).map(Some).map_err(|e| e.to_string()),
        |email| email.as_ref().map(|e| e.as_str().to_owned()).unwrap_or_default(),
    );
    /// The password `ADMIN_EMAIL` is created with; never overwrites an
    /// existing one.
    ADMIN_PASSWORD: Option<SecretString> = Setting::text(
        Some(|| None),
        |raw| Ok(Some(SecretString::from(raw))),
        |password| password.as_ref().map(|_| MASK.to_owned()).unwrap_or_default(),
    );
    /// Minimum password length in characters.
    PASSWORD_MIN_LENGTH: usize =
        Setting::count(12, MIN_PASSWORD_FLOOR as u64..=MAX_PASSWORD_CHARS as u64);
    /// Argon2id memory per hash in KiB; the cost parameters are checked
    /// together (see [`argon2()`]).
    ARGON2_MEMORY_KIB: u32 = Setting::count(19_456, 0..=UNBOUNDED);
    /// Argon2id passes.
    ARGON2_ITERATIONS: u32 = Setting::count(2, 0..=UNBOUNDED);
    /// Argon2id lanes.
    ARGON2_PARALLELISM: u32 = Setting::count(1, 0..=UNBOUNDED);
    /// Hashes allowed at once (default: the number of cores); more requests queue.
    ARGON2_MAX_CONCURRENT: usize = Setting::derived_count(1..=UNBOUNDED);
}

/// Argon2id cost parameters and the cap on concurrent hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Settings {
    /// Memory per hash in KiB (`ARGON2_MEMORY_KIB`, default 19456 = 19 MiB).
    pub memory_kib: u32,
    /// Passes over memory (`ARGON2_ITERATIONS`, default 2).
    pub iterations: u32,
    /// Lanes (`ARGON2_PARALLELISM`, default 1).
    pub parallelism: u32,
    /// Hashes allowed to run at once (`ARGON2_MAX_CONCURRENT`, default: number
    /// of cores). Bounds memory use under a login flood.
    pub max_concurrent: usize,
}

impl Default for Argon2Settings {
    /// The declared defaults.
    fn default() -> Self {
        Argon2Settings {
            memory_kib: ARGON2_MEMORY_KIB.default().unwrap_or_default(),
            iterations: ARGON2_ITERATIONS.default().unwrap_or_default(),
            parallelism: ARGON2_PARALLELISM.default().unwrap_or_default(),
            max_concurrent: default_parallelism(),
        }
    }
}

/// Brute-force throttling limits. Every count limit treats 0 as "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSettings {
    /// `LOGIN_MAX_FAILURES` (default 5): failed sign-ins for one account
    /// within the window before further attempts are delayed.
    pub login_max_failures: u32,
    /// `LOGIN_WINDOW_MINUTES` (default 15): how long a failed sign-in counts.
    pub login_window: Duration,
    /// `LOGIN_IP_MAX_FAILURES_PER_HOUR` (default 100): failed sign-ins from
    /// one client address, across accounts, before it is refused for a while.
    pub login_ip_max_failures_per_hour: u32,
    /// `REGISTRATION_MAX_PER_IP_PER_HOUR` (default 20): sign-ups per client address.
    pub registration_max_per_ip_per_hour: u32,
    /// `REFRESH_IP_MAX_FAILURES_PER_HOUR` (default 100): invalid refresh
    /// tokens presented by one client address.
    pub refresh_ip_max_failures_per_hour: u32,
    /// `EMAIL_REQUEST_INTERVAL_SECONDS` (default 60): the shortest time
    /// between two password-reset (or two verification) messages to one account.
    pub email_account_interval: Duration,
    /// `EMAIL_REQUESTS_PER_IP_PER_HOUR` (default 20): password-reset and
    /// verification requests from one client address.
    pub email_ip_max_per_hour: u32,
}

read_and_default! {
    ThrottleSettings {
        login_window: LOGIN_WINDOW_MINUTES,
        login_max_failures: LOGIN_MAX_FAILURES,
        login_ip_max_failures_per_hour: LOGIN_IP_MAX_FAILURES_PER_HOUR,
        registration_max_per_ip_per_hour: REGISTRATION_MAX_PER_IP_PER_HOUR,
        refresh_ip_max_failures_per_hour: REFRESH_IP_MAX_FAILURES_PER_HOUR,
        email_account_interval: EMAIL_REQUEST_INTERVAL_SECONDS,
        email_ip_max_per_hour: EMAIL_REQUESTS_PER_IP_PER_HOUR,
    }
}

/// `JWT_SECRET`: required in production; in development, when unset, a
/// random one is generated once and kept in `data_dir`.
pub fn jwt_secret(
    env: &Env<'_>,
    app_env: AppEnv,
    data_dir: &Path,
) -> Result<SecretString, ConfigError> {
    match JWT_SECRET.get(env)? {
        Some(secret) => Ok(secret),
        None if app_env == AppEnv::Production => Err(ConfigError::new(
            JWT_SECRET.name,
            "must be set in production (at least 32 random bytes, e.g. `openssl rand -base64 48`)",
        )),
        None => load_or_create_dev_secret(data_dir)
            .map(SecretString::from)
            .map_err(|e| {
                ConfigError::new(
                    JWT_SECRET.name,
                    format!(
                        "could not create a development secret in {}: {e}",
                        data_dir.display()
                    ),
                )
            }),
    }
}

/// `ADMIN_EMAIL` and `ADMIN_PASSWORD`, which come together or not at all.
pub fn admin(env: &Env<'_>) -> Result<(Option<Email>, Option<SecretString>), ConfigError> {
    let email = ADMIN_EMAIL.read(env)?;
    let password = ADMIN_PASSWORD.read(env)?;
    if password.is_some() != email.is_some() {
        let missing = if email.is_none() {
            ADMIN_EMAIL.name
        } else {
            ADMIN_PASSWORD.name
        };
        return Err(ConfigError::new(
            missing,
            "ADMIN_EMAIL and ADMIN_PASSWORD must be set together",
        ));
    }
    Ok((email, password))
}

/// The `ARGON2_*` settings; the cost parameters must make a valid Argon2id
/// configuration together.
pub fn argon2(env: &Env<'_>) -> Result<Argon2Settings, ConfigError> {
    let settings = Argon2Settings {
        memory_kib: ARGON2_MEMORY_KIB.read(env)?,
        iterations: ARGON2_ITERATIONS.read(env)?,
        parallelism: ARGON2_PARALLELISM.read(env)?,
        max_concurrent: ARGON2_MAX_CONCURRENT
            .get(env)?
            .unwrap_or_else(default_parallelism),
    };
    argon2::Params::new(
        settings.memory_kib,
        settings.iterations,
        settings.parallelism,
        None,
    )
    .map_err(|e| {
        ConfigError::new(
            ARGON2_MEMORY_KIB.name,
            format!("invalid Argon2 parameters: {e}"),
        )
    })?;
    Ok(settings)
}

/// In development, a random secret is generated once and kept in the data
/// folder so tokens survive restarts. Never used in production.
fn load_or_create_dev_secret(data_dir: &Path) -> std::io::Result<String> {
    use rand::RngCore;
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= MIN_JWT_SECRET_BYTES {
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    write_private(&path, &secret)?;
    tracing::warn!(
        path = %path.display(),
        "JWT_SECRET is not set: generated a development secret. Set JWT_SECRET (and APP_ENV=production) in production."
    );
    Ok(secret)
}

/// Writes a file only its owner can read (a generated development secret).
#[cfg(unix)]
pub(super) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

/// Writes a file (a generated development secret).
#[cfg(not(unix))]
pub(super) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

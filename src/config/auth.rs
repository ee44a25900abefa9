//! Authentication: the token key and lifetimes, sessions, accounts and
//! passwords, Argon2 and the brute-force throttling.

use super::setting::{verbatim, Env, Setting, MASK, UNBOUNDED};
use super::{default_parallelism, AppEnv, ConfigError};
use crate::domain::{Email, MAX_PASSWORD_CHARS, MIN_PASSWORD_FLOOR};
use secrecy::SecretString;
use std::{path::Path, time::Duration};

/// Minimum length of `JWT_SECRET` in bytes (256 bits, RFC 8725 section 3.5).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

/// `JWT_SECRET`; generated in development when unset (see [`jwt_secret`]).
pub const JWT_SECRET: Setting<SecretString> = Setting::text(
    "JWT_SECRET",
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
    "HS256 key, at least 32 bytes (generated into DATA_DIR/jwt-secret in development)",
);

/// `JWT_ISSUER`.
pub const JWT_ISSUER: Setting<String> = Setting::text(
    "JWT_ISSUER",
    Some(|| "leptos-auth".to_owned()),
    verbatim,
    String::clone,
    "the iss claim, required on every token",
);

/// `JWT_AUDIENCE`.
pub const JWT_AUDIENCE: Setting<String> = Setting::text(
    "JWT_AUDIENCE",
    Some(|| "leptos-auth".to_owned()),
    verbatim,
    String::clone,
    "the aud claim, required on every token",
);

/// `ACCESS_TOKEN_EXPIRE_MINUTES`.
pub const ACCESS_TOKEN_EXPIRE_MINUTES: Setting<Duration> = Setting::minutes(
    "ACCESS_TOKEN_EXPIRE_MINUTES",
    15,
    1..=24 * 60,
    "access-token lifetime",
);

/// `SESSION_IDLE_DAYS`, formerly `REFRESH_TOKEN_EXPIRE_DAYS`.
pub const SESSION_IDLE_DAYS: Setting<Duration> = Setting::days(
    "SESSION_IDLE_DAYS",
    7,
    1..=365,
    "a session ends after this many days without a refresh",
)
.older_name("REFRESH_TOKEN_EXPIRE_DAYS");

/// `SESSION_MAX_DAYS`.
pub const SESSION_MAX_DAYS: Setting<Duration> = Setting::days(
    "SESSION_MAX_DAYS",
    30,
    1..=3650,
    "a session ends this many days after its sign-in, however often it is refreshed",
);

/// `REFRESH_REUSE_GRACE_SECONDS`.
pub const REFRESH_REUSE_GRACE_SECONDS: Setting<Duration> = Setting::seconds(
    "REFRESH_REUSE_GRACE_SECONDS",
    10,
    0..=300,
    "a refresh token rotated out less than this long ago is a racing refresh, not reuse",
)
.zero_means("refuses every reuse");

/// `LOGIN_MAX_FAILURES`.
pub const LOGIN_MAX_FAILURES: Setting<u32> = Setting::count(
    "LOGIN_MAX_FAILURES",
    5,
    0..=UNBOUNDED,
    "failed sign-ins for one account within the window before further attempts wait",
)
.zero_means("turns the limit off");

/// `LOGIN_WINDOW_MINUTES`.
pub const LOGIN_WINDOW_MINUTES: Setting<Duration> = Setting::minutes(
    "LOGIN_WINDOW_MINUTES",
    15,
    1..=24 * 60,
    "how long a failed sign-in counts",
);

/// `LOGIN_IP_MAX_FAILURES_PER_HOUR`.
pub const LOGIN_IP_MAX_FAILURES_PER_HOUR: Setting<u32> = Setting::count(
    "LOGIN_IP_MAX_FAILURES_PER_HOUR",
    100,
    0..=UNBOUNDED,
    "failed sign-ins from one client address per hour, across accounts",
)
.zero_means("turns the limit off");

/// `REGISTRATION_MAX_PER_IP_PER_HOUR`.
pub const REGISTRATION_MAX_PER_IP_PER_HOUR: Setting<u32> = Setting::count(
    "REGISTRATION_MAX_PER_IP_PER_HOUR",
    20,
    0..=UNBOUNDED,
    "sign-ups from one client address per hour",
)
.zero_means("turns the limit off");

/// `REFRESH_IP_MAX_FAILURES_PER_HOUR`.
pub const REFRESH_IP_MAX_FAILURES_PER_HOUR: Setting<u32> = Setting::count(
    "REFRESH_IP_MAX_FAILURES_PER_HOUR",
    100,
    0..=UNBOUNDED,
    "invalid refresh tokens from one client address per hour",
)
.zero_means("turns the limit off");

/// `EMAIL_REQUEST_INTERVAL_SECONDS`.
pub const EMAIL_REQUEST_INTERVAL_SECONDS: Setting<Duration> = Setting::seconds(
    "EMAIL_REQUEST_INTERVAL_SECONDS",
    60,
    0..=UNBOUNDED,
    "the shortest time between two reset (or two verification) messages to one account",
)
.zero_means("turns the limit off");

/// `EMAIL_REQUESTS_PER_IP_PER_HOUR`.
pub const EMAIL_REQUESTS_PER_IP_PER_HOUR: Setting<u32> = Setting::count(
    "EMAIL_REQUESTS_PER_IP_PER_HOUR",
    20,
    0..=UNBOUNDED,
    "password-reset and verification requests from one client address per hour",
)
.zero_means("turns the limit off");

/// `ALLOW_REGISTRATION`.
pub const ALLOW_REGISTRATION: Setting<bool> = Setting::flag(
    "ALLOW_REGISTRATION",
    true,
    "whether anyone may sign up; admins can always create users",
);

/// `ADMIN_EMAIL`; set together with `ADMIN_PASSWORD` (see [`admin`]).
pub const ADMIN_EMAIL: Setting<Option<Email>> = Setting::text(
    "ADMIN_EMAIL",
    Some(|| None),
    |raw| Email::parse(raw).map(Some).map_err(|e| e.to_string()),
    |email| {
        email
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default()
    },
    "with ADMIN_PASSWORD: an admin ensured at startup",
);

/// `ADMIN_PASSWORD`.
pub const ADMIN_PASSWORD: Setting<Option<SecretString>> = Setting::text(
    "ADMIN_PASSWORD",
    Some(|| None),
    |raw| Ok(Some(SecretString::from(raw))),
    |password| {
        password
            .as_ref()
            .map(|_| MASK.to_owned())
            .unwrap_or_default()
    },
    "the password of ADMIN_EMAIL when it is created; never overwrites an existing one",
);

/// `PASSWORD_MIN_LENGTH`.
pub const PASSWORD_MIN_LENGTH: Setting<usize> = Setting::count(
    "PASSWORD_MIN_LENGTH",
    12,
    MIN_PASSWORD_FLOOR as u64..=MAX_PASSWORD_CHARS as u64,
    "minimum password length in characters",
);

/// `ARGON2_MEMORY_KIB`; the cost parameters are checked together (see [`argon2`]).
pub const ARGON2_MEMORY_KIB: Setting<u32> = Setting::count(
    "ARGON2_MEMORY_KIB",
    19_456,
    0..=UNBOUNDED,
    "Argon2id memory per hash, in KiB",
);

/// `ARGON2_ITERATIONS`.
pub const ARGON2_ITERATIONS: Setting<u32> =
    Setting::count("ARGON2_ITERATIONS", 2, 0..=UNBOUNDED, "Argon2id passes");

/// `ARGON2_PARALLELISM`.
pub const ARGON2_PARALLELISM: Setting<u32> =
    Setting::count("ARGON2_PARALLELISM", 1, 0..=UNBOUNDED, "Argon2id lanes");

/// `ARGON2_MAX_CONCURRENT`; the default is the number of cores.
pub const ARGON2_MAX_CONCURRENT: Setting<usize> = Setting::derived_count(
    "ARGON2_MAX_CONCURRENT",
    1..=UNBOUNDED,
    "hashes allowed at once (default: CPU cores); more requests queue",
);

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

impl ThrottleSettings {
    /// The `LOGIN_*`, `REGISTRATION_*`, `REFRESH_IP_*` and `EMAIL_REQUEST*` limits.
    pub fn read(env: &Env<'_>) -> Result<ThrottleSettings, ConfigError> {
        Ok(ThrottleSettings {
            login_window: LOGIN_WINDOW_MINUTES.read(env)?,
            login_max_failures: LOGIN_MAX_FAILURES.read(env)?,
            login_ip_max_failures_per_hour: LOGIN_IP_MAX_FAILURES_PER_HOUR.read(env)?,
            registration_max_per_ip_per_hour: REGISTRATION_MAX_PER_IP_PER_HOUR.read(env)?,
            refresh_ip_max_failures_per_hour: REFRESH_IP_MAX_FAILURES_PER_HOUR.read(env)?,
            email_account_interval: EMAIL_REQUEST_INTERVAL_SECONDS.read(env)?,
            email_ip_max_per_hour: EMAIL_REQUESTS_PER_IP_PER_HOUR.read(env)?,
        })
    }
}

impl Default for ThrottleSettings {
    /// The declared defaults.
    fn default() -> Self {
        ThrottleSettings {
            login_max_failures: LOGIN_MAX_FAILURES.default().unwrap_or_default(),
            login_window: LOGIN_WINDOW_MINUTES.default().unwrap_or_default(),
            login_ip_max_failures_per_hour: LOGIN_IP_MAX_FAILURES_PER_HOUR
                .default()
                .unwrap_or_default(),
            registration_max_per_ip_per_hour: REGISTRATION_MAX_PER_IP_PER_HOUR
                .default()
                .unwrap_or_default(),
            refresh_ip_max_failures_per_hour: REFRESH_IP_MAX_FAILURES_PER_HOUR
                .default()
                .unwrap_or_default(),
            email_account_interval: EMAIL_REQUEST_INTERVAL_SECONDS.default().unwrap_or_default(),
            email_ip_max_per_hour: EMAIL_REQUESTS_PER_IP_PER_HOUR.default().unwrap_or_default(),
        }
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

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
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

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

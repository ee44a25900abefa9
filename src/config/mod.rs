//! Settings, read once at startup from the environment (and `.env` when
//! present). A bad value stops startup with a message naming the variable.
//!
//! Each variable is declared once, as a [`setting::Setting`] in the module
//! of its concern ([`database`], [`auth`], [`mail`], [`server`]): its name,
//! default, accepted range or parser, and one line of documentation. Reading
//! it, the error naming it and what `leptos-auth config check` prints for it
//! (secrets masked) follow from that declaration; [`SETTINGS`] lists them in
//! the order `config check` prints them. Every declared variable is
//! documented in the README's configuration table and in `.env.example` (a
//! unit test checks both).
//!
//! This module depends on nothing of the application but [`crate::domain`]:
//! `db` wires these settings to the pool and the repositories.

pub mod auth;
pub mod database;
pub mod factors;
pub mod mail;
pub mod server;
pub mod setting;
#[cfg(test)]
mod tests;

pub use auth::{Argon2Settings, ThrottleSettings, MIN_JWT_SECRET_BYTES};
pub use database::{AuthCacheSettings, Backend, DatabaseSettings, UnsupportedScheme};
pub use factors::{DataKey, DataKeys, FactorSettings};
pub use mail::MailSettings;
pub use server::{AppEnv, LogFormat};

use crate::domain::{Email, PasswordPolicy};
use secrecy::{ExposeSecret, SecretString};
use setting::{Env, Setting};
use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// A configuration error: which variable, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {variable}: {message}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: &'static str,
    /// What is wrong, in words a person can act on.
    pub message: String,
}

impl ConfigError {
    fn new(variable: &'static str, message: impl Into<String>) -> Self {
        ConfigError {
            variable,
            message: message.into(),
        }
    }
}

/// A URL that may carry a password (`DATABASE_URL`, `SMTP_URL`). `Debug`
/// and `Display` hide the password.
#[derive(Clone)]
pub struct SecretUrl(SecretString);

/// The database connection string.
pub type DatabaseUrl = SecretUrl;

impl SecretUrl {
    /// Wraps a URL.
    pub fn new(url: impl Into<String>) -> Self {
        SecretUrl(SecretString::from(url.into()))
    }
    /// The real URL, for connecting.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
    /// The URL with any password replaced by `***`: the one after the user
    /// name and any `password=` query parameter.
    pub fn masked(&self) -> String {
        let url = self.expose();
        let Some((scheme, rest)) = url.split_once("://") else {
            return url.to_owned();
        };
        // The last `@`: a password may contain an unescaped `@`. When a
        // path or query has one too, more is hidden than needed, never less.
        let rest = match rest.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{user}:***@{host}")
            }
            _ => rest.to_owned(),
        };
        let rest = match rest.split_once('?') {
            Some((base, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                            format!("{key}=***")
                        }
                        _ => pair.to_owned(),
                    })
                    .collect();
                format!("{base}?{}", query.join("&"))
            }
            None => rest,
        };
        format!("{scheme}://{rest}")
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.masked())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// All settings of a running instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: `development` (default) or `production`.
    pub app_env: AppEnv,
    /// `DATA_DIR`: folder for the default SQLite database and the generated
    /// development JWT secret (default `data`).
    pub data_dir: PathBuf,
    /// `DATABASE_URL` and `DATABASE_MAX_CONNECTIONS`: the database and its pool.
    pub database: DatabaseSettings,
    /// `AUTH_CACHE_SECONDS` (default 30; 0 turns the cache off) and
    /// `AUTH_CACHE_ENTRIES` (default 10000): the per-instance cache of the
    /// authentication check (see `repositories::cache`).
    pub auth_cache: AuthCacheSettings,
    /// `JWT_SECRET`: HS256 key, at least 32 bytes.
    pub jwt_secret: SecretString,
    /// `JWT_ISSUER`: the `iss` claim (default `leptos-auth`).
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE`: the `aud` claim (default `leptos-auth`).
    pub jwt_audience: String,
    /// `ACCESS_TOKEN_EXPIRE_MINUTES` (default 15).
    pub access_token_ttl: Duration,
    /// `SESSION_IDLE_DAYS` (older name: `REFRESH_TOKEN_EXPIRE_DAYS`; default 7):
    /// a session ends after this long without a refresh. Each rotation
    /// issues a refresh token valid this long.
    pub session_idle: Duration,
    /// `SESSION_MAX_DAYS` (default 30): a session ends this long after its
    /// sign-in, however often it is refreshed.
    pub session_max: Duration,
    /// `REFRESH_REUSE_GRACE_SECONDS` (default 10; 0: strict): a refresh token
    /// rotated out less than this long ago, presented again while its
    /// session is live, is a racing refresh and gets the same successor
    /// instead of revoking the session.
    pub refresh_reuse_grace: Duration,
    /// Brute-force throttling limits (`LOGIN_*`, `REGISTRATION_*`, `REFRESH_*`).
    pub throttle: ThrottleSettings,
    /// `TRUSTED_PROXIES`: comma-separated CIDRs (or addresses) of reverse
    /// proxies whose `X-Forwarded-For` is believed. Empty (default): the
    /// client address is always the socket peer.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `AUDIT_RETENTION_DAYS` (default 90; 0 keeps audit events forever).
    pub audit_retention: Option<Duration>,
    /// `MAINTENANCE_INTERVAL_SECONDS` (default 3600): how often the server
    /// purges expired sessions, old throttling counters and old audit events.
    pub maintenance_interval: Duration,
    /// `ALLOW_REGISTRATION`: whether anyone may sign up (default true).
    pub allow_registration: bool,
    /// `ADMIN_EMAIL`: with `ADMIN_PASSWORD`, an admin ensured at startup.
    pub admin_email: Option<Email>,
    /// `ADMIN_PASSWORD`: see `admin_email`. Never overwrites an existing password.
    pub admin_password: Option<SecretString>,
    /// `PASSWORD_MIN_LENGTH`: minimum password length (default 12, floor 8).
    pub password_min_length: usize,
    /// `ARGON2_*` settings.
    pub argon2: Argon2Settings,
    /// `BACKEND_CORS_ORIGINS`: comma-separated origins; CORS is off when empty.
    pub cors_origins: Vec<String>,
    /// `LEPTOS_SITE_ADDR`: listen address (default `127.0.0.1:3000`).
    pub site_addr: SocketAddr,
    /// `COOKIE_SECURE`: mark session cookies `Secure` and give them the
    /// `__Host-` prefix (default true; browsers accept them on http://localhost).
    /// Set false only for plain-http hosts other than localhost.
    pub cookie_secure: bool,
    /// `LOG_FORMAT`: `pretty` or `json` (default `pretty` in development,
    /// `json` in production).
    pub log_format: LogFormat,
    /// `METRICS_ADDR`: where Prometheus metrics are served at `/metrics`, on
    /// a listener of their own so they need not be exposed with the site.
    /// Unset (default): no metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// `SHUTDOWN_TIMEOUT_SECONDS` (default 20): on SIGTERM or Ctrl-C, how long
    /// requests in flight may take to finish before the server stops anyway.
    pub shutdown_timeout: Duration,
    /// `SMTP_URL`, `MAIL_FROM`, `PUBLIC_URL`, `REQUIRE_EMAIL_VERIFICATION`.
    pub mail: MailSettings,
    /// `DATA_ENCRYPTION_KEY`, `DATA_ENCRYPTION_OLD_KEYS`, `TOTP_ISSUER`,
    /// `STEP_UP_MINUTES`, `REQUIRE_2FA_FOR_ADMINS`.
    pub factors: FactorSettings,
}

impl Config {
    /// Reads `.env` (if present) and the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env is normal; a malformed one is reported.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::new(".env", e.to_string())),
        }
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any variable lookup (the environment in
    /// production, a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let env = Env::new(&lookup);
        // Settings whose defaults follow others are read after them.
        let app_env = server::APP_ENV.read(&env)?;
        let log_format = server::log_format(&env, app_env)?;
        let data_dir = server::DATA_DIR.read(&env)?;
        let database = DatabaseSettings::read(&env, &data_dir)?;
        let jwt_secret = auth::jwt_secret(&env, app_env, &data_dir)?;
        let (admin_email, admin_password) = auth::admin(&env)?;
        let password_min_length = auth::PASSWORD_MIN_LENGTH.read(&env)?;
        let argon2 = auth::argon2(&env)?;
        let access_token_ttl = auth::ACCESS_TOKEN_EXPIRE_MINUTES.read(&env)?;
        let session_idle = auth::SESSION_IDLE_DAYS.read(&env)?;
        let session_max = auth::SESSION_MAX_DAYS.read(&env)?;
        let refresh_reuse_grace = auth::REFRESH_REUSE_GRACE_SECONDS.read(&env)?;
        let throttle = ThrottleSettings::read(&env)?;
        let trusted_proxies = server::TRUSTED_PROXIES.read(&env)?;
        let audit_retention = server::AUDIT_RETENTION_DAYS.read(&env)?;
        let maintenance_interval = server::MAINTENANCE_INTERVAL_SECONDS.read(&env)?;
        let site_addr = server::LEPTOS_SITE_ADDR.read(&env)?;
        let metrics_addr = server::metrics_addr(&env, site_addr)?;
        let shutdown_timeout = server::SHUTDOWN_TIMEOUT_SECONDS.read(&env)?;
        let mail = MailSettings::read(&env, app_env, &data_dir, site_addr)?;
        let cors_origins = server::BACKEND_CORS_ORIGINS.read(&env)?;
        let auth_cache = AuthCacheSettings::read(&env)?;
        let factors = FactorSettings::read(&env, app_env, &data_dir)?;
        Ok(Config {
            app_env,
            data_dir,
            database,
            auth_cache,
            jwt_secret,
            jwt_issuer: auth::JWT_ISSUER.read(&env)?,
            jwt_audience: auth::JWT_AUDIENCE.read(&env)?,
            access_token_ttl,
            session_idle,
            session_max,
            refresh_reuse_grace,
            throttle,
            trusted_proxies,
            audit_retention,
            maintenance_interval,
            allow_registration: auth::ALLOW_REGISTRATION.read(&env)?,
            admin_email,
            admin_password,
            password_min_length,
            argon2,
            cors_origins,
            site_addr,
            cookie_secure: server::COOKIE_SECURE.read(&env)?,
            log_format,
            metrics_addr,
            shutdown_timeout,
            mail,
            factors,
        })
    }

    /// Every setting as `(variable, value)`, in the order of [`SETTINGS`],
    /// with secrets (`JWT_SECRET`, `ADMIN_PASSWORD`, the passwords in
    /// `DATABASE_URL` and `SMTP_URL`) shown as `***`: what `leptos-auth
    /// config check` prints.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        SETTINGS
            .iter()
            .map(|row| (row.name(), row.value(self)))
            .collect()
    }

    /// The password policy these settings describe.
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy::new(self.password_min_length)
    }
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// One line of `config check`: a declared setting and where its value sits
/// in a [`Config`].
pub trait Row: Sync {
    /// The variable.
    fn name(&self) -> &'static str;
    /// The variable's previous name, if it had one.
    fn older_name(&self) -> Option<&'static str>;
    /// What the variable sets, in one line.
    fn doc(&self) -> &'static str;
    /// The value in `config`, as the variable would be set (secrets masked).
    fn value(&self, config: &Config) -> String;
}

struct Field<T: 'static> {
    setting: &'static Setting<T>,
    get: fn(&Config) -> &T,
}

impl<T> Row for Field<T> {
    fn name(&self) -> &'static str {
        self.setting.name
    }
    fn older_name(&self) -> Option<&'static str> {
        self.setting.older_name
    }
    fn doc(&self) -> &'static str {
        self.setting.doc
    }
    fn value(&self, config: &Config) -> String {
        self.setting.show((self.get)(config))
    }
}

/// The rows of [`SETTINGS`]: each `setting => field` shows the declared
/// setting's value at that field of a [`Config`].
macro_rules! rows {
    ($($setting:path => $($field:ident).+,)*) => {
        &[$(&Field { setting: &$setting, get: |c| &c.$($field).+ }),*]
    };
}

/// Every declared setting, in the order `config check` prints them.
pub const SETTINGS: &[&dyn Row] = rows! {
    server::APP_ENV => app_env,
    server::DATA_DIR => data_dir,
    database::DATABASE_URL => database.url,
    database::DATABASE_MAX_CONNECTIONS => database.max_connections,
    database::AUTH_CACHE_SECONDS => auth_cache.max_age,
    database::AUTH_CACHE_ENTRIES => auth_cache.capacity,
    auth::JWT_SECRET => jwt_secret,
    auth::JWT_ISSUER => jwt_issuer,
    auth::JWT_AUDIENCE => jwt_audience,
    auth::ACCESS_TOKEN_EXPIRE_MINUTES => access_token_ttl,
    auth::SESSION_IDLE_DAYS => session_idle,
    auth::SESSION_MAX_DAYS => session_max,
    auth::REFRESH_REUSE_GRACE_SECONDS => refresh_reuse_grace,
    auth::LOGIN_MAX_FAILURES => throttle.login_max_failures,
    auth::LOGIN_WINDOW_MINUTES => throttle.login_window,
    auth::LOGIN_IP_MAX_FAILURES_PER_HOUR => throttle.login_ip_max_failures_per_hour,
    auth::REGISTRATION_MAX_PER_IP_PER_HOUR => throttle.registration_max_per_ip_per_hour,
    auth::REFRESH_IP_MAX_FAILURES_PER_HOUR => throttle.refresh_ip_max_failures_per_hour,
    server::TRUSTED_PROXIES => trusted_proxies,
    server::AUDIT_RETENTION_DAYS => audit_retention,
    server::MAINTENANCE_INTERVAL_SECONDS => maintenance_interval,
    auth::ALLOW_REGISTRATION => allow_registration,
    auth::ADMIN_EMAIL => admin_email,
    auth::ADMIN_PASSWORD => admin_password,
    auth::PASSWORD_MIN_LENGTH => password_min_length,
    auth::ARGON2_MEMORY_KIB => argon2.memory_kib,
    auth::ARGON2_ITERATIONS => argon2.iterations,
    auth::ARGON2_PARALLELISM => argon2.parallelism,
    auth::ARGON2_MAX_CONCURRENT => argon2.max_concurrent,
    server::COOKIE_SECURE => cookie_secure,
    server::BACKEND_CORS_ORIGINS => cors_origins,
    server::LEPTOS_SITE_ADDR => site_addr,
    server::LOG_FORMAT => log_format,
    server::METRICS_ADDR => metrics_addr,
    server::SHUTDOWN_TIMEOUT_SECONDS => shutdown_timeout,
    mail::SMTP_URL => mail.smtp_url,
    mail::MAIL_FROM => mail.from,
    mail::PUBLIC_URL => mail.public_url,
    mail::REQUIRE_EMAIL_VERIFICATION => mail.require_verification,
    auth::EMAIL_REQUEST_INTERVAL_SECONDS => throttle.email_account_interval,
    auth::EMAIL_REQUESTS_PER_IP_PER_HOUR => throttle.email_ip_max_per_hour,
    factors::DATA_ENCRYPTION_KEY => factors.data_keys.current,
    factors::DATA_ENCRYPTION_OLD_KEYS => factors.data_keys.old,
    factors::TOTP_ISSUER => factors.totp_issuer,
    factors::STEP_UP_MINUTES => factors.step_up,
    factors::REQUIRE_2FA_FOR_ADMINS => factors.require_for_admins,
};

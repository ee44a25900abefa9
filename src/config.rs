//! Settings, read once at startup from the environment (and `.env` when
//! present). A bad value stops startup with a message naming the variable.
//! Every setting is documented in the README and in `.env.example`.

use crate::domain::{Email, PasswordPolicy, MAX_PASSWORD_CHARS, MIN_PASSWORD_FLOOR};
use crate::repositories::cache::AuthCacheSettings;
use secrecy::{ExposeSecret, SecretString};
use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

/// Minimum length of `JWT_SECRET` in bytes (256 bits, RFC 8725 section 3.5).
pub const MIN_JWT_SECRET_BYTES: usize = 32;

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

/// Where the app runs. Production refuses insecure shortcuts (a generated JWT secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Laptop and test default: missing secrets are generated.
    Development,
    /// Every secret must be given explicitly.
    Production,
}

/// How log lines are written (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable `key=value` lines: the development default.
    Pretty,
    /// One JSON object per line, for log collectors: the production default.
    Json,
}

impl LogFormat {
    /// The name used in `LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }

    /// `LOG_FORMAT` as the process environment (and `.env`) sets it, for the
    /// logger, which starts before the rest of the configuration is read. An
    /// invalid value falls back to the default here; reading the
    /// configuration then reports it.
    pub fn from_env() -> LogFormat {
        let _ = dotenvy::dotenv();
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let app_env = app_env(&get).unwrap_or(AppEnv::Development);
        log_format(&get, app_env).unwrap_or(match app_env {
            AppEnv::Development => LogFormat::Pretty,
            AppEnv::Production => LogFormat::Json,
        })
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
    fn default() -> Self {
        Argon2Settings {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: default_parallelism(),
        }
    }
}

/// The default pool size of a backend. PostgreSQL: 10 per instance. SQLite:
/// 2 read connections per core; its reads run in this process and are
/// CPU-bound, so more connections add no throughput, only memory (each keeps
/// a page cache of up to 2 MiB and a thread: with 16 read connections the
/// admin list alone grew a server by 35 MiB, with 4 by 9 MiB; BENCHMARKS.md).
fn default_max_connections(backend: crate::db::Backend) -> u32 {
    match backend {
        crate::db::Backend::Postgres => 10,
        crate::db::Backend::Sqlite => u32::try_from(2 * default_parallelism()).unwrap_or(u32::MAX),
    }
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
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

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            login_max_failures: 5,
            login_window: Duration::from_secs(15 * 60),
            login_ip_max_failures_per_hour: 100,
            registration_max_per_ip_per_hour: 20,
            refresh_ip_max_failures_per_hour: 100,
            email_account_interval: Duration::from_secs(60),
            email_ip_max_per_hour: 20,
        }
    }
}

/// Outgoing mail: verification and password-reset messages.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `SMTP_URL`: `smtps://user:pass@host:465` (TLS from the start),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS), or
    /// `smtp://host:25` (no TLS: only for a relay on a trusted network).
    /// Unset (development default): messages go to the outbox folder.
    pub smtp_url: Option<SecretUrl>,
    /// `MAIL_FROM`: the sender, `Name <address>` or `address` (required with
    /// `SMTP_URL`; default `leptos-auth <no-reply@localhost>`).
    pub from: String,
    /// `PUBLIC_URL`: where users reach this site, for links in messages
    /// (required in production; default `http://<LEPTOS_SITE_ADDR>`).
    pub public_url: String,
    /// `REQUIRE_EMAIL_VERIFICATION` (default false): refuse sign-in until the
    /// address is verified.
    pub require_verification: bool,
    /// `<DATA_DIR>/outbox`: where messages are written without `SMTP_URL`.
    pub outbox_dir: PathBuf,
}

/// All settings of a running instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: `development` (default) or `production`.
    pub app_env: AppEnv,
    /// `DATA_DIR`: folder for the default SQLite database and the generated
    /// development JWT secret (default `data`).
    pub data_dir: PathBuf,
    /// `DATABASE_URL`: `sqlite://...` or `postgres://...`
    /// (default `sqlite://<DATA_DIR>/leptos-auth.db`).
    pub database_url: DatabaseUrl,
    /// `DATABASE_MAX_CONNECTIONS`: pool size (default 10 on PostgreSQL, 2 per
    /// core on SQLite, whose writes use one more connection).
    pub database_max_connections: u32,
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
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let app_env = app_env(&get)?;
        let log_format = log_format(&get, app_env)?;
        let data_dir = PathBuf::from(get("DATA_DIR").unwrap_or_else(|| "data".to_owned()));
        let database_url = DatabaseUrl::new(
            get("DATABASE_URL")
                .unwrap_or_else(|| format!("sqlite://{}/leptos-auth.db", data_dir.display())),
        );
        let backend = crate::db::Backend::from_url(database_url.expose())
            .map_err(|e| ConfigError::new("DATABASE_URL", e.to_string()))?;

        let jwt_secret = match get("JWT_SECRET") {
            Some(secret) => secret,
            None if app_env == AppEnv::Production => {
                return Err(ConfigError::new(
                    "JWT_SECRET",
                    "must be set in production (at least 32 random bytes, e.g. `openssl rand -base64 48`)",
                ))
            }
            None => load_or_create_dev_secret(&data_dir)
                .map_err(|e| ConfigError::new("JWT_SECRET", format!("could not create a development secret in {}: {e}", data_dir.display())))?,
        };
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::new(
                "JWT_SECRET",
                format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes long (got {})",
                    jwt_secret.len()
                ),
            ));
        }

        let admin_email = get("ADMIN_EMAIL")
            .map(|raw| {
                Email::parse(&raw).map_err(|e| ConfigError::new("ADMIN_EMAIL", e.to_string()))
            })
            .transpose()?;
        let admin_password = get("ADMIN_PASSWORD").map(SecretString::from);
        if admin_password.is_some() != admin_email.is_some() {
            let missing = if admin_email.is_none() {
                "ADMIN_EMAIL"
            } else {
                "ADMIN_PASSWORD"
            };
            return Err(ConfigError::new(
                missing,
                "ADMIN_EMAIL and ADMIN_PASSWORD must be set together",
            ));
        }

        let password_min_length: usize = parse_or(&get, "PASSWORD_MIN_LENGTH", 12)?;
        if !(MIN_PASSWORD_FLOOR..=MAX_PASSWORD_CHARS).contains(&password_min_length) {
            return Err(ConfigError::new(
                "PASSWORD_MIN_LENGTH",
                format!("must be between {MIN_PASSWORD_FLOOR} and {MAX_PASSWORD_CHARS}"),
            ));
        }

        let defaults = Argon2Settings::default();
        let argon2 = Argon2Settings {
            memory_kib: parse_or(&get, "ARGON2_MEMORY_KIB", defaults.memory_kib)?,
            iterations: parse_or(&get, "ARGON2_ITERATIONS", defaults.iterations)?,
            parallelism: parse_or(&get, "ARGON2_PARALLELISM", defaults.parallelism)?,
            max_concurrent: parse_or(&get, "ARGON2_MAX_CONCURRENT", defaults.max_concurrent)?,
        };
        argon2::Params::new(
            argon2.memory_kib,
            argon2.iterations,
            argon2.parallelism,
            None,
        )
        .map_err(|e| {
            ConfigError::new(
                "ARGON2_MEMORY_KIB",
                format!("invalid Argon2 parameters: {e}"),
            )
        })?;
        if argon2.max_concurrent == 0 {
            return Err(ConfigError::new(
                "ARGON2_MAX_CONCURRENT",
                "must be at least 1",
            ));
        }

        let access_minutes: u64 = parse_or(&get, "ACCESS_TOKEN_EXPIRE_MINUTES", 15)?;
        if !(1..=24 * 60).contains(&access_minutes) {
            return Err(ConfigError::new(
                "ACCESS_TOKEN_EXPIRE_MINUTES",
                "must be between 1 and 1440",
            ));
        }
        let idle_days = session_idle_days(&get)?;
        let max_days: u64 = parse_or(&get, "SESSION_MAX_DAYS", 30)?;
        if !(1..=3650).contains(&max_days) {
            return Err(ConfigError::new(
                "SESSION_MAX_DAYS",
                "must be between 1 and 3650",
            ));
        }
        let reuse_grace_seconds: u64 = parse_or(&get, "REFRESH_REUSE_GRACE_SECONDS", 10)?;
        if reuse_grace_seconds > 300 {
            return Err(ConfigError::new(
                "REFRESH_REUSE_GRACE_SECONDS",
                "must be at most 300 (0 refuses every reuse)",
            ));
        }
        let throttle = throttle_settings(&get)?;
        let trusted_proxies = get("TRUSTED_PROXIES")
            .map(|raw| parse_networks(&raw))
            .transpose()
            .map_err(|message| ConfigError::new("TRUSTED_PROXIES", message))?
            .unwrap_or_default();
        let audit_days: u64 = parse_or(&get, "AUDIT_RETENTION_DAYS", 90)?;
        if audit_days > 36_500 {
            return Err(ConfigError::new(
                "AUDIT_RETENTION_DAYS",
                "must be at most 36500 (0 keeps events forever)",
            ));
        }
        let maintenance_seconds: u64 = parse_or(&get, "MAINTENANCE_INTERVAL_SECONDS", 3600)?;
        if !(1..=7 * 86_400).contains(&maintenance_seconds) {
            return Err(ConfigError::new(
                "MAINTENANCE_INTERVAL_SECONDS",
                "must be between 1 and 604800",
            ));
        }
        let database_max_connections: u32 = parse_or(
            &get,
            "DATABASE_MAX_CONNECTIONS",
            default_max_connections(backend),
        )?;
        if database_max_connections == 0 {
            return Err(ConfigError::new(
                "DATABASE_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }

        let site_addr = parse_or(
            &get,
            "LEPTOS_SITE_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 3000)),
        )?;
        let metrics_addr: Option<SocketAddr> = get("METRICS_ADDR")
            .map(|raw| {
                raw.trim().parse().map_err(|e| {
                    ConfigError::new(
                        "METRICS_ADDR",
                        format!("{raw:?} is not valid: {e} (expected e.g. 127.0.0.1:9100)"),
                    )
                })
            })
            .transpose()?;
        if metrics_addr.is_some_and(|addr| addr == site_addr && addr.port() != 0) {
            return Err(ConfigError::new(
                "METRICS_ADDR",
                "must differ from LEPTOS_SITE_ADDR (metrics get a listener of their own)",
            ));
        }
        let shutdown_seconds: u64 = parse_or(&get, "SHUTDOWN_TIMEOUT_SECONDS", 20)?;
        if !(1..=3600).contains(&shutdown_seconds) {
            return Err(ConfigError::new(
                "SHUTDOWN_TIMEOUT_SECONDS",
                "must be between 1 and 3600",
            ));
        }

        let mail = mail_settings(&get, app_env, &data_dir, site_addr)?;

        let cors_origins = get("BACKEND_CORS_ORIGINS")
            .map(|raw| {
                raw.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .map(|o| {
                        if (o.starts_with("http://") || o.starts_with("https://"))
                            && http::HeaderValue::from_str(&o).is_ok()
                        {
                            Ok(o)
                        } else {
                            Err(ConfigError::new(
                                "BACKEND_CORS_ORIGINS",
                                format!("{o:?} is not an http(s) origin"),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();

        let auth_cache_seconds: u64 = parse_or(&get, "AUTH_CACHE_SECONDS", 30)?;
        if auth_cache_seconds > 3600 {
            return Err(ConfigError::new(
                "AUTH_CACHE_SECONDS",
                "must be at most 3600 (0 turns the cache off)",
            ));
        }
        let auth_cache_entries: usize = parse_or(&get, "AUTH_CACHE_ENTRIES", 10_000)?;
        if !(1..=10_000_000).contains(&auth_cache_entries) {
            return Err(ConfigError::new(
                "AUTH_CACHE_ENTRIES",
                "must be between 1 and 10000000",
            ));
        }
        Ok(Config {
            app_env,
            data_dir,
            database_url,
            database_max_connections,
            auth_cache: AuthCacheSettings {
                max_age: Duration::from_secs(auth_cache_seconds),
                capacity: auth_cache_entries,
            },
            jwt_secret: SecretString::from(jwt_secret),
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| "leptos-auth".to_owned()),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "leptos-auth".to_owned()),
            access_token_ttl: Duration::from_secs(access_minutes * 60),
            session_idle: Duration::from_secs(idle_days * DAY),
            session_max: Duration::from_secs(max_days * DAY),
            refresh_reuse_grace: Duration::from_secs(reuse_grace_seconds),
            throttle,
            trusted_proxies,
            audit_retention: (audit_days > 0).then(|| Duration::from_secs(audit_days * DAY)),
            maintenance_interval: Duration::from_secs(maintenance_seconds),
            allow_registration: parse_bool_or(&get, "ALLOW_REGISTRATION", true)?,
            admin_email,
            admin_password,
            password_min_length,
            argon2,
            cors_origins,
            site_addr,
            cookie_secure: parse_bool_or(&get, "COOKIE_SECURE", true)?,
            log_format,
            metrics_addr,
            shutdown_timeout: Duration::from_secs(shutdown_seconds),
            mail,
        })
    }

    /// Every setting as `(variable, value)`, in the order of the README,
    /// with secrets (`JWT_SECRET`, `ADMIN_PASSWORD`, the password in
    /// `DATABASE_URL`) shown as `***`: what `leptos-auth config check` prints.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        const MASK: &str = "***";
        let join = |items: Vec<String>| items.join(",");
        let throttle = &self.throttle;
        vec![
            (
                "APP_ENV",
                match self.app_env {
                    AppEnv::Development => "development",
                    AppEnv::Production => "production",
                }
                .to_owned(),
            ),
            ("DATA_DIR", self.data_dir.display().to_string()),
            ("DATABASE_URL", self.database_url.masked()),
            (
                "DATABASE_MAX_CONNECTIONS",
                self.database_max_connections.to_string(),
            ),
            (
                "AUTH_CACHE_SECONDS",
                self.auth_cache.max_age.as_secs().to_string(),
            ),
            ("AUTH_CACHE_ENTRIES", self.auth_cache.capacity.to_string()),
            ("JWT_SECRET", MASK.to_owned()),
            ("JWT_ISSUER", self.jwt_issuer.clone()),
            ("JWT_AUDIENCE", self.jwt_audience.clone()),
            (
                "ACCESS_TOKEN_EXPIRE_MINUTES",
                (self.access_token_ttl.as_secs() / 60).to_string(),
            ),
            (
                "SESSION_IDLE_DAYS",
                (self.session_idle.as_secs() / DAY).to_string(),
            ),
            (
                "SESSION_MAX_DAYS",
                (self.session_max.as_secs() / DAY).to_string(),
            ),
            (
                "REFRESH_REUSE_GRACE_SECONDS",
                self.refresh_reuse_grace.as_secs().to_string(),
            ),
            (
                "LOGIN_MAX_FAILURES",
                throttle.login_max_failures.to_string(),
            ),
            (
                "LOGIN_WINDOW_MINUTES",
                (throttle.login_window.as_secs() / 60).to_string(),
            ),
            (
                "LOGIN_IP_MAX_FAILURES_PER_HOUR",
                throttle.login_ip_max_failures_per_hour.to_string(),
            ),
            (
                "REGISTRATION_MAX_PER_IP_PER_HOUR",
                throttle.registration_max_per_ip_per_hour.to_string(),
            ),
            (
                "REFRESH_IP_MAX_FAILURES_PER_HOUR",
                throttle.refresh_ip_max_failures_per_hour.to_string(),
            ),
            (
                "TRUSTED_PROXIES",
                join(self.trusted_proxies.iter().map(|n| n.to_string()).collect()),
            ),
            (
                "AUDIT_RETENTION_DAYS",
                self.audit_retention
                    .map_or(0, |d| d.as_secs() / DAY)
                    .to_string(),
            ),
            (
                "MAINTENANCE_INTERVAL_SECONDS",
                self.maintenance_interval.as_secs().to_string(),
            ),
            ("ALLOW_REGISTRATION", self.allow_registration.to_string()),
            (
                "ADMIN_EMAIL",
                self.admin_email
                    .as_ref()
                    .map(|e| e.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            (
                "ADMIN_PASSWORD",
                self.admin_password
                    .as_ref()
                    .map(|_| MASK.to_owned())
                    .unwrap_or_default(),
            ),
            ("PASSWORD_MIN_LENGTH", self.password_min_length.to_string()),
            ("ARGON2_MEMORY_KIB", self.argon2.memory_kib.to_string()),
            ("ARGON2_ITERATIONS", self.argon2.iterations.to_string()),
            ("ARGON2_PARALLELISM", self.argon2.parallelism.to_string()),
            (
                "ARGON2_MAX_CONCURRENT",
                self.argon2.max_concurrent.to_string(),
            ),
            ("COOKIE_SECURE", self.cookie_secure.to_string()),
            ("BACKEND_CORS_ORIGINS", join(self.cors_origins.clone())),
            ("LEPTOS_SITE_ADDR", self.site_addr.to_string()),
            ("LOG_FORMAT", self.log_format.as_str().to_owned()),
            (
                "METRICS_ADDR",
                self.metrics_addr.map(|a| a.to_string()).unwrap_or_default(),
            ),
            (
                "SHUTDOWN_TIMEOUT_SECONDS",
                self.shutdown_timeout.as_secs().to_string(),
            ),
            (
                "SMTP_URL",
                self.mail
                    .smtp_url
                    .as_ref()
                    .map(SecretUrl::masked)
                    .unwrap_or_default(),
            ),
            ("MAIL_FROM", self.mail.from.clone()),
            ("PUBLIC_URL", self.mail.public_url.clone()),
            (
                "REQUIRE_EMAIL_VERIFICATION",
                self.mail.require_verification.to_string(),
            ),
            (
                "EMAIL_REQUEST_INTERVAL_SECONDS",
                throttle.email_account_interval.as_secs().to_string(),
            ),
            (
                "EMAIL_REQUESTS_PER_IP_PER_HOUR",
                throttle.email_ip_max_per_hour.to_string(),
            ),
        ]
    }

    /// The password policy these settings describe.
    pub fn password_policy(&self) -> PasswordPolicy {
        PasswordPolicy::new(self.password_min_length)
    }
}

const DAY: u64 = 24 * 3600;

fn app_env(get: &impl Fn(&str) -> Option<String>) -> Result<AppEnv, ConfigError> {
    match get("APP_ENV").as_deref().map(str::trim) {
        None | Some("development") | Some("dev") => Ok(AppEnv::Development),
        Some("production") | Some("prod") => Ok(AppEnv::Production),
        Some(other) => Err(ConfigError::new(
            "APP_ENV",
            format!("expected 'development' or 'production', got {other:?}"),
        )),
    }
}

/// `LOG_FORMAT`; unset: pretty in development, JSON in production.
fn log_format(
    get: &impl Fn(&str) -> Option<String>,
    app_env: AppEnv,
) -> Result<LogFormat, ConfigError> {
    match get("LOG_FORMAT")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None if app_env == AppEnv::Production => Ok(LogFormat::Json),
        None => Ok(LogFormat::Pretty),
        Some("pretty") => Ok(LogFormat::Pretty),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(ConfigError::new(
            "LOG_FORMAT",
            format!("expected 'pretty' or 'json', got {other:?}"),
        )),
    }
}

/// `SESSION_IDLE_DAYS`, or its older name `REFRESH_TOKEN_EXPIRE_DAYS`.
fn session_idle_days(get: &impl Fn(&str) -> Option<String>) -> Result<u64, ConfigError> {
    let idle: Option<u64> = get("SESSION_IDLE_DAYS")
        .map(|_| parse_or(get, "SESSION_IDLE_DAYS", 7))
        .transpose()?;
    let legacy: Option<u64> = get("REFRESH_TOKEN_EXPIRE_DAYS")
        .map(|_| parse_or(get, "REFRESH_TOKEN_EXPIRE_DAYS", 7))
        .transpose()?;
    let (variable, days) = match (idle, legacy) {
        (Some(idle), Some(legacy)) if idle != legacy => {
            return Err(ConfigError::new(
                "SESSION_IDLE_DAYS",
                format!(
                    "conflicts with REFRESH_TOKEN_EXPIRE_DAYS={legacy} (its older name); set only SESSION_IDLE_DAYS"
                ),
            ))
        }
        (Some(idle), _) => ("SESSION_IDLE_DAYS", idle),
        (None, Some(legacy)) => ("REFRESH_TOKEN_EXPIRE_DAYS", legacy),
        (None, None) => ("SESSION_IDLE_DAYS", 7),
    };
    if !(1..=365).contains(&days) {
        return Err(ConfigError::new(variable, "must be between 1 and 365"));
    }
    Ok(days)
}

fn throttle_settings(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<ThrottleSettings, ConfigError> {
    let defaults = ThrottleSettings::default();
    let window_minutes: u64 = parse_or(
        get,
        "LOGIN_WINDOW_MINUTES",
        defaults.login_window.as_secs() / 60,
    )?;
    if !(1..=24 * 60).contains(&window_minutes) {
        return Err(ConfigError::new(
            "LOGIN_WINDOW_MINUTES",
            "must be between 1 and 1440",
        ));
    }
    Ok(ThrottleSettings {
        login_max_failures: parse_or(get, "LOGIN_MAX_FAILURES", defaults.login_max_failures)?,
        login_window: Duration::from_secs(window_minutes * 60),
        login_ip_max_failures_per_hour: parse_or(
            get,
            "LOGIN_IP_MAX_FAILURES_PER_HOUR",
            defaults.login_ip_max_failures_per_hour,
        )?,
        registration_max_per_ip_per_hour: parse_or(
            get,
            "REGISTRATION_MAX_PER_IP_PER_HOUR",
            defaults.registration_max_per_ip_per_hour,
        )?,
        refresh_ip_max_failures_per_hour: parse_or(
            get,
            "REFRESH_IP_MAX_FAILURES_PER_HOUR",
            defaults.refresh_ip_max_failures_per_hour,
        )?,
        email_account_interval: Duration::from_secs(parse_or(
            get,
            "EMAIL_REQUEST_INTERVAL_SECONDS",
            defaults.email_account_interval.as_secs(),
        )?),
        email_ip_max_per_hour: parse_or(
            get,
            "EMAIL_REQUESTS_PER_IP_PER_HOUR",
            defaults.email_ip_max_per_hour,
        )?,
    })
}

fn mail_settings(
    get: &impl Fn(&str) -> Option<String>,
    app_env: AppEnv,
    data_dir: &Path,
    site_addr: SocketAddr,
) -> Result<MailSettings, ConfigError> {
    let smtp_url = get("SMTP_URL").map(|raw| SecretUrl::new(raw.trim()));
    if let Some(url) = &smtp_url {
        let raw = url.expose();
        if !(raw.starts_with("smtp://") || raw.starts_with("smtps://")) {
            return Err(ConfigError::new(
                "SMTP_URL",
                "must start with smtp:// or smtps:// (e.g. smtps://user:password@mail.example.com:465)",
            ));
        }
        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(raw).map_err(|_| {
            ConfigError::new(
                "SMTP_URL",
                format!("{} is not a valid SMTP URL", url.masked()),
            )
        })?;
    }
    let from = match (get("MAIL_FROM"), &smtp_url) {
        (Some(from), _) => from.trim().to_owned(),
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "MAIL_FROM",
                "must be set with SMTP_URL (e.g. \"leptos-auth <no-reply@example.com>\")",
            ))
        }
        (None, None) => "leptos-auth <no-reply@localhost>".to_owned(),
    };
    from.parse::<lettre::message::Mailbox>().map_err(|e| {
        ConfigError::new(
            "MAIL_FROM",
            format!("{from:?} is not a valid sender ({e}); expected e.g. \"leptos-auth <no-reply@example.com>\""),
        )
    })?;
    let public_url = match get("PUBLIC_URL") {
        Some(url) => url.trim().trim_end_matches('/').to_owned(),
        None if app_env == AppEnv::Production => {
            return Err(ConfigError::new(
                "PUBLIC_URL",
                "must be set in production: the address users open, for links in emails (e.g. https://auth.example.com)",
            ))
        }
        None if site_addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", site_addr.port()),
        None => format!("http://{site_addr}"),
    };
    let valid_public_url = (public_url.starts_with("http://")
        || public_url.starts_with("https://"))
        && public_url.split_once("://").is_some_and(|(_, rest)| {
            !rest.is_empty() && !rest.contains(['?', '#', ' ', '"', '<', '>'])
        });
    if !valid_public_url {
        return Err(ConfigError::new(
            "PUBLIC_URL",
            format!("{public_url:?} is not an http(s) URL (e.g. https://auth.example.com)"),
        ));
    }
    Ok(MailSettings {
        smtp_url,
        from,
        public_url,
        require_verification: parse_bool_or(get, "REQUIRE_EMAIL_VERIFICATION", false)?,
        outbox_dir: data_dir.join("outbox"),
    })
}

/// A comma-separated list of CIDRs; a bare address means that one host.
fn parse_networks(raw: &str) -> Result<Vec<ipnet::IpNet>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<ipnet::IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{item:?} is not an IP address or CIDR (e.g. 10.0.0.0/8)"))
        })
        .collect()
}

fn parse_or<T: FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| ConfigError::new(name, format!("{raw:?} is not valid: {e}"))),
    }
}

fn parse_bool_or(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "1" | "yes" | "on") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "0" | "no" | "off") => Ok(false),
        Some(v) => Err(ConfigError::new(
            name,
            format!("expected true or false, got {v:?}"),
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

    #[test]
    fn a_postgres_pool_has_ten_connections_unless_told() {
        let url = ("DATABASE_URL", "postgres://app@db/app");
        let config = config_from(&[("JWT_SECRET", SECRET), url]).expect("valid");
        assert_eq!(config.database_max_connections, 10);
        let config = config_from(&[
            ("JWT_SECRET", SECRET),
            url,
            ("DATABASE_MAX_CONNECTIONS", "3"),
        ])
        .expect("valid");
        assert_eq!(config.database_max_connections, 3);
    }

    #[test]
    fn defaults_describe_a_local_sqlite_instance() {
        let config = config_from(&[("JWT_SECRET", SECRET)]).expect("valid");
        assert_eq!(config.database_url.expose(), "sqlite://data/leptos-auth.db");
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(config.database_max_connections as usize, 2 * cores);
        assert_eq!(config.access_token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(config.session_idle, Duration::from_secs(7 * 86_400));
        assert_eq!(config.session_max, Duration::from_secs(30 * 86_400));
        assert_eq!(config.throttle, ThrottleSettings::default());
        assert_eq!(config.throttle.login_max_failures, 5);
        assert_eq!(config.throttle.login_window, Duration::from_secs(15 * 60));
        assert_eq!(config.throttle.login_ip_max_failures_per_hour, 100);
        assert_eq!(config.throttle.registration_max_per_ip_per_hour, 20);
        assert_eq!(config.throttle.refresh_ip_max_failures_per_hour, 100);
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(
            config.audit_retention,
            Some(Duration::from_secs(90 * 86_400))
        );
        assert_eq!(config.maintenance_interval, Duration::from_secs(3600));
        assert_eq!(config.auth_cache, AuthCacheSettings::default());
        assert_eq!(config.auth_cache.max_age, Duration::from_secs(30));
        assert_eq!(config.site_addr.to_string(), "127.0.0.1:3000");
        assert!(config.allow_registration);
        assert_eq!(config.argon2.memory_kib, 19_456);
        assert!(config.cors_origins.is_empty());
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.metrics_addr, None);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(20));
        assert!(config.mail.smtp_url.is_none());
        assert_eq!(config.mail.from, "leptos-auth <no-reply@localhost>");
        assert_eq!(config.mail.public_url, "http://127.0.0.1:3000");
        assert!(!config.mail.require_verification);
        assert_eq!(config.mail.outbox_dir, PathBuf::from("data/outbox"));
        assert_eq!(
            config.throttle.email_account_interval,
            Duration::from_secs(60)
        );
        assert_eq!(config.throttle.email_ip_max_per_hour, 20);
    }

    #[test]
    fn mail_settings_are_checked() {
        let with = |pairs: &[(&str, &str)]| {
            let mut all = vec![("JWT_SECRET", SECRET)];
            all.extend_from_slice(pairs);
            config_from(&all)
        };
        let config = with(&[
            ("SMTP_URL", "smtp://relay.internal:25"),
            ("MAIL_FROM", "Accounts <accounts@example.com>"),
            ("PUBLIC_URL", "https://auth.example.com/"),
            ("REQUIRE_EMAIL_VERIFICATION", "true"),
        ])
        .expect("valid");
        assert_eq!(config.mail.public_url, "https://auth.example.com");
        assert!(config.mail.require_verification);
        let error = |pairs: &[(&str, &str)]| with(pairs).expect_err("invalid").variable;
        assert_eq!(error(&[("SMTP_URL", "smtp://relay:25")]), "MAIL_FROM");
        assert_eq!(
            error(&[
                ("SMTP_URL", "mailto:me@example.com"),
                ("MAIL_FROM", "a@b.c")
            ]),
            "SMTP_URL"
        );
        assert_eq!(
            error(&[
                ("SMTP_URL", "smtp://relay:25?tls=sometimes"),
                ("MAIL_FROM", "a@b.c")
            ]),
            "SMTP_URL"
        );
        assert_eq!(error(&[("MAIL_FROM", "not an address")]), "MAIL_FROM");
        assert_eq!(error(&[("PUBLIC_URL", "auth.example.com")]), "PUBLIC_URL");
        assert_eq!(
            error(&[("PUBLIC_URL", "https://auth.example.com/?x=\"<")]),
            "PUBLIC_URL"
        );
        assert_eq!(error(&[("APP_ENV", "production")]), "PUBLIC_URL");
        // An unspecified listen address is not a place to send people.
        let any = with(&[("LEPTOS_SITE_ADDR", "0.0.0.0:8080")]).expect("valid");
        assert_eq!(any.mail.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn logs_are_json_in_production_unless_told_otherwise() {
        let production = [
            ("JWT_SECRET", SECRET),
            ("APP_ENV", "production"),
            ("PUBLIC_URL", "https://auth.example.com"),
        ];
        let config = config_from(&production).expect("valid");
        assert_eq!(config.log_format, LogFormat::Json);
        let config = config_from(&[
            production[0],
            production[1],
            production[2],
            ("LOG_FORMAT", "Pretty"),
        ])
        .expect("valid");
        assert_eq!(config.log_format, LogFormat::Pretty);
        let config =
            config_from(&[("JWT_SECRET", SECRET), ("LOG_FORMAT", " json ")]).expect("valid");
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn metrics_and_shutdown_settings_are_read() {
        let config = config_from(&[
            ("JWT_SECRET", SECRET),
            ("METRICS_ADDR", "0.0.0.0:9100"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "45"),
        ])
        .expect("valid");
        assert_eq!(
            config.metrics_addr,
            Some("0.0.0.0:9100".parse().expect("addr"))
        );
        assert_eq!(config.shutdown_timeout, Duration::from_secs(45));
        // Port 0 twice (tests) means two different free ports.
        config_from(&[
            ("JWT_SECRET", SECRET),
            ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ("METRICS_ADDR", "127.0.0.1:0"),
        ])
        .expect("valid");
    }

    #[test]
    fn settings_list_every_variable_once_with_secrets_masked() {
        let config = config_from(&[
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://app:hunter2secret@db/auth"),
            ("ADMIN_EMAIL", "ops@example.com"),
            ("ADMIN_PASSWORD", "admin-password-secret"),
        ])
        .expect("valid");
        let settings = config.settings();
        let names: Vec<&str> = settings.iter().map(|(name, _)| *name).collect();
        let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        for name in [
            "APP_ENV",
            "DATABASE_URL",
            "JWT_SECRET",
            "ADMIN_PASSWORD",
            "LOG_FORMAT",
            "METRICS_ADDR",
            "SHUTDOWN_TIMEOUT_SECONDS",
            "LEPTOS_SITE_ADDR",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        let shown = format!("{settings:?}");
        for secret in [SECRET, "hunter2secret", "admin-password-secret"] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        let value = |name: &str| {
            settings
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
                .expect("listed")
        };
        assert_eq!(value("JWT_SECRET"), "***");
        assert_eq!(value("ADMIN_PASSWORD"), "***");
        assert_eq!(value("DATABASE_URL"), "postgres://app:***@db/auth");
        assert_eq!(value("SESSION_IDLE_DAYS"), "7");
        assert_eq!(value("METRICS_ADDR"), "");
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let err = config_from(&[("JWT_SECRET", "too-short")]).unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn production_requires_an_explicit_jwt_secret() {
        let err = config_from(&[("APP_ENV", "production")]).unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn development_generates_and_keeps_a_secret_in_the_data_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let data = data.to_str().expect("utf-8");
        let first = config_from(&[("DATA_DIR", data)]).expect("valid");
        let second = config_from(&[("DATA_DIR", data)]).expect("valid");
        assert!(first.jwt_secret.expose_secret().len() >= MIN_JWT_SECRET_BYTES);
        assert_eq!(
            first.jwt_secret.expose_secret(),
            second.jwt_secret.expose_secret()
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "soon"),
            ("ALLOW_REGISTRATION", "maybe"),
            ("LEPTOS_SITE_ADDR", "localhost"),
            ("PASSWORD_MIN_LENGTH", "4"),
            ("ARGON2_MEMORY_KIB", "1"),
            ("DATABASE_URL", "mysql://localhost/db"),
            ("BACKEND_CORS_ORIGINS", "not an origin"),
            ("APP_ENV", "staging"),
            ("ADMIN_EMAIL", "not-an-email"),
            ("SESSION_IDLE_DAYS", "0"),
            ("SESSION_MAX_DAYS", "forever"),
            ("LOGIN_MAX_FAILURES", "-1"),
            ("LOGIN_WINDOW_MINUTES", "0"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("AUDIT_RETENTION_DAYS", "ninety"),
            ("MAINTENANCE_INTERVAL_SECONDS", "0"),
            ("AUTH_CACHE_SECONDS", "3601"),
            ("AUTH_CACHE_SECONDS", "-1"),
            ("AUTH_CACHE_ENTRIES", "0"),
            ("LOG_FORMAT", "xml"),
            ("METRICS_ADDR", "localhost"),
            ("METRICS_ADDR", "127.0.0.1:3000"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "0"),
            ("SHUTDOWN_TIMEOUT_SECONDS", "soon"),
        ] {
            let err = config_from(&[("JWT_SECRET", SECRET), (var, value)]).unwrap_err();
            assert_eq!(err.variable, var, "{var}={value}");
        }
    }

    #[test]
    fn the_session_idle_timeout_keeps_its_older_name() {
        let legacy = config_from(&[("JWT_SECRET", SECRET), ("REFRESH_TOKEN_EXPIRE_DAYS", "3")])
            .expect("valid");
        assert_eq!(legacy.session_idle, Duration::from_secs(3 * 86_400));
        let both = config_from(&[
            ("JWT_SECRET", SECRET),
            ("REFRESH_TOKEN_EXPIRE_DAYS", "3"),
            ("SESSION_IDLE_DAYS", "3"),
        ])
        .expect("the same value twice is fine");
        assert_eq!(both.session_idle, Duration::from_secs(3 * 86_400));
        let err = config_from(&[
            ("JWT_SECRET", SECRET),
            ("REFRESH_TOKEN_EXPIRE_DAYS", "3"),
            ("SESSION_IDLE_DAYS", "5"),
        ])
        .unwrap_err();
        assert_eq!(err.variable, "SESSION_IDLE_DAYS");
    }

    #[test]
    fn limits_accept_zero_for_unlimited_and_proxies_accept_addresses() {
        let config = config_from(&[
            ("JWT_SECRET", SECRET),
            ("LOGIN_MAX_FAILURES", "0"),
            ("REGISTRATION_MAX_PER_IP_PER_HOUR", "0"),
            ("AUDIT_RETENTION_DAYS", "0"),
            ("TRUSTED_PROXIES", " 10.1.2.3/8 ,192.168.0.7, ::1 "),
        ])
        .expect("valid");
        assert_eq!(config.throttle.login_max_failures, 0);
        assert_eq!(config.throttle.registration_max_per_ip_per_hour, 0);
        assert_eq!(config.audit_retention, None);
        let proxies: Vec<String> = config
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.168.0.7/32", "::1/128"]);
    }

    #[test]
    fn database_url_debug_output_masks_the_password() {
        let url = DatabaseUrl::new("postgres://app:hunter2secret@db.internal:5432/auth");
        let shown = format!("{url:?} {url}");
        assert!(!shown.contains("hunter2secret"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:5432/auth"));
        for (url, masked) in [
            ("postgres://app:p@ss@db/auth", "postgres://app:***@db/auth"),
            (
                "postgres://db/auth?user=app&password=hunter2&sslmode=require",
                "postgres://db/auth?user=app&password=***&sslmode=require",
            ),
            (
                "sqlite://data/leptos-auth.db",
                "sqlite://data/leptos-auth.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
        ] {
            assert_eq!(DatabaseUrl::new(url).masked(), masked);
        }
        let config = config_from(&[
            ("JWT_SECRET", SECRET),
            ("DATABASE_URL", "postgres://app:hunter2secret@db/auth"),
        ])
        .expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2secret"));
        assert!(!debug.contains(SECRET));
    }
}

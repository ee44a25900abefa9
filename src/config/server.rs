//! Where and how the server runs: the environment, the data folder, HTTP
//! (listen address, cookies, CORS, proxies), logs, metrics, shutdown and the
//! periodic maintenance.

use super::setting::{comma_separated, days, declare, display, parsed, Env, Setting, DAY};
use super::ConfigError;
use std::{net::SocketAddr, path::PathBuf, time::Duration};

/// Where the app runs. Production refuses insecure shortcuts (a generated JWT secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Laptop and test default: missing secrets are generated.
    Development,
    /// Every secret must be given explicitly.
    Production,
}

impl AppEnv {
    /// The name used in `APP_ENV`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppEnv::Development => "development",
            AppEnv::Production => "production",
        }
    }
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
        let lookup = |name: &str| std::env::var(name).ok();
        let env = Env::new(&lookup);
        let app_env = APP_ENV.read(&env).unwrap_or(AppEnv::Development);
        log_format(&env, app_env).unwrap_or(LogFormat::default_for(app_env))
    }

    fn default_for(app_env: AppEnv) -> LogFormat {
        match app_env {
            AppEnv::Development => LogFormat::Pretty,
            AppEnv::Production => LogFormat::Json,
        }
    }
}

declare! {
    /// `development` or `production`; production refuses to start without
    /// `JWT_SECRET` and `PUBLIC_URL`.
    APP_ENV: AppEnv = Setting::text(
        Some(|| AppEnv::Development),
        |raw| match raw.trim() {
            "development" | "dev" => Ok(AppEnv::Development),
            "production" | "prod" => Ok(AppEnv::Production),
            other => Err(format!("expected 'development' or 'production', got {other:?}")),
        },
        |env| env.as_str().to_owned(),
    );
    /// Folder for the default SQLite database, the development JWT secret
    /// and the mail outbox.
    DATA_DIR: PathBuf = Setting::text(
        Some(|| PathBuf::from("data")),
        |raw| Ok(PathBuf::from(raw)),
        |dir| dir.display().to_string(),
    );
    /// Comma-separated CIDRs or addresses of the reverse proxies whose
    /// `X-Forwarded-For` is believed.
    TRUSTED_PROXIES: Vec<ipnet::IpNet> =
        Setting::text(Some(Vec::new), parse_networks, comma_separated);
    /// Audit events older than this many days are deleted (`None`: kept forever).
    AUDIT_RETENTION_DAYS: Option<Duration> = Setting::whole(
        90,
        0..=36_500,
        |n| (n > 0).then(|| days(n)),
        |retention| retention.map_or(0, |d| d.as_secs() / DAY),
    )
    .zero_means("keeps events forever");
    /// How often expired sessions, old throttling counters and old audit
    /// events are purged.
    MAINTENANCE_INTERVAL_SECONDS: Duration = Setting::seconds(3600, 1..=7 * DAY);
    /// Session cookies are `Secure` with the `__Host-` prefix; false only for
    /// plain http under a host name other than localhost.
    COOKIE_SECURE: bool = Setting::flag(true);
    /// Comma-separated origins allowed to call the API from browsers; CORS is
    /// off when empty.
    BACKEND_CORS_ORIGINS: Vec<String> =
        Setting::text(Some(Vec::new), parse_origins, comma_separated);
    /// The listen address.
    LEPTOS_SITE_ADDR: SocketAddr =
        Setting::text(Some(|| SocketAddr::from(([127, 0, 0, 1], 3000))), parsed, display);
    /// `pretty` or `json`; the default follows `APP_ENV` (see [`log_format`]).
    LOG_FORMAT: LogFormat = Setting::text(
        None,
        |raw| match raw.trim().to_ascii_lowercase().as_str() {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("expected 'pretty' or 'json', got {other:?}")),
        },
        |format| format.as_str().to_owned(),
    );
    /// Address of a separate listener serving Prometheus metrics at
    /// `/metrics`; unset: no metrics (checked by [`metrics_addr`]).
    METRICS_ADDR: Option<SocketAddr> = Setting::text(
        Some(|| None),
        |raw| {
            raw.trim()
                .parse()
                .map(Some)
                .map_err(|e| format!("{raw:?} is not valid: {e} (expected e.g. 127.0.0.1:9100)"))
        },
        |addr| addr.map(|a| a.to_string()).unwrap_or_default(),
    );
    /// On SIGTERM or Ctrl-C, how long requests in flight may take before the
    /// server stops anyway.
    SHUTDOWN_TIMEOUT_SECONDS: Duration = Setting::seconds(20, 1..=3600);
}

/// `LOG_FORMAT`; unset: pretty in development, JSON in production.
pub fn log_format(env: &Env<'_>, app_env: AppEnv) -> Result<LogFormat, ConfigError> {
    Ok(LOG_FORMAT
        .get(env)?
        .unwrap_or(LogFormat::default_for(app_env)))
}

/// `METRICS_ADDR`, which must not take the site's own listener.
pub fn metrics_addr(
    env: &Env<'_>,
    site_addr: SocketAddr,
) -> Result<Option<SocketAddr>, ConfigError> {
    let metrics_addr = METRICS_ADDR.read(env)?;
    // Port 0 twice (tests) means two different free ports.
    if metrics_addr.is_some_and(|addr| addr == site_addr && addr.port() != 0) {
        return Err(ConfigError::new(
            METRICS_ADDR.name,
            "must differ from LEPTOS_SITE_ADDR (metrics get a listener of their own)",
        ));
    }
    Ok(metrics_addr)
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

/// A comma-separated list of http(s) origins, without trailing slashes.
fn parse_origins(raw: &str) -> Result<Vec<String>, String> {
    raw.split(',')
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .map(|o| {
            if (o.starts_with("http://") || o.starts_with("https://"))
                && http::HeaderValue::from_str(&o).is_ok()
            {
                Ok(o)
            } else {
                Err(format!("{o:?} is not an http(s) origin"))
            }
        })
        .collect()
}

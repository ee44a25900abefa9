//! The configuration as a whole: defaults, errors naming their variable,
//! `config check`'s list, and the documentation of every variable.

use super::*;
use std::collections::HashMap;

/// The configuration of these variables, with a `DATA_ENCRYPTION_KEY` unless
/// they name it (blank: unset), so no test writes a development key into
/// the working directory by accident.
fn config_from(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.entry("DATA_ENCRYPTION_KEY".to_owned())
        .or_insert_with(|| DATA_KEY.to_owned());
    Config::from_lookup(move |k| map.get(k).cloned())
}

const SECRET: &str = "0123456789abcdef0123456789abcdef0123";
const DATA_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn the_data_encryption_key_is_32_bytes_in_hex_or_base64() {
    use base64::Engine;
    let bytes = [7u8; 32];
    for text in [
        hex::encode(bytes),
        hex::encode(bytes).to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ] {
        let config = config_from(&[("JWT_SECRET", SECRET), ("DATA_ENCRYPTION_KEY", &text)])
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(config.factors.data_keys.current.bytes(), &bytes);
    }
    for bad in [
        "short",
        &hex::encode([7u8; 31]),
        &base64::engine::general_purpose::STANDARD.encode([7u8; 33]),
    ] {
        let err = config_from(&[("JWT_SECRET", SECRET), ("DATA_ENCRYPTION_KEY", bad)]).unwrap_err();
        assert_eq!(err.variable, "DATA_ENCRYPTION_KEY", "{bad}");
        assert!(!err.to_string().contains(bad), "the value is not echoed");
    }
    // Retired keys: a list of the same; never the current key.
    let old = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    let config = config_from(&[
        ("JWT_SECRET", SECRET),
        (
            "DATA_ENCRYPTION_OLD_KEYS",
            &format!(" {old} , {} ", hex::encode([8u8; 32])),
        ),
    ])
    .expect("valid");
    assert_eq!(config.factors.data_keys.old.len(), 2);
    let err = config_from(&[
        ("JWT_SECRET", SECRET),
        ("DATA_ENCRYPTION_OLD_KEYS", DATA_KEY),
    ])
    .unwrap_err();
    assert_eq!(err.variable, "DATA_ENCRYPTION_OLD_KEYS");
    let err =
        config_from(&[("JWT_SECRET", SECRET), ("DATA_ENCRYPTION_OLD_KEYS", "nope")]).unwrap_err();
    assert_eq!(err.variable, "DATA_ENCRYPTION_OLD_KEYS");
    // `config check` never prints a key.
    let printed = config.settings();
    for (name, value) in &printed {
        if name.starts_with("DATA_ENCRYPTION") {
            assert_eq!(value, "***", "{name}");
        }
    }
}

#[test]
fn production_requires_a_data_encryption_key_and_development_keeps_one() {
    let err = config_from(&[
        ("JWT_SECRET", SECRET),
        ("APP_ENV", "production"),
        ("PUBLIC_URL", "https://auth.example.com"),
        ("DATA_ENCRYPTION_KEY", ""),
    ])
    .unwrap_err();
    assert_eq!(err.variable, "DATA_ENCRYPTION_KEY");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8");
    let unset = [
        ("JWT_SECRET", SECRET),
        ("DATA_DIR", data),
        ("DATA_ENCRYPTION_KEY", ""),
    ];
    let first = config_from(&unset).expect("valid");
    let second = config_from(&unset).expect("valid");
    assert_eq!(
        first.factors.data_keys.current,
        second.factors.data_keys.current
    );
    assert_ne!(first.factors.data_keys.current.bytes(), &[0u8; 32]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("data/data-encryption-key"))
            .expect("key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "only the owner reads it");
    }
}

#[test]
fn two_factor_settings_have_their_defaults_and_bounds() {
    let config = config_from(&[("JWT_SECRET", SECRET)]).expect("valid");
    assert_eq!(config.factors.totp_issuer, "leptos-auth");
    assert_eq!(config.factors.step_up, Duration::from_secs(600));
    assert!(!config.factors.require_for_admins);
    for (var, value) in [
        ("TOTP_ISSUER", "Acme: Inc"),
        ("STEP_UP_MINUTES", "0"),
        ("STEP_UP_MINUTES", "1441"),
        ("REQUIRE_2FA_FOR_ADMINS", "sometimes"),
    ] {
        let err = config_from(&[("JWT_SECRET", SECRET), (var, value)]).unwrap_err();
        assert_eq!(err.variable, var, "{var}={value}");
    }
}

#[test]
fn a_postgres_pool_has_ten_connections_unless_told() {
    let url = ("DATABASE_URL", "postgres://app@db/app");
    let config = config_from(&[("JWT_SECRET", SECRET), url]).expect("valid");
    assert_eq!(config.database.max_connections, 10);
    let config = config_from(&[
        ("JWT_SECRET", SECRET),
        url,
        ("DATABASE_MAX_CONNECTIONS", "3"),
    ])
    .expect("valid");
    assert_eq!(config.database.max_connections, 3);
}

#[test]
fn defaults_describe_a_local_sqlite_instance() {
    let config = config_from(&[("JWT_SECRET", SECRET)]).expect("valid");
    assert_eq!(config.database.url.expose(), "sqlite://data/leptos-auth.db");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert_eq!(config.database.max_connections as usize, 2 * cores);
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
    assert_eq!(config.mail.public_url, "http://localhost:3000");
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
    assert_eq!(any.mail.public_url, "http://localhost:8080");
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
    let config = config_from(&[("JWT_SECRET", SECRET), ("LOG_FORMAT", " json ")]).expect("valid");
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
    let legacy =
        config_from(&[("JWT_SECRET", SECRET), ("REFRESH_TOKEN_EXPIRE_DAYS", "3")]).expect("valid");
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

/// Variables `config check` prints that other code reads: the site folder
/// (Leptos, see `startup::leptos_options`) and the log filter (`telemetry`).
const READ_ELSEWHERE: &[&str] = &["LEPTOS_SITE_ROOT", "RUST_LOG"];

/// In `.env.example` for `docker compose` (docker-compose.yml) only; the
/// server never reads it.
const COMPOSE_ONLY: &[&str] = &["POSTGRES_PASSWORD"];

fn project_file(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The variables of the README's configuration table (a row may name
/// several: "`JWT_ISSUER`, `JWT_AUDIENCE`").
fn readme_table() -> Vec<String> {
    let readme = project_file("README.md");
    let section = readme
        .split("\n## Configuration\n")
        .nth(1)
        .and_then(|rest| rest.split("\n#").next())
        .expect("a Configuration section");
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split(" |").next())
        .flat_map(|cell| cell.split(", "))
        .map(|name| name.trim_matches('`').to_owned())
        .collect()
}

/// The `NAME=value` lines of `.env.example`, with the value when the line
/// is active (it gives the default) and `None` when it is commented out (an
/// example, or a default that depends on the machine or other settings).
fn env_example() -> Vec<(String, Option<String>)> {
    project_file(".env.example")
        .lines()
        .filter_map(|line| {
            let (active, line) = match line.strip_prefix('#') {
                Some(commented) => (false, commented.trim_start()),
                None => (true, line),
            };
            let (name, value) = line.split_once('=')?;
            let is_name = name.starts_with(|c: char| c.is_ascii_uppercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            is_name.then(|| (name.to_owned(), active.then(|| value.to_owned())))
        })
        .collect()
}

#[test]
fn every_declared_variable_is_documented_once_and_nothing_undeclared_is() {
    let declared: Vec<&str> = SETTINGS
        .iter()
        .map(|row| row.name())
        .chain(READ_ELSEWHERE.iter().copied())
        .collect();
    let older_names: Vec<&str> = SETTINGS.iter().filter_map(|row| row.older_name()).collect();
    let readme = readme_table();
    let example: Vec<String> = env_example().into_iter().map(|(name, _)| name).collect();
    for name in &declared {
        let in_readme = readme.iter().filter(|n| n == name).count();
        assert_eq!(in_readme, 1, "{name} in the README's configuration table");
        let in_example = example.iter().filter(|n| n == name).count();
        assert_eq!(in_example, 1, "{name} in .env.example");
    }
    let known = |name: &str| declared.contains(&name) || older_names.contains(&name);
    for name in &readme {
        assert!(
            known(name),
            "the README documents {name}, which is not declared"
        );
    }
    for name in &example {
        assert!(
            known(name) || COMPOSE_ONLY.contains(&name.as_str()),
            ".env.example sets {name}, which is not declared"
        );
    }
}

#[test]
fn the_values_env_example_sets_are_the_defaults() {
    let defaults = config_from(&[("JWT_SECRET", SECRET)])
        .expect("valid")
        .settings();
    for (name, value) in env_example() {
        let Some(value) = value else { continue };
        let default = match name.as_str() {
            "RUST_LOG" => crate::telemetry::DEFAULT_FILTER.to_owned(),
            _ => defaults
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{name} is not declared")),
        };
        assert_eq!(value, default, "{name} in .env.example");
    }
}

#[test]
fn declarations_have_distinct_names_and_a_line_of_documentation() {
    let names: Vec<&str> = SETTINGS
        .iter()
        .flat_map(|row| std::iter::once(row.name()).chain(row.older_name()))
        .collect();
    let unique: std::collections::HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    for row in SETTINGS {
        let doc = row.doc();
        assert!(
            !doc.is_empty() && !doc.contains('\n'),
            "{}: {doc:?}",
            row.name()
        );
    }
}

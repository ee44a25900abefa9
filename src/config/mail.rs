//! Outgoing mail: the SMTP server, the sender, the links in messages and
//! whether addresses must be verified.

use super::setting::{declare, Env, Setting};
use super::{AppEnv, ConfigError, SecretUrl};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

/// The sender when no SMTP server is configured (messages go to the outbox).
const DEFAULT_MAIL_FROM: &str = "leptos-auth <no-reply@localhost>";

declare! {
    /// `smtps://user:password@host:465`, `smtp://user:password@host:587?tls=required`
    /// or `smtp://relay:25`; unset: messages go to the outbox folder.
    SMTP_URL: Option<SecretUrl> = Setting::text(
        Some(|| None),
        parse_smtp_url,
        |url| url.as_ref().map(SecretUrl::masked).unwrap_or_default(),
    );
    /// The sender, `Name <address>` or `address`; required with `SMTP_URL`
    /// (see [`MailSettings::read`]).
    MAIL_FROM: String = Setting::text(
        None,
        |raw| {
            let from = raw.trim().to_owned();
            from.parse::<lettre::message::Mailbox>().map_err(|e| {
                format!(
                    "{from:?} is not a valid sender ({e}); \
                     expected e.g. \"leptos-auth <no-reply@example.com>\""
                )
            })?;
            Ok(from)
        },
        String::clone,
    );
    /// Where users reach the site, for the links in emails; required in
    /// production (see [`MailSettings::read`]).
    PUBLIC_URL: String = Setting::text(None, parse_public_url, String::clone);
    /// Refuse sign-in until the address is verified.
    REQUIRE_EMAIL_VERIFICATION: bool = Setting::flag(false);
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
    /// (required in production; default `http://localhost:<port>` for a
    /// loopback or unspecified `LEPTOS_SITE_ADDR`, else `http://<LEPTOS_SITE_ADDR>`).
    pub public_url: String,
    /// `REQUIRE_EMAIL_VERIFICATION` (default false): refuse sign-in until the
    /// address is verified.
    pub require_verification: bool,
    /// `<DATA_DIR>/outbox`: where messages are written without `SMTP_URL`.
    pub outbox_dir: PathBuf,
}

impl MailSettings {
    /// The mail settings; the defaults follow `APP_ENV`, `DATA_DIR` and the
    /// site's address.
    pub fn read(
        env: &Env<'_>,
        app_env: AppEnv,
        data_dir: &Path,
        site_addr: SocketAddr,
    ) -> Result<MailSettings, ConfigError> {
        let smtp_url = SMTP_URL.read(env)?;
        let from = match (MAIL_FROM.get(env)?, &smtp_url) {
            (Some(from), _) => from,
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    MAIL_FROM.name,
                    "must be set with SMTP_URL (e.g. \"leptos-auth <no-reply@example.com>\")",
                ))
            }
            (None, None) => DEFAULT_MAIL_FROM.to_owned(),
        };
        let public_url = match PUBLIC_URL.get(env)? {
            Some(url) => url,
            None if app_env == AppEnv::Production => {
                return Err(ConfigError::new(
                    PUBLIC_URL.name,
                    "must be set in production: the address users open, for links in emails (e.g. https://auth.example.com)",
                ))
            }
            // An unspecified listen address is not a place to send people,
            // and a loopback one is named `localhost`: passkeys need a domain
            // name (WebAuthn refuses an IP address as the relying party).
            None if site_addr.ip().is_unspecified() || site_addr.ip().is_loopback() => {
                format!("http://localhost:{}", site_addr.port())
            }
            None => format!("http://{site_addr}"),
        };
        Ok(MailSettings {
            smtp_url,
            from,
            public_url,
            require_verification: REQUIRE_EMAIL_VERIFICATION.read(env)?,
            outbox_dir: data_dir.join("outbox"),
        })
    }
}

fn parse_smtp_url(raw: &str) -> Result<Option<SecretUrl>, String> {
    let url = SecretUrl::new(raw.trim());
    let text = url.expose();
    if !(text.starts_with("smtp://") || text.starts_with("smtps://")) {
        return Err(
            "must start with smtp:// or smtps:// (e.g. smtps://user:password@mail.example.com:465)"
                .to_owned(),
        );
    }
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(text)
        .map_err(|_| format!("{} is not a valid SMTP URL", url.masked()))?;
    Ok(Some(url))
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/').to_owned();
    let valid = (url.starts_with("http://") || url.starts_with("https://"))
        && url.split_once("://").is_some_and(|(_, rest)| {
            !rest.is_empty() && !rest.contains(['?', '#', ' ', '"', '<', '>'])
        });
    if !valid {
        return Err(format!(
            "{url:?} is not an http(s) URL (e.g. https://auth.example.com)"
        ));
    }
    Ok(url)
}

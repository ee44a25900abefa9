//! Outgoing mail transports: SMTP with `lettre` when `SMTP_URL` is set, or
//! `.eml` files in the outbox folder (`<DATA_DIR>/outbox`) otherwise, so
//! development works offline. This module sends one message once; queueing,
//! retries and giving up belong to the durable outbox
//! (`services::outbox`), which keeps messages in the database until they
//! are delivered.

use crate::config::{AppEnv, MailSettings};
use anyhow::Context;
use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use serde::{Deserialize, Serialize};
use std::{path::PathBuf, time::Duration};

/// How long one SMTP exchange may take.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One message: plain text plus a simple HTML alternative.
#[derive(Clone, Serialize, Deserialize)]
pub struct MailMessage {
    /// The recipient's address.
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The link the message carries, logged in development so the flow
    /// works from the terminal too. Never logged with SMTP or in production.
    pub link: Option<String>,
}

impl std::fmt::Debug for MailMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body holds a secret link: never print it.
        f.debug_struct("MailMessage")
            .field("to", &mask_address(&self.to))
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// `alice@example.com` -> `a***@example.com`: enough to tell messages
/// apart in the logs, without writing full addresses there.
pub fn mask_address(address: &str) -> String {
    match address.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_owned(),
    }
}

/// Where messages go: built once from the settings, shared by the outbox's
/// deliveries.
#[derive(Clone)]
pub struct Transport {
    kind: TransportKind,
    from: Mailbox,
}

#[derive(Clone)]
enum TransportKind {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder; `log_links` in development only.
    Folder {
        dir: PathBuf,
        log_links: bool,
    },
}

/// Why a message was not sent.
#[derive(Debug)]
pub enum Failure {
    /// Worth another try (connection refused, 4xx reply, full disk...).
    Transient(anyhow::Error),
    /// The message itself was refused (5xx reply, unusable address):
    /// retrying changes nothing.
    Permanent(anyhow::Error),
}

impl Transport {
    /// The transport the settings describe.
    pub fn from_settings(settings: &MailSettings, app_env: AppEnv) -> anyhow::Result<Transport> {
        let from: Mailbox = settings
            .from
            .parse()
            .context("MAIL_FROM is not a valid sender")?;
        let kind = match &settings.smtp_url {
            Some(url) => {
                let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .with_context(|| format!("SMTP_URL {} is not usable", url.masked()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                tracing::info!(smtp = %url.masked(), "sending mail over SMTP");
                TransportKind::Smtp(smtp)
            }
            None => {
                let dir = settings.outbox_dir.clone();
                tracing::info!(
                    outbox = %dir.display(),
                    "SMTP_URL is not set: messages are written to the outbox folder"
                );
                if app_env == AppEnv::Production {
                    tracing::warn!("no SMTP_URL in production: nobody will receive verification or password-reset messages");
                }
                TransportKind::Folder {
                    dir,
                    log_links: app_env == AppEnv::Development,
                }
            }
        };
        Ok(Transport { kind, from })
    }

    /// The domain of the sender address (for `Message-ID`s).
    pub fn sender_domain(&self) -> String {
        self.from.email.domain().to_owned()
    }

    /// Sends one message once, with this `Message-ID`.
    pub async fn send(&self, message: &MailMessage, message_id: &str) -> Result<(), Failure> {
        let email = build(&self.from, message, message_id).map_err(Failure::Permanent)?;
        send_once(&self.kind, &email, message).await
    }
}

/// Builds the MIME message: `multipart/alternative` with text and HTML.
fn build(from: &Mailbox, message: &MailMessage, message_id: &str) -> anyhow::Result<Message> {
    let to: Mailbox = message
        .to
        .parse()
        .context("the recipient is not a valid address")?;
    Message::builder()
        .message_id(Some(message_id.to_owned()))
        .from(from.clone())
        .to(to)
        .subject(message.subject.as_str())
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(message.text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(message.html.clone()),
                ),
        )
        .context("building the message")
}

async fn send_once(
    transport: &TransportKind,
    email: &Message,
    message: &MailMessage,
) -> Result<(), Failure> {
    match transport {
        TransportKind::Smtp(smtp) => match smtp.send(email.clone()).await {
            Ok(_) => {
                tracing::info!(
                    to = mask_address(&message.to),
                    subject = message.subject,
                    "message sent"
                );
                Ok(())
            }
            Err(err) if err.is_permanent() => Err(Failure::Permanent(err.into())),
            Err(err) => Err(Failure::Transient(err.into())),
        },
        TransportKind::Folder { dir, log_links } => {
            let path = write_to_outbox(dir, email)
                .await
                .map_err(Failure::Transient)?;
            if *log_links {
                tracing::info!(
                    to = mask_address(&message.to),
                    subject = message.subject,
                    link = message.link.as_deref().unwrap_or(""),
                    file = %path.display(),
                    "message written to the outbox"
                );
            } else {
                tracing::info!(
                    to = mask_address(&message.to),
                    subject = message.subject,
                    file = %path.display(),
                    "message written to the outbox"
                );
            }
            Ok(())
        }
    }
}

/// Writes the message as `<UTC time>-<random>.eml`: names sort by time.
async fn write_to_outbox(dir: &std::path::Path, email: &Message) -> anyhow::Result<PathBuf> {
    use rand::Rng;
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("creating the outbox folder {}", dir.display()))?;
    let name = format!(
        "{}-{:08x}.eml",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
        rand::thread_rng().gen::<u32>()
    );
    let path = dir.join(name);
    tokio::fs::write(&path, email.formatted())
        .await
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_masked_in_logs() {
        assert_eq!(mask_address("alice@example.com"), "a***@example.com");
        assert_eq!(mask_address("nonsense"), "***");
    }

    #[test]
    fn messages_have_text_and_html_parts_and_debug_hides_the_body() {
        let message = MailMessage {
            to: "alice@example.com".into(),
            subject: "Reset your password".into(),
            text: "Open https://example.com/reset-password?token=secret".into(),
            html: "<p><a href=\"https://example.com/reset-password?token=secret\">Reset</a></p>"
                .into(),
            link: Some("https://example.com/reset-password?token=secret".into()),
        };
        let from: Mailbox = "leptos-auth <no-reply@example.com>".parse().expect("from");
        let formatted = String::from_utf8(
            build(&from, &message, "<m1@example.com>")
                .expect("build")
                .formatted(),
        )
        .expect("utf8");
        assert!(formatted.contains("multipart/alternative"));
        assert!(formatted.contains("text/plain"));
        assert!(formatted.contains("text/html"));
        assert!(formatted.contains("Subject: Reset your password"));
        assert!(
            formatted.contains("Message-ID: <m1@example.com>"),
            "{formatted}"
        );
        let debug = format!("{message:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("alice@"),
            "{debug}"
        );
    }
}

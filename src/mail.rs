//! Outgoing mail, off the request path. Services hand a [`MailMessage`] to
//! the [`Mailer`], which queues it (bounded) and returns at once; a
//! background task delivers it with `lettre` over SMTP when `SMTP_URL` is set,
//! or writes it as an `.eml` file into the outbox folder (`<DATA_DIR>/outbox`)
//! otherwise, so development works offline. A failed delivery is retried with
//! a growing delay, then logged; it never reaches the user as an error.

use crate::config::{AppEnv, MailSettings};
use anyhow::Context;
use lettre::{
    message::{header::ContentType, Mailbox, MultiPart, SinglePart},
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinSet,
};

/// Messages waiting to be sent; beyond this, new ones are dropped (and the
/// drop logged) rather than making requests wait.
const QUEUE_CAPACITY: usize = 1_000;
/// Deliveries in progress at once.
const CONCURRENT_DELIVERIES: usize = 4;
/// Attempts per message before giving up on it.
pub const ATTEMPTS: u32 = 5;
/// Delay before the first retry; it doubles after each failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// How long one SMTP exchange may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// One message: plain text plus a simple HTML alternative.
#[derive(Clone)]
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

/// Where messages go.
#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `.eml` files in a folder; `log_links` in development only.
    Outbox {
        dir: PathBuf,
        log_links: bool,
    },
}

/// Work that prepares a message (for example storing the token of its link)
/// before it is delivered; `None`: nothing to send.
type Compose = std::pin::Pin<Box<dyn std::future::Future<Output = Option<MailMessage>> + Send>>;

enum Command {
    Send(Box<MailMessage>),
    Compose(Compose),
    /// Answered once every message queued before it was delivered or given up on.
    Flush(oneshot::Sender<()>),
}

/// The sending side: cheap to clone, never fails or blocks the caller.
#[derive(Clone)]
pub struct Mailer {
    queue: mpsc::Sender<Command>,
}

impl Mailer {
    /// Builds the transport the settings describe and starts the background
    /// sender (needs a Tokio runtime).
    pub fn start(settings: &MailSettings, app_env: AppEnv) -> anyhow::Result<Mailer> {
        let from: Mailbox = settings
            .from
            .parse()
            .context("MAIL_FROM is not a valid sender")?;
        let transport = match &settings.smtp_url {
            Some(url) => {
                let smtp = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .with_context(|| format!("SMTP_URL {} is not usable", url.masked()))?
                    .timeout(Some(SMTP_TIMEOUT))
                    .build();
                tracing::info!(smtp = %url.masked(), "sending mail over SMTP");
                Transport::Smtp(smtp)
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
                Transport::Outbox {
                    dir,
                    log_links: app_env == AppEnv::Development,
                }
            }
        };
        let (queue, commands) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(deliver_all(Arc::new(transport), from, commands));
        Ok(Mailer { queue })
    }

    /// Queues a message. Never waits and never fails: a full queue or a
    /// stopped sender is logged and the request goes on.
    pub fn send(&self, message: MailMessage) {
        let to = mask_address(&message.to);
        let subject = message.subject.clone();
        if let Err(err) = self.queue.try_send(Command::Send(Box::new(message))) {
            crate::metrics::mail_message("dropped");
            tracing::error!(to, subject, error = %err, "mail queue full or stopped: message dropped");
        }
    }

    /// Queues the preparation of a message as well as its delivery: a
    /// request that sends mail for some inputs and not for others (a password
    /// reset for an address that may have no account) then does the same
    /// work and takes the same time either way.
    pub fn send_later(
        &self,
        compose: impl std::future::Future<Output = Option<MailMessage>> + Send + 'static,
    ) {
        if let Err(err) = self.queue.try_send(Command::Compose(Box::pin(compose))) {
            crate::metrics::mail_message("dropped");
            tracing::error!(error = %err, "mail queue full or stopped: message dropped");
        }
    }

    /// Waits until every message queued so far has been delivered or given up
    /// on (shutdown, and tests that read what was sent).
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn deliver_all(
    transport: Arc<Transport>,
    from: Mailbox,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut deliveries = JoinSet::new();
    while let Some(command) = commands.recv().await {
        match command {
            Command::Send(message) => {
                while deliveries.len() >= CONCURRENT_DELIVERIES {
                    deliveries.join_next().await;
                }
                deliveries.spawn(deliver(transport.clone(), from.clone(), *message));
            }
            Command::Compose(compose) => {
                while deliveries.len() >= CONCURRENT_DELIVERIES {
                    deliveries.join_next().await;
                }
                let (transport, from) = (transport.clone(), from.clone());
                deliveries.spawn(async move {
                    if let Some(message) = compose.await {
                        deliver(transport, from, message).await;
                    }
                });
            }
            Command::Flush(done) => {
                while deliveries.join_next().await.is_some() {}
                let _ = done.send(());
            }
        }
    }
    while deliveries.join_next().await.is_some() {}
}

/// Builds the MIME message: `multipart/alternative` with text and HTML.
fn build(from: &Mailbox, message: &MailMessage) -> anyhow::Result<Message> {
    let to: Mailbox = message
        .to
        .parse()
        .context("the recipient is not a valid address")?;
    Message::builder()
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

/// Delivers one message, retrying transient failures with a doubling delay.
async fn deliver(transport: Arc<Transport>, from: Mailbox, message: MailMessage) {
    let to = mask_address(&message.to);
    let subject = message.subject.as_str();
    let email = match build(&from, &message) {
        Ok(email) => email,
        Err(err) => {
            crate::metrics::mail_message("failed");
            tracing::error!(to, subject, error = %err, "message not sent");
            return;
        }
    };
    let mut delay = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        match send_once(&transport, &email, &message).await {
            Ok(()) => {
                crate::metrics::mail_message("sent");
                return;
            }
            Err(Failure::Permanent(err)) => {
                crate::metrics::mail_message("failed");
                tracing::error!(to, subject, error = %err, "message refused: not retrying");
                return;
            }
            Err(Failure::Transient(err)) if attempt < ATTEMPTS => {
                tracing::warn!(to, subject, attempt, retry_in_seconds = delay.as_secs(), error = %err, "message not sent yet: will retry");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(Failure::Transient(err)) => {
                crate::metrics::mail_message("failed");
                tracing::error!(to, subject, attempts = ATTEMPTS, error = %err, "message not sent: giving up");
            }
        }
    }
}

enum Failure {
    /// Worth another try (connection refused, 4xx reply, full disk...).
    Transient(anyhow::Error),
    /// The server refused the message itself (5xx): retrying changes nothing.
    Permanent(anyhow::Error),
}

async fn send_once(
    transport: &Transport,
    email: &Message,
    message: &MailMessage,
) -> Result<(), Failure> {
    match transport {
        Transport::Smtp(smtp) => match smtp.send(email.clone()).await {
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
        Transport::Outbox { dir, log_links } => {
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
        let formatted =
            String::from_utf8(build(&from, &message).expect("build").formatted()).expect("utf8");
        assert!(formatted.contains("multipart/alternative"));
        assert!(formatted.contains("text/plain"));
        assert!(formatted.contains("text/html"));
        assert!(formatted.contains("Subject: Reset your password"));
        let debug = format!("{message:?}");
        assert!(
            !debug.contains("secret") && !debug.contains("alice@"),
            "{debug}"
        );
    }
}

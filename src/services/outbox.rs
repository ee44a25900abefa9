//! The durable mail outbox. A message is a database row before the request
//! that sends it answers (in the same transaction as the link it carries),
//! so it survives the instance that queued it. A worker on every instance
//! claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; the
//! single writer on SQLite), delivers them through the [`Transport`], and
//! deletes them. A transient failure schedules another attempt (1 s,
//! doubling, at most [`MAX_RETRY_DELAY`] apart); after [`GIVE_UP_AFTER`], or
//! at once on a permanent refusal, the message is dropped with an error log
//! and `mail_messages_total{outcome="failed"}`. Each row has a stable
//! `Message-ID`: should an instance die after the server accepted a message
//! but before deleting its row, the copy sent once the lease has passed is
//! recognisably the same message.
//!
//! Payloads are sealed ([`crate::crypto::Sealer`], a key derived from
//! `JWT_SECRET`): a queued message can carry a live link, and the database
//! alone must not yield one.
//!
//! Anonymous requests (a password reset, a verification link asked for from
//! the sign-in page) queue a *link request* whatever the address: the request
//! does the same work whether an account exists or not. The worker finds the
//! account, and only then composes the message and stores its link, in one
//! transaction with the row.

use super::{ServiceError, ServiceResult};
use crate::{
    crypto::Sealer,
    mail::{Failure, MailMessage, Transport},
    repositories::{
        EmailTokenPurpose, NewEmailToken, NewOutboxMessage, OutboxRepository, OutboxRow,
    },
};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::{sync::Notify, task::JoinSet};

/// How long a claim holds a row: well beyond one SMTP exchange, so a row is
/// never delivered by two instances at once.
pub const LEASE: Duration = Duration::from_secs(3 * crate::mail::SMTP_TIMEOUT.as_secs());
/// How often an idle worker looks for due rows (queued by other instances,
/// or due for a retry). Rows queued on this instance wake it at once.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Rows claimed (and delivered concurrently) at a time.
const BATCH: i64 = 4;
/// Delay before the first retry; it doubles after each failure.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest delay between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(600);
/// A message not delivered this long after it was queued is given up.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// The label of the key that seals payloads.
const SEAL_KEY_LABEL: &str = "leptos-auth mail outbox v1";

/// A link an anonymous request asked for, composed by the worker.
#[derive(Clone, Serialize, Deserialize)]
pub struct LinkRequest {
    /// The address as asked for (canonical).
    pub email: String,
    pub purpose: EmailTokenPurpose,
    /// Where the request came from (for the audit log).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A link to store with the message that carries it.
#[derive(Debug, Clone)]
pub struct LinkToStore {
    pub user_id: i64,
    pub purpose: EmailTokenPurpose,
    pub token_hash: String,
    pub email: String,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl LinkToStore {
    /// The repository's view of it.
    pub fn as_new(&self) -> NewEmailToken<'_> {
        NewEmailToken {
            user_id: self.user_id,
            purpose: self.purpose,
            token_hash: &self.token_hash,
            email: &self.email,
            now: self.now,
            expires_at: self.expires_at,
        }
    }
}

/// What the worker makes of a [`LinkRequest`] for an existing account.
pub struct Composed {
    pub message: MailMessage,
    pub link: LinkToStore,
}

/// What a row holds, sealed.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Payload {
    Message { message: MailMessage },
    LinkRequest { request: LinkRequest },
}

/// The queueing side of the outbox, and its worker.
#[derive(Clone)]
pub struct Outbox {
    repo: Arc<dyn OutboxRepository>,
    sealer: Sealer,
    /// Wakes this instance's worker when a row is queued here.
    wake: Arc<Notify>,
    stopped: Arc<AtomicBool>,
    /// The right-hand side of `Message-ID`s (the sender's domain).
    domain: Arc<str>,
}

impl Outbox {
    /// An outbox over `repo`, sealing with a key derived from `secret`.
    pub fn new(repo: Arc<dyn OutboxRepository>, secret: &[u8], domain: &str) -> Self {
        Outbox {
            repo,
            sealer: Sealer::new(&crate::crypto::derive_key(secret, SEAL_KEY_LABEL)),
            wake: Arc::new(Notify::new()),
            stopped: Arc::new(AtomicBool::new(false)),
            domain: domain.into(),
        }
    }

    fn seal(&self, payload: &Payload) -> ServiceResult<Vec<u8>> {
        let json = serde_json::to_vec(payload)
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("encoding a message: {e}")))?;
        Ok(self.sealer.seal(&json))
    }

    fn open(&self, sealed: &[u8]) -> Option<Payload> {
        let json = self.sealer.open(sealed).ok()?;
        serde_json::from_slice(&json).ok()
    }

    fn new_message_id(&self) -> String {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        format!("<{}@{}>", hex::encode(bytes), self.domain)
    }

    async fn enqueue(
        &self,
        payload: &Payload,
        link: Option<NewEmailToken<'_>>,
    ) -> ServiceResult<()> {
        let sealed = self.seal(payload)?;
        let message_id = self.new_message_id();
        self.repo
            .enqueue(
                NewOutboxMessage {
                    message_id: &message_id,
                    payload: &sealed,
                    now: Utc::now(),
                },
                link,
            )
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Queues a message and, with `link`, stores the link it carries in the
    /// same transaction. Once this returns, the message will be delivered
    /// by some instance even if this one dies.
    pub async fn queue(
        &self,
        message: MailMessage,
        link: Option<NewEmailToken<'_>>,
    ) -> ServiceResult<()> {
        self.enqueue(&Payload::Message { message }, link).await
    }

    /// Queues a link request (see the module documentation).
    pub async fn queue_link_request(&self, request: LinkRequest) -> ServiceResult<()> {
        self.enqueue(&Payload::LinkRequest { request }, None).await
    }

    /// Waits until every message queued so far (on any instance) has been
    /// delivered or given up on; a message waiting for its next attempt is
    /// waited for too. Callers bound the wait (shutdown, the command line).
    pub async fn flush(&self) {
        let queued_by = Utc::now();
        loop {
            self.wake.notify_one();
            match self.repo.pending(queued_by).await {
                Ok(0) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(25)).await,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the mail outbox");
                    return;
                }
            }
        }
    }

    /// How many messages wait (the `mail_outbox_pending` gauge).
    pub async fn pending(&self) -> ServiceResult<i64> {
        Ok(self
            .repo
            .pending(Utc::now() + chrono::Duration::days(1))
            .await?)
    }

    /// Stops this instance's worker after the deliveries in progress; rows
    /// it has not claimed stay for other instances (or the next start).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Starts this instance's worker: it delivers due rows through
    /// `transport`, and turns link requests into messages with `compose`
    /// (`Ok(None)`: no account should get one; the row is dropped).
    pub fn spawn_worker<C, F>(
        &self,
        transport: Transport,
        compose: C,
    ) -> tokio::task::JoinHandle<()>
    where
        C: Fn(LinkRequest) -> F + Send + Sync + 'static,
        F: Future<Output = ServiceResult<Option<Composed>>> + Send + 'static,
    {
        let worker = Worker {
            outbox: self.clone(),
            transport,
            compose: Arc::new(compose),
        };
        tokio::spawn(worker.run())
    }
}

struct Worker<C> {
    outbox: Outbox,
    transport: Transport,
    compose: Arc<C>,
}

impl<C> Clone for Worker<C> {
    fn clone(&self) -> Self {
        Worker {
            outbox: self.outbox.clone(),
            transport: self.transport.clone(),
            compose: self.compose.clone(),
        }
    }
}

impl<C, F> Worker<C>
where
    C: Fn(LinkRequest) -> F + Send + Sync + 'static,
    F: Future<Output = ServiceResult<Option<Composed>>> + Send + 'static,
{
    async fn run(self) {
        let outbox = &self.outbox;
        while !outbox.stopped.load(Ordering::SeqCst) {
            let now = Utc::now();
            let lease_until = now + chrono::Duration::from_std(LEASE).unwrap_or_default();
            match outbox.repo.claim(now, lease_until, BATCH).await {
                Ok(rows) => {
                    let full = rows.len() as i64 == BATCH;
                    let mut deliveries = JoinSet::new();
                    for row in rows {
                        deliveries.spawn(self.clone().deliver(row));
                    }
                    while deliveries.join_next().await.is_some() {}
                    if full {
                        continue;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "could not claim messages from the mail outbox")
                }
            }
            tokio::select! {
                () = outbox.wake.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }

    /// Removes a row, logging (not failing) when the database refuses:
    /// the row is then delivered again once its lease has passed.
    async fn remove(&self, row: &OutboxRow) {
        if let Err(err) = self.outbox.repo.remove(row.id).await {
            tracing::error!(message_id = row.message_id, error = %err, "could not remove a message from the mail outbox");
        }
    }

    async fn retry(&self, row: &OutboxRow, error: &str) {
        let now = Utc::now();
        let delay = retry_delay(row.attempts);
        tracing::warn!(
            message_id = row.message_id,
            attempt = row.attempts,
            retry_in_seconds = delay.as_secs(),
            error,
            "message not sent yet: will retry"
        );
        let at = now + chrono::Duration::from_std(delay).unwrap_or_default();
        // Bounded: the error text of an SMTP reply or a driver.
        let error: String = error.chars().take(500).collect();
        if let Err(err) = self.outbox.repo.retry_at(row.id, at, &error).await {
            tracing::error!(message_id = row.message_id, error = %err, "could not schedule a retry");
        }
    }

    async fn give_up(&self, row: &OutboxRow, why: &str) {
        crate::metrics::mail_message("failed");
        tracing::error!(
            message_id = row.message_id,
            attempts = row.attempts,
            error = why,
            "message not sent: giving up"
        );
        self.remove(row).await;
    }

    async fn deliver(self, row: OutboxRow) {
        let message = match self.outbox.open(&row.payload) {
            Some(Payload::Message { message }) => message,
            Some(Payload::LinkRequest { request }) => match (self.compose)(request).await {
                Ok(None) => {
                    // No account to send it to: nothing was ever going out.
                    self.remove(&row).await;
                    return;
                }
                Ok(Some(composed)) => {
                    let stored = match self.outbox.seal(&Payload::Message {
                        message: composed.message.clone(),
                    }) {
                        Ok(sealed) => {
                            self.outbox
                                .repo
                                .compose(row.id, &sealed, composed.link.as_new())
                                .await
                        }
                        Err(err) => {
                            self.give_up(&row, &err.to_string()).await;
                            return;
                        }
                    };
                    if let Err(err) = stored {
                        self.retry(&row, &err.to_string()).await;
                        return;
                    }
                    composed.message
                }
                Err(err) => {
                    self.retry(&row, &err.to_string()).await;
                    return;
                }
            },
            None => {
                self.give_up(
                    &row,
                    "the message cannot be opened (sealed with another JWT_SECRET?)",
                )
                .await;
                return;
            }
        };
        match self.transport.send(&message, &row.message_id).await {
            Ok(()) => {
                crate::metrics::mail_message("sent");
                self.remove(&row).await;
            }
            Err(Failure::Permanent(err)) => {
                tracing::error!(message_id = row.message_id, to = crate::mail::mask_address(&message.to), error = %err, "message refused: not retrying");
                crate::metrics::mail_message("failed");
                self.remove(&row).await;
            }
            Err(Failure::Transient(err)) => {
                let age = Utc::now() - row.created_at;
                if age.to_std().unwrap_or_default() >= GIVE_UP_AFTER {
                    self.give_up(&row, &err.to_string()).await;
                } else {
                    crate::metrics::mail_message("retried");
                    self.retry(&row, &err.to_string()).await;
                }
            }
        }
    }
}

/// The wait after the `attempts`-th failed attempt: 1 s, doubling, capped.
fn retry_delay(attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    FIRST_RETRY
        .saturating_mul(1u32 << doublings)
        .min(MAX_RETRY_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_a_second_to_ten_minutes() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(16));
        assert_eq!(retry_delay(11), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(1000), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(0), Duration::from_secs(1));
    }
}

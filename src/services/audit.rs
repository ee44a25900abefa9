//! The security audit log. Services record events through [`AuditLog`],
//! which never fails or slows the request that records: events go into a
//! bounded queue and a background task writes them in batches (retrying a
//! failed write a few times, then logging the loss). [`AuditService`] is the
//! read side for admins and for users' own activity.

use super::{Actor, ClientInfo, ServiceResult};
use crate::{
    domain::{AuditEventType, AuditEventView, AuditPage, AuditQuery, Page},
    repositories::{AuditFilter, AuditRecord, AuditRepository, NewAuditEvent},
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration};
use tokio::sync::{mpsc, oneshot};

/// Events waiting to be written; beyond this, new events are dropped (and
/// the drop logged) rather than making requests wait.
const QUEUE_CAPACITY: usize = 10_000;
/// Events written by one statement.
const BATCH: usize = 256;
/// Attempts to write one batch before giving up on it.
const ATTEMPTS: u32 = 4;

enum Command {
    Record(NewAuditEvent),
    /// Answered once every event queued before it has been written (or given up on).
    Flush(oneshot::Sender<()>),
}

/// One event about to be recorded: type, who, whom, where from, details.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    event_type: AuditEventType,
    actor_user_id: Option<i64>,
    subject_user_id: Option<i64>,
    client: Option<ClientInfo>,
    details: Value,
}

impl AuditEntry {
    /// An event of this type, with no actor, subject or details yet.
    pub fn new(event_type: AuditEventType) -> Self {
        AuditEntry {
            event_type,
            actor_user_id: None,
            subject_user_id: None,
            client: None,
            details: json!({}),
        }
    }

    /// An event a signed-in user caused about `subject` (their own id for
    /// self-service), from the actor's device.
    pub fn by(actor: &Actor, event_type: AuditEventType, subject: i64) -> Self {
        AuditEntry::new(event_type)
            .actor(actor.user.id)
            .subject(subject)
            .client(&actor.client)
    }

    /// Who did it.
    pub fn actor(mut self, user_id: i64) -> Self {
        self.actor_user_id = Some(user_id);
        self
    }

    /// Whose account it concerns.
    pub fn subject(mut self, user_id: i64) -> Self {
        self.subject_user_id = Some(user_id);
        self
    }

    /// Whose account it concerns, when known.
    pub fn maybe_subject(mut self, user_id: Option<i64>) -> Self {
        self.subject_user_id = user_id;
        self
    }

    /// The device and address the request came from.
    pub fn client(mut self, client: &ClientInfo) -> Self {
        self.client = Some(client.clone());
        self
    }

    /// Adds one detail.
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        if let Value::Object(map) = &mut self.details {
            map.insert(key.to_owned(), value.into());
        }
        self
    }

    fn into_new(self, at: DateTime<Utc>) -> NewAuditEvent {
        let client = self.client.unwrap_or_default();
        NewAuditEvent {
            at,
            event_type: self.event_type,
            actor_user_id: self.actor_user_id,
            subject_user_id: self.subject_user_id,
            ip: client.ip,
            user_agent: client.user_agent,
            details: self.details,
        }
    }
}

/// The write side: cheap to clone, never fails the caller.
#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Command>,
}

impl AuditLog {
    /// Starts the background writer (needs a Tokio runtime).
    pub fn start(repo: Arc<dyn AuditRepository>) -> AuditLog {
        let (queue, commands) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(write_events(repo, commands));
        AuditLog { queue }
    }

    /// Queues an event stamped now. Never waits and never fails: a full
    /// queue or a stopped writer is logged and the request goes on.
    pub fn record(&self, entry: AuditEntry) {
        let event_type = entry.event_type;
        if let Err(err) = self
            .queue
            .try_send(Command::Record(entry.into_new(Utc::now())))
        {
            tracing::error!(event = %event_type, error = %err, "audit event dropped");
        }
    }

    /// Waits until every event queued so far has been written (or given up
    /// on). Reads call this so a client sees its own events at once.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_events(repo: Arc<dyn AuditRepository>, mut commands: mpsc::Receiver<Command>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut flushes = Vec::new();
    while let Some(first) = commands.recv().await {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Record(event) => batch.push(event),
                Command::Flush(done) => flushes.push(done),
            }
            if batch.len() < BATCH {
                next = commands.try_recv().ok();
            }
        }
        write_batch(repo.as_ref(), &batch).await;
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn write_batch(repo: &dyn AuditRepository, batch: &[NewAuditEvent]) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=ATTEMPTS {
        match repo.append(batch).await {
            Ok(()) => return,
            Err(err) if attempt == ATTEMPTS => {
                tracing::error!(events = batch.len(), error = %err, "could not write audit events; they are lost");
            }
            Err(err) => {
                tracing::warn!(events = batch.len(), attempt, error = %err, "could not write audit events; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
        }
    }
}

fn view(record: AuditRecord) -> Option<AuditEventView> {
    let event_type = match record.event_type.parse() {
        Ok(kind) => kind,
        Err(err) => {
            tracing::warn!(id = record.id, error = %err, "skipping an audit event of unknown type");
            return None;
        }
    };
    Some(AuditEventView {
        id: record.id,
        at: record.at,
        event_type,
        actor_user_id: record.actor_user_id,
        subject_user_id: record.subject_user_id,
        ip: record.ip,
        user_agent: record.user_agent,
        details: record.details.0,
        by_administrator: matches!(
            (record.actor_user_id, record.subject_user_id),
            (Some(actor), Some(subject)) if actor != subject
        ),
    })
}

/// An event as its subject sees it in their own log. What an administrator
/// did to the account is shown as done by an administrator: which one, and
/// from which device and address, is theirs to keep (the admin log has it).
fn as_seen_by_subject(mut event: AuditEventView) -> AuditEventView {
    if event.by_administrator {
        event.actor_user_id = None;
        event.ip = None;
        event.user_agent = None;
    }
    event
}

/// The read side of the audit log.
#[derive(Clone)]
pub struct AuditService {
    repo: Arc<dyn AuditRepository>,
    log: AuditLog,
}

impl AuditService {
    /// Builds the service over the repository and the writer.
    pub fn new(repo: Arc<dyn AuditRepository>, log: AuditLog) -> Self {
        AuditService { repo, log }
    }

    async fn page(&self, filter: AuditFilter, page: Page) -> ServiceResult<AuditPage> {
        // Read your own writes: what this instance queued is written first.
        self.log.flush().await;
        let (records, total) = self.repo.list(&filter, page.offset(), page.limit()).await?;
        Ok(AuditPage {
            events: records.into_iter().filter_map(view).collect(),
            total,
            offset: page.offset(),
            limit: page.limit(),
        })
    }

    /// Admin: events matching the filters, newest first.
    pub async fn list(
        &self,
        actor: &Actor,
        query: &AuditQuery,
        page: Page,
    ) -> ServiceResult<AuditPage> {
        actor.require_admin()?;
        let filter = AuditFilter {
            user_id: query.user_id(),
            subject_user_id: None,
            event_type: query.event_type(),
            since: query.since(),
            until: query.until(),
        };
        self.page(filter, page).await
    }

    /// The events concerning the caller's own account, newest first; an
    /// administrator's actions without the administrator's id and device.
    pub async fn list_mine(&self, actor: &Actor, page: Page) -> ServiceResult<AuditPage> {
        let filter = AuditFilter {
            subject_user_id: Some(actor.user.id),
            ..AuditFilter::default()
        };
        let mut found = self.page(filter, page).await?;
        found.events = found.events.into_iter().map(as_seen_by_subject).collect();
        Ok(found)
    }
}

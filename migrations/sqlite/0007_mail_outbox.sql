-- The durable mail outbox: a message is a row before any request that sends
-- it answers, so a message survives the instance that queued it. A worker
-- on every instance claims due rows (a lease in `locked_until`), delivers
-- them, and deletes them; a failure schedules the next attempt. `payload`
-- is sealed (AEAD, see services/outbox.rs): it can carry a live link.
-- `message_id` is the message's stable Message-ID header: a row delivered
-- again after a crash is recognisably the same message.
CREATE TABLE mail_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT    NOT NULL,
    payload         BLOB    NOT NULL,
    created_at      TEXT    NOT NULL,
    next_attempt_at TEXT    NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT,
    last_error      TEXT
);
CREATE UNIQUE INDEX mail_outbox_message_id_key ON mail_outbox (message_id);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at);

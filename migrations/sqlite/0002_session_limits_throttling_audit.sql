-- Absolute session lifetime: a refresh never moves expires_at past this.
-- Sessions opened before this migration are capped at their current expiry.
ALTER TABLE sessions ADD COLUMN max_expires_at TEXT;
UPDATE sessions SET max_expires_at = expires_at;
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_at_idx ON sessions (revoked_at);

-- Brute-force throttling: one row per counted event (a failed sign-in, a
-- sign-up, an invalid refresh token), kept in the database so every instance
-- sees the same counts. `account` is a SHA-256 of the canonical email.
CREATE TABLE throttle_events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL CHECK (kind IN ('login', 'registration', 'refresh')),
    account TEXT,
    ip      TEXT,
    at      TEXT NOT NULL
);
CREATE INDEX throttle_events_account_idx ON throttle_events (kind, account, at);
CREATE INDEX throttle_events_ip_idx ON throttle_events (kind, ip, at);
CREATE INDEX throttle_events_at_idx ON throttle_events (at);

-- Security audit log. User ids are not foreign keys: events outlive users.
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT    NOT NULL,
    actor_user_id   INTEGER,
    subject_user_id INTEGER,
    event_type      TEXT    NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    details         TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_subject_idx ON audit_events (subject_user_id, at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user_id, at);
CREATE INDEX audit_events_type_idx ON audit_events (event_type, at);

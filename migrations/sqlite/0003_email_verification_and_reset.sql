-- Email verification: whether the user proved they receive mail at `email`.
-- Accounts that existed before this migration start unverified; they can ask
-- for a verification message from the profile or the sign-in page.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1));

-- Single-use links sent by email (address verification, password reset).
-- Only a SHA-256 of the token is stored. `email` is the address the link was
-- sent to: a verification link confirms that address only. A newer link for
-- the same purpose revokes the older ones (`revoked_at`).
CREATE TABLE email_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    token_hash TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    used_at    TEXT,
    revoked_at TEXT
);
CREATE UNIQUE INDEX email_tokens_token_hash_key ON email_tokens (token_hash);
CREATE INDEX email_tokens_user_purpose_idx ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expires_at_idx ON email_tokens (expires_at);

-- Throttling now also counts requests that send mail ('email'). SQLite cannot
-- change a CHECK constraint in place: rebuild the table.
CREATE TABLE throttle_events_new (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL CHECK (kind IN ('login', 'registration', 'refresh', 'email')),
    account TEXT,
    ip      TEXT,
    at      TEXT NOT NULL
);
INSERT INTO throttle_events_new (id, kind, account, ip, at)
    SELECT id, kind, account, ip, at FROM throttle_events;
DROP TABLE throttle_events;
ALTER TABLE throttle_events_new RENAME TO throttle_events;
CREATE INDEX throttle_events_account_idx ON throttle_events (kind, account, at);
CREATE INDEX throttle_events_ip_idx ON throttle_events (kind, ip, at);
CREATE INDEX throttle_events_at_idx ON throttle_events (at);

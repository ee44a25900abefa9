-- Two-factor authentication (TOTP authenticator apps and recovery codes) and
-- step-up confirmation.
--
-- users.mfa_enabled: whether sign-in asks for a second factor (kept with
-- the rows below in one transaction; the user list shows it without a join).
ALTER TABLE users ADD COLUMN mfa_enabled INTEGER NOT NULL DEFAULT 0 CHECK (mfa_enabled IN (0, 1));

-- sessions.authenticated_at: the last time the session's user proved who
-- they are (the sign-in, or a step-up confirmation). Sensitive actions need
-- it to be recent. Sessions from before this migration have none: their
-- next sensitive action asks for a confirmation.
ALTER TABLE sessions ADD COLUMN authenticated_at TEXT;

-- One TOTP secret per user, sealed (XChaCha20-Poly1305 under
-- DATA_ENCRYPTION_KEY, bound to the user id): the database alone never
-- yields a usable secret. `confirmed_at` is NULL while the enrolment waits
-- for its first code. `last_step` is the last accepted 30-second step: a
-- code is accepted only for a later step (never twice).
CREATE TABLE totp_secrets (
    user_id       INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed BLOB    NOT NULL,
    created_at    TEXT    NOT NULL,
    confirmed_at  TEXT,
    last_step     INTEGER
);

-- Recovery codes: SHA-256 hashes only, each usable once.
CREATE TABLE recovery_codes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    used_at    TEXT
);
CREATE UNIQUE INDEX recovery_codes_user_code_key ON recovery_codes (user_id, code_hash);

-- State between two requests of a two-factor flow, redeemable on any
-- instance: `sign_in` (the password step passed, the code step pending:
-- the `mfa_token`) and `recovery_codes` (codes just issued, sealed, to be
-- shown once by the next page). Only the SHA-256 of the token is stored.
CREATE TABLE mfa_challenges (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    token_hash TEXT    NOT NULL,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('sign_in', 'recovery_codes')),
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    payload    BLOB,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL,
    used_at    TEXT
);
CREATE UNIQUE INDEX mfa_challenges_token_hash_key ON mfa_challenges (token_hash);
CREATE INDEX mfa_challenges_user_idx ON mfa_challenges (user_id);
CREATE INDEX mfa_challenges_expires_at_idx ON mfa_challenges (expires_at);

-- Throttling now also counts wrong second-factor codes ('second_factor').
-- SQLite cannot change a CHECK constraint in place: rebuild the table.
CREATE TABLE throttle_events_new (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL CHECK (kind IN ('login', 'registration', 'refresh', 'email', 'second_factor')),
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

-- Users: one row per account. Emails are stored in canonical lower-case form
-- (the application canonicalises them); NOCASE keeps the unique index
-- case-insensitive even for rows written by hand.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    role          TEXT    NOT NULL DEFAULT 'regular' CHECK (role IN ('admin', 'regular')),
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at    TEXT    NOT NULL,
    updated_at    TEXT    NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_role_active_idx ON users (role, is_active);

-- Sessions: one row per login (device). Only SHA-256 hashes of refresh tokens
-- are stored: the current one, and the previous one to detect reuse.
CREATE TABLE sessions (
    id                          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id                     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_token_hash          TEXT    NOT NULL,
    previous_refresh_token_hash TEXT,
    created_at                  TEXT    NOT NULL,
    last_used_at                TEXT    NOT NULL,
    expires_at                  TEXT    NOT NULL,
    revoked_at                  TEXT,
    user_agent                  TEXT,
    ip                          TEXT
);
CREATE UNIQUE INDEX sessions_refresh_token_hash_key ON sessions (refresh_token_hash);
CREATE INDEX sessions_previous_refresh_token_hash_idx ON sessions (previous_refresh_token_hash);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);

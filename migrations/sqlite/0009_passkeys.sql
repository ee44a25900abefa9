-- Passkeys (WebAuthn): password-free sign-in and a second factor.
--
-- The WebAuthn user handle of each user who has registered a passkey: 16
-- random bytes, not the user id (an authenticator shows and returns it; it
-- must not be guessable or reveal how many users there are).
CREATE TABLE webauthn_user_handles (
    user_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle  BLOB    NOT NULL
);
CREATE UNIQUE INDEX webauthn_user_handles_handle_key ON webauthn_user_handles (handle);

-- One row per registered passkey. `credential` is the verifier's record of
-- it (webauthn-rs `Passkey` as JSON: the credential id, the public key, the
-- signature counter and the backup flags); nothing in it signs anything.
-- Credential ids are unique across all users.
CREATE TABLE passkeys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id         INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id   BLOB    NOT NULL,
    name            TEXT    NOT NULL,
    credential      TEXT    NOT NULL,
    backup_eligible INTEGER NOT NULL DEFAULT 0 CHECK (backup_eligible IN (0, 1)),
    created_at      TEXT    NOT NULL,
    last_used_at    TEXT
);
CREATE UNIQUE INDEX passkeys_credential_id_key ON passkeys (credential_id);
CREATE INDEX passkeys_user_idx ON passkeys (user_id);

-- The state of a WebAuthn ceremony between its two requests, redeemable on
-- any instance, used once (deleted when taken), valid 5 minutes:
-- `register` (one per user, keyed by the user), `sign_in` (keyed by the
-- opaque challenge id handed to the client) and `second_factor` (keyed by
-- the sign-in's mfa_token). Only SHA-256 hashes of the keys are stored.
CREATE TABLE webauthn_challenges (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    key_hash   TEXT    NOT NULL,
    purpose    TEXT    NOT NULL CHECK (purpose IN ('register', 'sign_in', 'second_factor')),
    user_id    INTEGER REFERENCES users (id) ON DELETE CASCADE,
    state      TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    expires_at TEXT    NOT NULL
);
CREATE UNIQUE INDEX webauthn_challenges_key_hash_key ON webauthn_challenges (key_hash);
CREATE INDEX webauthn_challenges_expires_at_idx ON webauthn_challenges (expires_at);

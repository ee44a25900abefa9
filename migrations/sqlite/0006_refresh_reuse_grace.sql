-- Refresh-token reuse grace: when the current token was rotated out. A
-- previous token presented again within `REFRESH_REUSE_GRACE_SECONDS` of this
-- moment is a racing refresh (several tabs, two threads of a script), not a
-- replay. Sessions rotated before this migration have none: no grace.
ALTER TABLE sessions ADD COLUMN rotated_at TEXT;

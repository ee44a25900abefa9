-- The admin user search, `email LIKE '%needle%'` (a case-insensitive
-- substring: emails are stored in canonical lower-case form and the needle is
-- lower-cased), reads a trigram index instead of every user. The index serves
-- the page and its X-Total-Count alike, for needles of 3 or more characters;
-- shorter ones have no trigram and the planner scans the table, as before.
-- pg_trgm ships with PostgreSQL (contrib) and is a trusted extension since
-- PostgreSQL 13: a role with CREATE on the database installs it, no superuser
-- needed. The index is built in this migration's transaction, blocking writes
-- to users while it builds (about half a second per 100k users).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX users_email_trgm_idx ON users USING gin (email gin_trgm_ops);

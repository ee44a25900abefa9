-- Change notifications for the per-instance authentication caches exist on
-- PostgreSQL only (triggers calling pg_notify; see the PostgreSQL migration
-- of the same number). SQLite has no equivalent: an SQLite database is
-- served by one process, whose cache forgets changes as it makes them, and
-- entries it keeps are re-read from the file after at most 500 ms, so a
-- change made by another process (the CLI) shows within that time.
-- Nothing to change in the schema; the file keeps the numbering aligned.
SELECT 1;

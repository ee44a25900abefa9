-- The admin user search, `email LIKE '%needle%'` (a case-insensitive
-- substring of the canonical, lower-case email), finds its candidates in an
-- FTS5 index of every trigram of every email instead of reading every user.
-- The repository uses it for needles of 3 or more characters (a trigram query
-- needs one) that match few users, and confirms each candidate with the same
-- LIKE, so the results are exactly those of the plain scan; shorter needles,
-- and needles most users contain, keep the plain scan (see `email_search` in
-- src/repositories/sqlite.rs).
--
-- External content: the index stores no copy of the emails, it reads them
-- from users. The triggers below keep it in sync with every insert, delete
-- and email change; a migration that rebuilds the users table must recreate
-- them and run the 'rebuild' below again.
CREATE VIRTUAL TABLE users_email_fts USING fts5(
    email,
    content = 'users',
    content_rowid = 'id',
    columnsize = 0,
    tokenize = 'trigram case_sensitive 0'
);
INSERT INTO users_email_fts (users_email_fts) VALUES ('rebuild');

CREATE TRIGGER users_email_fts_insert AFTER INSERT ON users BEGIN
    INSERT INTO users_email_fts (rowid, email) VALUES (new.id, new.email);
END;

CREATE TRIGGER users_email_fts_delete AFTER DELETE ON users BEGIN
    INSERT INTO users_email_fts (users_email_fts, rowid, email) VALUES ('delete', old.id, old.email);
END;

-- Every update of a user assigns its email (COALESCE with the old value):
-- only a change of the address touches the index.
CREATE TRIGGER users_email_fts_update AFTER UPDATE OF email ON users
WHEN new.email IS NOT old.email BEGIN
    INSERT INTO users_email_fts (users_email_fts, rowid, email) VALUES ('delete', old.id, old.email);
    INSERT INTO users_email_fts (rowid, email) VALUES (new.id, new.email);
END;

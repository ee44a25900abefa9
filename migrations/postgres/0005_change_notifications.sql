-- Change notifications for the per-instance authentication caches.
--
-- Each instance keeps recently checked sessions in memory (see
-- src/repositories/cache.rs) and listens on the channel `leptos_auth_changes`.
-- These triggers announce, when the writing transaction commits, every
-- session that stopped being valid and every user that changed or was
-- deleted, whoever made the change (any instance, the CLI, or plain SQL).
-- Payload: comma-separated `s<session id>` and `u<user id>`, or `*` (forget
-- everything) when the list would not fit in a notification.

-- Sends one payload (nothing when NULL; `*` when it would not fit in a
-- notification's 8000 bytes).
CREATE FUNCTION leptos_auth_announce(payload TEXT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF payload IS NOT NULL THEN
        PERFORM pg_notify('leptos_auth_changes',
                          CASE WHEN length(payload) > 7000 THEN '*' ELSE payload END);
    END IF;
END;
$$;

CREATE FUNCTION leptos_auth_notify_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT;
BEGIN
    SELECT string_agg('s' || n.id, ',') INTO payload
      FROM new_rows n
      JOIN old_rows o ON o.id = n.id
     WHERE (n.revoked_at IS NOT NULL AND o.revoked_at IS NULL)
        OR n.expires_at < o.expires_at
        OR n.user_id <> o.user_id;
    PERFORM leptos_auth_announce(payload);
    RETURN NULL;
END;
$$;

CREATE TRIGGER sessions_announce_changes
    AFTER UPDATE ON sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leptos_auth_notify_sessions();

CREATE FUNCTION leptos_auth_notify_users() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    payload TEXT;
BEGIN
    SELECT string_agg('u' || o.id, ',') INTO payload FROM old_rows o;
    PERFORM leptos_auth_announce(payload);
    RETURN NULL;
END;
$$;

CREATE TRIGGER users_announce_updates
    AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leptos_auth_notify_users();

CREATE TRIGGER users_announce_deletes
    AFTER DELETE ON users
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION leptos_auth_notify_users();

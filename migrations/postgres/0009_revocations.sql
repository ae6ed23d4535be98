-- Revocation reaches the edge: every component checks access tokens itself, so ending
-- a session in auth alone would leave its access tokens working elsewhere until they
-- expire. Triggers record each revocation here, whatever wrote it (the API, the
-- console, SQL); the host serves the recent ones on its internal API
-- (`GET /auth/revocations`) and components refuse matching tokens.
--
-- - a revoked session (logout, logout everywhere, password change, refresh-token
--   reuse, an admin ending it): every token of that session (`sid`) is refused;
-- - a user blocked or whose roles changed: every token of that user (`sub`) issued
--   before `not_before` is refused (the user signs in or refreshes for a new one).
--   Token `iat` is in whole seconds, so `not_before` is rounded up to the next second
--   (and past the user's previous one, whose tokens may carry it), and auth issues the
--   user's next tokens with `iat` no earlier than it.
--
-- Rows older than the longest access-token lifetime are purged by the host.
CREATE TABLE auth.revocations (
    id          bigserial PRIMARY KEY,
    session_id  uuid,
    user_id     uuid,
    not_before  timestamptz NOT NULL DEFAULT now(),
    created     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT revocations_one_subject CHECK ((session_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX revocations_created_idx ON auth.revocations (created);
CREATE INDEX revocations_user_idx ON auth.revocations (user_id, not_before)
    WHERE user_id IS NOT NULL;

-- The `not_before` of a new revocation of `revoked`: the next whole second, and later
-- than the user's previous one (a token may have been issued at exactly that).
CREATE OR REPLACE FUNCTION auth.next_not_before(revoked uuid) RETURNS timestamptz
LANGUAGE sql AS $$
    SELECT greatest(
        date_trunc('second', now()) + interval '1 second',
        (SELECT max(not_before) FROM auth.revocations WHERE user_id = revoked)
            + interval '1 second')
$$;

CREATE OR REPLACE FUNCTION auth.record_session_revocation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL THEN
        INSERT INTO auth.revocations (session_id) VALUES (NEW.id);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER sessions_revoked AFTER UPDATE OF revoked_at ON auth.sessions
    FOR EACH ROW EXECUTE FUNCTION auth.record_session_revocation();

CREATE OR REPLACE FUNCTION auth.record_user_block() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_blocked AND NOT OLD.is_blocked THEN
        INSERT INTO auth.revocations (user_id, not_before)
        VALUES (NEW.id, auth.next_not_before(NEW.id));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER users_blocked AFTER UPDATE OF is_blocked ON auth.users
    FOR EACH ROW EXECUTE FUNCTION auth.record_user_block();

-- A role granted or taken away: tokens carry roles and permissions, so the user's
-- older tokens stop (a refresh gives a token with the new ones).
CREATE OR REPLACE FUNCTION auth.record_role_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO auth.revocations (user_id, not_before)
    SELECT changed, auth.next_not_before(changed)
    FROM (SELECT CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END AS changed) AS c;
    RETURN NULL;
END $$;
CREATE TRIGGER user_roles_changed AFTER INSERT OR DELETE ON auth.user_roles
    FOR EACH ROW EXECUTE FUNCTION auth.record_role_change();

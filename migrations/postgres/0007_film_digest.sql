-- Film digests: a new film is announced (`film.published`) through the platform
-- outbox in the same transaction that inserts it; notify matches it, after a delay, to
-- the users it suits and mails each of them at most one digest per day.

-- The outbox now carries more than auth's events, so it leaves the auth schema. The
-- relay drains it into Kafka whatever the producer.
CREATE SCHEMA IF NOT EXISTS platform;
ALTER TABLE auth.outbox SET SCHEMA platform;
ALTER FUNCTION auth.notify_outbox() SET SCHEMA platform;

-- `film.published` when a film row appears (the catalog shows it as soon as the ETL
-- indexes it, within a batch window). Bulk loads (`cinema seed`) run with
-- `session_replication_role = replica`, so back-catalog imports announce nothing.
CREATE OR REPLACE FUNCTION content.announce_film() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_id uuid := gen_random_uuid();
BEGIN
    INSERT INTO platform.outbox (id, topic, key, payload)
    VALUES (event_id, 'catalog.events', NEW.id::text, jsonb_build_object(
        'event_id', event_id::text,
        'occurred_at_ms', (extract(epoch FROM clock_timestamp()) * 1000)::bigint,
        'type', 'film.published',
        'film_id', NEW.id::text,
        'title', NEW.title));
    RETURN NULL;
END $$;
CREATE TRIGGER film_published AFTER INSERT ON content.film
    FOR EACH ROW EXECUTE FUNCTION content.announce_film();

-- Films notify heard of. `matched_at` is set once the film's audience was worked out
-- (after the digest delay, so the editor had time to attach genres and people).
CREATE TABLE notify.published_films (
    film_id      uuid PRIMARY KEY,
    event_id     uuid NOT NULL,
    published_at timestamptz NOT NULL,
    matched_at   timestamptz
);
CREATE INDEX published_films_unmatched_idx ON notify.published_films (published_at)
    WHERE matched_at IS NULL;

-- One film suggested to one user, with why (`{"kind": "director"|"genre", "name": …}`).
-- `digest_day` is the UTC day of the digest that carried it; NULL while it waits. One
-- digest per user per day: a user whose items already went out today waits for
-- tomorrow.
CREATE TABLE notify.digest_items (
    user_id    uuid NOT NULL,
    film_id    uuid NOT NULL,
    reason     jsonb NOT NULL,
    created    timestamptz NOT NULL DEFAULT now(),
    digest_day date,
    PRIMARY KEY (user_id, film_id)
);
CREATE INDEX digest_items_waiting_idx ON notify.digest_items (user_id, created)
    WHERE digest_day IS NULL;
CREATE INDEX digest_items_day_idx ON notify.digest_items (digest_day, user_id)
    WHERE digest_day IS NOT NULL;

-- Who bookmarked a film (the digest's "same director" rule reads by film).
CREATE INDEX bookmarks_film_idx ON ugc.bookmarks (film_id) WHERE active;

-- Notify: platform events out of auth (a transactional outbox the host relays to Kafka
-- `auth.events`), email confirmation tokens, and the mail deliveries of the notify
-- worker, keyed so that a redelivered event never sends twice.

-- Events auth writes in the same statement as the change they report. The host's relay
-- produces them to Kafka and deletes each once Kafka acknowledged it; `outbox_events`
-- wakes the relay at once.
CREATE TABLE auth.outbox (
    id          uuid PRIMARY KEY,
    topic       text NOT NULL,
    -- Kafka key: the user id, so one user's events keep their order.
    key         text NOT NULL,
    payload     jsonb NOT NULL,
    created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_created_idx ON auth.outbox (created, id);

CREATE OR REPLACE FUNCTION auth.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_events', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON auth.outbox
    FOR EACH ROW EXECUTE FUNCTION auth.notify_outbox();

-- Email confirmation links: the token is random (256 bits) and stored as its SHA-256;
-- single use, expiring.
CREATE TABLE auth.email_confirmations (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    email       text NOT NULL,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    CONSTRAINT email_confirmations_hash_length CHECK (octet_length(token_hash) = 32)
);
CREATE INDEX email_confirmations_user_idx ON auth.email_confirmations (user_id);

CREATE SCHEMA IF NOT EXISTS notify;

-- One mail to one user for one event and template. The key makes a redelivered event a
-- no-op; the sender moves `pending` rows to `sent`, or to `failed` on a permanent error.
CREATE TABLE notify.deliveries (
    event_id        uuid NOT NULL,
    user_id         uuid NOT NULL,
    template        text NOT NULL,
    recipient       text NOT NULL,
    locale          text NOT NULL,
    -- What the template renders with (links, names), fixed when the event arrives.
    context         jsonb NOT NULL DEFAULT '{}',
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created         timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    PRIMARY KEY (event_id, user_id, template),
    CONSTRAINT deliveries_status_known CHECK (status IN ('pending', 'sent', 'failed'))
);
CREATE INDEX deliveries_due_idx ON notify.deliveries (next_attempt_at) WHERE status = 'pending';

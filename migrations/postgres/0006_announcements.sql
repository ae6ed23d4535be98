-- Notification preferences, one-click unsubscribe tokens, and announcements an admin
-- writes in the console for every user or for one role.

-- Opt-outs per category; security mail (password changes, blocks) always goes. No row:
-- everything on.
CREATE TABLE auth.notification_preferences (
    user_id       uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    announcements boolean NOT NULL DEFAULT true,
    film_digest   boolean NOT NULL DEFAULT true,
    modified      timestamptz NOT NULL DEFAULT now()
);

-- Unsubscribe links: a random token per mail, stored as its SHA-256, naming the user
-- and the category it turns off. Usable more than once (the result is the same).
CREATE TABLE auth.unsubscribe_tokens (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    category   text NOT NULL,
    created    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT unsubscribe_tokens_hash_length CHECK (octet_length(token_hash) = 32),
    CONSTRAINT unsubscribe_tokens_category_known CHECK (category IN ('announcements', 'film_digest'))
);

-- An announcement is expanded into deliveries in batches (keyset by user id); the
-- console shows recipients and how many mails were sent.
CREATE TABLE notify.announcements (
    id            uuid PRIMARY KEY,
    subject       text NOT NULL,
    body          text NOT NULL,
    -- NULL: every user; else the name of a role.
    audience_role text,
    created_by    uuid NOT NULL,
    created       timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'queued',
    recipients    integer NOT NULL DEFAULT 0,
    last_user_id  uuid,
    CONSTRAINT announcements_status_known CHECK (status IN ('queued', 'expanding', 'expanded')),
    CONSTRAINT announcements_subject_not_blank CHECK (btrim(subject) <> '')
);
CREATE INDEX announcements_open_idx ON notify.announcements (created) WHERE status <> 'expanded';

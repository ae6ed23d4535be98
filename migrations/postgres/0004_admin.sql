-- Admin: the audit log of every content change, role change, block and impersonation
-- made through the admin console or the auth API: who (the token's user and email),
-- when, what (`action` on an entity) and the entity before and after, as JSON.
-- Written in the same statement as the change it records, so neither exists alone.
CREATE SCHEMA IF NOT EXISTS admin;

CREATE TABLE admin.audit_log (
    id          uuid PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    uuid NOT NULL,
    actor_email text NOT NULL DEFAULT '',
    -- `film.create`, `film.update`, `film.delete`, `film.genre_add`, `user.block`, ...
    action      text NOT NULL,
    entity_type text NOT NULL,
    entity_id   uuid NOT NULL,
    before      jsonb,
    after       jsonb,
    CONSTRAINT audit_log_action_shape CHECK (action ~ '^[a-z_]+\.[a-z_]+$')
);
CREATE INDEX audit_log_at_idx ON admin.audit_log (at DESC, id);
CREATE INDEX audit_log_entity_idx ON admin.audit_log (entity_type, entity_id, at DESC);
CREATE INDEX audit_log_actor_idx ON admin.audit_log (actor_id, at DESC);

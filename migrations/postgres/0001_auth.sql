-- Auth: accounts, roles and permissions, sessions with refresh-token families, login
-- history (partitioned by month), social accounts, token signing keys.
CREATE SCHEMA IF NOT EXISTS auth;

-- Keeps `modified` current on every update.
CREATE OR REPLACE FUNCTION auth.touch_modified() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.modified := now();
    RETURN NEW;
END $$;

CREATE TABLE auth.users (
    id              uuid PRIMARY KEY,
    -- Normalized by the service (trimmed, lower-case); the check keeps it that way.
    email           text NOT NULL,
    -- PHC string (argon2id); NULL for accounts created through a social provider only.
    password_hash   text,
    first_name      text NOT NULL DEFAULT '',
    last_name       text NOT NULL DEFAULT '',
    locale          text NOT NULL DEFAULT 'ru',
    email_confirmed boolean NOT NULL DEFAULT false,
    is_blocked      boolean NOT NULL DEFAULT false,
    created         timestamptz NOT NULL DEFAULT now(),
    modified        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_email_normalized CHECK (email = lower(btrim(email)) AND email <> '')
);
CREATE TRIGGER users_touch_modified BEFORE UPDATE ON auth.users
    FOR EACH ROW EXECUTE FUNCTION auth.touch_modified();

CREATE TABLE auth.permissions (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT ''
);

CREATE TABLE auth.roles (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text NOT NULL DEFAULT '',
    created     timestamptz NOT NULL DEFAULT now(),
    modified    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT roles_name_key UNIQUE (name)
);
CREATE TRIGGER roles_touch_modified BEFORE UPDATE ON auth.roles
    FOR EACH ROW EXECUTE FUNCTION auth.touch_modified();

CREATE TABLE auth.role_permissions (
    role_id    uuid NOT NULL REFERENCES auth.roles (id) ON DELETE CASCADE,
    permission text NOT NULL REFERENCES auth.permissions (name) ON DELETE CASCADE,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE auth.user_roles (
    user_id    uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    role_id    uuid NOT NULL REFERENCES auth.roles (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL DEFAULT now(),
    granted_by uuid REFERENCES auth.users (id) ON DELETE SET NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role_idx ON auth.user_roles (role_id);

-- A session is one login; its refresh tokens form one family.
CREATE TABLE auth.sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    created        timestamptz NOT NULL DEFAULT now(),
    last_used      timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text,
    user_agent     text NOT NULL DEFAULT '',
    ip             inet,
    -- Set while an admin impersonates: no refresh tokens are issued for such sessions.
    impersonator   uuid REFERENCES auth.users (id) ON DELETE CASCADE
);
CREATE INDEX sessions_live_by_user_idx ON auth.sessions (user_id) WHERE revoked_at IS NULL;

-- Refresh tokens are stored as SHA-256 of the opaque token; each is used once.
CREATE TABLE auth.refresh_tokens (
    token_hash bytea PRIMARY KEY,
    session_id uuid NOT NULL REFERENCES auth.sessions (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CONSTRAINT refresh_tokens_hash_length CHECK (octet_length(token_hash) = 32)
);
CREATE INDEX refresh_tokens_session_idx ON auth.refresh_tokens (session_id);

-- Login history grows without bound: one partition per month, newest-first reads per
-- user served by the (user_id, at) index of each partition.
CREATE TABLE auth.login_history (
    id             uuid NOT NULL,
    user_id        uuid NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    ip             inet,
    user_agent     text NOT NULL DEFAULT '',
    success        boolean NOT NULL,
    method         text NOT NULL,
    failure_reason text,
    PRIMARY KEY (user_id, at, id)
) PARTITION BY RANGE (at);
CREATE TABLE auth.login_history_default PARTITION OF auth.login_history DEFAULT;

-- Creates the partition holding `month` (any timestamp in it) if it is missing; the
-- host calls it ahead of time, the default partition catches anything it missed.
CREATE OR REPLACE FUNCTION auth.ensure_login_history_partition(month timestamptz)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month AT TIME ZONE 'UTC')::date;
    name text := format('login_history_%s', to_char(first_day, 'YYYY_MM'));
BEGIN
    IF to_regclass(format('auth.%I', name)) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE auth.%I PARTITION OF auth.login_history FOR VALUES FROM (%L) TO (%L)',
            name, first_day::timestamptz, (first_day + interval '1 month')::timestamptz);
    END IF;
    RETURN name;
END $$;

SELECT auth.ensure_login_history_partition(now() + make_interval(months => m))
FROM generate_series(-1, 12) AS m;

CREATE TABLE auth.social_accounts (
    provider  text NOT NULL,
    subject   text NOT NULL,
    user_id   uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    email     text,
    linked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject),
    CONSTRAINT social_accounts_user_provider_key UNIQUE (user_id, provider),
    CONSTRAINT social_accounts_provider_known CHECK (provider IN ('yandex', 'vk', 'google'))
);

-- Ed25519 signing keys. A key signs from `activated_at` until `retired_at` and stays in
-- the JWKS until `expires_at` (when the last token it signed has expired).
CREATE TABLE auth.signing_keys (
    kid          text PRIMARY KEY,
    algorithm    text NOT NULL DEFAULT 'EdDSA',
    public_key   bytea NOT NULL,
    private_key  bytea NOT NULL,
    created      timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz NOT NULL,
    retired_at   timestamptz,
    expires_at   timestamptz,
    CONSTRAINT signing_keys_public_key_length CHECK (octet_length(public_key) = 32),
    CONSTRAINT signing_keys_algorithm_known CHECK (algorithm = 'EdDSA')
);

INSERT INTO auth.permissions (name, description) VALUES
    ('films:premium', 'watch films with subscription access'),
    ('analytics:read', 'read UGC analytics'),
    ('content:edit', 'create and edit films, persons and genres'),
    ('users:manage', 'block users, assign roles, impersonate'),
    ('roles:manage', 'create, edit and delete roles');

INSERT INTO auth.roles (id, name, description) VALUES
    ('00000000-0000-4000-8000-000000000001', 'admin', 'everything, including users and roles'),
    ('00000000-0000-4000-8000-000000000002', 'manager', 'edits content'),
    ('00000000-0000-4000-8000-000000000003', 'subscriber', 'paid subscription');

INSERT INTO auth.role_permissions (role_id, permission) VALUES
    ('00000000-0000-4000-8000-000000000001', 'films:premium'),
    ('00000000-0000-4000-8000-000000000001', 'analytics:read'),
    ('00000000-0000-4000-8000-000000000001', 'content:edit'),
    ('00000000-0000-4000-8000-000000000001', 'users:manage'),
    ('00000000-0000-4000-8000-000000000001', 'roles:manage'),
    ('00000000-0000-4000-8000-000000000002', 'content:edit'),
    ('00000000-0000-4000-8000-000000000002', 'analytics:read'),
    ('00000000-0000-4000-8000-000000000003', 'films:premium');

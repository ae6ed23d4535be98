-- Auth's security state moves out of the shared key-value store into tables only auth
-- writes, each row with an expiry: failed-login counters (counted atomically),
-- pending social sign-ins (bound to the browser that started them), and email changes
-- that wait for the new address to be confirmed.

-- Failed-login counters, one row per account (`account:<email>`) or client address
-- (`ip:<addr>`). One upsert increments and returns the count and the window's end, so
-- a burst of concurrent attempts cannot slip past the limit. Rows past their window
-- are purged by the component as it goes.
CREATE UNLOGGED TABLE auth.login_throttle (
    key          text PRIMARY KEY,
    failures     integer NOT NULL,
    window_ends  timestamptz NOT NULL
);
CREATE INDEX login_throttle_window_idx ON auth.login_throttle (window_ends);

-- Social sign-ins between the redirect to the provider and the callback. The state is
-- stored as its SHA-256, the browser binding (a random value in an HttpOnly cookie) as
-- its SHA-256; a row is taken (deleted) by the first callback that names it. Bounded
-- per client address and in all by the component; expired rows are purged as it goes.
CREATE UNLOGGED TABLE auth.oauth_pending (
    state_hash   bytea PRIMARY KEY,
    binding_hash bytea NOT NULL,
    provider     text NOT NULL,
    verifier     text NOT NULL,
    link_user    uuid REFERENCES auth.users (id) ON DELETE CASCADE,
    client_ip    inet,
    expires_at   timestamptz NOT NULL,
    CONSTRAINT oauth_pending_hash_length CHECK (octet_length(state_hash) = 32 AND octet_length(binding_hash) = 32)
);
CREATE INDEX oauth_pending_expiry_idx ON auth.oauth_pending (expires_at);
CREATE INDEX oauth_pending_client_idx ON auth.oauth_pending (client_ip);

-- An email change is a confirmation of the new address: `previous_email` is the
-- address at the time of the request; confirming applies the change only while the
-- account still has it (a newer change or a confirmed one wins).
ALTER TABLE auth.email_confirmations ADD COLUMN IF NOT EXISTS previous_email text;

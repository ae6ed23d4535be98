-- Least privilege for the edge components: each connects as its own role and can reach
-- only the tables it works with. The host (migrations, ETL, workers, `cinema` commands)
-- keeps the owner role that runs these migrations.
--
-- | role          | may                                                               |
-- |---------------|-------------------------------------------------------------------|
-- | cinema_auth   | read and write the auth schema; read (never write) the signing    |
-- |               | keys; append to the outbox and the audit log                      |
-- | cinema_admin  | read and write content; append to and read the audit log; queue   |
-- |               | and list announcements, count their deliveries; read users' id    |
-- |               | and email only (never password hashes or keys)                    |
-- | cinema_ugc    | read the ugc read models (the host's consumer writes them)        |
--
-- The catalog and hello components have no database access at all.
--
-- Roles belong to the cluster, grants to this database: the roles are created when
-- missing (several databases of one cluster share them; a DBA may create them ahead,
-- with passwords, and then the migrating role needs no CREATEROLE). They log in without
-- a password only where pg_hba.conf trusts the connection (local development); in
-- production give each a password (`ALTER ROLE cinema_auth PASSWORD '…'`) and put it in
-- that component's `*_database_url`.
--
-- A migration that adds a table grants it to the roles that need it, here or in its
-- own file; nothing is granted by default.
DO $$
DECLARE
    component_role text;
BEGIN
    FOREACH component_role IN ARRAY ARRAY['cinema_auth', 'cinema_admin', 'cinema_ugc'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = component_role) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', component_role);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Another database of this cluster migrating at the same moment made it.
                NULL;
            END;
        END IF;
    END LOOP;
END $$;

-- auth: its own schema, signing keys read-only (rotation is `cinema keys rotate`).
GRANT USAGE ON SCHEMA auth TO cinema_auth;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA auth TO cinema_auth;
REVOKE INSERT, UPDATE, DELETE ON auth.signing_keys FROM cinema_auth;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA auth TO cinema_auth;
GRANT USAGE ON SCHEMA platform TO cinema_auth;
GRANT INSERT, SELECT (id) ON platform.outbox TO cinema_auth;
GRANT USAGE ON SCHEMA admin TO cinema_auth;
-- (the id back from RETURNING, nothing else of the log)
GRANT INSERT, SELECT (id) ON admin.audit_log TO cinema_auth;

-- admin: the content it edits, its audit log, announcements.
GRANT USAGE ON SCHEMA content TO cinema_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA content TO cinema_admin;
GRANT USAGE ON SCHEMA admin TO cinema_admin;
GRANT SELECT, INSERT ON admin.audit_log TO cinema_admin;
GRANT USAGE ON SCHEMA notify TO cinema_admin;
GRANT SELECT, INSERT ON notify.announcements TO cinema_admin;
GRANT SELECT (event_id, status) ON notify.deliveries TO cinema_admin;
GRANT USAGE ON SCHEMA auth TO cinema_admin;
GRANT SELECT (id, email) ON auth.users TO cinema_admin;

-- ugc: the read models, read only.
GRANT USAGE ON SCHEMA ugc TO cinema_ugc;
GRANT SELECT ON ALL TABLES IN SCHEMA ugc TO cinema_ugc;

-- A new film announces itself through the outbox whoever inserts it: the trigger runs
-- as its owner, so the admin role needs no outbox rights.
ALTER FUNCTION content.announce_film() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

//! Issue 14, item 9: each edge component reaches Postgres as its own least-privilege
//! role (migrations/postgres/0010_component_roles.sql). A component taken over (or a
//! query it can be tricked into) reads and writes only its own tables: the signing keys
//! only auth may read, password hashes nobody at the edge but auth, and the ugc read
//! models are read-only to the ugc component.

mod common;

use common::{AppOptions, TempDir, free_port, spawn_app};
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";
/// The admin role of migrations/postgres/0001_auth.sql.
const ADMIN_ROLE: &str = "00000000-0000-4000-8000-000000000001";
/// Postgres' `insufficient_privilege`.
const INSUFFICIENT_PRIVILEGE: &str = "42501";

async fn connect_as(database_url: &str, role: &str) -> tokio_postgres::Client {
    let (client, connection) =
        tokio_postgres::connect(&common::as_role(database_url, role), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect as {role}: {e}"));
    tokio::spawn(connection);
    client
}

/// Runs `statement` as `role` and asserts Postgres refuses it for lack of privilege.
async fn refused(client: &tokio_postgres::Client, role: &str, statement: &str) {
    let error = client
        .batch_execute(statement)
        .await
        .err()
        .unwrap_or_else(|| panic!("{role} was allowed to run: {statement}"));
    assert_eq!(
        error.code().map(|c| c.code()),
        Some(INSUFFICIENT_PRIVILEGE),
        "{role} running {statement}: {error}"
    );
}

async fn allowed(client: &tokio_postgres::Client, role: &str, statement: &str) {
    client
        .batch_execute(statement)
        .await
        .unwrap_or_else(|e| panic!("{role} must be allowed to run {statement}: {e}"));
}

#[tokio::test]
async fn component_roles_are_refused_outside_their_own_tables() {
    let (database_url, _jwks) = common::platform_database().await;

    let ugc = connect_as(&database_url, "cinema_ugc").await;
    for statement in [
        "SELECT kid, private_key FROM auth.signing_keys",
        "SELECT password_hash FROM auth.users",
        "SELECT id FROM content.film",
        "SELECT id FROM admin.audit_log",
        "INSERT INTO ugc.bookmarks (user_id, film_id) VALUES (gen_random_uuid(), gen_random_uuid())",
        "DELETE FROM ugc.reviews",
        "UPDATE ugc.ratings SET score = 10",
    ] {
        refused(&ugc, "cinema_ugc", statement).await;
    }
    allowed(&ugc, "cinema_ugc", "SELECT count(*) FROM ugc.reviews").await;

    let admin = connect_as(&database_url, "cinema_admin").await;
    for statement in [
        "SELECT kid, private_key FROM auth.signing_keys",
        "SELECT password_hash FROM auth.users",
        "SELECT * FROM auth.users",
        "UPDATE auth.users SET is_blocked = true",
        "INSERT INTO auth.user_roles (user_id, role_id) SELECT id, id FROM auth.users",
        "SELECT id FROM auth.sessions",
        "DELETE FROM admin.audit_log",
        "UPDATE admin.audit_log SET actor_email = 'someone-else@example.com'",
        "INSERT INTO platform.outbox (id, topic, key, payload) \
         VALUES (gen_random_uuid(), 'auth.events', 'k', '{}')",
        "SELECT recipient FROM notify.deliveries",
        "SELECT id FROM ugc.reviews",
    ] {
        refused(&admin, "cinema_admin", statement).await;
    }
    allowed(&admin, "cinema_admin", "SELECT id, email FROM auth.users").await;
    allowed(&admin, "cinema_admin", "SELECT count(*) FROM content.film").await;

    let auth = connect_as(&database_url, "cinema_auth").await;
    for statement in [
        "UPDATE auth.signing_keys SET retired_at = now()",
        "DELETE FROM auth.signing_keys",
        "INSERT INTO auth.signing_keys SELECT * FROM auth.signing_keys",
        "SELECT id FROM content.film",
        "SELECT actor_email FROM admin.audit_log",
        "DELETE FROM admin.audit_log",
        "SELECT id FROM ugc.reviews",
        "SELECT payload FROM platform.outbox",
        "SELECT event_id FROM notify.deliveries",
    ] {
        refused(&auth, "cinema_auth", statement).await;
    }
    allowed(
        &auth,
        "cinema_auth",
        "SELECT count(*) FROM auth.signing_keys",
    )
    .await;
}

/// A second database of the same cluster migrates cleanly although the roles exist
/// (roles are cluster-wide, grants per database).
#[tokio::test]
async fn migrating_another_database_reuses_the_existing_roles() {
    let first = common::fresh_database().await;
    let second = common::fresh_database().await;
    tokio::join!(common::migrate(&first), common::migrate(&second));
    for database_url in [&first, &second] {
        let ugc = connect_as(database_url, "cinema_ugc").await;
        allowed(&ugc, "cinema_ugc", "SELECT count(*) FROM ugc.bookmarks").await;
    }
}

/// Over HTTP the platform works with each component on its own role: sign-up and login
/// (auth), a genre created in the admin API (admin), a ugc read, and Postgres shows
/// those components' connections under their roles.
#[tokio::test]
async fn components_serve_requests_connected_as_their_own_roles() {
    let (database_url, jwks) = common::platform_database().await;
    let port = free_port();
    let index = TempDir::new("database_roles_index");
    let mut options = AppOptions::default()
        .component_databases(&database_url)
        .env("SPIN_VARIABLE_JWKS", &jwks)
        .env(
            "SPIN_VARIABLE_AUTH_API_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .arg("--index-dir")
        .arg(index.path())
        .arg("--etl-postgres-url")
        .arg(&database_url)
        .arg("--auth-postgres-url")
        .arg(&database_url);
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.listen = Some(format!("127.0.0.1:{port}"));
    let app = spawn_app(options);

    let email = format!("{}@example.com", common::unique("roles_admin"));
    app.sign_up_and_log_in(&email, PASSWORD).await;
    common::grant_role(&database_url, &email, ADMIN_ROLE).await;
    let token = app.log_in(&email, PASSWORD).await;

    let (status, body) = app
        .call(
            reqwest::Method::POST,
            "/admin/api/genres",
            Some(&token),
            Some(json!({"name": common::unique("Role genre"), "description": ""})),
        )
        .await;
    assert_eq!(
        status, 201,
        "the admin API creates a genre as cinema_admin: {body}"
    );
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/ugc/me/bookmarks",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "ugc reads its read models as cinema_ugc: {body}"
    );

    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let database = common::database_name(&database_url);
    let roles: Vec<String> = db
        .query(
            "SELECT DISTINCT usename::text FROM pg_stat_activity WHERE datname = $1 ORDER BY 1",
            &[&database],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for role in ["cinema_admin", "cinema_auth", "cinema_ugc"] {
        assert!(
            roles.iter().any(|r| r == role),
            "no connection as {role} among {roles:?}"
        );
    }
}

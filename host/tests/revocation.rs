//! Issue 14, item 13: revocation reaches the edge. A logout, a block, a password change
//! and a role change stop the user's access tokens in catalog, ugc and admin within
//! seconds (each component checks the host's revocation list), not when they expire.

mod common;

use std::time::{Duration, Instant};

use common::{AppOptions, TempDir, TestApp, free_port, spawn_app};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
/// Roles of migrations/postgres/0001_auth.sql.
const ADMIN_ROLE: &str = "00000000-0000-4000-8000-000000000001";
const MANAGER_ROLE: &str = "00000000-0000-4000-8000-000000000002";

struct Platform {
    app: TestApp,
    database_url: String,
    _index: TempDir,
}

/// The real spin.toml with every component; the host reads revocations from this
/// test's database.
async fn start() -> Platform {
    let (database_url, jwks) = common::platform_database().await;
    let port = free_port();
    let internal_port = free_port();
    let index = TempDir::new("revocation_index");
    let mut options = AppOptions::default()
        .component_databases(&database_url)
        .env("SPIN_VARIABLE_JWKS", &jwks)
        .env(
            "SPIN_VARIABLE_AUTH_API_URL",
            format!("http://127.0.0.1:{port}"),
        )
        .env(
            "SPIN_VARIABLE_INTERNAL_API_URL",
            format!("http://127.0.0.1:{internal_port}"),
        )
        .arg("--index-dir")
        .arg(index.path())
        .arg("--etl-postgres-url")
        .arg(&database_url)
        .arg("--auth-postgres-url")
        .arg(&database_url);
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.listen = Some(format!("127.0.0.1:{port}"));
    options.internal_listen = Some(format!("127.0.0.1:{internal_port}"));
    Platform {
        app: spawn_app(options),
        database_url,
        _index: index,
    }
}

impl Platform {
    async fn call(&self, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
        self.app.call(method, path, Some(token), None).await
    }

    async fn login(&self, email: &str) -> String {
        self.app.log_in(email, PASSWORD).await
    }

    async fn user(&self, prefix: &str, role: Option<&str>) -> (String, String) {
        let email = format!("{}@example.com", common::unique(prefix));
        self.app.sign_up_and_log_in(&email, PASSWORD).await;
        if let Some(role) = role {
            common::grant_role(&self.database_url, &email, role).await;
        }
        let token = self.login(&email).await;
        (email, token)
    }

    /// Waits until every path refuses `token` as revoked (the admin API says
    /// `not_signed_in`, as for any token it cannot use); answers how long it took.
    async fn until_revoked(&self, token: &str, paths: &[&str]) -> Duration {
        let started = Instant::now();
        for path in paths {
            let refused = TestApp::eventually(Duration::from_secs(15), || async {
                let (status, body) = self.call(reqwest::Method::GET, path, token).await;
                let code = body["error"]["code"].as_str().unwrap_or_default();
                let expected = if path.starts_with("/admin/") {
                    "not_signed_in"
                } else {
                    "token_revoked"
                };
                (status == 401 && code == expected).then_some(())
            })
            .await;
            let (status, body) = self.call(reqwest::Method::GET, path, token).await;
            assert!(
                refused.is_some(),
                "{path} still answers {status} {body} to a revoked token"
            );
        }
        started.elapsed()
    }

    async fn accepts(&self, token: &str, paths: &[&str]) {
        for path in paths {
            let (status, body) = self.call(reqwest::Method::GET, path, token).await;
            assert!(
                status == 200,
                "{path} answers {status} {body} to a live token"
            );
        }
    }
}

const VIEWER_PATHS: [&str; 2] = ["/api/v1/genres", "/api/v1/ugc/me/bookmarks"];

/// A logout stops that session's token in catalog and ugc; a new login works.
#[tokio::test]
async fn a_logout_stops_the_sessions_token_in_catalog_and_ugc() {
    let platform = start().await;
    let (email, token) = platform.user("viewer", None).await;
    platform.accepts(&token, &VIEWER_PATHS).await;
    let (status, _) = platform
        .call(reqwest::Method::POST, "/api/v1/auth/logout", &token)
        .await;
    assert_eq!(status, 204);
    let took = platform.until_revoked(&token, &VIEWER_PATHS).await;
    println!("logout reached catalog and ugc within {took:?}");
    let fresh = platform.login(&email).await;
    platform.accepts(&fresh, &VIEWER_PATHS).await;
}

/// Blocking a user stops all their tokens; a password change stops the other sessions'.
#[tokio::test]
async fn a_block_and_a_password_change_stop_the_users_tokens() {
    let platform = start().await;
    let (_, admin) = platform.user("admin", Some(ADMIN_ROLE)).await;
    let (_, blocked) = platform.user("blocked", None).await;
    let (_, me) = platform
        .call(reqwest::Method::GET, "/api/v1/auth/me", &blocked)
        .await;
    let blocked_id = me["id"].as_str().expect("id").to_owned();
    platform.accepts(&blocked, &VIEWER_PATHS).await;
    let (status, body) = platform
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/auth/users/{blocked_id}/block"),
            &admin,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let took = platform.until_revoked(&blocked, &VIEWER_PATHS).await;
    println!("a block reached catalog and ugc within {took:?}");

    let (email, first) = platform.user("changer", None).await;
    let second = platform.login(&email).await;
    platform.accepts(&second, &VIEWER_PATHS).await;
    let (status, body) = platform
        .app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/me/password",
            Some(&first),
            Some(json!({"current_password": PASSWORD, "new_password": "Another-pass-9"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    platform.until_revoked(&second, &VIEWER_PATHS).await;
}

/// Taking the manager role away stops the manager's token at the admin API at once,
/// not when it expires; the admin who did it is unaffected.
#[tokio::test]
async fn a_role_change_stops_the_users_older_tokens_in_admin() {
    let platform = start().await;
    let (_, admin) = platform.user("admin", Some(ADMIN_ROLE)).await;
    let (_, manager) = platform.user("manager", Some(MANAGER_ROLE)).await;
    let (_, me) = platform
        .call(reqwest::Method::GET, "/api/v1/auth/me", &manager)
        .await;
    let manager_id = me["id"].as_str().expect("id").to_owned();
    platform.accepts(&manager, &["/admin/api/films"]).await;
    let (status, body) = platform
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/auth/users/{manager_id}/roles/manager"),
            &admin,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let took = platform
        .until_revoked(&manager, &["/admin/api/films", "/api/v1/genres"])
        .await;
    println!("a role change reached admin and catalog within {took:?}");
    platform.accepts(&admin, &["/admin/api/films"]).await;
}

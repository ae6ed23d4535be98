//! Tokens are verified by each component itself: with the auth component removed from
//! the running app, a component that authenticates requests keeps accepting tokens
//! issued before (from its key-value cached JWKS) until they expire.

mod common;

use common::{AppOptions, spawn_app};
use serde_json::{Value, json};

async fn get(app: &common::TestApp, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut request = app.http.get(app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Components keep verifying tokens while auth is absent, from the cached JWKS.
#[tokio::test]
async fn tokens_keep_working_with_the_auth_component_removed() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    common::rotate_keys(&database_url, &[]);
    let redis_url = format!("{}/3", common::redis_url());
    let redis = redis::Client::open(redis_url.clone()).expect("redis url");
    let mut redis = redis
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must run on 127.0.0.1:6379 for this test (`scripts/services.sh up`)");
    let _: () = redis::AsyncCommands::del(&mut redis, "edge:jwks")
        .await
        .expect("clear cache");
    let runtime_config =
        format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis_url}\"\n");

    let port = common::free_port();
    let jwks_url = format!("http://127.0.0.1:{port}/.well-known/jwks.json");
    let mut options = AppOptions::default()
        .env("SPIN_VARIABLE_DATABASE_URL", database_url.clone())
        .env("SPIN_VARIABLE_JWKS_URL", jwks_url.clone())
        .runtime_config(runtime_config.clone());
    options.manifest =
        Some(common::fixture_manifest().with_file_name("platform-guarded.spin.toml"));
    options.listen = Some(format!("127.0.0.1:{port}"));
    let platform = spawn_app(options);

    let token = platform
        .sign_up_and_log_in("viewer@example.com", "Viewer-pass1")
        .await;

    let (status, claims) = get(&platform, "/guarded/whoami", Some(&token)).await;
    assert_eq!(status, 200, "{claims}");
    assert_eq!(claims["roles"], json!([]));
    let cached: Option<String> = redis::AsyncCommands::get(&mut redis, "edge:jwks")
        .await
        .expect("redis get");
    assert!(
        cached.is_some(),
        "the component cached the JWKS in the key-value store"
    );
    let (status, body) = get(&platform, "/guarded/whoami", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );
    let (status, body) = get(&platform, "/guarded/whoami", Some("not-a-token")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_token"))
    );
    drop(platform);

    // The same component, auth gone from the app (its JWKS URL now answers nothing).
    let mut options = AppOptions::default()
        .env("SPIN_VARIABLE_JWKS_URL", jwks_url)
        .runtime_config(runtime_config);
    options.manifest = Some(common::fixture_manifest().with_file_name("guarded-only.spin.toml"));
    let without_auth = spawn_app(options);
    let (status, body) = get(&without_auth, "/guarded/whoami", Some(&token)).await;
    assert_eq!(status, 200, "tokens issued before keep working: {body}");
    assert_eq!(body["sub"], claims["sub"]);
    let (status, _) = get(&without_auth, "/api/v1/auth/me", Some(&token)).await;
    assert_eq!(status, 404, "auth is really absent");

    // Without the cache there is nothing to verify with: a clear 503, never a 500.
    let _: () = redis::AsyncCommands::del(&mut redis, "edge:jwks")
        .await
        .expect("clear cache");
    let (status, body) = get(&without_auth, "/guarded/whoami", Some(&token)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("auth_keys_unavailable")),
        "{body}"
    );
}

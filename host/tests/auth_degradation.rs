//! Tokens are verified by each component itself, with keys held in its own memory:
//! while auth is unreachable, a component keeps accepting tokens with the keys it
//! holds, for a bounded time past their lifetime (`jwks_max_stale_seconds`), then
//! answers 503; and no key set found in a shared store is ever trusted.

mod common;

use std::time::Duration;

use common::{AppOptions, CuttableProxy, TestApp, spawn_app};
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

/// Held keys keep verifying while auth cannot be reached, then stop once they are
/// `jwks_cache_seconds + jwks_max_stale_seconds` old: a clear 503, never a 500.
#[tokio::test]
async fn held_keys_outlive_an_auth_outage_only_for_a_bounded_time() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    common::rotate_keys(&database_url, &[]);
    let port = common::free_port();
    let mut auth_link =
        CuttableProxy::start(format!("127.0.0.1:{port}").parse().expect("address")).await;
    let jwks_url = format!("http://127.0.0.1:{}/.well-known/jwks.json", auth_link.port);
    let mut options = AppOptions::default()
        .component_databases(&database_url)
        .env("SPIN_VARIABLE_JWKS_URL", jwks_url)
        .env("SPIN_VARIABLE_JWKS_CACHE_SECONDS", "2")
        .env("SPIN_VARIABLE_JWKS_MAX_STALE_SECONDS", "3");
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
    let (status, body) = get(&platform, "/guarded/whoami", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("missing_token"))
    );

    auth_link.cut().await;
    let (status, body) = get(&platform, "/guarded/whoami", Some(&token)).await;
    assert_eq!(
        status, 200,
        "held keys verify while auth is unreachable: {body}"
    );
    assert_eq!(body["sub"], claims["sub"]);

    let refused = TestApp::eventually(Duration::from_secs(30), || async {
        let (status, body) = get(&platform, "/guarded/whoami", Some(&token)).await;
        (status != 200).then_some((status, body))
    })
    .await
    .expect("held keys stop verifying after the bound");
    assert_eq!(
        (refused.0, refused.1["error"]["code"].as_str()),
        (503, Some("auth_keys_unavailable")),
        "{}",
        refused.1
    );

    auth_link.restore().await;
    let recovered = TestApp::eventually(Duration::from_secs(30), || async {
        let (status, _) = get(&platform, "/guarded/whoami", Some(&token)).await;
        (status == 200).then_some(())
    })
    .await;
    assert!(
        recovered.is_some(),
        "keys are fetched again once auth is back"
    );
}

/// Issue 14, item 7: a key set planted in Redis (where an earlier version cached the
/// JWKS, and in the catalog's own store) is never read: a token signed with the
/// planted key is refused by the catalog, while a real token is accepted.
#[tokio::test]
async fn a_key_set_planted_in_the_key_value_store_cannot_forge_tokens() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    common::rotate_keys(&database_url, &[]);
    let redis_url = format!("{}/3", common::redis_url());
    let redis = redis::Client::open(redis_url.clone()).expect("redis url");
    let mut redis = redis
        .get_multiplexed_async_connection()
        .await
        .expect("Redis must run on 127.0.0.1:6379 for this test (`scripts/services.sh up`)");

    let (private_key, public_key) =
        cinema_domain::token::generate_ed25519_key().expect("attacker key");
    let planted = cinema_domain::token::Jwks {
        keys: vec![cinema_domain::token::Jwk::ed25519("planted", &public_key)],
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let entry = json!({"fetched_at": now, "jwks": planted}).to_string();
    for key in ["edge:jwks", "jwks", "catalog:edge:jwks"] {
        let _: () = redis::AsyncCommands::set(&mut redis, key, &entry)
            .await
            .expect("plant");
    }
    let forged = cinema_domain::token::sign(
        &cinema_domain::token::AccessClaims {
            sub: uuid::Uuid::new_v4().to_string(),
            sid: uuid::Uuid::new_v4().to_string(),
            roles: vec!["admin".into(), "subscriber".into()],
            permissions: vec!["films:premium".into()],
            iat: now,
            exp: now + 600,
            iss: "cinema-auth".into(),
            aud: "cinema".into(),
            act: None,
        },
        "planted",
        &private_key,
    )
    .expect("forge");

    let port = common::free_port();
    let mut options = AppOptions::default()
        .component_databases(&database_url)
        .env(
            "SPIN_VARIABLE_JWKS_URL",
            format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
        )
        .env(
            "SPIN_VARIABLE_JWKS_OUTBOUND_HOST",
            format!("http://127.0.0.1:{port}"),
        )
        .runtime_config(format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{redis_url}\"\n\n\
             [key_value_store.catalog]\ntype = \"redis\"\nurl = \"{redis_url}\"\n"
        ));
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.listen = Some(format!("127.0.0.1:{port}"));
    let platform = spawn_app(options);

    for path in [
        "/api/v1/films",
        "/api/v1/genres",
        "/api/v1/ugc/me/bookmarks",
    ] {
        let (status, body) = get(&platform, path, Some(&forged)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_token")),
            "{path}: {body}"
        );
    }
    let token = platform
        .sign_up_and_log_in("viewer@example.com", "Viewer-pass1")
        .await;
    let (status, body) = get(&platform, "/api/v1/ugc/me/bookmarks", Some(&token)).await;
    assert_ne!(status, 401, "a real token is accepted: {body}");
    for key in ["edge:jwks", "jwks", "catalog:edge:jwks"] {
        let _: () = redis::AsyncCommands::del(&mut redis, key)
            .await
            .expect("cleanup");
    }
}

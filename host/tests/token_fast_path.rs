//! Issue 15, item 3: the token fast path of `cinema_edge`. An instance remembers tokens
//! it verified, but a remembered token still stops at its expiry and when its key is
//! withdrawn from the published set; each token answers its own claims; and tokens
//! naming unknown key ids, or with forged signatures, cannot make a component fetch
//! the JWKS again and again.
//!
//! The component is the `guarded` fixture (`GET /guarded/whoami` answers the verified
//! claims, exactly as catalog, ugc and admin authenticate), its keys served by a JWKS
//! endpoint in this test that counts its fetches.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cinema_domain::token::{AccessClaims, Jwk, Jwks, generate_ed25519_key, sign};
use common::{AppOptions, TempDir, TestApp, spawn_app};
use serde_json::Value;

/// A JWKS endpoint whose key set the test changes, counting its fetches.
#[derive(Clone)]
struct KeyServer {
    jwks: Arc<Mutex<Jwks>>,
    fetches: Arc<AtomicUsize>,
    port: u16,
}

impl KeyServer {
    async fn start(jwks: Jwks) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = Self {
            jwks: Arc::new(Mutex::new(jwks)),
            fetches: Arc::new(AtomicUsize::new(0)),
            port,
        };
        let state = server.clone();
        let app = axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let state = state.clone();
                async move {
                    state.fetches.fetch_add(1, Ordering::SeqCst);
                    let jwks = state.jwks.lock().expect("jwks").clone();
                    axum::Json(jwks)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    fn publish(&self, jwks: Jwks) {
        *self.jwks.lock().expect("jwks") = jwks;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A signing key and its published form.
struct Key {
    kid: String,
    private_der: Vec<u8>,
    jwk: Jwk,
}

impl Key {
    fn new(kid: &str) -> Self {
        let (private_der, public) = generate_ed25519_key().expect("key");
        Self {
            kid: kid.to_owned(),
            private_der,
            jwk: Jwk::ed25519(kid, &public),
        }
    }

    /// A token for a new user, valid from `iat` until `exp` (seconds from now).
    fn token(&self, sub: &str, exp_in: i64) -> String {
        let now = now();
        sign(
            &AccessClaims {
                sub: sub.to_owned(),
                sid: uuid::Uuid::new_v4().to_string(),
                roles: vec!["subscriber".into()],
                permissions: vec![],
                iat: now.min(now + exp_in - 1),
                exp: now + exp_in,
                iss: "cinema-auth".into(),
                aud: "cinema".into(),
                act: None,
            },
            &self.kid,
            &self.private_der,
        )
        .expect("sign")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// The guarded fixture alone, its keys at `keys`, held `cache_seconds`.
fn guarded_app(keys: &KeyServer, cache_seconds: u32) -> (TestApp, TempDir) {
    let dir = TempDir::new("token_fast_path");
    let wasm = common::workspace_root().join("build/components/fixture_guarded.wasm");
    let manifest = format!(
        r#"spin_manifest_version = 2
[application]
name = "token-fast-path"
[[trigger.http]]
route = "/guarded/..."
component = "guarded"
[component.guarded]
source = "{wasm}"
allowed_outbound_hosts = ["http://127.0.0.1:{port}"]
[component.guarded.variables]
jwks_url = "http://127.0.0.1:{port}/jwks.json"
jwks_cache_seconds = "{cache_seconds}"
token_issuer = "cinema-auth"
token_audience = "cinema"
"#,
        wasm = wasm.display(),
        port = keys.port,
    );
    let path = std::path::Path::new(dir.path()).join("spin.toml");
    std::fs::write(&path, manifest).expect("write manifest");
    let options = AppOptions {
        manifest: Some(path),
        ..AppOptions::default()
    };
    (spawn_app(options), dir)
}

async fn whoami(app: &TestApp, token: &str) -> (u16, Value) {
    app.call(reqwest::Method::GET, "/guarded/whoami", Some(token), None)
        .await
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[tokio::test]
async fn each_of_many_tokens_answers_its_own_claims_again_and_again() {
    let key = Key::new("k1");
    let keys = KeyServer::start(Jwks {
        keys: vec![key.jwk.clone()],
    })
    .await;
    let (app, _dir) = guarded_app(&keys, 300);
    let users: Vec<(String, String)> = (0..200)
        .map(|_| {
            let sub = uuid::Uuid::new_v4().to_string();
            let token = key.token(&sub, 600);
            (sub, token)
        })
        .collect();
    for round in 0..3 {
        for (sub, token) in &users {
            let (status, body) = whoami(&app, token).await;
            assert_eq!(status, 200, "round {round}: {body}");
            assert_eq!(body["sub"].as_str(), Some(sub.as_str()), "round {round}");
        }
    }
}

#[tokio::test]
async fn a_remembered_token_stops_when_its_key_is_withdrawn() {
    let old = Key::new("old");
    let new = Key::new("new");
    let keys = KeyServer::start(Jwks {
        keys: vec![old.jwk.clone()],
    })
    .await;
    let (app, _dir) = guarded_app(&keys, 1);
    let token = old.token("someone", 600);
    for _ in 0..5 {
        let (status, body) = whoami(&app, &token).await;
        assert_eq!(status, 200, "{body}");
    }

    keys.publish(Jwks {
        keys: vec![new.jwk.clone()],
    });
    let refused = TestApp::eventually(Duration::from_secs(20), || async {
        let (status, body) = whoami(&app, &token).await;
        (status == 401 && code(&body) == Some("invalid_token")).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "a token of a withdrawn key is still accepted: {:?}",
        whoami(&app, &token).await
    );
    let (status, body) = whoami(&app, &new.token("someone", 600)).await;
    assert_eq!(status, 200, "the new key's tokens verify: {body}");
}

#[tokio::test]
async fn a_remembered_token_stops_at_its_expiry() {
    let key = Key::new("k1");
    let keys = KeyServer::start(Jwks {
        keys: vec![key.jwk.clone()],
    })
    .await;
    let (app, _dir) = guarded_app(&keys, 300);
    // Expired 29 s ago: accepted for about one more second thanks to the 30 s leeway
    // for clock skew, then refused, also when remembered.
    let token = key.token(
        "someone",
        -(cinema_domain::token::CLOCK_SKEW_LEEWAY_SECONDS - 1),
    );
    let (status, body) = whoami(&app, &token).await;
    if status == 200 {
        let refused = TestApp::eventually(Duration::from_secs(10), || async {
            let (status, body) = whoami(&app, &token).await;
            (status == 401 && code(&body) == Some("token_expired")).then_some(())
        })
        .await;
        assert!(refused.is_some(), "a remembered token outlives its expiry");
    } else {
        // The second boundary passed before the first request: refused as expired.
        assert_eq!(
            (status, code(&body)),
            (401, Some("token_expired")),
            "{body}"
        );
    }
}

#[tokio::test]
async fn unknown_key_ids_and_forged_signatures_cause_no_fetch_storm() {
    let key = Key::new("k1");
    let keys = KeyServer::start(Jwks {
        keys: vec![key.jwk.clone()],
    })
    .await;
    let (app, _dir) = guarded_app(&keys, 300);
    let (status, body) = whoami(&app, &key.token("someone", 600)).await;
    assert_eq!(status, 200, "{body}");
    let before = keys.fetches();

    for i in 0..100 {
        let stranger = Key::new(&format!("forged-{i}"));
        let (status, body) = whoami(&app, &stranger.token("someone", 600)).await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("invalid_token")),
            "{body}"
        );
    }
    let impostor = Key::new("k1");
    for _ in 0..100 {
        let (status, body) = whoami(&app, &impostor.token("someone", 600)).await;
        assert_eq!(
            (status, code(&body)),
            (401, Some("invalid_token")),
            "{body}"
        );
    }
    // Instances each fetch at most once every MIN_REFETCH_SECONDS however many unknown
    // key ids arrive; a test run of this length sees at most one refetch per instance
    // the runtime made.
    let fetched = keys.fetches() - before;
    assert!(fetched <= 4, "200 bad tokens caused {fetched} JWKS fetches");
}

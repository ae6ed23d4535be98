//! Social login end to end: the auth component in `cinema up` against an OAuth 2.0
//! provider started on loopback by the test, which follows the protocol (authorization
//! code, PKCE S256, state) and answers user info in each provider's own shape.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode as AxumStatus, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use common::{AppOptions, TestApp, spawn_app};
use serde_json::{Value, json};

const CLIENT_ID: &str = "test-client";
const CLIENT_SECRET: &str = "test-secret";

#[derive(Clone, Default)]
struct Provider {
    /// code -> (PKCE challenge, redirect_uri)
    codes: Arc<Mutex<HashMap<String, (String, String)>>>,
}

async fn authorize(
    State(provider): State<Provider>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let redirect = q.get("redirect_uri").cloned().unwrap_or_default();
    let state = q.get("state").cloned().unwrap_or_default();
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (AxumStatus::BAD_REQUEST, "bad authorize request").into_response();
    }
    if q.get("consent").map(String::as_str) == Some("deny") {
        return Redirect::to(&format!("{redirect}?error=access_denied&state={state}"))
            .into_response();
    }
    let code = uuid::Uuid::new_v4().simple().to_string();
    provider.codes.lock().expect("lock").insert(
        code.clone(),
        (
            q.get("code_challenge").cloned().unwrap_or_default(),
            redirect.clone(),
        ),
    );
    Redirect::to(&format!("{redirect}?code={code}&state={state}")).into_response()
}

async fn token(
    State(provider): State<Provider>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    let issued = provider.codes.lock().expect("lock").remove(&field("code"));
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
        <sha2::Sha256 as sha2::Digest>::digest(field("code_verifier").as_bytes()),
    );
    match issued {
        Some((expected, redirect))
            if expected == challenge
                && redirect == field("redirect_uri")
                && field("client_id") == CLIENT_ID
                && field("client_secret") == CLIENT_SECRET
                && field("grant_type") == "authorization_code" =>
        {
            Json(json!({"access_token": format!("at-{}", field("code")), "token_type": "bearer"}))
                .into_response()
        }
        _ => (
            AxumStatus::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response(),
    }
}

fn bearer(headers: &HeaderMap, scheme: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(&format!("{scheme} at-")))
}

async fn google_userinfo(headers: HeaderMap) -> Response {
    if !bearer(&headers, "Bearer") {
        return AxumStatus::UNAUTHORIZED.into_response();
    }
    Json(
        json!({"sub": "g-1001", "email": "Film.Lover@gmail.com", "email_verified": true,
                "given_name": "Film", "family_name": "Lover"}),
    )
    .into_response()
}

async fn yandex_userinfo(headers: HeaderMap) -> Response {
    if !bearer(&headers, "OAuth") {
        return AxumStatus::UNAUTHORIZED.into_response();
    }
    Json(
        json!({"id": "77000123", "login": "kinoman", "default_email": "kinoman@yandex.ru",
                "first_name": "Кино", "last_name": "Ман"}),
    )
    .into_response()
}

async fn vk_userinfo(Form(form): Form<HashMap<String, String>>) -> Response {
    if !form
        .get("access_token")
        .is_some_and(|t| t.starts_with("at-"))
        || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
    {
        return AxumStatus::UNAUTHORIZED.into_response();
    }
    Json(json!({"user": {"user_id": "5550001", "email": "vk.viewer@example.com", "first_name": "Вера", "last_name": "К"}}))
        .into_response()
}

/// Starts the provider; returns its base URL.
async fn start_provider() -> String {
    let app = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/google/userinfo", get(google_userinfo))
        .route("/yandex/userinfo", get(yandex_userinfo))
        .route("/vk/userinfo", post(vk_userinfo))
        .with_state(Provider::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

struct Harness {
    app: TestApp,
    client: reqwest::Client,
    db: tokio_postgres::Client,
}

/// The platform app with Google and Yandex and VK pointed at the local provider.
async fn start() -> Harness {
    let provider = start_provider().await;
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    common::rotate_keys(&database_url, &[]);
    let port = common::free_port();
    let mut options = AppOptions::default()
        .env("SPIN_VARIABLE_DATABASE_URL", database_url.clone())
        .env(
            "SPIN_VARIABLE_OAUTH_REDIRECT_BASE",
            format!("http://127.0.0.1:{port}"),
        )
        .env("SPIN_VARIABLE_OAUTH_EXTRA_ALLOWED_HOST", provider.clone());
    for name in ["google", "yandex", "vk"] {
        let upper = name.to_uppercase();
        options = options
            .env(&format!("SPIN_VARIABLE_OAUTH_{upper}_CLIENT_ID"), CLIENT_ID)
            .env(
                &format!("SPIN_VARIABLE_OAUTH_{upper}_CLIENT_SECRET"),
                CLIENT_SECRET,
            )
            .env(
                &format!("SPIN_VARIABLE_OAUTH_{upper}_AUTHORIZE_URL"),
                format!("{provider}/authorize"),
            )
            .env(
                &format!("SPIN_VARIABLE_OAUTH_{upper}_TOKEN_URL"),
                format!("{provider}/token"),
            )
            .env(
                &format!("SPIN_VARIABLE_OAUTH_{upper}_USERINFO_URL"),
                format!("{provider}/{name}/userinfo"),
            );
    }
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.listen = Some(format!("127.0.0.1:{port}"));
    let app = spawn_app(options);
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Harness { app, client, db }
}

impl Harness {
    async fn location(&self, url: &str) -> String {
        let response = self.client.get(url).send().await.expect("request");
        assert!(
            response.status().is_redirection(),
            "{url}: {} {:?}",
            response.status(),
            response.text().await
        );
        response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    /// Runs the redirect flow; `consent` appends to the provider's authorize URL.
    async fn flow(&self, start: &str, consent: &str) -> (u16, Value) {
        let to_provider = if start.starts_with("http") {
            start.to_owned()
        } else {
            self.location(&self.app.url(start)).await
        };
        let to_callback = self.location(&format!("{to_provider}{consent}")).await;
        let response = self
            .client
            .get(&to_callback)
            .send()
            .await
            .expect("callback");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn me(&self, token: &str) -> Value {
        self.client
            .get(self.app.url("/api/v1/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .expect("me")
            .json()
            .await
            .expect("json")
    }
}

/// Google: the redirect carries state and an S256 challenge; the callback exchanges the
/// code with the verifier and signs in a new, confirmed account; a second sign-in
/// reaches the same account.
#[tokio::test]
async fn google_sign_in_runs_the_full_redirect_flow() {
    let h = start().await;
    let to_provider = h
        .location(&h.app.url("/api/v1/auth/oauth/google/authorize"))
        .await;
    for expected in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "scope=openid+email+profile",
        "client_id=test-client",
    ] {
        assert!(to_provider.contains(expected), "{to_provider}");
    }
    let (status, tokens) = h.flow(&to_provider, "").await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let me = h.me(tokens["access_token"].as_str().expect("token")).await;
    assert_eq!(
        (me["email"].as_str(), me["email_confirmed"].as_bool()),
        (Some("film.lover@gmail.com"), Some(true))
    );
    assert_eq!(me["first_name"], "Film");

    let (status, again) = h.flow("/api/v1/auth/oauth/google/authorize", "").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        h.me(again["access_token"].as_str().expect("token")).await["id"],
        me["id"]
    );
    let methods: Vec<String> =
        h.db.query("SELECT method FROM auth.login_history WHERE success", &[])
            .await
            .expect("history")
            .iter()
            .map(|row| row.get(0))
            .collect();
    assert_eq!(methods, ["google", "google"]);
}

/// A denied consent, a forged state and a replayed callback are refused with codes.
#[tokio::test]
async fn denied_consent_forged_and_replayed_state_are_refused() {
    let h = start().await;
    let (status, body) = h
        .flow("/api/v1/auth/oauth/google/authorize", "&consent=deny")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("oauth_denied")),
        "{body}"
    );

    let to_provider = h
        .location(&h.app.url("/api/v1/auth/oauth/google/authorize"))
        .await;
    let to_callback = h.location(&to_provider).await;
    let state = to_callback
        .split("state=")
        .nth(1)
        .expect("state")
        .to_owned();
    let forged = to_callback.replace(&state, "forged-state");
    let response = h.client.get(&forged).send().await.expect("forged");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "oauth_state_invalid");

    let first = h.client.get(&to_callback).send().await.expect("callback");
    assert_eq!(first.status(), 200);
    let replay = h.client.get(&to_callback).send().await.expect("replay");
    assert_eq!(replay.status(), 401, "a state is single use");

    let response = h
        .client
        .get(h.app.url("/api/v1/auth/oauth/mailru/authorize"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(response.status(), 404);
}

/// Yandex and VK: each provider's user-info shape is read; an email that already has a
/// password account signs in to that account (and links the provider to it).
#[tokio::test]
async fn yandex_and_vk_sign_in_and_link_by_email() {
    let h = start().await;
    let signup = h
        .client
        .post(h.app.url("/api/v1/auth/signup"))
        .json(&json!({"email": "kinoman@yandex.ru", "password": "Kinoman-pass1"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(signup.status(), 201);
    let existing: Value = signup.json().await.expect("json");

    let (status, tokens) = h.flow("/api/v1/auth/oauth/yandex/authorize", "").await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        h.me(tokens["access_token"].as_str().expect("token")).await["id"],
        existing["id"]
    );

    let (status, tokens) = h.flow("/api/v1/auth/oauth/vk/authorize", "").await;
    assert_eq!(status, 200, "{tokens}");
    let me = h.me(tokens["access_token"].as_str().expect("token")).await;
    assert_eq!(
        (me["email"].as_str(), me["first_name"].as_str()),
        (Some("vk.viewer@example.com"), Some("Вера"))
    );
    let linked: i64 =
        h.db.query_one("SELECT count(*) FROM auth.social_accounts", &[])
            .await
            .expect("count")
            .get(0);
    assert_eq!(linked, 2);
}

/// A signed-in user links a provider through the redirect flow and unlinks it; the only
/// way into an account cannot be unlinked.
#[tokio::test]
async fn link_and_unlink_a_provider() {
    let h = start().await;
    let token = h
        .app
        .sign_up_and_log_in("linker@example.com", "Linker-pass1")
        .await;
    let link: Value = h
        .client
        .post(h.app.url("/api/v1/auth/oauth/vk/link"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("link")
        .json()
        .await
        .expect("json");
    let (status, body) = h
        .flow(link["authorize_url"].as_str().expect("url"), "")
        .await;
    assert_eq!((status, &body["linked"]), (200, &json!("vk")), "{body}");
    let owner: String = h
        .db
        .query_one("SELECT u.email FROM auth.social_accounts s JOIN auth.users u ON u.id = s.user_id WHERE provider = 'vk'", &[])
        .await
        .expect("linked")
        .get(0);
    assert_eq!(
        owner, "linker@example.com",
        "linked to the caller, not to the provider's email"
    );

    let unlink = |token: String| {
        let request = h
            .client
            .delete(h.app.url("/api/v1/auth/oauth/vk"))
            .bearer_auth(token);
        async move { request.send().await.expect("unlink").status().as_u16() }
    };
    assert_eq!(unlink(token.clone()).await, 204);
    assert_eq!(unlink(token).await, 404);

    // An account made by Google sign-in has no password: Google is its only way in.
    let (_, tokens) = h.flow("/api/v1/auth/oauth/google/authorize", "").await;
    let google_only = tokens["access_token"].as_str().expect("token").to_owned();
    let response = h
        .client
        .delete(h.app.url("/api/v1/auth/oauth/google"))
        .bearer_auth(google_only)
        .send()
        .await
        .expect("unlink");
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "last_sign_in_method");
}

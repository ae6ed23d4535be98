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
        .component_databases(&database_url)
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

/// The binding cookie (`name=value`) a response sets, if any.
fn binding_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("cinema_oauth_binding=") && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
}

impl Harness {
    /// GET `url` (with `cookie`), expecting a redirect: its location and any binding
    /// cookie it sets.
    async fn redirect(&self, url: &str, cookie: Option<&str>) -> (String, Option<String>) {
        let mut request = self.client.get(url);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await.expect("request");
        assert!(
            response.status().is_redirection(),
            "{url}: {} {:?}",
            response.status(),
            response.text().await
        );
        let cookie = binding_cookie(&response);
        let location = response.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        (location, cookie)
    }

    async fn location(&self, url: &str) -> String {
        self.redirect(url, None).await.0
    }

    /// Starts a sign-in as a browser would: the provider URL and the binding cookie.
    async fn authorize(&self, provider: &str) -> (String, String) {
        let (to_provider, cookie) = self
            .redirect(
                &self
                    .app
                    .url(&format!("/api/v1/auth/oauth/{provider}/authorize")),
                None,
            )
            .await;
        (
            to_provider,
            cookie.expect("authorize sets the binding cookie"),
        )
    }

    /// The provider's redirect back to the callback (`consent` appended to its URL).
    async fn consent(&self, to_provider: &str, consent: &str) -> String {
        self.location(&format!("{to_provider}{consent}")).await
    }

    /// GET the callback with `cookie` (the browser's binding).
    async fn callback(&self, to_callback: &str, cookie: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(to_callback);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = request.send().await.expect("callback");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Runs the redirect flow of `provider` in one browser; `consent` appends to the
    /// provider's authorize URL.
    async fn flow(&self, provider: &str, consent: &str) -> (u16, Value) {
        let (to_provider, cookie) = self.authorize(provider).await;
        let to_callback = self.consent(&to_provider, consent).await;
        self.callback(&to_callback, Some(&cookie)).await
    }

    /// `POST /oauth/{provider}/link` as `token`: the authorize URL and binding cookie.
    async fn start_link(&self, provider: &str, token: &str) -> (String, String) {
        let response = self
            .client
            .post(self.app.url(&format!("/api/v1/auth/oauth/{provider}/link")))
            .bearer_auth(token)
            .send()
            .await
            .expect("link");
        assert_eq!(response.status(), 200);
        let cookie = binding_cookie(&response).expect("link sets the binding cookie");
        let body: Value = response.json().await.expect("json");
        (
            body["authorize_url"].as_str().expect("url").to_owned(),
            cookie,
        )
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

    async fn count(&self, sql: &str) -> i64 {
        self.db.query_one(sql, &[]).await.expect("count").get(0)
    }

    async fn sign_up(&self, email: &str, password: &str) -> Value {
        let signup = self
            .client
            .post(self.app.url("/api/v1/auth/signup"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("signup");
        assert_eq!(signup.status(), 201);
        signup.json().await.expect("json")
    }

    async fn confirm_email_of(&self, email: &str) {
        self.db
            .execute(
                "UPDATE auth.users SET email_confirmed = true WHERE email = $1",
                &[&email],
            )
            .await
            .expect("confirm");
    }
}

/// Google: the redirect carries state and an S256 challenge and sets an HttpOnly,
/// SameSite=Lax binding cookie; the callback exchanges the code with the verifier and
/// signs in a new, confirmed account; a second sign-in reaches the same account.
#[tokio::test]
async fn google_sign_in_runs_the_full_redirect_flow() {
    let h = start().await;
    let response = h
        .client
        .get(h.app.url("/api/v1/auth/oauth/google/authorize"))
        .send()
        .await
        .expect("authorize");
    let set_cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ascii")
        .to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/api/v1/auth/oauth",
        "Max-Age=600",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = binding_cookie(&response).expect("cookie");
    let to_provider = response.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for expected in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "scope=openid+email+profile",
        "client_id=test-client",
    ] {
        assert!(to_provider.contains(expected), "{to_provider}");
    }
    let to_callback = h.consent(&to_provider, "").await;
    let (status, tokens) = h.callback(&to_callback, Some(&cookie)).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let me = h.me(tokens["access_token"].as_str().expect("token")).await;
    assert_eq!(
        (me["email"].as_str(), me["email_confirmed"].as_bool()),
        (Some("film.lover@gmail.com"), Some(true))
    );
    assert_eq!(me["first_name"], "Film");

    let (status, again) = h.flow("google", "").await;
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
    assert_eq!(
        h.count("SELECT count(*) FROM auth.oauth_pending").await,
        0,
        "finished sign-ins leave nothing behind"
    );
}

/// A denied consent, a forged state and a replayed callback are refused with codes.
#[tokio::test]
async fn denied_consent_forged_and_replayed_state_are_refused() {
    let h = start().await;
    let (status, body) = h.flow("google", "&consent=deny").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("oauth_denied")),
        "{body}"
    );

    let (to_provider, cookie) = h.authorize("google").await;
    let to_callback = h.consent(&to_provider, "").await;
    let state = to_callback
        .split("state=")
        .nth(1)
        .expect("state")
        .to_owned();
    let forged = to_callback.replace(&state, "forged-state");
    let (status, body) = h.callback(&forged, Some(&cookie)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("oauth_state_invalid"))
    );

    let (status, _) = h.callback(&to_callback, Some(&cookie)).await;
    assert_eq!(status, 200);
    let (status, _) = h.callback(&to_callback, Some(&cookie)).await;
    assert_eq!(status, 401, "a state is single use");

    let response = h
        .client
        .get(h.app.url("/api/v1/auth/oauth/mailru/authorize"))
        .send()
        .await
        .expect("unknown");
    assert_eq!(response.status(), 404);
}

/// Yandex and VK: each provider's user-info shape is read. A Yandex mailbox address is
/// verified by Yandex, so it links to the existing account once that account confirmed
/// its email (not before); VK ID vouches for no email, so its sign-up starts
/// unconfirmed.
#[tokio::test]
async fn yandex_links_a_confirmed_account_and_vk_signs_up_unconfirmed() {
    let h = start().await;
    let existing = h.sign_up("kinoman@yandex.ru", "Kinoman-pass1").await;
    let (status, body) = h.flow("yandex", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("oauth_link_requires_confirmation")),
        "an unconfirmed account is not linked: {body}"
    );
    h.confirm_email_of("kinoman@yandex.ru").await;
    let (status, tokens) = h.flow("yandex", "").await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        h.me(tokens["access_token"].as_str().expect("token")).await["id"],
        existing["id"]
    );

    let (status, tokens) = h.flow("vk", "").await;
    assert_eq!(status, 200, "{tokens}");
    let me = h.me(tokens["access_token"].as_str().expect("token")).await;
    assert_eq!(
        (
            me["email"].as_str(),
            me["first_name"].as_str(),
            me["email_confirmed"].as_bool()
        ),
        (Some("vk.viewer@example.com"), Some("Вера"), Some(false))
    );
    assert_eq!(
        h.count("SELECT count(*) FROM auth.social_accounts").await,
        2
    );
}

/// Issue 14, item 1: an attacker who signed up with the victim's address (never
/// confirmed) does not get the account the victim reaches through "Sign in with
/// Google": the sign-in is refused and nothing is linked to the attacker's account.
#[tokio::test]
async fn social_sign_in_cannot_take_over_an_unconfirmed_account() {
    let h = start().await;
    h.sign_up("film.lover@gmail.com", "Attacker-pass1").await;
    let (status, body) = h.flow("google", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("oauth_link_requires_confirmation")),
        "{body}"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM auth.social_accounts").await,
        0
    );
    assert_eq!(
        h.count("SELECT count(*) FROM auth.sessions").await,
        0,
        "nobody was signed in to the attacker's account"
    );
}

/// Issue 14, item 1: a provider that does not verify emails (VK ID) never signs into
/// an existing account by email, even a confirmed one.
#[tokio::test]
async fn an_unverified_provider_email_never_links_to_an_existing_account() {
    let h = start().await;
    h.sign_up("vk.viewer@example.com", "Viewer-pass1").await;
    h.confirm_email_of("vk.viewer@example.com").await;
    let (status, body) = h.flow("vk", "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("oauth_link_requires_confirmation")),
        "{body}"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM auth.social_accounts").await,
        0
    );
}

/// Issue 14, item 2: a callback URL made in the attacker's browser (login CSRF) or
/// leaked from the victim's is refused in any other browser, and a link URL made by an
/// attacker cannot link the victim's provider account to the attacker.
#[tokio::test]
async fn a_callback_from_another_browser_is_refused() {
    let h = start().await;
    // Login CSRF: the attacker's own consent, finished in the victim's browser.
    let (to_provider, attacker_cookie) = h.authorize("google").await;
    let to_callback = h.consent(&to_provider, "").await;
    let (_, victim_cookie) = h.authorize("google").await;
    for cookie in [None, Some(victim_cookie.as_str())] {
        let (status, body) = h.callback(&to_callback, cookie).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("oauth_browser_mismatch")),
            "cookie {cookie:?}: {body}"
        );
    }
    assert_eq!(h.count("SELECT count(*) FROM auth.users").await, 0);
    let (status, body) = h.callback(&to_callback, Some(&attacker_cookie)).await;
    assert_eq!(
        status, 200,
        "the failed attempts did not burn the sign-in of the browser that started it: {body}"
    );

    // Account linking: the attacker asks for a link URL and sends it to the victim.
    let attacker = h
        .app
        .sign_up_and_log_in("attacker@example.com", "Attacker-pass1")
        .await;
    let users_before = h.count("SELECT count(*) FROM auth.users").await;
    let (authorize_url, _attackers_cookie) = h.start_link("google", &attacker).await;
    let to_callback = h.consent(&authorize_url, "").await;
    let (status, body) = h.callback(&to_callback, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("oauth_browser_mismatch")),
        "{body}"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM auth.social_accounts s JOIN auth.users u ON u.id = s.user_id WHERE u.email = 'attacker@example.com'").await,
        0,
        "nothing linked to the attacker"
    );
    assert_eq!(
        h.count("SELECT count(*) FROM auth.users").await,
        users_before
    );
}

/// Issue 14, item 6: a flood of authorize requests cannot grow storage without bound:
/// one client address holds at most 20 pending sign-ins (then 429), others are served.
#[tokio::test]
async fn a_flood_of_authorize_requests_is_bounded_per_client() {
    let h = start().await;
    let authorize = |address: &'static str| {
        let request = h
            .client
            .get(h.app.url("/api/v1/auth/oauth/google/authorize"))
            .header("x-forwarded-for", address);
        async move { request.send().await.expect("authorize").status().as_u16() }
    };
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(authorize("203.0.113.66").await);
    }
    assert!(statuses[..20].iter().all(|s| *s == 302), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(h.count("SELECT count(*) FROM auth.oauth_pending").await, 20);
    assert_eq!(authorize("198.51.100.2").await, 302, "another client");
}

/// A signed-in user links a provider through the redirect flow (in the browser that
/// asked) and unlinks it; the only way into an account cannot be unlinked.
#[tokio::test]
async fn link_and_unlink_a_provider() {
    let h = start().await;
    let token = h
        .app
        .sign_up_and_log_in("linker@example.com", "Linker-pass1")
        .await;
    let (authorize_url, cookie) = h.start_link("vk", &token).await;
    let to_callback = h.consent(&authorize_url, "").await;
    let (status, body) = h.callback(&to_callback, Some(&cookie)).await;
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
    let (_, tokens) = h.flow("google", "").await;
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

//! End-to-end tests of the auth component through `cinema up` (the platform's own
//! spin.toml), on a freshly migrated Postgres with a signing key.

mod common;

use std::process::Command;

use common::{AppOptions, TestApp, spawn_app};
use reqwest::StatusCode;
use serde_json::{Value, json};

struct Auth {
    app: TestApp,
    db: tokio_postgres::Client,
    database_url: String,
}

/// A fresh database, migrated, with one signing key; the platform app serving it.
async fn start() -> Auth {
    start_with_key(true).await
}

async fn start_with_key(with_key: bool) -> Auth {
    start_with(with_key, None).await
}

/// `runtime_config` maps key-value stores (e.g. `default` to Redis).
async fn start_with(with_key: bool, runtime_config: Option<String>) -> Auth {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    if with_key {
        common::rotate_keys(&database_url, &[]);
    }
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let mut options = AppOptions::default().component_databases(&database_url);
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    options.runtime_config = runtime_config;
    Auth {
        app: spawn_app(options),
        db,
        database_url,
    }
}

impl Auth {
    async fn post(&self, path: &str, body: Value, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.app.http.post(self.app.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.app.http.get(self.app.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn signup(&self, email: &str, password: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/auth/signup",
                json!({"email": email, "password": password, "first_name": "Андрей"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    async fn login(&self, email: &str, password: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": password}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["access_token"].as_str().expect("access").to_owned(),
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

/// Sign up, log in, read the profile, rotate the refresh token: the contract's happy path.
#[tokio::test]
async fn signup_login_me_and_refresh_rotation() {
    let auth = start().await;
    let profile = auth.signup(" Tarkovsky@Example.com ", "Solaris-1972").await;
    assert_eq!(profile["email"], "tarkovsky@example.com");
    assert_eq!(profile["first_name"], "Андрей");
    assert_eq!(profile["roles"], json!([]));

    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "TARKOVSKY@example.com", "password": "Solaris-1972"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let access = body["access_token"].as_str().expect("access").to_owned();
    let refresh = body["refresh_token"].as_str().expect("refresh").to_owned();

    let (status, me) = auth.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "tarkovsky@example.com");

    let (status, pair) = auth
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let next_refresh = pair["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(next_refresh, refresh);
    let (status, _) = auth
        .get("/api/v1/auth/me", pair["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);

    let stored: i64 = auth
        .db
        .query_one(
            "SELECT count(*) FROM auth.refresh_tokens WHERE octet_length(token_hash) = 32",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(
        stored, 2,
        "refresh tokens are stored hashed, one per rotation"
    );
}

/// Reusing a spent refresh token ends the whole session (its family): the newest token
/// of the family stops working too, and the access token's session is dead.
#[tokio::test]
async fn refresh_token_reuse_revokes_the_family() {
    let auth = start().await;
    auth.signup("reuse@example.com", "Stalker-1979").await;
    let (access, first) = auth.login("reuse@example.com", "Stalker-1979").await;
    let (_, pair) = auth
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": first}),
            None,
        )
        .await;
    let second = pair["refresh_token"].as_str().expect("refresh").to_owned();

    let (status, body) = auth
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": first}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "refresh_token_reused"),
        "{body}"
    );
    let (status, body) = auth
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": second}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_revoked"),
        "{body}"
    );
    let (status, body) = auth.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_revoked"),
        "{body}"
    );
    let reason: String = auth
        .db
        .query_one("SELECT revoked_reason FROM auth.sessions", &[])
        .await
        .expect("session")
        .get(0);
    assert_eq!(reason, "refresh_token_reuse");

    let (status, body) = auth
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": "never-issued"}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_refresh_token"),
        "{body}"
    );
}

/// Input errors: 422 naming the field, 409 for a taken email, 400 for broken JSON,
/// 401 for bad credentials, never a 500.
#[tokio::test]
async fn bad_input_gets_clear_errors() {
    let auth = start().await;
    let (status, body) = auth
        .post(
            "/api/v1/auth/signup",
            json!({"email": "a@b", "password": "Good-pass1"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("email")),
        "{body}"
    );
    let (status, body) = auth
        .post(
            "/api/v1/auth/signup",
            json!({"email": "ok@example.com", "password": "short"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("password")),
        "{body}"
    );
    let (status, body) = auth
        .post("/api/v1/auth/signup", json!({"email": "ok@example.com", "password": "Good-pass1", "first_name": "x".repeat(101)}), None)
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("first_name")),
        "{body}"
    );
    let response = auth
        .app
        .http
        .post(auth.app.url("/api/v1/auth/signup"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, body) = auth
        .post(
            "/api/v1/auth/signup",
            json!({"email": "ok@example.com"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("password"),
        "{body}"
    );

    auth.signup("ok@example.com", "Good-pass1").await;
    let (status, body) = auth
        .post(
            "/api/v1/auth/signup",
            json!({"email": "OK@example.com", "password": "Other-pass2"}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "email_taken"),
        "{body}"
    );

    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "ok@example.com", "password": "Wrong-pass1"}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "{body}"
    );
    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "nobody@example.com", "password": "Wrong-pass1"}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_credentials"),
        "{body}"
    );

    let (status, body) = auth.get("/api/v1/auth/me", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "missing_token"),
        "{body}"
    );
    let (status, body) = auth.get("/api/v1/auth/me", Some("garbage")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        "{body}"
    );
    let (status, body) = auth.get("/api/v1/auth/login", None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        "{body}"
    );
}

/// Login history records successes and failures, newest first, with paging checked.
#[tokio::test]
async fn login_history_is_recorded_newest_first() {
    let auth = start().await;
    auth.signup("history@example.com", "Mirror-1975").await;
    let _ = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "history@example.com", "password": "Wrong-1975"}),
            None,
        )
        .await;
    let (access, _) = auth.login("history@example.com", "Mirror-1975").await;
    let (status, body) = auth
        .get(
            "/api/v1/auth/me/history?page_number=1&page_size=10",
            Some(&access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 2);
    let items = body["items"].as_array().expect("items");
    assert_eq!(
        (items[0]["success"].as_bool(), items[1]["success"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(items[0]["method"], "password");
    assert_eq!(items[1]["failure_reason"], "wrong_password");
    assert_eq!(items[0]["ip"], "127.0.0.1");
    let (status, body) = auth
        .get(
            "/api/v1/auth/me/history?page_size=1&page_number=2",
            Some(&access),
        )
        .await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    for bad in [
        "page_size=0",
        "page_size=101",
        "page_number=0",
        "page_number=x",
    ] {
        let (status, body) = auth
            .get(&format!("/api/v1/auth/me/history?{bad}"), Some(&access))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
        assert!(
            bad.starts_with(body["error"]["field"].as_str().expect("field")),
            "{bad}: {body}"
        );
    }
}

/// Logout ends this session; logout_all and a password change end every session.
#[tokio::test]
async fn logout_and_password_change_revoke_sessions() {
    let auth = start().await;
    auth.signup("sessions@example.com", "Nostalghia-83").await;
    let (first, _) = auth.login("sessions@example.com", "Nostalghia-83").await;
    let (second, second_refresh) = auth.login("sessions@example.com", "Nostalghia-83").await;
    let (status, body) = auth.get("/api/v1/auth/me/sessions", Some(&second)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sessions"].as_array().map(Vec::len), Some(2));

    let (status, _) = auth
        .post("/api/v1/auth/logout", json!({}), Some(&first))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = auth.get("/api/v1/auth/me", Some(&first)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    let (status, _) = auth.get("/api/v1/auth/me", Some(&second)).await;
    assert_eq!(status, StatusCode::OK, "the other session lives on");

    let (status, body) = auth
        .post(
            "/api/v1/auth/me/password",
            json!({"current_password": "wrong-one-1", "new_password": "Sacrifice-86"}),
            Some(&second),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("current_password"))
    );
    let (status, _) = auth
        .post(
            "/api/v1/auth/me/password",
            json!({"current_password": "Nostalghia-83", "new_password": "Sacrifice-86"}),
            Some(&second),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = auth.get("/api/v1/auth/me", Some(&second)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = auth
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": second_refresh}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_revoked")
    );
    let (status, _) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "sessions@example.com", "password": "Nostalghia-83"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (third, _) = auth.login("sessions@example.com", "Sacrifice-86").await;
    let (fourth, _) = auth.login("sessions@example.com", "Sacrifice-86").await;
    let (status, _) = auth
        .post("/api/v1/auth/logout_all", json!({}), Some(&third))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = auth.get("/api/v1/auth/me", Some(&fourth)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// A user ends one of their sessions by id; others' sessions are not theirs to end.
#[tokio::test]
async fn sessions_can_be_listed_and_ended_by_id() {
    let auth = start().await;
    auth.signup("one@example.com", "Ivan-1962x").await;
    auth.signup("two@example.com", "Ivan-1962y").await;
    let (mine, _) = auth.login("one@example.com", "Ivan-1962x").await;
    let (other_device, _) = auth.login("one@example.com", "Ivan-1962x").await;
    let (theirs, _) = auth.login("two@example.com", "Ivan-1962y").await;
    let (_, body) = auth.get("/api/v1/auth/me/sessions", Some(&mine)).await;
    let other = body["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["current"] == false)
        .expect("the other session")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (_, body) = auth.get("/api/v1/auth/me/sessions", Some(&theirs)).await;
    let their_session = body["sessions"][0]["id"].as_str().expect("id").to_owned();

    let delete = |token: String, id: String| {
        let request = auth
            .app
            .http
            .delete(auth.app.url(&format!("/api/v1/auth/me/sessions/{id}")))
            .bearer_auth(token);
        async move { request.send().await.expect("request").status() }
    };
    assert_eq!(
        delete(mine.clone(), their_session).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(mine.clone(), "not-a-uuid".into()).await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        delete(mine.clone(), other.clone()).await,
        StatusCode::NO_CONTENT
    );
    let (status, _) = auth.get("/api/v1/auth/me", Some(&other_device)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = auth.get("/api/v1/auth/me", Some(&theirs)).await;
    assert_eq!(status, StatusCode::OK);
}

/// PATCH /me changes names at once; a new email needs the current password and only
/// becomes pending; a taken email is 409, unknown fields are refused.
#[tokio::test]
async fn profile_update_validates_and_detects_conflicts() {
    let auth = start().await;
    auth.signup("taken@example.com", "Andrei-1966").await;
    auth.signup("me@example.com", "Andrei-1966").await;
    let (access, _) = auth.login("me@example.com", "Andrei-1966").await;
    let patch = |body: Value| {
        let request = auth
            .app
            .http
            .patch(auth.app.url("/api/v1/auth/me"))
            .bearer_auth(&access)
            .json(&body);
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = patch(json!({"first_name": "Andrei", "last_name": "Rublev"})).await;
    assert_eq!(
        (status, &body["last_name"]),
        (StatusCode::OK, &json!("Rublev")),
        "{body}"
    );
    let (status, body) = patch(json!({"email": "new@example.com"})).await;
    assert_eq!(
        (status, code(&body), &body["error"]["field"]),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            &json!("current_password")
        ),
        "{body}"
    );
    let (status, body) =
        patch(json!({"email": "new@example.com", "current_password": "Andrei-1967"})).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("current_password")),
        "{body}"
    );
    let (status, body) =
        patch(json!({"email": "Taken@Example.com", "current_password": "Andrei-1966"})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "email_taken"),
        "{body}"
    );
    let (status, body) = patch(json!({"email": "new@example.com", "current_password": "Andrei-1966", "first_name": "Andrey"})).await;
    assert_eq!(
        (
            status,
            &body["email"],
            &body["pending_email"],
            &body["first_name"]
        ),
        (
            StatusCode::OK,
            &json!("me@example.com"),
            &json!("new@example.com"),
            &json!("Andrey")
        ),
        "{body}"
    );
    let (status, body) = patch(json!({"email": "ME@example.com"})).await;
    assert_eq!(
        (status, &body["email"], body.get("pending_email")),
        (StatusCode::OK, &json!("me@example.com"), None),
        "the same email needs no password and changes nothing: {body}"
    );
    let (status, body) = patch(json!({"is_admin": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

/// An email-change link whose address another account took meanwhile is 409 and stays
/// usable; an account without a password cannot ask for an email change.
#[tokio::test]
async fn email_change_link_refuses_an_address_taken_meanwhile_and_stays_usable() {
    let auth = start().await;
    auth.signup("stays@example.com", "Stalker-1979").await;
    let (access, _) = auth.login("stays@example.com", "Stalker-1979").await;
    // The link notify would have mailed: its token, stored hashed, from the old address.
    let token = "moving-token-0123456789abcdef";
    auth.db
        .execute(
            "INSERT INTO auth.email_confirmations (token_hash, user_id, email, expires_at, previous_email) \
             SELECT sha256(convert_to($1, 'UTF8')), id, 'moves@example.com', now() + interval '1 hour', email \
             FROM auth.users WHERE email = 'stays@example.com'",
            &[&token],
        )
        .await
        .expect("a pending email change");
    auth.signup("moves@example.com", "Stalker-1979").await;
    let link = format!("/api/v1/auth/confirm?token={token}");
    let (status, body) = auth.get(&link, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "email_taken"),
        "{body}"
    );
    auth.db
        .execute(
            "DELETE FROM auth.users WHERE email = 'moves@example.com'",
            &[],
        )
        .await
        .expect("free the address");
    let (status, body) = auth.get(&link, None).await;
    assert_eq!(
        (status, &body["email_confirmed"]),
        (StatusCode::OK, &json!(true)),
        "the refused link stayed unused: {body}"
    );
    let (_, me) = auth.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(me["email"], "moves@example.com", "{me}");

    auth.db
        .execute(
            "UPDATE auth.users SET password_hash = NULL WHERE email = 'moves@example.com'",
            &[],
        )
        .await
        .expect("a social-only account");
    let response = auth
        .app
        .http
        .patch(auth.app.url("/api/v1/auth/me"))
        .bearer_auth(&access)
        .json(&json!({"email": "elsewhere@example.com"}))
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "password_required"),
        "{body}"
    );
}

/// Blocked accounts cannot log in, and their sessions cannot refresh.
#[tokio::test]
async fn blocked_user_cannot_log_in_or_refresh() {
    let auth = start().await;
    auth.signup("blocked@example.com", "Zerkalo-1975").await;
    let (_, refresh) = auth.login("blocked@example.com", "Zerkalo-1975").await;
    auth.db
        .execute(
            "UPDATE auth.users SET is_blocked = true WHERE email = 'blocked@example.com'",
            &[],
        )
        .await
        .expect("block");
    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "blocked@example.com", "password": "Zerkalo-1975"}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "user_blocked"),
        "{body}"
    );
    let (status, body) = auth
        .post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "session_revoked"),
        "{body}"
    );
}

/// Without an active signing key, login answers 503 with a code an operator can act on.
#[tokio::test]
async fn login_without_signing_key_is_503() {
    let auth = start_with_key(false).await;
    auth.signup("early@example.com", "Katok-1961x").await;
    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "early@example.com", "password": "Katok-1961x"}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "signing_key_missing"),
        "{body}"
    );
}

/// Issued tokens verify with an independent JWT library (Python's PyJWT) against the
/// served JWKS, before and after a key rotation; the claims are the contract's.
#[tokio::test]
async fn tokens_verify_with_an_independent_library_across_rotation() {
    let auth = start().await;
    auth.signup("jwt@example.com", "Offret-1986x").await;
    let (before, _) = auth.login("jwt@example.com", "Offret-1986x").await;
    common::rotate_keys(&auth.database_url, &["--activate-after-seconds", "0"]);
    let (after, _) = auth.login("jwt@example.com", "Offret-1986x").await;
    let (status, jwks) = auth.get("/.well-known/jwks.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(2), "{jwks}");

    let script = r#"
import json, sys, jwt
jwks, tokens = json.loads(sys.argv[1]), sys.argv[2:]
keys = {k["kid"]: jwt.PyJWK(k) for k in jwks["keys"]}
for token in tokens:
    kid = jwt.get_unverified_header(token)["kid"]
    claims = jwt.decode(token, keys[kid].key, algorithms=["EdDSA"], audience="cinema", issuer="cinema-auth")
    print(kid, sorted(claims))
"#;
    let output = Command::new("python3")
        .args(["-c", script, &jwks.to_string(), &before, &after])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "PyJWT must verify both tokens (install it with `make test-tools`): {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_ne!(
        lines[0].split(' ').next(),
        lines[1].split(' ').next(),
        "signed by different keys"
    );
    for line in lines {
        assert!(
            line.ends_with("['aud', 'exp', 'iat', 'iss', 'permissions', 'roles', 'sid', 'sub']"),
            "{line}"
        );
    }
}

/// After five failed logins an account answers 429 with `Retry-After`, even for the
/// right password, and the history records the throttled attempt. The counters live in
/// auth's own Postgres table, with the end of their window.
#[tokio::test]
async fn repeated_failures_are_throttled_with_retry_after() {
    let auth = start().await;
    auth.signup("brute@example.com", "Right-pass1").await;
    for _ in 0..5 {
        let (status, _) = auth
            .post(
                "/api/v1/auth/login",
                json!({"email": "brute@example.com", "password": "Wrong-pass1"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let response = auth
        .app
        .http
        .post(auth.app.url("/api/v1/auth/login"))
        .json(&json!({"email": "brute@example.com", "password": "Right-pass1"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(code(&body), "too_many_attempts");
    let throttled: i64 = auth
        .db
        .query_one(
            "SELECT count(*) FROM auth.login_history WHERE failure_reason = 'throttled'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(throttled, 1);
    let counted: i32 = auth
        .db
        .query_one(
            "SELECT failures FROM auth.login_throttle \
             WHERE key = 'account:brute@example.com' AND window_ends > now()",
            &[],
        )
        .await
        .expect("the counter is kept in auth.login_throttle")
        .get(0);
    assert_eq!(counted, 6, "five failures and the refused attempt");
    // Another account from the same IP is not locked out by this one.
    auth.signup("neighbour@example.com", "Right-pass2").await;
    auth.login("neighbour@example.com", "Right-pass2").await;
}

/// Issue 14, item 5: a burst of concurrent wrong passwords for one account cannot
/// slip past the limit of five: each attempt is counted by one atomic increment and
/// decided on the count it returned, so exactly five are checked and the rest refused.
#[tokio::test]
async fn a_concurrent_burst_of_wrong_passwords_cannot_pass_the_account_limit() {
    let auth = start().await;
    auth.signup("burst@example.com", "Right-pass1").await;
    let attempts = (0..60).map(|n| {
        let request = auth
            .app
            .http
            .post(auth.app.url("/api/v1/auth/login"))
            // Each from another client address, so only the account limit applies.
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .json(&json!({"email": "burst@example.com", "password": format!("Guess-{n}")}));
        async move { request.send().await.expect("request").status() }
    });
    let statuses = futures::future::join_all(attempts).await;
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((checked, refused), (5, 55), "{statuses:?}");
    let (status, _) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "burst@example.com", "password": "Right-pass1"}),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the account stays locked"
    );
}

/// Issue 14, item 4: `X-Forwarded-For` is honoured only from a configured proxy: a
/// client that is not one cannot rotate made-up addresses to dodge the address limit.
#[tokio::test]
async fn a_forwarded_address_from_an_untrusted_client_is_ignored() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    common::rotate_keys(&database_url, &[]);
    let mut options = AppOptions::default()
        .component_databases(&database_url)
        .env("SPIN_VARIABLE_TRUSTED_PROXIES", "192.0.2.1");
    options.manifest = Some(common::workspace_root().join("spin.toml"));
    let app = spawn_app(options);
    let mut statuses = Vec::new();
    for n in 0..21 {
        let response = app
            .http
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .json(&json!({"email": format!("nobody{n}@example.com"), "password": "Wrong-pass1"}))
            .send()
            .await
            .expect("request");
        statuses.push(response.status());
    }
    assert!(
        statuses[..20]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[20],
        StatusCode::TOO_MANY_REQUESTS,
        "the 21st failure from one address is refused whatever it claims"
    );
}

async fn admin_token(auth: &Auth) -> String {
    let created = Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args([
            "users",
            "create-admin",
            "--email",
            "root@example.com",
            "--postgres-url",
            &auth.database_url,
        ])
        .env("CINEMA_ADMIN_PASSWORD", "Admin-pass-1")
        .output()
        .expect("create-admin");
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    auth.login("root@example.com", "Admin-pass-1").await.0
}

/// Admins manage roles and grants; everyone else gets 403; every bad input has its code.
#[tokio::test]
async fn roles_are_managed_by_admins_only() {
    let auth = start().await;
    let admin = admin_token(&auth).await;
    let user = auth.signup("viewer@example.com", "Viewer-pass1").await;
    let user_id = user["id"].as_str().expect("id").to_owned();
    let (viewer, _) = auth.login("viewer@example.com", "Viewer-pass1").await;

    let (status, body) = auth.get("/api/v1/auth/roles", Some(&viewer)).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (status, body) = auth.get("/api/v1/auth/roles", Some(&admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["admin", "manager", "subscriber"]);

    let (status, critic) = auth
        .post("/api/v1/auth/roles", json!({"name": "critic", "description": "writes reviews", "permissions": ["analytics:read"]}), Some(&admin))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{critic}");
    assert_eq!(critic["permissions"], json!(["analytics:read"]));
    let critic_id = critic["id"].as_str().expect("id").to_owned();
    let (status, body) = auth
        .post(
            "/api/v1/auth/roles",
            json!({"name": "critic"}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "role_exists"),
        "{body}"
    );
    let (status, body) = auth
        .post(
            "/api/v1/auth/roles",
            json!({"name": "Bad Name"}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name")),
        "{body}"
    );
    let (status, body) = auth
        .post(
            "/api/v1/auth/roles",
            json!({"name": "ghost", "permissions": ["no:such"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("permissions")),
        "{body}"
    );
    let (_, body) = auth.get("/api/v1/auth/roles", Some(&admin)).await;
    assert_eq!(
        body["roles"].as_array().map(Vec::len),
        Some(4),
        "the failed role was not kept: {body}"
    );

    let patch = |id: String, body: Value| {
        let request = auth
            .app
            .http
            .patch(auth.app.url(&format!("/api/v1/auth/roles/{id}")))
            .bearer_auth(&admin)
            .json(&body);
        async move {
            let response = request.send().await.expect("request");
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, body) = patch(
        critic_id.clone(),
        json!({"name": "reviewer", "permissions": ["films:premium", "analytics:read"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["name"].as_str(), &body["permissions"]),
        (
            Some("reviewer"),
            &json!(["analytics:read", "films:premium"])
        )
    );
    let (status, _) = patch(
        uuid::Uuid::new_v4().to_string(),
        json!({"description": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = patch(
        "00000000-0000-4000-8000-000000000001".into(),
        json!({"name": "root"}),
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "role_protected"),
        "{body}"
    );

    let delete = |path: String| {
        let request = auth
            .app
            .http
            .delete(auth.app.url(&path))
            .bearer_auth(&admin);
        async move { request.send().await.expect("request").status() }
    };
    assert_eq!(
        delete("/api/v1/auth/roles/00000000-0000-4000-8000-000000000001".into()).await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        delete(format!("/api/v1/auth/roles/{critic_id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        delete(format!("/api/v1/auth/roles/{critic_id}")).await,
        StatusCode::NOT_FOUND
    );

    let (status, _) = auth
        .post(
            &format!("/api/v1/auth/users/{user_id}/roles/subscriber"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = auth
        .post(
            &format!("/api/v1/auth/users/{user_id}/roles/subscriber"),
            json!({}),
            Some(&viewer),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, _) = auth
        .post(
            &format!("/api/v1/auth/users/{user_id}/roles/nonexistent"),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = auth
        .post(
            &format!(
                "/api/v1/auth/users/{}/roles/subscriber",
                uuid::Uuid::new_v4()
            ),
            json!({}),
            Some(&admin),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (access, _) = auth.login("viewer@example.com", "Viewer-pass1").await;
    let jwks: cinema_domain::token::Jwks =
        serde_json::from_value(auth.get("/.well-known/jwks.json", None).await.1).expect("jwks");
    let claims = cinema_domain::token::TokenVerifier::new(&jwks, "cinema-auth", "cinema")
        .verify(&access, chrono::Utc::now().timestamp())
        .expect("valid token");
    assert_eq!(
        (claims.roles, claims.permissions),
        (
            vec!["subscriber".to_owned()],
            vec!["films:premium".to_owned()]
        )
    );

    assert_eq!(
        delete(format!("/api/v1/auth/users/{user_id}/roles/subscriber")).await,
        StatusCode::NO_CONTENT
    );
    let (_, me) = auth.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(me["roles"], json!([]));
}

/// The component serves an OpenAPI 3 document that covers every route of the contract.
#[tokio::test]
async fn openapi_document_covers_the_contract() {
    let auth = start().await;
    let (status, doc) = auth.get("/api/v1/auth/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    for path in [
        "/api/v1/auth/signup",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/logout_all",
        "/api/v1/auth/me",
        "/api/v1/auth/me/password",
        "/api/v1/auth/me/history",
        "/api/v1/auth/me/sessions",
        "/api/v1/auth/me/sessions/{id}",
        "/api/v1/auth/roles",
        "/api/v1/auth/roles/{id}",
        "/api/v1/auth/users/{id}/roles/{role}",
        "/api/v1/auth/oauth/{provider}/authorize",
        "/api/v1/auth/oauth/{provider}/callback",
        "/api/v1/auth/oauth/{provider}/link",
        "/api/v1/auth/oauth/{provider}",
        "/.well-known/jwks.json",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is missing from the OpenAPI document"
        );
    }
}

/// Issue 14, item 9: private signing keys are sealed at rest with the operator's
/// key-encryption key: the row holds no usable key, auth without the KEK (or with
/// another) cannot sign (503 `signing_key_locked`), and `cinema keys reencrypt` moves
/// the keys to a new KEK that auth then signs with.
#[tokio::test]
async fn signing_keys_are_sealed_at_rest_and_move_to_a_new_key_encryption_key() {
    let database_url = common::fresh_database().await;
    common::migrate(&database_url).await;
    common::rotate_keys(&database_url, &[]);
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let (kid, stored): (String, Vec<u8>) = {
        let row = db
            .query_one("SELECT kid, private_key FROM auth.signing_keys", &[])
            .await
            .expect("key");
        (row.get(0), row.get(1))
    };
    assert!(
        cinema_domain::key_seal::is_sealed(&stored),
        "the private key is sealed"
    );
    assert!(
        cinema_domain::token::sign(&AccessClaimsForTest::now(), &kid, &stored).is_err(),
        "what the database holds cannot sign"
    );

    let app_with = |kek: &str| {
        let mut options = AppOptions::default()
            .component_databases(&database_url)
            .env("CINEMA_SIGNING_KEY_ENCRYPTION_KEY", kek);
        options.manifest = Some(common::workspace_root().join("spin.toml"));
        spawn_app(options)
    };
    let login = |app: &TestApp| {
        let request = app
            .http
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": "sealed@example.com", "password": "Sealed-pass1"}));
        async move {
            let response = request.send().await.expect("login");
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body)
        }
    };
    let other_kek = "1".repeat(64);
    let wrong = app_with(&other_kek);
    let (status, _) = wrong
        .post_json(
            "/api/v1/auth/signup",
            json!({"email": "sealed@example.com", "password": "Sealed-pass1"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = login(&wrong).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "signing_key_locked"),
        "{body}"
    );
    drop(wrong);

    let new_kek_file = std::env::temp_dir().join(format!("{}.kek", common::unique("kek")));
    std::fs::write(&new_kek_file, &other_kek).expect("write kek");
    let output = Command::new(env!("CARGO_BIN_EXE_cinema"))
        .args([
            "keys",
            "reencrypt",
            "--postgres-url",
            &database_url,
            "--new-key-file",
        ])
        .arg(&new_kek_file)
        .env("CINEMA_SIGNING_KEY_ENCRYPTION_KEY", common::TEST_KEK)
        .output()
        .expect("reencrypt");
    let _ = std::fs::remove_file(&new_kek_file);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let old = app_with(common::TEST_KEK);
    let (status, body) = login(&old).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "signing_key_locked"),
        "the old KEK no longer opens the key: {body}"
    );
    drop(old);
    let new = app_with(&other_kek);
    let (status, body) = login(&new).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Claims for a signing attempt.
struct AccessClaimsForTest;

impl AccessClaimsForTest {
    fn now() -> cinema_domain::token::AccessClaims {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        cinema_domain::token::AccessClaims {
            sub: uuid::Uuid::new_v4().to_string(),
            sid: uuid::Uuid::new_v4().to_string(),
            roles: Vec::new(),
            permissions: Vec::new(),
            iat: now,
            exp: now + 60,
            iss: "cinema-auth".into(),
            aud: "cinema".into(),
            act: None,
        }
    }
}

/// Someone holding only a user's access token cannot guess the password through the
/// password change faster than at the login form: wrong current passwords count
/// against the account like failed logins (429 after five), and lock its logins too.
#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_logins() {
    let auth = start().await;
    auth.signup("guessed@example.com", "Right-pass1").await;
    let (token, _) = auth.login("guessed@example.com", "Right-pass1").await;
    let change = |guess: String| {
        let request = auth
            .app
            .http
            .post(auth.app.url("/api/v1/auth/me/password"))
            .bearer_auth(&token)
            .json(&json!({"current_password": guess, "new_password": "Stolen-pass-9"}));
        async move { request.send().await.expect("request").status() }
    };
    for n in 0..5 {
        assert_eq!(
            change(format!("Guess-{n}")).await,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        change("Right-pass1".into()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits out the window"
    );
    let (status, body) = auth
        .post(
            "/api/v1/auth/login",
            json!({"email": "guessed@example.com", "password": "Right-pass1"}),
            None,
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
    );
}

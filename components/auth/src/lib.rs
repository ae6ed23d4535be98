//! The auth edge component: accounts, sessions, access and refresh tokens, login
//! history, JWKS. The single authorization service of the platform.
//!
//! Modules: [`settings`] (Spin variables), [`db`] (every query), [`error`] (status
//! codes and stable error codes). Routes are listed in [`route`]. Access tokens are
//! EdDSA JWTs signed with the key `cinema keys rotate` made current; other components
//! verify them with `cinema_domain::token::TokenVerifier` and the JWKS, without calling
//! this component.

mod db;
mod error;
mod oauth;
mod preferences;
mod roles;
mod settings;
mod throttle;
mod users;

use bytes::Bytes;
use cinema_domain::account::{normalize_email, validate_password};
use cinema_domain::client_addr::{self, TrustedProxies};
use cinema_domain::password::{hash_password, verify_password};
use cinema_domain::token::{
    AccessClaims, Jwks, TokenVerifier, generate_refresh_token, hash_refresh_token, sign,
};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::json;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;
use uuid::Uuid;

use db::{Db, HistoryEntry, RefreshRefusal};
use error::{ApiError, ApiResult, Reply, empty, json};
use settings::Settings;

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest user agent kept in sessions and history.
const MAX_USER_AGENT_CHARS: usize = 512;
/// Longest first or last name.
const MAX_NAME_CHARS: usize = 100;

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    cinema_edge::reply::sized(match route(request).await {
        Ok(reply) => reply,
        Err(error) => error.into_reply(),
    })
}

/// What a handler knows about the caller's connection.
pub(crate) struct Client {
    /// The address recorded in sessions and history (a proxy's when no client is known).
    pub(crate) ip: Option<String>,
    /// The client's own address, to throttle by: `None` when the request came from a
    /// trusted proxy that named no client (never throttle a proxy's address).
    pub(crate) throttle_ip: Option<String>,
    pub(crate) user_agent: String,
    /// The social sign-in binding cookie, if the browser sent one.
    pub(crate) oauth_binding: Option<String>,
}

impl Client {
    fn of(request: &Request, trusted_proxies: &TrustedProxies) -> Self {
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let peer = header(client_addr::SPIN_CLIENT_ADDR_HEADER).and_then(client_addr::parse_peer);
        let forwarded = headers
            .get_all(client_addr::FORWARDED_FOR_HEADER)
            .iter()
            .filter_map(|v| v.to_str().ok());
        let address = client_addr::resolve(peer, forwarded, trusted_proxies);
        let user_agent = header("user-agent")
            .unwrap_or_default()
            .chars()
            .take(MAX_USER_AGENT_CHARS)
            .collect();
        let oauth_binding = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == oauth::BINDING_COOKIE)
            .map(|(_, value)| value.trim().to_owned());
        Self {
            ip: address.recorded.map(|ip| ip.to_string()),
            throttle_ip: address.client.map(|ip| ip.to_string()),
            user_agent,
            oauth_binding,
        }
    }
}

async fn route(request: Request) -> ApiResult<Reply> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let method = request.method().clone();
    let settings = Settings::load().await?;
    let client = Client::of(&request, &settings.trusted_proxies);
    let bearer = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|v| v.trim().to_owned());
    let query = request.uri().query().unwrap_or_default().to_owned();
    let wants_html = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let body = read_body(request).await?;

    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        (Method::GET, [".well-known", "jwks.json"]) => jwks(&settings).await,
        (Method::GET, ["api", "v1", "auth", "openapi.json"]) => Ok(openapi()),
        (Method::POST, ["api", "v1", "auth", "signup"]) => signup(&settings, &body).await,
        (Method::POST, ["api", "v1", "auth", "login"]) => login(&settings, &body, &client).await,
        (Method::POST, ["api", "v1", "auth", "refresh"]) => refresh(&settings, &body).await,
        (Method::GET, ["api", "v1", "auth", "unsubscribe"]) => {
            preferences::confirm_page(&settings, &query).await
        }
        (Method::POST, ["api", "v1", "auth", "unsubscribe"]) => {
            preferences::unsubscribe(&settings, &query, wants_html).await
        }
        (Method::GET, ["api", "v1", "auth", "me", "notifications"]) => {
            preferences::get(authenticate(&settings, bearer).await?).await
        }
        (Method::PUT, ["api", "v1", "auth", "me", "notifications"]) => {
            preferences::put(authenticate(&settings, bearer).await?, &body).await
        }
        (Method::GET, ["api", "v1", "auth", "confirm"]) => {
            confirm_email(&settings, &query, wants_html).await
        }
        (Method::POST, ["api", "v1", "auth", "logout"]) => {
            let caller = authenticate(&settings, bearer).await?;
            caller
                .db
                .revoke_session(caller.session_id, "logout")
                .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::POST, ["api", "v1", "auth", "logout_all"]) => {
            let caller = authenticate(&settings, bearer).await?;
            caller.refuse_while_impersonating()?;
            caller
                .db
                .revoke_all_sessions(caller.user_id, "logout_all")
                .await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        (Method::GET, ["api", "v1", "auth", "me"]) => {
            me(authenticate(&settings, bearer).await?).await
        }
        (Method::PATCH, ["api", "v1", "auth", "me"]) => {
            let caller = authenticate(&settings, bearer).await?;
            caller.refuse_while_impersonating()?;
            update_me(caller, &body, &client).await
        }
        (Method::POST, ["api", "v1", "auth", "me", "password"]) => {
            let caller = authenticate(&settings, bearer).await?;
            caller.refuse_while_impersonating()?;
            change_password(caller, &body, &client).await
        }
        (Method::GET, ["api", "v1", "auth", "me", "history"]) => {
            history(authenticate(&settings, bearer).await?, &query).await
        }
        (Method::GET, ["api", "v1", "auth", "me", "sessions"]) => {
            let caller = authenticate(&settings, bearer).await?;
            let sessions = caller
                .db
                .sessions(caller.user_id, caller.session_id)
                .await?;
            Ok(json(StatusCode::OK, &json!({ "sessions": sessions })))
        }
        (Method::DELETE, ["api", "v1", "auth", "me", "sessions", id]) => {
            let caller = authenticate(&settings, bearer).await?;
            caller.refuse_while_impersonating()?;
            let session_id =
                Uuid::parse_str(id).map_err(|_| ApiError::invalid("id", "must be a UUID"))?;
            if caller
                .db
                .revoke_own_session(caller.user_id, session_id, "revoked_by_user")
                .await?
            {
                Ok(empty(StatusCode::NO_CONTENT))
            } else {
                Err(ApiError::NotFound("session"))
            }
        }
        (Method::GET, ["api", "v1", "auth", "oauth", provider, "authorize"]) => {
            oauth::authorize(&settings, &client, oauth::Provider::parse(provider)?).await
        }
        (Method::GET, ["api", "v1", "auth", "oauth", provider, "callback"]) => {
            oauth::callback(
                &settings,
                oauth::Provider::parse(provider)?,
                &query,
                &client,
                client.oauth_binding.as_deref(),
            )
            .await
        }
        (Method::POST, ["api", "v1", "auth", "oauth", provider, "link"]) => {
            let provider = oauth::Provider::parse(provider)?;
            oauth::link(
                &settings,
                &client,
                authenticate(&settings, bearer).await?,
                provider,
            )
            .await
        }
        (Method::DELETE, ["api", "v1", "auth", "oauth", provider]) => {
            let provider = oauth::Provider::parse(provider)?;
            oauth::unlink(authenticate(&settings, bearer).await?, provider).await
        }
        (Method::GET, ["api", "v1", "auth", "roles"]) => {
            roles::list(authenticate(&settings, bearer).await?).await
        }
        (Method::POST, ["api", "v1", "auth", "roles"]) => {
            roles::create(authenticate(&settings, bearer).await?, &body).await
        }
        (Method::PATCH, ["api", "v1", "auth", "roles", id]) => {
            roles::update(authenticate(&settings, bearer).await?, id, &body).await
        }
        (Method::DELETE, ["api", "v1", "auth", "roles", id]) => {
            roles::delete(authenticate(&settings, bearer).await?, id).await
        }
        (Method::GET, ["api", "v1", "auth", "users"]) => {
            users::list(authenticate(&settings, bearer).await?, &query).await
        }
        (Method::POST, ["api", "v1", "auth", "users", user, "block"]) => {
            users::set_blocked(authenticate(&settings, bearer).await?, user, true).await
        }
        (Method::DELETE, ["api", "v1", "auth", "users", user, "block"]) => {
            users::set_blocked(authenticate(&settings, bearer).await?, user, false).await
        }
        (Method::POST, ["api", "v1", "auth", "users", user, "impersonate"]) => {
            users::impersonate(authenticate(&settings, bearer).await?, &settings, user).await
        }
        (Method::POST, ["api", "v1", "auth", "users", user, "roles", role]) => {
            roles::assign(authenticate(&settings, bearer).await?, user, role, true).await
        }
        (Method::DELETE, ["api", "v1", "auth", "users", user, "roles", role]) => {
            roles::assign(authenticate(&settings, bearer).await?, user, role, false).await
        }
        (_, [".well-known", "jwks.json"])
        | (
            _,
            [
                "api",
                "v1",
                "auth",
                "oauth",
                _,
                "authorize" | "callback" | "link",
            ],
        )
        | (_, ["api", "v1", "auth", "oauth", _])
        | (_, ["api", "v1", "auth", "roles"])
        | (_, ["api", "v1", "auth", "roles", _])
        | (_, ["api", "v1", "auth", "users", _, "roles", _])
        | (_, ["api", "v1", "auth", "users"])
        | (_, ["api", "v1", "auth", "users", _, "block" | "impersonate"])
        | (
            _,
            [
                "api",
                "v1",
                "auth",
                "signup" | "login" | "refresh" | "logout" | "logout_all" | "me" | "confirm"
                | "unsubscribe",
            ],
        )
        | (
            _,
            [
                "api",
                "v1",
                "auth",
                "me",
                "password" | "history" | "sessions" | "notifications",
            ],
        ) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::NotFound("route")),
    }
}

async fn read_body(request: Request) -> ApiResult<Bytes> {
    let collected = request
        .into_body()
        .collect()
        .await
        .map_err(|_| ApiError::BadJson("the request body could not be read".into()))?
        .to_bytes();
    if collected.len() > MAX_BODY_BYTES {
        return Err(ApiError::TooLarge);
    }
    Ok(collected)
}

pub(crate) fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        // serde names the field for missing or mistyped ones: keep that, drop positions.
        let message = e.to_string();
        let message = message
            .split(" at line")
            .next()
            .unwrap_or(&message)
            .to_owned();
        ApiError::BadJson(message)
    })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn check_name(field: &str, value: &str) -> ApiResult<String> {
    let value = value.trim();
    if value.chars().count() > MAX_NAME_CHARS || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            "must be at most 100 characters, without control characters",
        ));
    }
    Ok(value.to_owned())
}

// ---------------------------------------------------------------------------------------

/// The OpenAPI 3 document of this component's routes.
const OPENAPI: &str = include_str!("../openapi.json");

fn openapi() -> Reply {
    let mut reply = empty(StatusCode::OK);
    *reply.body_mut() = http_body_util::Full::new(Bytes::from_static(OPENAPI.as_bytes()));
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    reply
}

async fn jwks(settings: &Settings) -> ApiResult<Reply> {
    let db = Db::open(&settings.database_url).await?;
    let keys = Jwks {
        keys: db.published_keys().await?,
    };
    let mut reply = json(
        StatusCode::OK,
        &serde_json::to_value(keys).unwrap_or_default(),
    );
    reply.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=60"),
    );
    Ok(reply)
}

#[derive(Deserialize)]
struct SignupRequest {
    email: String,
    password: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    /// Language of the mails: `ru` (default) or `en`.
    #[serde(default)]
    locale: Option<String>,
}

/// Languages mails are written in; the first is the default.
const LOCALES: [&str; 2] = ["ru", "en"];

fn check_locale(value: &str) -> ApiResult<&'static str> {
    LOCALES
        .into_iter()
        .find(|known| *known == value)
        .ok_or_else(|| ApiError::invalid("locale", "must be ru or en"))
}

async fn signup(settings: &Settings, body: &[u8]) -> ApiResult<Reply> {
    let input: SignupRequest = parse(body)?;
    let email = normalize_email(&input.email).map_err(|e| ApiError::invalid(e.field, e.message))?;
    validate_password(&input.password).map_err(|e| ApiError::invalid(e.field, e.message))?;
    let first_name = check_name("first_name", &input.first_name)?;
    let last_name = check_name("last_name", &input.last_name)?;
    let locale = check_locale(input.locale.as_deref().unwrap_or(LOCALES[0]))?;
    let db = Db::open(&settings.database_url).await?;
    if db.credentials(&email).await?.is_some() {
        return Err(ApiError::EmailTaken);
    }
    let hash = hash_password(&input.password).map_err(|e| ApiError::Internal(e.to_string()))?;
    let id = Uuid::new_v4();
    if !db
        .insert_user(id, &email, &hash, &first_name, &last_name, locale)
        .await?
    {
        return Err(ApiError::EmailTaken);
    }
    let profile = db
        .profile(id)
        .await?
        .ok_or_else(|| ApiError::Internal("user vanished after insert".into()))?;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::to_value(profile).unwrap_or_default(),
    ))
}

/// `GET /api/v1/auth/confirm?token=`: the link of the welcome mail (confirms the email)
/// and of the email-change mail (moves the account to the new address and confirms
/// it). Works once; a used, expired or unknown token is 410 `confirmation_invalid`; a
/// new address another account took meanwhile is 409 `email_taken` and leaves the link
/// unused. Browsers (`Accept: text/html`) get a small page, other clients JSON.
async fn confirm_email(settings: &Settings, query: &str, wants_html: bool) -> ApiResult<Reply> {
    let token = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|token| (16..=128).contains(&token.len()))
        .ok_or_else(|| {
            ApiError::invalid("token", "must be the token from the confirmation link")
        })?;
    let db = Db::open(&settings.database_url).await?;
    let confirmed = match db.confirm_email(hash_refresh_token(&token)).await {
        Err(ApiError::EmailTaken) if wants_html => {
            return Ok(confirmation_page(
                StatusCode::CONFLICT,
                "Address taken",
                "Another account uses this email address now, so yours was not moved to it.",
            ));
        }
        other => other?,
    };
    let (status, title, message) = if confirmed {
        (
            StatusCode::OK,
            "Email confirmed",
            "Your email address is confirmed. You can close this page.",
        )
    } else {
        (
            StatusCode::GONE,
            "Link no longer valid",
            "This confirmation link was already used or has expired.",
        )
    };
    if wants_html {
        return Ok(confirmation_page(status, title, message));
    }
    if confirmed {
        Ok(json(StatusCode::OK, &json!({ "email_confirmed": true })))
    } else {
        Err(ApiError::Gone("confirmation_invalid", message))
    }
}

/// The small page browsers get from the confirmation link.
fn confirmation_page(status: StatusCode, title: &str, message: &str) -> Reply {
    let page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:system-ui;max-width:32rem;margin:4rem auto\"><h1>{title}</h1><p>{message}</p></body></html>"
    );
    let mut reply = empty(status);
    *reply.body_mut() = http_body_util::Full::new(Bytes::from(page));
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    reply
}

#[derive(Deserialize)]
struct LoginRequest {
    email: String,
    password: String,
}

/// Issues an access token for a session.
async fn access_token(
    db: &Db,
    settings: &Settings,
    user_id: Uuid,
    session_id: Uuid,
) -> ApiResult<String> {
    let (kid, private_key) = db.signing_key(settings.key_encryption_key.as_ref()).await?;
    let grants = db.grants(user_id).await?;
    let issued = grants.issued_at;
    let claims = AccessClaims {
        sub: user_id.to_string(),
        sid: session_id.to_string(),
        roles: grants.roles,
        permissions: grants.permissions,
        iat: issued,
        exp: issued + settings.access_token_ttl_seconds,
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        act: None,
    };
    sign(&claims, &kid, &private_key).map_err(|e| ApiError::Internal(e.to_string()))
}

fn token_pair(settings: &Settings, access_token: String, refresh_token: String) -> Reply {
    json(
        StatusCode::OK,
        &json!({
            "access_token": access_token,
            "refresh_token": refresh_token,
            "token_type": "Bearer",
            "expires_in": settings.access_token_ttl_seconds,
        }),
    )
}

/// Adds a password login attempt to the account's history (unknown emails have none).
async fn record_attempt(
    db: &Db,
    account: Option<&db::Credentials>,
    client: &Client,
    success: bool,
    failure_reason: Option<&str>,
) -> ApiResult<()> {
    let Some(account) = account else {
        return Ok(());
    };
    db.record_login(HistoryEntry {
        user_id: account.id,
        ip: client.ip.as_deref(),
        user_agent: &client.user_agent,
        success,
        method: "password",
        failure_reason,
    })
    .await
}

async fn login(settings: &Settings, body: &[u8], client: &Client) -> ApiResult<Reply> {
    let input: LoginRequest = parse(body)?;
    let email = normalize_email(&input.email).map_err(|e| ApiError::invalid(e.field, e.message))?;
    let db = Db::open(&settings.database_url).await?;
    let account = db.credentials(&email).await?;
    let attempt = match throttle::count_attempt(&db, &email, client.throttle_ip.as_deref()).await {
        Ok(attempt) => attempt,
        Err(refused) => {
            record_attempt(&db, account.as_ref(), client, false, Some("throttled")).await?;
            return Err(refused);
        }
    };
    let matches = match account.as_ref().and_then(|a| a.password_hash.as_deref()) {
        Some(hash) => {
            verify_password(&input.password, hash).map_err(|e| ApiError::Internal(e.to_string()))?
        }
        None => {
            // Same cost as a real check, so timing does not reveal which emails exist.
            let _ = hash_password(&input.password);
            false
        }
    };
    if !matches {
        record_attempt(&db, account.as_ref(), client, false, Some("wrong_password")).await?;
        return Err(ApiError::InvalidCredentials);
    }
    let Some(found) = &account else {
        return Err(ApiError::InvalidCredentials);
    };
    throttle::succeeded(&db, attempt).await?;
    sign_in(&db, settings, found.id, client, "password").await
}

/// Opens a session for a user who proved who they are (password or provider): refuses
/// blocked accounts, records the attempt, answers the token pair.
pub(crate) async fn sign_in(
    db: &Db,
    settings: &Settings,
    user_id: Uuid,
    client: &Client,
    method: &str,
) -> ApiResult<Reply> {
    let blocked = db
        .rows(
            "SELECT is_blocked FROM auth.users WHERE id = $1",
            vec![spin_sdk::pg::ParameterValue::Uuid(user_id.to_string())],
        )
        .await?
        .first()
        .and_then(|row| row.get::<bool>("is_blocked"))
        .ok_or(ApiError::NotFound("user"))?;
    let entry = |success, failure_reason| HistoryEntry {
        user_id,
        ip: client.ip.as_deref(),
        user_agent: &client.user_agent,
        success,
        method,
        failure_reason,
    };
    if blocked {
        db.record_login(entry(false, Some("blocked"))).await?;
        return Err(ApiError::Blocked);
    }
    let session_id = Uuid::new_v4();
    let refresh_token = generate_refresh_token();
    db.open_session(
        session_id,
        user_id,
        hash_refresh_token(&refresh_token),
        settings.refresh_token_ttl_days,
        client.ip.as_deref(),
        &client.user_agent,
    )
    .await?;
    let access = access_token(db, settings, user_id, session_id).await?;
    db.record_login(entry(true, None)).await?;
    Ok(token_pair(settings, access, refresh_token))
}

#[derive(Deserialize)]
struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(settings: &Settings, body: &[u8]) -> ApiResult<Reply> {
    let input: RefreshRequest = parse(body)?;
    if input.refresh_token.is_empty() || input.refresh_token.len() > 256 {
        return Err(ApiError::invalid(
            "refresh_token",
            "must be a refresh token",
        ));
    }
    let db = Db::open(&settings.database_url).await?;
    let next = generate_refresh_token();
    let refused = |code, message: &str| Err(ApiError::Unauthorized(code, message.to_owned()));
    match db
        .rotate_refresh(
            hash_refresh_token(&input.refresh_token),
            hash_refresh_token(&next),
            settings.refresh_token_ttl_days,
        )
        .await?
    {
        Ok(session) => {
            let access = access_token(&db, settings, session.user_id, session.session_id).await?;
            Ok(token_pair(settings, access, next))
        }
        Err(RefreshRefusal::Reused { session_id }) => {
            eprintln!("auth: refresh token reused; revoked session family {session_id}");
            refused(
                "refresh_token_reused",
                "this refresh token was already used; the session has been ended",
            )
        }
        Err(RefreshRefusal::Expired) => {
            refused("refresh_token_expired", "the refresh token has expired")
        }
        Err(RefreshRefusal::SessionEnded) => refused("session_revoked", "the session has ended"),
        Err(RefreshRefusal::Unknown) => refused("invalid_refresh_token", "unknown refresh token"),
    }
}

/// A caller with a valid access token and a live session.
pub(crate) struct Caller {
    pub(crate) db: Db,
    pub(crate) user_id: Uuid,
    pub(crate) session_id: Uuid,
    pub(crate) claims: AccessClaims,
}

impl Caller {
    /// Refuses what an impersonation token (`act` claim) must never do as the user:
    /// account security (email, password, sessions, linked providers) and
    /// administration (users, roles). 403 `impersonation_forbidden`.
    pub(crate) fn refuse_while_impersonating(&self) -> ApiResult<()> {
        if self.claims.act.is_some() {
            return Err(ApiError::Refused(
                "impersonation_forbidden",
                "not allowed while impersonating a user; end the impersonation",
            ));
        }
        Ok(())
    }
}

async fn authenticate(settings: &Settings, bearer: Option<String>) -> ApiResult<Caller> {
    let token = bearer.ok_or_else(|| {
        ApiError::Unauthorized(
            "missing_token",
            "send an access token as `Authorization: Bearer <token>`".into(),
        )
    })?;
    let db = Db::open(&settings.database_url).await?;
    let jwks = Jwks {
        keys: db.published_keys().await?,
    };
    let verifier = TokenVerifier::new(&jwks, settings.issuer.clone(), settings.audience.clone());
    let claims = verifier
        .verify(&token, now())
        .map_err(|e| ApiError::Unauthorized(e.code(), e.to_string()))?;
    let invalid = || ApiError::Unauthorized("invalid_token", "token subject is malformed".into());
    let user_id = Uuid::parse_str(&claims.sub).map_err(|_| invalid())?;
    let session_id = Uuid::parse_str(&claims.sid).map_err(|_| invalid())?;
    if !db.session_is_live(user_id, session_id).await? {
        return Err(ApiError::Unauthorized(
            "session_revoked",
            "the session has ended".into(),
        ));
    }
    Ok(Caller {
        db,
        user_id,
        session_id,
        claims,
    })
}

async fn me(caller: Caller) -> ApiResult<Reply> {
    let profile = caller
        .db
        .profile(caller.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(profile).unwrap_or_default(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileUpdate {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    locale: Option<String>,
    /// Proves the owner asks for an email change: a stolen access token alone must not
    /// be enough to move the account to another address.
    current_password: Option<String>,
}

/// `PATCH /api/v1/auth/me`: names and locale change at once. A different email needs
/// `current_password` (422 naming it when missing or wrong; 409 `password_required` for
/// an account without one) and does not change yet: the answer is the profile with
/// `pending_email`, and the account moves once the link mailed to the new address is
/// followed. The same email as now is no change and needs no password.
async fn update_me(caller: Caller, body: &[u8], client: &Client) -> ApiResult<Reply> {
    let input: ProfileUpdate = parse(body)?;
    let email = input
        .email
        .as_deref()
        .map(|e| normalize_email(e).map_err(|e| ApiError::invalid(e.field, e.message)))
        .transpose()?;
    let first_name = input
        .first_name
        .as_deref()
        .map(|v| check_name("first_name", v))
        .transpose()?;
    let last_name = input
        .last_name
        .as_deref()
        .map(|v| check_name("last_name", v))
        .transpose()?;
    let locale = input.locale.as_deref().map(check_locale).transpose()?;
    let current = caller
        .db
        .profile(caller.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let new_email = email.filter(|email| *email != current.email);
    if new_email.is_some() {
        check_current_password(
            &caller,
            &current.email,
            input.current_password.as_deref(),
            client,
        )
        .await?;
    }
    if !caller
        .db
        .update_profile(
            caller.user_id,
            new_email.as_deref(),
            first_name.as_deref(),
            last_name.as_deref(),
            locale,
        )
        .await?
    {
        return Err(ApiError::EmailTaken);
    }
    let profile = caller
        .db
        .profile(caller.user_id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let mut answer = serde_json::to_value(profile).unwrap_or_default();
    if let Some(new_email) = new_email {
        answer["pending_email"] = serde_json::Value::String(new_email);
    }
    Ok(json(StatusCode::OK, &answer))
}

/// Checks `given` against the account's password `stored`, counted like a login
/// attempt on the account (`email`) and the client's address: someone holding only an
/// access token guesses the password no faster than at the login form (429 past the
/// limit, and the account's logins are throttled with it).
async fn password_matches(
    caller: &Caller,
    email: &str,
    stored: &str,
    given: &str,
    client: &Client,
) -> ApiResult<bool> {
    let attempt = throttle::count_attempt(&caller.db, email, client.throttle_ip.as_deref()).await?;
    let matches = verify_password(given, stored).map_err(|e| ApiError::Internal(e.to_string()))?;
    if matches {
        throttle::succeeded(&caller.db, attempt).await?;
    }
    Ok(matches)
}

/// Refuses an email change the caller did not prove with the account's password.
async fn check_current_password(
    caller: &Caller,
    email: &str,
    given: Option<&str>,
    client: &Client,
) -> ApiResult<()> {
    let Some(stored) = caller.db.password_hash(caller.user_id).await? else {
        return Err(ApiError::Conflict(
            "password_required",
            "set a password first: changing the email needs the current password".into(),
        ));
    };
    let Some(given) = given else {
        return Err(ApiError::invalid(
            "current_password",
            "is required to change the email",
        ));
    };
    if password_matches(caller, email, &stored, given, client).await? {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "current_password",
            "is not the current password",
        ))
    }
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change_password(caller: Caller, body: &[u8], client: &Client) -> ApiResult<Reply> {
    let input: PasswordChange = parse(body)?;
    let stored = caller.db.password_hash(caller.user_id).await?;
    let matches = match &stored {
        Some(hash) => {
            let email = caller
                .db
                .profile(caller.user_id)
                .await?
                .ok_or(ApiError::NotFound("user"))?
                .email;
            password_matches(&caller, &email, hash, &input.current_password, client).await?
        }
        None => false,
    };
    if !matches {
        return Err(ApiError::invalid(
            "current_password",
            "is not the current password",
        ));
    }
    validate_password(&input.new_password).map_err(|_| {
        ApiError::invalid(
            "new_password",
            "must be at least 8 characters and mix letters with digits or symbols",
        )
    })?;
    let hash = hash_password(&input.new_password).map_err(|e| ApiError::Internal(e.to_string()))?;
    caller.db.set_password(caller.user_id, &hash).await?;
    caller
        .db
        .revoke_all_sessions(caller.user_id, "password_changed")
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Parses `page_number` (from 1) and `page_size` (1..=100, default 20).
fn paging(query: &str) -> ApiResult<(i64, i64)> {
    let mut page_number = 1i64;
    let mut page_size = 20i64;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "page_number" => {
                page_number = value
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1 && *n <= 100_000)
                    .ok_or_else(|| ApiError::invalid("page_number", "must be an integer from 1"))?;
            }
            "page_size" => {
                page_size = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid("page_size", "must be an integer from 1 to 100")
                    })?;
            }
            _ => {}
        }
    }
    Ok((page_number, page_size))
}

async fn history(caller: Caller, query: &str) -> ApiResult<Reply> {
    let (page_number, page_size) = paging(query)?;
    let (items, total) = caller
        .db
        .history(caller.user_id, page_size, (page_number - 1) * page_size)
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "items": items,
            "page_number": page_number,
            "page_size": page_size,
            "total": total,
        }),
    ))
}

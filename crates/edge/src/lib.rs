//! Helpers every edge component shares. Builds only for components (spin-sdk).
//!
//! [`authenticate`] checks a request's `Authorization: Bearer` access token locally,
//! with the JWKS, so catalog, ugc and admin keep working while auth is down (until the
//! tokens expire). The JWKS comes from Spin variables, in this order:
//! - `jwks`: the JWKS JSON itself (e.g. the output of `cinema keys jwks`), if not empty;
//! - `jwks_url`: where auth publishes it (`/.well-known/jwks.json`), fetched over
//!   outbound HTTP and held in the instance's memory for `jwks_cache_seconds` (default
//!   300). When a fetch fails, the held keys keep verifying for at most
//!   `jwks_max_stale_seconds` more (default 900), then requests get 503; a token signed
//!   by a key the instance does not know triggers one refetch (at most every
//!   [`MIN_REFETCH_SECONDS`]).
//!
//! Keys are never cached in key-value: a store is writable by whoever reaches Redis,
//! and a planted key set would let anyone forge tokens.
//!
//! Issuer and audience come from `token_issuer` and `token_audience`. A token that
//! checks out is still refused when [`revocation`] says its session or user was
//! revoked after it was issued (401 `token_revoked`).
//!
//! Also: [`reply`] (JSON and empty responses), [`outbound`] (the client of the host's
//! internal API) and [`pg`] (Postgres with errors classified as 503 or 500).

pub mod outbound;
pub mod pg;
pub mod reply;
pub mod revocation;

use cinema_domain::token::{AccessClaims, Jwks, TokenError, TokenVerifier};

/// Shortest interval between two fetches (unknown key ids, or auth down).
pub const MIN_REFETCH_SECONDS: i64 = 10;
const DEFAULT_CACHE_SECONDS: i64 = 300;
/// Held keys verify at most this long past their lifetime while auth is unreachable:
/// one access-token lifetime.
const DEFAULT_MAX_STALE_SECONDS: i64 = 900;

/// Why a request is not authenticated; every variant has a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("send an access token as `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(TokenError),
    #[error("token keys are unavailable: {0}")]
    KeysUnavailable(String),
    #[error("this token was revoked (signed out, blocked or roles changed); sign in again")]
    Revoked,
}

impl AuthError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingToken | Self::InvalidToken(_) | Self::Revoked => 401,
            Self::KeysUnavailable(_) => 503,
        }
    }

    /// The HTTP status and the body a client may see: the fetch detail of unavailable
    /// keys (URLs) stays out of it, for the component to log.
    pub fn client_reply(&self) -> (http::StatusCode, cinema_domain::error::ErrorBody) {
        let status =
            http::StatusCode::from_u16(self.status()).unwrap_or(http::StatusCode::UNAUTHORIZED);
        let message = match self {
            Self::KeysUnavailable(_) => "token keys are unavailable; retry shortly".to_owned(),
            other => other.to_string(),
        };
        (
            status,
            cinema_domain::error::ErrorBody::new(self.code(), message),
        )
    }

    /// Stable error code for the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken(error) => error.code(),
            Self::KeysUnavailable(_) => "auth_keys_unavailable",
            Self::Revoked => "token_revoked",
        }
    }
}

/// The verification keys this instance holds, and since when.
#[derive(Clone)]
struct HeldKeys {
    jwks: Jwks,
    /// When they were fetched (seconds); `None` for the inline `jwks` variable.
    fetched_at: Option<i64>,
    /// When the last fetch was tried, successful or not (throttles refetches).
    tried_at: i64,
}

/// Keys live in this instance's memory only: never read back from a store another
/// component (or anyone with access to Redis) could write. An instance that serves
/// many requests parses them once; a fresh instance fetches them again.
static HELD_KEYS: std::sync::Mutex<Option<HeldKeys>> = std::sync::Mutex::new(None);

fn held() -> Option<HeldKeys> {
    HELD_KEYS.lock().ok().and_then(|held| held.clone())
}

fn hold(keys: HeldKeys) {
    if let Ok(mut held) = HELD_KEYS.lock() {
        *held = Some(keys);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn variable(name: &str) -> Option<String> {
    spin_sdk::variables::get(name)
        .await
        .ok()
        .filter(|v| !v.trim().is_empty())
}

async fn seconds_variable(name: &str, default: i64) -> i64 {
    match variable(name).await {
        Some(raw) => raw.trim().parse().unwrap_or(default),
        None => default,
    }
}

async fn fetch(url: &str) -> Result<Jwks, String> {
    let response = spin_sdk::http::get(url)
        .await
        .map_err(|e| format!("fetch {url}: {e:?}"))?;
    if !response.status().is_success() {
        return Err(format!("fetch {url}: status {}", response.status()));
    }
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .map_err(|e| format!("read {url}: {e:?}"))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| format!("parse JWKS from {url}: {e}"))
}

/// Loads the JWKS; `force` skips fresh keys (used for unknown key ids), at most once
/// every [`MIN_REFETCH_SECONDS`].
async fn load_jwks(force: bool) -> Result<Jwks, AuthError> {
    let held = held();
    if let Some(HeldKeys {
        jwks,
        fetched_at: None,
        ..
    }) = &held
    {
        return Ok(jwks.clone());
    }
    if let Some(inline) = variable("jwks").await {
        let jwks: Jwks = serde_json::from_str(&inline)
            .map_err(|e| AuthError::KeysUnavailable(format!("variable jwks: {e}")))?;
        hold(HeldKeys {
            jwks: jwks.clone(),
            fetched_at: None,
            tried_at: now(),
        });
        return Ok(jwks);
    }
    let url = variable("jwks_url")
        .await
        .ok_or_else(|| AuthError::KeysUnavailable("neither `jwks` nor `jwks_url` is set".into()))?;
    let ttl = seconds_variable("jwks_cache_seconds", DEFAULT_CACHE_SECONDS).await;
    let usable_for = ttl + max_stale().await;
    let now = now();
    if let Some(keys) = &held {
        let age = now - keys.fetched_at.unwrap_or(i64::MIN / 2);
        let recently_tried = now - keys.tried_at < MIN_REFETCH_SECONDS;
        if (age < ttl && !force) || (recently_tried && age < usable_for) {
            return Ok(keys.jwks.clone());
        }
    }
    match fetch(&url).await {
        Ok(jwks) => {
            hold(HeldKeys {
                jwks: jwks.clone(),
                fetched_at: Some(now),
                tried_at: now,
            });
            Ok(jwks)
        }
        Err(error) => match held {
            // Auth (or the network) is down: the last known keys keep verifying, for a
            // bounded time past their lifetime.
            Some(keys) if now - keys.fetched_at.unwrap_or(i64::MIN / 2) < usable_for => {
                eprintln!("edge: using held JWKS ({error})");
                hold(HeldKeys {
                    tried_at: now,
                    ..keys.clone()
                });
                Ok(keys.jwks)
            }
            _ => Err(AuthError::KeysUnavailable(error)),
        },
    }
}

/// How long past `jwks_cache_seconds` held keys may keep verifying while they cannot
/// be fetched (`jwks_max_stale_seconds`).
async fn max_stale() -> i64 {
    seconds_variable("jwks_max_stale_seconds", DEFAULT_MAX_STALE_SECONDS).await
}

/// The bearer token of a request, if any.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))?;
    Some(token.trim()).filter(|t| !t.is_empty())
}

/// Verifies the request's access token and returns its claims.
pub async fn authenticate(headers: &http::HeaderMap) -> Result<AccessClaims, AuthError> {
    let token = bearer_token(headers).ok_or(AuthError::MissingToken)?;
    verify_token(token).await
}

/// Verifies an access token from anywhere (a header, a cookie) and returns its claims.
pub async fn verify_token(token: &str) -> Result<AccessClaims, AuthError> {
    let issuer = variable("token_issuer")
        .await
        .unwrap_or_else(|| "cinema-auth".into());
    let audience = variable("token_audience")
        .await
        .unwrap_or_else(|| "cinema".into());
    let jwks = load_jwks(false).await?;
    let verifier = TokenVerifier::new(&jwks, issuer.clone(), audience.clone());
    let claims = match verifier.verify(token, now()) {
        Err(TokenError::UnknownKey) => {
            let jwks = load_jwks(true).await?;
            TokenVerifier::new(&jwks, issuer, audience)
                .verify(token, now())
                .map_err(AuthError::InvalidToken)?
        }
        other => other.map_err(AuthError::InvalidToken)?,
    };
    if revocation::is_revoked(&claims).await {
        return Err(AuthError::Revoked);
    }
    Ok(claims)
}

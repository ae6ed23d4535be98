//! Helpers every edge component shares. Builds only for components (spin-sdk).
//!
//! [`authenticate`] checks a request's `Authorization: Bearer` access token locally,
//! with the JWKS, so catalog, ugc and admin keep working while auth is down (until the
//! tokens expire). The JWKS comes from Spin variables, in this order:
//! - `jwks`: the JWKS JSON itself (e.g. the output of `cinema keys jwks`), if not empty;
//! - `jwks_url`: where auth publishes it (`/.well-known/jwks.json`), fetched over
//!   outbound HTTP and cached in the `default` key-value store for
//!   `jwks_cache_seconds` (default 300). When a fetch fails, a stale cached copy keeps
//!   serving; a token signed by a key the cache does not know triggers one refetch
//!   (at most every [`MIN_REFETCH_SECONDS`]).
//!
//! Issuer and audience come from `token_issuer` and `token_audience`.
//!
//! Also: [`reply`] (JSON and empty responses), [`outbound`] (the client of the host's
//! internal API) and [`pg`] (Postgres with errors classified as 503 or 500).

pub mod outbound;
pub mod pg;
pub mod reply;

use cinema_domain::token::{AccessClaims, Jwks, TokenError, TokenVerifier};
use serde::{Deserialize, Serialize};
use spin_sdk::key_value::Store;

/// Key-value key of the cached JWKS.
pub const JWKS_CACHE_KEY: &str = "edge:jwks";
/// Shortest interval between two fetches triggered by unknown key ids.
pub const MIN_REFETCH_SECONDS: i64 = 10;
const DEFAULT_CACHE_SECONDS: i64 = 300;

/// Why a request is not authenticated; every variant has a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("send an access token as `Authorization: Bearer <token>`")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(TokenError),
    #[error("token keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl AuthError {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::MissingToken | Self::InvalidToken(_) => 401,
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
        }
    }
}

#[derive(Serialize, Deserialize)]
struct CachedJwks {
    fetched_at: i64,
    jwks: Jwks,
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

/// Loads the JWKS; `force` skips a fresh cache (used for unknown key ids).
async fn load_jwks(store: Option<&Store>, force: bool) -> Result<Jwks, AuthError> {
    if let Some(inline) = variable("jwks").await {
        return serde_json::from_str(&inline)
            .map_err(|e| AuthError::KeysUnavailable(format!("variable jwks: {e}")));
    }
    let url = variable("jwks_url")
        .await
        .ok_or_else(|| AuthError::KeysUnavailable("neither `jwks` nor `jwks_url` is set".into()))?;
    let ttl = match variable("jwks_cache_seconds").await {
        Some(raw) => raw.trim().parse().unwrap_or(DEFAULT_CACHE_SECONDS),
        None => DEFAULT_CACHE_SECONDS,
    };
    let cached = match store {
        Some(store) => match store.get(JWKS_CACHE_KEY).await {
            Ok(Some(bytes)) => serde_json::from_slice::<CachedJwks>(&bytes)
                .inspect_err(|e| eprintln!("edge: ignoring a corrupt cached JWKS: {e}"))
                .ok(),
            Ok(None) => None,
            Err(error) => {
                eprintln!("edge: could not read the cached JWKS: {error:?}");
                None
            }
        },
        None => None,
    };
    let age = cached.as_ref().map(|c| now() - c.fetched_at);
    let fresh = age.is_some_and(|age| age < ttl);
    let recently_fetched = age.is_some_and(|age| age < MIN_REFETCH_SECONDS);
    if let Some(cached) = &cached
        && fresh
        && (!force || recently_fetched)
    {
        return Ok(cached.jwks.clone());
    }
    match fetch(&url).await {
        Ok(jwks) => {
            if let Some(store) = store {
                let entry = CachedJwks {
                    fetched_at: now(),
                    jwks: jwks.clone(),
                };
                if let Ok(bytes) = serde_json::to_vec(&entry)
                    && let Err(error) = store.set(JWKS_CACHE_KEY, &bytes).await
                {
                    eprintln!("edge: could not cache the JWKS: {error:?}");
                }
            }
            Ok(jwks)
        }
        Err(error) => match cached {
            // Auth (or the network) is down: the last known keys keep verifying.
            Some(cached) => {
                eprintln!("edge: using cached JWKS ({error})");
                Ok(cached.jwks)
            }
            None => Err(AuthError::KeysUnavailable(error)),
        },
    }
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
    let store = match Store::open_default().await {
        Ok(store) => Some(store),
        Err(error) => {
            eprintln!("edge: key-value store unavailable, JWKS not cached: {error:?}");
            None
        }
    };
    let jwks = load_jwks(store.as_ref(), false).await?;
    let verifier = TokenVerifier::new(&jwks, issuer.clone(), audience.clone());
    match verifier.verify(token, now()) {
        Err(TokenError::UnknownKey) => {
            let jwks = load_jwks(store.as_ref(), true).await?;
            TokenVerifier::new(&jwks, issuer, audience)
                .verify(token, now())
                .map_err(AuthError::InvalidToken)
        }
        other => other.map_err(AuthError::InvalidToken),
    }
}

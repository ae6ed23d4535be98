//! The token fast path of one component instance: verification keys, settings and
//! already-verified tokens, all held in the instance's memory.
//!
//! - **Settings** (`token_issuer`, `token_audience`, `jwks`, `jwks_url`,
//!   `jwks_cache_seconds`, `jwks_max_stale_seconds`) are read once per instance.
//! - **Keys** are decoded once per key set: the inline `jwks` variable for the
//!   instance's life, a fetched JWKS until `jwks_cache_seconds` pass. Then one request
//!   refetches while the others keep using the held keys (one fetch in flight). When a
//!   fetch fails, held keys keep verifying for at most `jwks_max_stale_seconds` more,
//!   then requests get 503. A token signed by an unknown key id triggers a refetch at
//!   most every [`MIN_REFETCH_SECONDS`] in all, and not again for that id for
//!   [`UNKNOWN_KEY_SECONDS`] (forged key ids cannot cause a fetch storm).
//! - **Verified tokens**: a token whose signature, issuer and audience checked out is
//!   remembered (by the SHA-256 of the whole token, at most [`VERIFIED_CAPACITY`]) with
//!   its claims and key id. Seen again, it costs a hash and a lookup: its lifetime is
//!   checked again, and its key must still be published by the held key set (a retired
//!   key's tokens stop with it). Ed25519 on wasm32 costs far more than the rest of a
//!   cached read, and clients send the same token for minutes.
//!
//! Keys are never cached in key-value: a store is writable by whoever reaches Redis,
//! and a planted key set would let anyone forge tokens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use cinema_domain::token::{AccessClaims, Jwks, TokenError, TokenVerifier, VerifiedTokens};

use crate::AuthError;

/// Shortest interval between two fetches (unknown key ids, or auth down).
pub const MIN_REFETCH_SECONDS: i64 = 10;
/// How long a key id that a fresh fetch did not know stays unknown without another
/// fetch on its account.
pub const UNKNOWN_KEY_SECONDS: i64 = 60;
/// Verified tokens remembered per instance (about 1 KiB each).
pub const VERIFIED_CAPACITY: usize = 4096;
/// Key ids remembered as unknown per instance.
const UNKNOWN_KEY_CAPACITY: usize = 1024;
const DEFAULT_CACHE_SECONDS: i64 = 300;
/// Held keys verify at most this long past their lifetime while auth is unreachable:
/// one access-token lifetime.
const DEFAULT_MAX_STALE_SECONDS: i64 = 900;

/// Where this instance's keys come from.
enum KeySource {
    /// The `jwks` variable, decoded once (or why it could not be).
    Inline(Result<Arc<TokenVerifier>, String>),
    /// `jwks_url`, fetched and held.
    Url(String),
    /// Neither variable is set.
    Missing,
}

/// The token settings of this instance, read once.
struct TokenSettings {
    issuer: String,
    audience: String,
    source: KeySource,
    cache_seconds: i64,
    max_stale_seconds: i64,
}

static SETTINGS: OnceLock<TokenSettings> = OnceLock::new();

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

async fn settings() -> &'static TokenSettings {
    if let Some(settings) = SETTINGS.get() {
        return settings;
    }
    let issuer = variable("token_issuer")
        .await
        .unwrap_or_else(|| "cinema-auth".into());
    let audience = variable("token_audience")
        .await
        .unwrap_or_else(|| "cinema".into());
    let source = if let Some(inline) = variable("jwks").await {
        KeySource::Inline(
            serde_json::from_str::<Jwks>(&inline)
                .map(|jwks| Arc::new(TokenVerifier::new(&jwks, &issuer, &audience)))
                .map_err(|e| format!("variable jwks: {e}")),
        )
    } else if let Some(url) = variable("jwks_url").await {
        KeySource::Url(url)
    } else {
        KeySource::Missing
    };
    let settings = TokenSettings {
        cache_seconds: seconds_variable("jwks_cache_seconds", DEFAULT_CACHE_SECONDS).await,
        max_stale_seconds: seconds_variable("jwks_max_stale_seconds", DEFAULT_MAX_STALE_SECONDS)
            .await,
        issuer,
        audience,
        source,
    };
    // Two first requests may both get here; the first one's copy is kept (they agree).
    SETTINGS.get_or_init(|| settings)
}

/// Keys fetched from `jwks_url`.
struct FetchedKeys {
    verifier: Arc<TokenVerifier>,
    fetched_at: i64,
}

/// What this instance holds besides its settings.
struct Held {
    fetched: Option<FetchedKeys>,
    /// When the last fetch was tried, successful or not (throttles refetches).
    tried_at: Option<i64>,
    /// A fetch is under way (other requests keep using the held keys).
    fetching: bool,
    verified: VerifiedTokens,
    /// Key ids a fetch did not know → when.
    unknown_keys: HashMap<String, i64>,
}

static HELD: Mutex<Option<Held>> = Mutex::new(None);

fn with_held<T>(f: impl FnOnce(&mut Held) -> T) -> T {
    let mut guard = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(|| Held {
        fetched: None,
        tried_at: None,
        fetching: false,
        verified: VerifiedTokens::new(VERIFIED_CAPACITY),
        unknown_keys: HashMap::new(),
    }))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
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

/// The verifier to check tokens with. `unknown_kid`: a token names a key the held set
/// does not know, so fetch again unless that was tried recently.
async fn verifier(
    settings: &TokenSettings,
    unknown_kid: Option<&str>,
) -> Result<Arc<TokenVerifier>, AuthError> {
    let url = match &settings.source {
        KeySource::Inline(Ok(verifier)) => return Ok(verifier.clone()),
        KeySource::Inline(Err(error)) => return Err(AuthError::KeysUnavailable(error.clone())),
        KeySource::Missing => {
            return Err(AuthError::KeysUnavailable(
                "neither `jwks` nor `jwks_url` is set".into(),
            ));
        }
        KeySource::Url(url) => url,
    };
    let usable_for = settings.cache_seconds + settings.max_stale_seconds;
    let now = now();
    // Decide under the lock: use the held keys, or become the one request that fetches.
    let held_keys = with_held(|held| {
        if let Some(keys) = &held.fetched {
            let age = now - keys.fetched_at;
            let kid_worth_a_fetch = unknown_kid.is_some_and(|kid| {
                held.unknown_keys
                    .get(kid)
                    .is_none_or(|at| now - at >= UNKNOWN_KEY_SECONDS)
            });
            let wanted = age >= settings.cache_seconds || kid_worth_a_fetch;
            let tried_recently = held
                .tried_at
                .is_some_and(|at| now - at < MIN_REFETCH_SECONDS);
            if !wanted || (age < usable_for && (tried_recently || held.fetching)) {
                return Some(keys.verifier.clone());
            }
        }
        // No keys yet (every request tries until one fetch succeeds), or time to
        // refresh them.
        held.fetching = true;
        held.tried_at = Some(now);
        None
    });
    if let Some(verifier) = held_keys {
        return Ok(verifier);
    }
    let fetched = fetch(url).await;
    with_held(|held| {
        held.fetching = false;
        match fetched {
            Ok(jwks) => {
                let verifier = Arc::new(TokenVerifier::new(
                    &jwks,
                    &settings.issuer,
                    &settings.audience,
                ));
                if let Some(kid) = unknown_kid.filter(|kid| !verifier.knows_key(kid)) {
                    if held.unknown_keys.len() >= UNKNOWN_KEY_CAPACITY {
                        held.unknown_keys.clear();
                    }
                    held.unknown_keys.insert(kid.to_owned(), now);
                }
                held.fetched = Some(FetchedKeys {
                    verifier: verifier.clone(),
                    fetched_at: now,
                });
                Ok(verifier)
            }
            Err(error) => match &held.fetched {
                // Auth (or the network) is down: the last known keys keep verifying,
                // for a bounded time past their lifetime.
                Some(keys) if now - keys.fetched_at < usable_for => {
                    eprintln!("edge: using held JWKS ({error})");
                    Ok(keys.verifier.clone())
                }
                _ => Err(AuthError::KeysUnavailable(error)),
            },
        }
    })
}

/// Checks `token`'s signature, issuer, audience and lifetime; answers its claims.
pub async fn verify(token: &str) -> Result<AccessClaims, AuthError> {
    let settings = settings().await;
    let keys = verifier(settings, None).await?;
    let digest = VerifiedTokens::digest(token);
    let now = now();
    let remembered = with_held(|held| held.verified.recall(&digest, &keys, now));
    if let Some(claims) = remembered {
        return claims.map_err(AuthError::InvalidToken);
    }
    let (claims, kid) = match keys.verify_keyed(token, now) {
        Err(TokenError::UnknownKey) => {
            let kid = cinema_domain::token::key_id(token).unwrap_or_default();
            verifier(settings, Some(&kid))
                .await?
                .verify_keyed(token, now)
                .map_err(AuthError::InvalidToken)?
        }
        other => other.map_err(AuthError::InvalidToken)?,
    };
    with_held(|held| held.verified.remember(digest, claims.clone(), kid, now));
    Ok(claims)
}

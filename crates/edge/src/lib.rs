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
//! Issuer and audience come from `token_issuer` and `token_audience`. Settings are read
//! once per instance, keys decoded once per key set, and a token already verified is
//! not verified again ([`tokens`]). A token that checks out is still refused when
//! [`revocation`] says its session or user was revoked after it was issued (401
//! `token_revoked`).
//!
//! Also: [`reply`] (JSON and empty responses), [`outbound`] (the client of the host's
//! internal API) and [`pg`] (Postgres with errors classified as 503 or 500).

pub mod outbound;
pub mod pg;
pub mod reply;
pub mod revocation;
pub mod tokens;

use cinema_domain::token::{AccessClaims, TokenError};

pub use tokens::MIN_REFETCH_SECONDS;

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

/// Verifies an access token from anywhere (a header, a cookie) and returns its claims:
/// signature, issuer, audience and lifetime ([`tokens`]), then revocation.
pub async fn verify_token(token: &str) -> Result<AccessClaims, AuthError> {
    let claims = tokens::verify(token).await?;
    if revocation::is_revoked(&claims).await {
        return Err(AuthError::Revoked);
    }
    Ok(claims)
}

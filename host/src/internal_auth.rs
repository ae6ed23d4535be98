//! Who may use the internal API, and who a write is for.
//!
//! The internal API listens on loopback, but loopback is not a trust boundary: any
//! local process, or a server-side request forgery through some other service, reaches
//! it. So every route except `/health` and `/metrics` (liveness and counters, no data)
//! needs the internal credential: a secret the host and the components share, sent as
//! [`INTERNAL_TOKEN_HEADER`]. `cinema up` makes one at start unless one is given
//! (`--internal-api-token`, or `SPIN_VARIABLE_INTERNAL_API_TOKEN`) and hands it to the
//! components as their `internal_api_token` variable; under `spin up` the operator sets
//! the same value on both sides. A request without it, or with another, is 401
//! `internal_credential_required`, decided in constant time.
//!
//! Writes on behalf of a user (the UGC intake) also carry the user's access token,
//! verified here with [`TokenKeys`]: the user behind an event is the token's subject,
//! never a body field.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cinema_domain::error::ErrorBody;
use cinema_domain::token::{AccessClaims, Jwk, Jwks, TokenError, TokenVerifier, VerifiedTokens};

/// Header carrying the internal credential (the name is shared with `cinema-edge`).
pub const INTERNAL_TOKEN_HEADER: &str = "x-cinema-internal-token";
/// The Spin variable that carries the credential to components.
pub const INTERNAL_TOKEN_VARIABLE: &str = "internal_api_token";

/// The shared secret of the internal API.
#[derive(Clone)]
pub struct InternalCredential(Arc<str>);

impl std::fmt::Debug for InternalCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalCredential(..)")
    }
}

impl InternalCredential {
    /// The credential `given` (flag or variable), or a fresh random one.
    pub fn given_or_generated(given: Option<String>) -> (Self, bool) {
        match given.filter(|token| !token.trim().is_empty()) {
            Some(token) => (Self(Arc::from(token.trim())), false),
            None => {
                let mut bytes = [0u8; 32];
                rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
                let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                (Self(Arc::from(token)), true)
            }
        }
    }

    /// The secret, to hand to components.
    pub fn expose(&self) -> &str {
        &self.0
    }

    fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        expected.len() == presented.len()
            && expected
                .iter()
                .zip(presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Axum middleware: 401 unless the request carries the internal credential.
pub async fn require_credential(
    State(credential): State<InternalCredential>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(INTERNAL_TOKEN_HEADER)
        .map(|v| v.as_bytes());
    if presented.is_some_and(|presented| credential.matches(presented)) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(ErrorBody::new(
            "internal_credential_required",
            "the internal API needs the platform's internal credential",
        )),
    )
        .into_response()
}

/// Why a user's access token was not accepted here.
#[derive(Debug, thiserror::Error)]
pub enum UserTokenError {
    #[error("send the user's access token as `Authorization: Bearer <token>`")]
    Missing,
    #[error("{0}")]
    Invalid(#[from] TokenError),
    #[error("token keys are unavailable: {0}")]
    KeysUnavailable(String),
}

impl UserTokenError {
    /// Status and body for the caller.
    pub fn reply(&self) -> Response {
        let (status, code, message) = match self {
            Self::Missing => (StatusCode::UNAUTHORIZED, "missing_token", self.to_string()),
            Self::Invalid(error) => (StatusCode::UNAUTHORIZED, error.code(), error.to_string()),
            Self::KeysUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "auth_keys_unavailable",
                "token keys are unavailable; retry shortly".to_owned(),
            ),
        };
        if let Self::KeysUnavailable(detail) = self {
            tracing::warn!(%detail, "internal api: token keys unavailable");
        }
        (status, axum::Json(ErrorBody::new(code, message))).into_response()
    }
}

/// How long keys read from Postgres are used before they are read again.
const KEYS_TTL: Duration = Duration::from_secs(60);
/// Shortest interval between two reads (unknown key ids, Postgres down).
const MIN_REREAD: Duration = Duration::from_secs(5);
/// Verified tokens remembered (about 1 KiB each).
const VERIFIED_CAPACITY: usize = 16_384;

struct HeldKeys {
    verifier: Arc<TokenVerifier>,
    read_at: Instant,
}

/// Access-token verification for the host: the public keys auth publishes, read from
/// `auth.signing_keys` (the host never sees a private key's use), held in memory and
/// re-read every [`KEYS_TTL`] or on an unknown key id (at most every [`MIN_REREAD`]).
/// While Postgres is down the held keys keep verifying. Tokens that checked out are
/// remembered ([`VerifiedTokens`]): a client sends the same token with every batch.
pub struct TokenKeys {
    postgres_url: String,
    issuer: String,
    audience: String,
    held: tokio::sync::Mutex<Option<HeldKeys>>,
    last_read_attempt: std::sync::Mutex<Option<Instant>>,
    verified: std::sync::Mutex<VerifiedTokens>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    pub fn new(postgres_url: &str, issuer: &str, audience: &str) -> Self {
        Self {
            postgres_url: postgres_url.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            held: tokio::sync::Mutex::new(None),
            last_read_attempt: std::sync::Mutex::new(None),
            verified: std::sync::Mutex::new(VerifiedTokens::new(VERIFIED_CAPACITY)),
        }
    }

    async fn read_keys(&self) -> Result<Jwks, String> {
        let (client, connection) = cinema_postgres::connect(&self.postgres_url)
            .await
            .map_err(|e| format!("connect to postgres for token keys: {e}"))?;
        let task = tokio::spawn(connection);
        let rows = client
            .query(
                "SELECT kid, public_key FROM auth.signing_keys \
                 WHERE expires_at IS NULL OR expires_at > now()",
                &[],
            )
            .await
            .map_err(|e| format!("read auth.signing_keys: {e}"));
        drop(client);
        task.abort();
        let keys = rows?
            .iter()
            .filter_map(|row| {
                let kid: String = row.get(0);
                let public: Vec<u8> = row.get(1);
                let public: [u8; 32] = public.try_into().ok()?;
                Some(Jwk::ed25519(kid, &public))
            })
            .collect();
        Ok(Jwks { keys })
    }

    /// The verifier, read again when older than the TTL or when `force`d.
    async fn verifier(&self, force: bool) -> Result<Arc<TokenVerifier>, UserTokenError> {
        let mut held = self.held.lock().await;
        let fresh = held
            .as_ref()
            .is_some_and(|keys| keys.read_at.elapsed() < KEYS_TTL);
        let may_read = {
            let mut last = self
                .last_read_attempt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let allowed = last.is_none_or(|at| at.elapsed() >= MIN_REREAD);
            if allowed && (!fresh || force) {
                *last = Some(Instant::now());
            }
            allowed
        };
        if (fresh && !force) || !may_read {
            return held
                .as_ref()
                .map(|keys| keys.verifier.clone())
                .ok_or_else(|| UserTokenError::KeysUnavailable("keys not read yet".into()));
        }
        match self.read_keys().await {
            Ok(jwks) => {
                let verifier = Arc::new(TokenVerifier::new(
                    &jwks,
                    self.issuer.clone(),
                    self.audience.clone(),
                ));
                *held = Some(HeldKeys {
                    verifier: verifier.clone(),
                    read_at: Instant::now(),
                });
                Ok(verifier)
            }
            Err(error) => match held.as_ref() {
                Some(keys) => {
                    tracing::warn!(%error, "internal api: using held token keys");
                    Ok(keys.verifier.clone())
                }
                None => Err(UserTokenError::KeysUnavailable(error)),
            },
        }
    }

    /// Reads the keys once (at start), logging a failure; requests read them again.
    pub async fn warm(&self) {
        if let Err(error) = self.verifier(true).await {
            tracing::warn!(%error, "internal api: token keys not read at start; retrying on use");
        }
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, UserTokenError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let keys = self.verifier(false).await?;
        let digest = VerifiedTokens::digest(token);
        if let Some(remembered) = self.verified().recall(&digest, &keys, now) {
            return Ok(remembered?);
        }
        let (claims, kid) = match keys.verify_keyed(token, now) {
            Err(TokenError::UnknownKey) => self.verifier(true).await?.verify_keyed(token, now)?,
            other => other?,
        };
        self.verified().remember(digest, claims.clone(), kid, now);
        Ok(claims)
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, VerifiedTokens> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Verifies the request's `Authorization: Bearer` token.
    pub async fn verify_bearer(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<AccessClaims, UserTokenError> {
        let token = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(UserTokenError::Missing)?;
        self.verify(token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the exact secret matches; a generated one is 64 hex digits.
    #[test]
    fn the_credential_matches_only_itself() {
        let (given, generated) = InternalCredential::given_or_generated(Some("s3cret".into()));
        assert!(!generated);
        assert!(given.matches(b"s3cret"));
        assert!(!given.matches(b"s3cre"));
        assert!(!given.matches(b"s3cret!"));
        let (random, generated) = InternalCredential::given_or_generated(Some("  ".into()));
        assert!(generated);
        assert_eq!(random.expose().len(), 64);
        assert!(format!("{random:?}").contains(".."), "never printed");
    }
}

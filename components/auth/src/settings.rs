//! The component's settings, from Spin variables (see `spin.toml`).

use cinema_domain::client_addr::TrustedProxies;
use cinema_domain::key_seal::KeyEncryptionKey;

use crate::error::{ApiError, ApiResult};

/// Proxies trusted when `trusted_proxies` is not declared: the host's own loopback
/// (the admin console calls auth through it).
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.1, ::1";

/// Typed settings of the auth component.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Postgres address of the account database.
    pub database_url: String,
    pub issuer: String,
    pub audience: String,
    pub access_token_ttl_seconds: i64,
    pub refresh_token_ttl_days: i32,
    /// Lifetime of an impersonation token (never longer than an access token's).
    pub impersonation_ttl_seconds: i64,
    /// Proxies whose `X-Forwarded-For` names the client (`trusted_proxies`); the
    /// console calls auth over loopback, so loopback is trusted unless configured.
    pub trusted_proxies: TrustedProxies,
    /// Opens private signing keys sealed at rest (`signing_key_encryption_key`, 64 hex
    /// digits); `None` when unset (keys stored in clear still work).
    pub key_encryption_key: Option<KeyEncryptionKey>,
}

async fn variable(name: &str) -> ApiResult<String> {
    spin_sdk::variables::get(name)
        .await
        .map_err(|e| ApiError::Internal(format!("variable {name}: {e:?}")))
}

async fn number<T: std::str::FromStr>(name: &str) -> ApiResult<T> {
    let raw = variable(name).await?;
    raw.trim()
        .parse()
        .map_err(|_| ApiError::Internal(format!("variable {name} is not a number: {raw:?}")))
}

/// A number that may be left undeclared (a manifest older than the variable): then
/// `default`. A declared value that is not a number is still an error.
async fn number_or<T: std::str::FromStr>(name: &str, default: T) -> ApiResult<T> {
    match spin_sdk::variables::get(name).await {
        Ok(raw) if raw.trim().is_empty() => Ok(default),
        Ok(raw) => raw
            .trim()
            .parse()
            .map_err(|_| ApiError::Internal(format!("variable {name} is not a number: {raw:?}"))),
        Err(_) => Ok(default),
    }
}

/// Lifetime of an impersonation token unless `impersonation_ttl_seconds` says.
const DEFAULT_IMPERSONATION_TTL_SECONDS: i64 = 600;

impl Settings {
    pub async fn load() -> ApiResult<Self> {
        Ok(Self {
            database_url: variable("database_url").await?,
            issuer: variable("token_issuer").await?,
            audience: variable("token_audience").await?,
            access_token_ttl_seconds: number("access_token_ttl_seconds").await?,
            refresh_token_ttl_days: number("refresh_token_ttl_days").await?,
            impersonation_ttl_seconds: number_or(
                "impersonation_ttl_seconds",
                DEFAULT_IMPERSONATION_TTL_SECONDS,
            )
            .await?,
            trusted_proxies: trusted_proxies().await?,
            key_encryption_key: key_encryption_key().await?,
        })
    }
}

/// `trusted_proxies`, or [`DEFAULT_TRUSTED_PROXIES`] when undeclared.
async fn trusted_proxies() -> ApiResult<TrustedProxies> {
    let raw = spin_sdk::variables::get("trusted_proxies")
        .await
        .unwrap_or_else(|_| DEFAULT_TRUSTED_PROXIES.to_owned());
    TrustedProxies::parse(&raw)
        .map_err(|e| ApiError::Internal(format!("variable trusted_proxies: {e}")))
}

/// `signing_key_encryption_key`, if set; a malformed one is a configuration error.
async fn key_encryption_key() -> ApiResult<Option<KeyEncryptionKey>> {
    match spin_sdk::variables::get("signing_key_encryption_key").await {
        Ok(raw) if !raw.trim().is_empty() => KeyEncryptionKey::from_hex(&raw)
            .map(Some)
            .map_err(|e| ApiError::Internal(format!("variable signing_key_encryption_key: {e}"))),
        _ => Ok(None),
    }
}

//! The component's settings, from Spin variables (see `spin.toml`).

use crate::error::{ApiError, ApiResult};

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
        })
    }
}

//! The component's settings, from Spin variables (see `spin.toml`).
//!
//! Token checking reads its own variables (`jwks`, `jwks_url`, `token_issuer`, ...) in
//! `cinema_edge`; this module owns only the ugc component's.

use crate::error::{ApiError, ApiResult};

/// Typed settings of the ugc component.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the host's internal API, where the event intake lives.
    pub internal_api_url: String,
    /// Postgres address of the read models (schema `ugc`): reads and the review
    /// author check.
    pub database_url: String,
}

/// A variable that must be set and not empty; errors name it.
async fn required(name: &str) -> ApiResult<String> {
    let value = spin_sdk::variables::get(name)
        .await
        .map_err(|e| ApiError::Internal(format!("variable {name}: {e:?}")))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(ApiError::Internal(format!("variable {name} is empty")));
    }
    Ok(value.to_owned())
}

impl Settings {
    /// Reads the variables. A missing or empty one is an internal error naming it.
    pub async fn load() -> ApiResult<Self> {
        Ok(Self {
            internal_api_url: required("internal_api_url").await?,
            database_url: required("database_url").await?,
        })
    }
}

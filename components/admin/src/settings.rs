//! The admin component's settings, from Spin variables (see `spin.toml`).
//!
//! Token checking reads its own variables (`jwks`, `jwks_url`, `token_issuer`, ...) in
//! `cinema_edge`; this module owns only the admin component's.

use crate::error::{AdminError, AdminResult};

/// Typed settings of the admin component.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Postgres: content (`content.*`) and the audit log (`admin.audit_log`).
    pub database_url: String,
    /// Base URL of the platform's public API, where the auth component answers
    /// `/api/v1/auth/...` (login, refresh, logout, user administration).
    pub auth_api_url: String,
}

async fn required(name: &str) -> AdminResult<String> {
    let value = spin_sdk::variables::get(name)
        .await
        .map_err(|e| AdminError::Internal(format!("variable {name}: {e:?}")))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(AdminError::Internal(format!("variable {name} is empty")));
    }
    Ok(value.to_owned())
}

impl Settings {
    /// Reads the variables. A missing or empty one is an internal error naming it.
    pub async fn load() -> AdminResult<Self> {
        Ok(Self {
            database_url: required("database_url").await?,
            auth_api_url: required("auth_api_url").await?,
        })
    }
}

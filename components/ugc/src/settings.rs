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
}

impl Settings {
    /// Reads the variables. A missing or empty `internal_api_url` is an internal error
    /// naming the variable.
    pub async fn load() -> ApiResult<Self> {
        let internal_api_url = spin_sdk::variables::get("internal_api_url")
            .await
            .map_err(|e| ApiError::Internal(format!("variable internal_api_url: {e:?}")))?;
        if internal_api_url.trim().is_empty() {
            return Err(ApiError::Internal(
                "variable internal_api_url is empty".into(),
            ));
        }
        Ok(Self {
            internal_api_url: internal_api_url.trim().to_owned(),
        })
    }
}

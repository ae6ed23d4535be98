//! The component's settings, from Spin variables (see `spin.toml`).
//!
//! Token checking reads its own variables (`jwks`, `jwks_url`, `token_issuer`, ...) in
//! `cinema_edge`; this module owns only the catalog's.

use crate::error::{ApiError, ApiResult};

/// `index_version_check_ms` when the variable is not defined.
pub const DEFAULT_INDEX_VERSION_CHECK_MS: i64 = 1_000;

/// Typed settings of the catalog component.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the host's internal search API.
    pub internal_api_url: String,
    /// How long a known index version is trusted before it is asked again.
    pub index_version_check_ms: i64,
}

/// The settings of this instance, read at its first request (variables do not change
/// while an application runs).
static LOADED: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();

impl Settings {
    /// The settings, read once per instance. An undefined `index_version_check_ms`
    /// takes its default; a defined but malformed one, like a missing
    /// `internal_api_url`, is an internal error naming the variable (and is read again
    /// at the next request).
    pub async fn get() -> ApiResult<&'static Self> {
        if let Some(settings) = LOADED.get() {
            return Ok(settings);
        }
        let settings = Self::read().await?;
        Ok(LOADED.get_or_init(|| settings))
    }

    async fn read() -> ApiResult<Self> {
        let internal_api_url = spin_sdk::variables::get("internal_api_url")
            .await
            .map_err(|e| ApiError::Internal(format!("variable internal_api_url: {e:?}")))?;
        if internal_api_url.trim().is_empty() {
            return Err(ApiError::Internal(
                "variable internal_api_url is empty".into(),
            ));
        }
        let index_version_check_ms = match spin_sdk::variables::get("index_version_check_ms").await
        {
            Err(_) => DEFAULT_INDEX_VERSION_CHECK_MS,
            Ok(raw) => raw
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|ms| *ms >= 0)
                .ok_or_else(|| {
                    ApiError::Internal(format!(
                        "variable index_version_check_ms is not a number of milliseconds: {raw:?}"
                    ))
                })?,
        };
        Ok(Self {
            internal_api_url: internal_api_url.trim().to_owned(),
            index_version_check_ms,
        })
    }
}

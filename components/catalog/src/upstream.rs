//! The client of the host's internal search API (`internal_api_url`).
//!
//! Owns the outbound requests and the meaning of the host's statuses: 2xx is an
//! answer (with the `x-index-version` it was computed at), 404 is "no such id", 400
//! with a `field` is a parameter the host refused, and everything else (no
//! connection, timeouts, 5xx, `search_index_unavailable`) is "unavailable". It does
//! not parse answers (see `views`) and does not cache (see `cache`).

use bytes::Bytes;
use cinema_edge::outbound::HostApi;
pub use cinema_edge::outbound::REQUEST_ID_HEADER;
use http::HeaderValue;
use serde::Deserialize;

/// Response header carrying the index version an answer was computed at.
pub const INDEX_VERSION_HEADER: &str = "x-index-version";

/// A successful answer of the host.
#[derive(Debug)]
pub struct HostAnswer {
    /// `x-index-version` of the answer, when present and a number.
    pub version: Option<u64>,
    pub body: Bytes,
}

/// Why the host gave no answer.
#[derive(Debug)]
pub enum UpstreamError {
    /// 404: the id in the path does not exist.
    NotFound,
    /// 400 naming a parameter: the host refused what the component let through.
    Rejected { field: String, message: String },
    /// Anything else; the detail is for the log.
    Unavailable(String),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::Rejected { field, message } => write!(f, "host refused {field}: {message}"),
            Self::Unavailable(detail) => f.write_str(detail),
        }
    }
}

#[derive(Deserialize)]
struct VersionAnswer {
    version: u64,
}

/// The host's search API at one base URL.
pub struct Upstream {
    host: HostApi,
}

impl Upstream {
    /// A client of `base` (`http://127.0.0.1:3001`); `request_id` is passed along.
    pub fn new(base: &str, request_id: Option<HeaderValue>) -> Self {
        Self {
            host: HostApi::internal(base, "catalog", request_id),
        }
    }

    /// GETs `path` (with its query) from the host.
    pub async fn get(&self, path: &str) -> Result<HostAnswer, UpstreamError> {
        let answer = self
            .host
            .get(path)
            .await
            .map_err(|e| UpstreamError::Unavailable(e.to_string()))?;
        if answer.status.is_success() {
            let version = answer
                .headers
                .get(INDEX_VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            return Ok(HostAnswer {
                version,
                body: answer.body,
            });
        }
        if answer.status == http::StatusCode::NOT_FOUND {
            return Err(UpstreamError::NotFound);
        }
        if let Some((field, message)) = answer.refused_field() {
            return Err(UpstreamError::Rejected { field, message });
        }
        Err(UpstreamError::Unavailable(format!(
            "GET {path}: {}",
            answer.describe()
        )))
    }

    /// The index version the host is serving (`/search/version`).
    pub async fn index_version(&self) -> Result<u64, UpstreamError> {
        let answer = self.get("/search/version").await?;
        serde_json::from_slice::<VersionAnswer>(&answer.body)
            .map(|answer| answer.version)
            .map_err(|e| {
                UpstreamError::Unavailable(format!("/search/version is not a version: {e}"))
            })
    }
}

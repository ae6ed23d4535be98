//! The client of the host's internal search API (`internal_api_url`).
//!
//! Owns the outbound requests and the meaning of the host's statuses: 2xx is an
//! answer (with the `x-index-version` it was computed at), 404 is "no such id", 400
//! with a `field` is a parameter the host refused, and everything else (no
//! connection, timeouts, 5xx, `search_index_unavailable`) is "unavailable". It does
//! not parse answers (see `views`) and does not cache (see `cache`).

use std::time::Duration;

use bytes::Bytes;
use cinema_domain::error::ErrorBody;
use http::{HeaderValue, header};
use http_body_util::{BodyExt, Empty};
use serde::Deserialize;
use spin_sdk::wasip3::http::types::RequestOptions;
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

/// Response header carrying the index version an answer was computed at.
pub const INDEX_VERSION_HEADER: &str = "x-index-version";
/// Request header carrying the caller's request id to the host.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Time allowed to connect to the host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for the host to start answering.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest host error body quoted in the log.
const MAX_LOGGED_BODY: usize = 200;

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
    base: String,
    request_id: Option<HeaderValue>,
}

fn timeouts() -> RequestOptions {
    cinema_edge::outbound::request_options("catalog", CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT)
}

fn excerpt(body: &[u8]) -> String {
    cinema_edge::outbound::excerpt(body, MAX_LOGGED_BODY)
}

impl Upstream {
    /// A client of `base` (`http://127.0.0.1:3001`); `request_id` is passed along.
    pub fn new(base: &str, request_id: Option<HeaderValue>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            request_id,
        }
    }

    /// GETs `path` (with its query) from the host.
    pub async fn get(&self, path: &str) -> Result<HostAnswer, UpstreamError> {
        let url = format!("{}{path}", self.base);
        let unavailable =
            |detail: String| UpstreamError::Unavailable(format!("GET {url}: {detail}"));
        let mut builder = http::Request::get(&url)
            .header(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(request_id) = &self.request_id {
            builder = builder.header(REQUEST_ID_HEADER, request_id.clone());
        }
        let mut request = builder
            .body(Empty::<Bytes>::new())
            .map_err(|e| unavailable(format!("bad request: {e}")))?;
        request
            .extensions_mut()
            .insert(RequestOptionsExtension(timeouts()));
        let response = spin_sdk::http::send(request)
            .await
            .map_err(|e| unavailable(format!("{e:?}")))?;
        let status = response.status();
        let version = response
            .headers()
            .get(INDEX_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(format!("reading the body: {e:?}")))?
            .to_bytes();
        if status.is_success() {
            return Ok(HostAnswer { version, body });
        }
        if status == http::StatusCode::NOT_FOUND {
            return Err(UpstreamError::NotFound);
        }
        if status == http::StatusCode::BAD_REQUEST
            && let Ok(error) = serde_json::from_slice::<ErrorBody>(&body)
            && let Some(field) = error.error.field
        {
            return Err(UpstreamError::Rejected {
                field,
                message: error.error.message,
            });
        }
        Err(unavailable(format!("status {status}: {}", excerpt(&body))))
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

//! Outbound HTTP for components calling the host's internal API or another
//! component's public API: one client ([`HostApi`]) with connect and first-byte timeouts, the caller's request id passed
//! along, and the answer collected whole; plus short excerpts of error bodies for the
//! log.
//!
//! The client does not interpret statuses beyond [`HostAnswer::refused_field`]: what a
//! 404 or a 503 means is the calling component's business.

use std::time::Duration;

use bytes::Bytes;
use cinema_domain::error::ErrorBody;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use spin_sdk::wasip3::http::types::RequestOptions;
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

/// Request header carrying the caller's request id to the host.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Request header carrying the internal API's credential (the host checks it).
pub const INTERNAL_TOKEN_HEADER: &str = "x-cinema-internal-token";
/// The Spin variable holding that credential.
pub const INTERNAL_TOKEN_VARIABLE: &str = "internal_api_token";

/// The internal credential, read once per instance.
static INTERNAL_TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

async fn internal_token() -> Option<String> {
    if let Some(token) = INTERNAL_TOKEN.get() {
        return Some(token.clone());
    }
    let token = spin_sdk::variables::get(INTERNAL_TOKEN_VARIABLE)
        .await
        .ok()
        .filter(|t| !t.is_empty())?;
    Some(INTERNAL_TOKEN.get_or_init(|| token).clone())
}
/// Time allowed to connect to the host (it runs beside the components).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for the host to start answering.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest host error body quoted in a log line.
pub const MAX_LOGGED_BODY: usize = 200;

/// Request options with a connect and a first-byte timeout. A runtime that does not
/// support a timeout keeps its own default (logged under `component`).
pub fn request_options(component: &str, connect: Duration, first_byte: Duration) -> RequestOptions {
    let options = RequestOptions::new();
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    if let Err(error) = options.set_connect_timeout(Some(nanos(connect))) {
        eprintln!("{component}: connect timeout not set: {error:?}");
    }
    if let Err(error) = options.set_first_byte_timeout(Some(nanos(first_byte))) {
        eprintln!("{component}: first-byte timeout not set: {error:?}");
    }
    options
}

/// At most `max_chars` of a body, for a log line.
pub fn excerpt(body: &[u8], max_chars: usize) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(max_chars)
        .collect()
}

/// The host gave no HTTP answer at all (no connection, a timeout, a broken body). The
/// text names the request and is for the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HostUnreachable(pub String);

/// An HTTP answer of the host, whatever its status.
#[derive(Debug)]
pub struct HostAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HostAnswer {
    /// `(field, message)` when the host refused a parameter: 400 with an
    /// [`ErrorBody`] naming the field.
    pub fn refused_field(&self) -> Option<(String, String)> {
        if self.status != StatusCode::BAD_REQUEST {
            return None;
        }
        let error = serde_json::from_slice::<ErrorBody>(&self.body).ok()?.error;
        Some((error.field?, error.message))
    }

    /// A log line for an answer the caller did not expect: status and body excerpt.
    pub fn describe(&self) -> String {
        format!(
            "status {}: {}",
            self.status,
            excerpt(&self.body, MAX_LOGGED_BODY)
        )
    }
}

/// The host's internal API at one base URL, on behalf of one component.
pub struct HostApi {
    base: String,
    component: &'static str,
    request_id: Option<HeaderValue>,
    /// Sent as `Authorization: Bearer` when set (calls made for a signed-in user).
    bearer: Option<String>,
    /// Sent as `X-Forwarded-For` when set (calls made on behalf of a browser).
    forwarded_for: Option<String>,
    /// Send the internal credential: only to the host's internal API, never to a
    /// public URL.
    internal: bool,
    /// Connect and first-byte timeouts.
    timeouts: (Duration, Duration),
}

/// The `X-Forwarded-For` chain to send when calling on behalf of this request: the
/// chain it arrived with, then the address it came from (as any proxy appends it).
/// `None` when the runtime gave no client address.
pub fn forwarded_for(headers: &HeaderMap) -> Option<String> {
    use cinema_domain::client_addr::{FORWARDED_FOR_HEADER, SPIN_CLIENT_ADDR_HEADER, parse_peer};
    let peer = headers
        .get(SPIN_CLIENT_ADDR_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_peer)?;
    let mut chain: Vec<String> = headers
        .get_all(FORWARDED_FOR_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect();
    chain.push(peer.to_string());
    Some(chain.join(", "))
}

impl HostApi {
    /// A client of `base` (`http://127.0.0.1:3001`) for `component` (log prefix);
    /// `request_id` goes along as `x-request-id`.
    pub fn new(base: &str, component: &'static str, request_id: Option<HeaderValue>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            component,
            request_id,
            bearer: None,
            forwarded_for: None,
            internal: false,
            timeouts: (CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT),
        }
    }

    /// The same client with other connect and first-byte timeouts.
    pub fn with_timeouts(mut self, connect: Duration, first_byte: Duration) -> Self {
        self.timeouts = (connect, first_byte);
        self
    }

    /// A client of the host's internal API at `base`, presenting the internal
    /// credential (`internal_api_token`).
    pub fn internal(base: &str, component: &'static str, request_id: Option<HeaderValue>) -> Self {
        Self {
            internal: true,
            ..Self::new(base, component, request_id)
        }
    }

    /// The same client, naming the browser it calls for in `X-Forwarded-For`.
    pub fn with_forwarded_for(mut self, chain: &str) -> Self {
        self.forwarded_for = Some(chain.to_owned());
        self
    }

    /// The same client, sending `token` as the bearer access token.
    pub fn with_bearer(mut self, token: &str) -> Self {
        self.bearer = Some(token.to_owned());
        self
    }

    /// `GET path` (with its query).
    pub async fn get(&self, path: &str) -> Result<HostAnswer, HostUnreachable> {
        self.request(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<HostAnswer, HostUnreachable> {
        self.post(path, "application/json", body).await
    }

    /// `POST path` with a body of `content_type`.
    pub async fn post(
        &self,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<HostAnswer, HostUnreachable> {
        self.send(Method::POST, path, Some((content_type, Bytes::from(body))))
            .await
    }

    /// `method path`, with a JSON body when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<HostAnswer, HostUnreachable> {
        self.send(method, path, body.map(|body| ("application/json", body)))
            .await
    }

    /// `method path`, with a body of the given content type.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Bytes)>,
    ) -> Result<HostAnswer, HostUnreachable> {
        let url = format!("{}{path}", self.base);
        let unreachable = |detail: String| HostUnreachable(format!("{method} {url}: {detail}"));
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(header::ACCEPT, HeaderValue::from_static("application/json"));
        let (content_type, body) = body.unzip();
        if let Some(content_type) = content_type {
            builder = builder.header(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(request_id) = &self.request_id {
            builder = builder.header(REQUEST_ID_HEADER, request_id.clone());
        }
        if let Some(token) = &self.bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if self.internal {
            match internal_token().await {
                Some(token) => builder = builder.header(INTERNAL_TOKEN_HEADER, token),
                None => eprintln!(
                    "{}: variable {INTERNAL_TOKEN_VARIABLE} is not set; the host will refuse",
                    self.component
                ),
            }
        }
        if let Some(chain) = &self.forwarded_for {
            builder = builder.header(cinema_domain::client_addr::FORWARDED_FOR_HEADER, chain);
        }
        let mut request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| unreachable(format!("bad request: {e}")))?;
        request
            .extensions_mut()
            .insert(RequestOptionsExtension(request_options(
                self.component,
                self.timeouts.0,
                self.timeouts.1,
            )));
        let response = spin_sdk::http::send(request)
            .await
            .map_err(|e| unreachable(format!("{e:?}")))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the body: {e:?}")))?
            .to_bytes();
        Ok(HostAnswer {
            status,
            headers,
            body,
        })
    }
}

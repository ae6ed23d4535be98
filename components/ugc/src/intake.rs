//! The client of the host's event intake (`POST {internal_api_url}/intake/ugc`).
//!
//! Owns the outbound request and the meaning of the host's statuses: 2xx means the
//! events were accepted (the host produced them to Kafka, or will dedup them by
//! `event_id` if they already were); anything else (no connection, timeouts, 4xx, 5xx)
//! means they were not, and the client should retry with the same `Idempotency-Key`.
//! It does not validate events (see `input`): a 4xx here is a gap between the two,
//! logged in the detail.

use std::time::Duration;

use bytes::Bytes;
use cinema_domain::ugc::UgcEvent;
use http::{HeaderValue, header};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};
use spin_sdk::wasip3::http::types::RequestOptions;
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

/// Path of the intake on the host's internal API.
pub const INTAKE_PATH: &str = "/intake/ugc";
/// Request header carrying the caller's request id to the host.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Time allowed to connect to the host.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for the host to start answering (it answers once Kafka acknowledged).
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest host error body quoted in the log.
const MAX_LOGGED_BODY: usize = 200;

/// The intake's request body.
#[derive(Serialize)]
struct IntakeRequest<'a> {
    events: &'a [UgcEvent],
}

/// The intake's answer: how many events it took.
#[derive(Deserialize)]
struct IntakeAnswer {
    accepted: usize,
}

/// The events were not accepted; the detail is for the log.
#[derive(Debug)]
pub struct IntakeUnavailable(pub String);

impl std::fmt::Display for IntakeUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The host's intake at one base URL.
pub struct Intake {
    url: String,
    request_id: Option<HeaderValue>,
}

fn timeouts() -> RequestOptions {
    cinema_edge::outbound::request_options("ugc", CONNECT_TIMEOUT, FIRST_BYTE_TIMEOUT)
}

fn excerpt(body: &[u8]) -> String {
    cinema_edge::outbound::excerpt(body, MAX_LOGGED_BODY)
}

impl Intake {
    /// A client of `base` (`http://127.0.0.1:3001`); `request_id` is passed along.
    pub fn new(base: &str, request_id: Option<HeaderValue>) -> Self {
        Self {
            url: format!("{}{INTAKE_PATH}", base.trim_end_matches('/')),
            request_id,
        }
    }

    /// Hands `events` to the host; `Ok` once it accepted them.
    pub async fn submit(&self, events: &[UgcEvent]) -> Result<(), IntakeUnavailable> {
        let url = &self.url;
        let unavailable = |detail: String| IntakeUnavailable(format!("POST {url}: {detail}"));
        let body = serde_json::to_vec(&IntakeRequest { events })
            .map_err(|e| unavailable(format!("encoding the events: {e}")))?;
        let mut builder = http::Request::post(url)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(request_id) = &self.request_id {
            builder = builder.header(REQUEST_ID_HEADER, request_id.clone());
        }
        let mut request = builder
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| unavailable(format!("bad request: {e}")))?;
        request
            .extensions_mut()
            .insert(RequestOptionsExtension(timeouts()));
        let response = spin_sdk::http::send(request)
            .await
            .map_err(|e| unavailable(format!("{e:?}")))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unavailable(format!("reading the body: {e:?}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(unavailable(format!("status {status}: {}", excerpt(&body))));
        }
        // Accepted either way; a count that disagrees is worth a log line.
        match serde_json::from_slice::<IntakeAnswer>(&body) {
            Ok(answer) if answer.accepted == events.len() => {}
            Ok(answer) => eprintln!(
                "ugc: POST {url}: sent {} events, the host accepted {}",
                events.len(),
                answer.accepted
            ),
            Err(error) => eprintln!("ugc: POST {url}: unexpected answer ({error})"),
        }
        Ok(())
    }
}

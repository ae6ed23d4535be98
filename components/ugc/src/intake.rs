//! The client of the host's event intake (`POST {internal_api_url}/intake/ugc`).
//!
//! Owns the outbound request and the meaning of the host's statuses: 2xx means the
//! events were accepted (the host produced them to Kafka, or will dedup them by
//! `event_id` if they already were); anything else (no connection, timeouts, 4xx, 5xx)
//! means they were not, and the client should retry with the same `Idempotency-Key`.
//! It does not validate events (see `input`): a 4xx here is a gap between the two,
//! logged in the detail.

use cinema_domain::ugc::UgcEvent;
use cinema_domain::ugc::record::binary;
use cinema_edge::outbound::HostApi;
use http::HeaderValue;
use serde::{Deserialize, Serialize};

/// Path of the intake on the host's internal API.
pub const INTAKE_PATH: &str = "/intake/ugc";

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

/// The host's intake.
pub struct Intake {
    host: HostApi,
}

impl Intake {
    /// A client of the host at `base` (`http://127.0.0.1:3001`) for the user whose
    /// `access_token` it forwards (the host takes the events' user from it);
    /// `request_id` is passed along.
    pub fn new(base: &str, request_id: Option<HeaderValue>, access_token: &str) -> Self {
        Self {
            host: HostApi::internal(base, "ugc", request_id).with_bearer(access_token),
        }
    }

    /// Hands `events` to the host; `Ok` once it accepted them.
    /// The events travel as one binary record (the host forwards it to Kafka as it
    /// is), or as JSON when an id is not in canonical text.
    pub async fn submit(&self, events: &[UgcEvent]) -> Result<(), IntakeUnavailable> {
        let (content_type, body) = match binary::encode_all(events) {
            Some(record) => (binary::CONTENT_TYPE, record),
            None => (
                "application/json",
                serde_json::to_vec(&IntakeRequest { events })
                    .map_err(|e| IntakeUnavailable(format!("encoding the events: {e}")))?,
            ),
        };
        let answer = self
            .host
            .post(INTAKE_PATH, content_type, body)
            .await
            .map_err(|e| IntakeUnavailable(e.to_string()))?;
        if !answer.status.is_success() {
            return Err(IntakeUnavailable(format!(
                "POST {INTAKE_PATH}: {}",
                answer.describe()
            )));
        }
        // Accepted either way; a count that disagrees is worth a log line.
        match serde_json::from_slice::<IntakeAnswer>(&answer.body) {
            Ok(taken) if taken.accepted == events.len() => {}
            Ok(taken) => eprintln!(
                "ugc: POST {INTAKE_PATH}: sent {} events, the host accepted {}",
                events.len(),
                taken.accepted
            ),
            Err(error) => eprintln!("ugc: POST {INTAKE_PATH}: unexpected answer ({error})"),
        }
        Ok(())
    }
}

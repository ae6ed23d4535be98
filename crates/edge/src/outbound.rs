//! Outbound HTTP helpers for components calling the host's internal API: request
//! timeouts, and short excerpts of error bodies for the log.

use std::time::Duration;

use spin_sdk::wasip3::http::types::RequestOptions;

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

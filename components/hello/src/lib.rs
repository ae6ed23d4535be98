//! The smallest useful component: answers every request with a fixed text.
//!
//! It is the runtime benchmark's guest (`bench/runtime.sh` compares it with the same
//! handler written natively in axum) and a smoke test of a deployment. Like axum, it
//! says how long its body is, so the host sends it in one piece instead of chunked.

use http::{HeaderValue, header};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

const GREETING: &str = "hello from the cinema edge\n";

#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    let mut response = http::Response::new(GREETING.to_owned());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(GREETING.len()));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

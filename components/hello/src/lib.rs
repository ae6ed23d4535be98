//! The smallest useful component: answers every request with a fixed text.
//!
//! It is the runtime benchmark's guest (`bench/runtime.sh` compares it with the same
//! handler written natively in axum) and a smoke test of a deployment.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    "hello from the cinema edge\n"
}

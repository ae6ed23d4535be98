//! Test fixture: `GET /guarded/whoami` answers the verified claims of the caller's
//! access token, the way catalog, ugc and admin authenticate requests (and reply the way
//! they do, with `Content-Length`).

use cinema_edge::reply::{json, sized};
use serde_json::json;
use spin_sdk::http::{IntoResponse, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    let (status, body) = match cinema_edge::authenticate(request.headers()).await {
        Ok(claims) => (
            StatusCode::OK,
            json!({"sub": claims.sub, "roles": claims.roles, "sid": claims.sid}),
        ),
        Err(error) => (
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED),
            json!({"error": {"code": error.code(), "message": error.to_string()}}),
        ),
    };
    sized(json(status, body.to_string()))
}

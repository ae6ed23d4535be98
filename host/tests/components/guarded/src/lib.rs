//! Test fixture: `GET /guarded/whoami` answers the verified claims of the caller's
//! access token, the way catalog, ugc and admin authenticate requests.

use serde_json::json;
use spin_sdk::http::{IntoResponse, Json, Request, StatusCode};
use spin_sdk::http_service;

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    match cinema_edge::authenticate(request.headers()).await {
        Ok(claims) => (
            StatusCode::OK,
            Json(json!({"sub": claims.sub, "roles": claims.roles, "sid": claims.sid})),
        ),
        Err(error) => (
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED),
            Json(json!({"error": {"code": error.code(), "message": error.to_string()}})),
        ),
    }
}

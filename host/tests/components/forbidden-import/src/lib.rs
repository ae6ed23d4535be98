//! Test fixture: a component that imports `spin:sqlite`, which the platform world does
//! not allow. `cinema check-imports` must reject it.

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(_request: Request) -> impl IntoResponse {
    match spin_sdk::sqlite::Connection::open_default().await {
        Ok(_) => "opened".to_owned(),
        Err(error) => format!("{error:?}"),
    }
}

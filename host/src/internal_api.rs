//! The host's internal API (axum, its own loopback port, never public).
//!
//! - `GET /health`: `{"status": "ok", "app": ..., "components": [...]}` once the app is
//!   loaded and serving;
//! - `GET /metrics`: Prometheus text exposition of the runtime metrics.
//!
//! - the search routes of [`crate::search_api`].
//!
//! - `POST /intake/ugc` of [`crate::intake`], when the host has Kafka brokers;
//! - `/analytics/*` of [`crate::analytics_api`].

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::runtime::metrics::RuntimeMetrics;

/// What the internal API needs from the rest of the host.
#[derive(Clone, Debug)]
pub struct InternalState {
    pub app_name: Arc<str>,
    pub components: Arc<[String]>,
    pub metrics: RuntimeMetrics,
    pub search: crate::search_api::SearchState,
    pub intake: Option<std::sync::Arc<crate::intake::Intake>>,
    pub analytics: crate::analytics_api::AnalyticsState,
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'static str,
    app: &'a str,
    components: &'a [String],
}

async fn health(State(state): State<InternalState>) -> impl IntoResponse {
    Json(serde_json::json!(Health {
        status: "ok",
        app: &state.app_name,
        components: &state.components,
    }))
}

async fn metrics(State(state): State<InternalState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// The internal API's routes.
pub fn router(state: InternalState) -> Router {
    let search = crate::search_api::router(state.search.clone());
    let intake = crate::intake::router(state.intake.clone());
    let analytics = crate::analytics_api::router(state.analytics.clone());
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(search)
        .merge(intake)
        .merge(analytics)
}

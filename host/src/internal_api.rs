//! The host's internal API (axum, its own loopback port, never public).
//!
//! - `GET /health`: `{"status": "ok", "app": ..., "components": [...]}` once the app is
//!   loaded and serving;
//! - `GET /metrics`: Prometheus text exposition of the runtime metrics.
//!
//! - the search routes of [`crate::search_api`].
//!
//! - `POST /intake/ugc` of [`crate::intake`], when the host has Kafka brokers;
//! - `/analytics/*` of [`crate::analytics_api`];
//! - `GET /auth/revocations` of [`crate::revocations`].
//!
//! Everything but `/health` and `/metrics` needs the internal credential
//! ([`crate::internal_auth`]); without it, 401.

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
    pub intake: Option<crate::intake::IntakeRoute>,
    pub analytics: crate::analytics_api::AnalyticsState,
    /// The secret components present (every route but health and metrics).
    pub credential: crate::internal_auth::InternalCredential,
    /// Recent revocations, for the components' token checks.
    pub revocations: crate::revocations::Revocations,
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
    let guarded = crate::search_api::router(state.search.clone())
        .merge(crate::intake::router(state.intake.clone()))
        .merge(crate::analytics_api::router(state.analytics.clone()))
        .merge(crate::revocations::router(state.revocations.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.credential.clone(),
            crate::internal_auth::require_credential,
        ));
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(guarded)
}

//! The host's internal API (axum, its own loopback port, never public).
//!
//! - `GET /health`: `{"status": "ok", "app": ..., "components": [...]}` once the app is
//!   loaded and serving (liveness: the process works);
//! - `GET /ready`: 200 `{"status": "ready", ...}` once the host can serve everything it
//!   runs, else 503 `{"status": "starting", "waiting_for": [...]}`: today that is the
//!   search index, which a new host builds before its catalog can answer (a load
//!   balancer should send it traffic only then);
//! - `GET /metrics`: Prometheus text exposition of the runtime metrics.
//!
//! - the search routes of [`crate::search_api`].
//!
//! - `POST /intake/ugc` of [`crate::intake`], when the host has Kafka brokers;
//! - `/analytics/*` of [`crate::analytics_api`];
//! - `GET /auth/revocations` of [`crate::revocations`].
//!
//! Everything but `/health`, `/ready` and `/metrics` needs the internal credential
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

/// What `/ready` answers.
#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    /// What the host still waits for (empty once ready).
    waiting_for: Vec<&'static str>,
    /// The served index's version, when the host has an index and it is built.
    #[serde(skip_serializing_if = "Option::is_none")]
    search_index_version: Option<u64>,
}

async fn ready(State(state): State<InternalState>) -> impl IntoResponse {
    // One read of the published version: 0 while no build is published.
    let version = state.search.index.as_ref().map(|index| index.version());
    let waiting_for = if version == Some(0) {
        vec!["search_index"]
    } else {
        Vec::new()
    };
    let (status, code) = if waiting_for.is_empty() {
        ("ready", axum::http::StatusCode::OK)
    } else {
        ("starting", axum::http::StatusCode::SERVICE_UNAVAILABLE)
    };
    (
        code,
        Json(Readiness {
            status,
            waiting_for,
            search_index_version: version.filter(|version| *version > 0),
        }),
    )
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
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(guarded)
}

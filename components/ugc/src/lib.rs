//! The ugc edge component: the write half of user-generated content. Player
//! heartbeats, bookmarks, ratings, reviews and likes become [`UgcEvent`]s handed to
//! the host's event intake, which produces them to Kafka for the loader and the read
//! models. Reads (and review deletion) are not here yet.
//!
//! A request goes: [`route::Route`] (404 `route_not_found`, 405 `method_not_allowed`
//! with `Allow`) → access token ([`cinema_edge::authenticate`], on every route but
//! `/api/v1/ugc/openapi.json`) → `Idempotency-Key` → the body, at most
//! [`MAX_BODY_BYTES`] (413 `body_too_large`), JSON (400 `bad_json`) → [`input`]
//! validation into drafts (422 `validation_failed` naming the field; a batch is all or
//! nothing) → [`input::stamp`] (event ids, review ids, the token's `sub`, now) →
//! [`intake`] → 202 `{"event_ids": [...]}` (a review also gets `review_id` and
//! `event_id`), or 503 `intake_unavailable` when the host did not take them.
//!
//! Repeats are safe: with the same `Idempotency-Key` (or body `event_id`) a retried
//! write carries the same event ids, is accepted again and stored once downstream
//! (the host and the loader dedup by `event_id`).
//!
//! Modules: [`route`] and [`input`] (pure routing, parsing and validation), [`ids`]
//! (id derivations), [`intake`] (the host client), [`settings`] (Spin variables),
//! [`error`] (statuses and stable codes).

mod error;
mod ids;
mod input;
mod intake;
mod route;
mod settings;

use bytes::Bytes;
use cinema_domain::ugc::{UgcEvent, UgcPayload};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

use error::{ApiError, ApiResult, Reply, json};
use input::Stamp;
use intake::{Intake, REQUEST_ID_HEADER};
use route::{Route, Write};
use settings::Settings;

/// Largest request body accepted: 1 MiB (500 heartbeats take about a tenth of it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3 document of this component's routes.
const OPENAPI: &str = include_str!("../openapi.json");

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    match serve(request).await {
        Ok(reply) => reply,
        Err(error) => error.into_reply(),
    }
}

/// The answer to an accepted write.
#[derive(Debug, Serialize)]
struct Accepted {
    /// One per event, in request order.
    event_ids: Vec<String>,
    /// A posted review's new id.
    #[serde(skip_serializing_if = "Option::is_none")]
    review_id: Option<String>,
    /// A posted review's event id (also the only entry of `event_ids`).
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
}

async fn serve(request: Request) -> ApiResult<Reply> {
    let path = request.uri().path().to_owned();
    let route = Route::parse(&path).ok_or(ApiError::RouteNotFound)?;
    let write = route
        .write(request.method())
        .ok_or(ApiError::MethodNotAllowed {
            allow: route.allowed_methods(),
        })?;
    if write == Write::OpenApi {
        return Ok(openapi());
    }
    let claims = cinema_edge::authenticate(request.headers())
        .await
        .map_err(ApiError::Unauthenticated)?;
    let idempotency_key = input::idempotency_key(request.headers())?;
    let request_id = request.headers().get(REQUEST_ID_HEADER).cloned();
    let body = if write.has_body() {
        read_body(request).await?
    } else {
        Bytes::new()
    };
    let drafts = input::drafts(write, &body)?;
    let settings = Settings::load().await?;
    let user_id = claims.sub.as_str();
    let events = input::stamp(
        drafts,
        Stamp {
            user_id,
            occurred_at_ms: now_ms(),
            idempotency_key: idempotency_key.as_ref(),
        },
        || ids::fresh_event_id(user_id),
    );
    Intake::new(&settings.internal_api_url, request_id)
        .submit(&events)
        .await
        .map_err(|error| ApiError::IntakeUnavailable(error.to_string()))?;
    Ok(accepted(&events))
}

/// Now, Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The body's declared length, when it is a number.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The whole body, refused as soon as it is known to be over [`MAX_BODY_BYTES`].
async fn read_body(request: Request) -> ApiResult<Bytes> {
    if content_length(request.headers()).is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::BodyTooLarge);
    }
    let mut body = request.into_body();
    let mut collected = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| ApiError::BadJson("the request body could not be read".into()))?;
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > MAX_BODY_BYTES {
                return Err(ApiError::BodyTooLarge);
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(collected))
}

/// 202 with the event ids (and a review's ids).
fn accepted(events: &[UgcEvent]) -> Reply {
    let review_id = match events {
        [
            UgcEvent {
                payload: UgcPayload::ReviewPosted { review_id, .. },
                ..
            },
        ] => Some(review_id.clone()),
        _ => None,
    };
    let event_ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let answer = Accepted {
        event_id: review_id.as_ref().and(event_ids.first().cloned()),
        review_id,
        event_ids,
    };
    let mut reply = json(
        StatusCode::ACCEPTED,
        serde_json::to_vec(&answer).unwrap_or_default(),
    );
    reply
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

fn openapi() -> Reply {
    let mut reply = json(StatusCode::OK, Bytes::from_static(OPENAPI.as_bytes()));
    reply.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    reply
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use http::Method;
    use serde_json::Value;

    use super::*;

    const FILM: &str = "30000000-0000-4000-8000-000000000001";

    /// The body of a reply (`Full` answers its only frame at once).
    fn body_of(reply: Reply) -> Value {
        let mut body = reply.into_body();
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let bytes = match std::pin::pin!(body.frame()).poll(&mut context) {
            std::task::Poll::Ready(Some(Ok(frame))) => frame.into_data().unwrap_or_default(),
            _ => Bytes::new(),
        };
        serde_json::from_slice(&bytes).expect("a JSON body")
    }

    fn event(payload: UgcPayload) -> UgcEvent {
        UgcEvent {
            event_id: "e1".into(),
            user_id: "u".into(),
            occurred_at_ms: 1,
            payload,
        }
    }

    /// Writes answer 202 with the event ids, and nothing else unless it is a review.
    #[test]
    fn accepted_writes_answer_202_with_event_ids() {
        let reply = accepted(&[event(UgcPayload::BookmarkSet {
            film_id: FILM.into(),
        })]);
        assert_eq!(reply.status(), StatusCode::ACCEPTED);
        assert_eq!(body_of(reply), serde_json::json!({"event_ids": ["e1"]}));
    }

    /// A posted review answers with its review id and event id too.
    #[test]
    fn posted_review_answers_with_its_review_id_and_event_id() {
        let reply = accepted(&[event(UgcPayload::ReviewPosted {
            review_id: "r1".into(),
            film_id: FILM.into(),
            text: "good".into(),
        })]);
        assert_eq!(
            body_of(reply),
            serde_json::json!({"event_ids": ["e1"], "event_id": "e1", "review_id": "r1"})
        );
    }

    /// The OpenAPI document is JSON and documents exactly the routes and methods served.
    #[test]
    fn openapi_documents_every_route_and_method() {
        let document: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(document["openapi"], "3.0.3");
        let paths = document["paths"].as_object().expect("paths");
        let mut documented = BTreeSet::new();
        for (path, item) in paths {
            let concrete = path.replace("{film_id}", FILM).replace("{review_id}", FILM);
            let route = Route::parse(&concrete).expect("a documented path is a route");
            for method in item.as_object().expect("a path item").keys() {
                let method =
                    Method::from_bytes(method.to_uppercase().as_bytes()).expect("an HTTP method");
                assert!(route.write(&method).is_some(), "{method} {path}");
                documented.insert(format!("{method} {path}"));
            }
        }
        let served = [
            "GET /api/v1/ugc/openapi.json",
            "POST /api/v1/ugc/events",
            "PUT /api/v1/ugc/films/{film_id}/bookmark",
            "DELETE /api/v1/ugc/films/{film_id}/bookmark",
            "PUT /api/v1/ugc/films/{film_id}/rating",
            "DELETE /api/v1/ugc/films/{film_id}/rating",
            "POST /api/v1/ugc/films/{film_id}/reviews",
            "PUT /api/v1/ugc/reviews/{review_id}/like",
            "DELETE /api/v1/ugc/reviews/{review_id}/like",
        ];
        assert_eq!(
            documented,
            served
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>()
        );
    }
}

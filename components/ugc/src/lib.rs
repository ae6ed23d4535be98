//! The ugc edge component: user-generated content. Writes (player heartbeats,
//! bookmarks, ratings, reviews, likes, review deletion) become [`UgcEvent`]s handed to
//! the host's event intake, which produces them to Kafka for the loader and the read
//! models. Reads (the caller's progress and bookmarks, a film's rating and reviews)
//! come from the Postgres read models the ugc consumer keeps, so they trail accepted
//! writes by the consumer's delay.
//!
//! Every request goes: [`route::Route`] (404 `route_not_found`, 405
//! `method_not_allowed` with `Allow`) → access token ([`cinema_edge::authenticate`], on
//! every route but `/api/v1/ugc/openapi.json`). Then:
//! - a read: [`params`] checks the path id and the query (422 `validation_failed`
//!   naming `film_id`, `sort`, `page_size`, `page_number`) → [`reads`] → [`db`] → 200
//!   JSON (404 `progress_not_found` when the caller has none);
//! - a write: `Idempotency-Key` → the body, at most [`MAX_BODY_BYTES`] (413
//!   `body_too_large`), JSON (400 `bad_json`) → [`input`] validation into drafts (422
//!   `validation_failed` naming the field; a batch is all or nothing) → for a review
//!   deletion, the author check against `ugc.reviews` (404 `review_not_found` when it
//!   is missing or deleted, 403 `not_review_author`) → [`input::stamp`] (event ids,
//!   review ids, the token's `sub`, now) → [`intake`] → 202 `{"event_ids": [...]}` (a
//!   review also gets `review_id` and `event_id`), or 503 `intake_unavailable` when the
//!   host did not take them.
//!
//! - an analytics report: the `analytics:read` permission (403 `permission_required`)
//!   → [`analytics`] forwards the query to the host's `/analytics/{report}` → 200
//!   JSON, 422 `validation_failed` naming a refused parameter, or 503
//!   `analytics_unavailable`.
//!
//! Postgres out of reach is 503 `database_unavailable`, for reads and the author check.
//!
//! Repeats are safe: with the same `Idempotency-Key` (or body `event_id`) a retried
//! write carries the same event ids, is accepted again and stored once downstream
//! (the host and the loader dedup by `event_id`). A retried review deletion is the
//! exception once the first has been applied: the review is then deleted, and the
//! retry answers 404 `review_not_found`.
//!
//! Modules: [`route`], [`input`] and [`params`] (pure routing, parsing and
//! validation), [`ids`] (id derivations), [`intake`] and [`analytics`] (the host clients), [`db`] (every
//! query), [`reads`] (the read answers), [`settings`] (Spin variables), [`error`]
//! (statuses and stable codes).

mod analytics;
mod db;
mod error;
mod ids;
mod input;
mod intake;
mod params;
mod reads;
mod route;
mod settings;

use bytes::Bytes;
use cinema_domain::token::AccessClaims;
use cinema_domain::ugc::{UgcEvent, UgcPayload};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use serde::Serialize;
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

use cinema_edge::outbound::REQUEST_ID_HEADER;
use db::Db;
use error::{ApiError, ApiResult, Reply, json};
use input::{Draft, Stamp};
use intake::Intake;
use params::ReadQuery;
use route::{Action, Read, Route, Write};
use settings::Settings;

/// Largest request body accepted: 1 MiB (500 heartbeats take about a tenth of it).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The OpenAPI 3 document of this component's routes.
const OPENAPI: &str = include_str!("../openapi.json");

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    cinema_edge::reply::sized(match serve(request).await {
        Ok(reply) => reply,
        Err(error) => error.into_reply(),
    })
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
    let action = route
        .action(request.method())
        .ok_or(ApiError::MethodNotAllowed {
            allow: route.allowed_methods(),
        })?;
    match action {
        Action::OpenApi => Ok(openapi()),
        Action::Read(read) => serve_read(&request, read).await,
        Action::Write(write) => serve_write(request, write).await,
        Action::Analytics(report) => serve_analytics(&request, report).await,
    }
}

/// The caller's id as the read models key it: the token's `sub` as a canonical UUID.
/// A `sub` that is not a UUID owns no rows.
fn caller_id(claims: &AccessClaims) -> Option<String> {
    ids::canonical_uuid(&claims.sub)
}

async fn serve_read(request: &Request, read: Read<'_>) -> ApiResult<Reply> {
    let claims = cinema_edge::authenticate(request.headers())
        .await
        .map_err(ApiError::Unauthenticated)?;
    let query = ReadQuery::parse(read, request.uri().query().unwrap_or_default())?;
    let settings = Settings::load().await?;
    reads::answer(query, caller_id(&claims).as_deref(), &settings.database_url).await
}

async fn serve_analytics(request: &Request, report: route::Report) -> ApiResult<Reply> {
    let claims = cinema_edge::authenticate(request.headers())
        .await
        .map_err(ApiError::Unauthenticated)?;
    analytics::authorize(&claims)?;
    let settings = Settings::load().await?;
    analytics::report(
        report,
        request.uri().query(),
        &settings.internal_api_url,
        request.headers().get(REQUEST_ID_HEADER).cloned(),
    )
    .await
}

async fn serve_write(request: Request, write: Write<'_>) -> ApiResult<Reply> {
    let claims = cinema_edge::authenticate(request.headers())
        .await
        .map_err(ApiError::Unauthenticated)?;
    let idempotency_key = input::idempotency_key(request.headers())?;
    let request_id = request.headers().get(REQUEST_ID_HEADER).cloned();
    // The host takes the user behind the events from this token, not from the events.
    let access_token = cinema_edge::bearer_token(request.headers())
        .unwrap_or_default()
        .to_owned();
    let body = if write.has_body() {
        read_body(request).await?
    } else {
        Bytes::new()
    };
    let drafts = input::drafts(write, &body)?;
    let settings = Settings::load().await?;
    if let [
        Draft {
            payload: UgcPayload::ReviewDeleted { review_id },
            ..
        },
    ] = drafts.as_slice()
    {
        let author = Db::open(&settings.database_url)
            .await?
            .live_review_author(review_id)
            .await?;
        may_delete_review(author.as_deref(), caller_id(&claims).as_deref())?;
    }
    let user_id = claims.sub.as_str();
    let mut fresh_ids = ids::FreshEventIds::new(user_id);
    let events = input::stamp(
        drafts,
        Stamp {
            user_id,
            occurred_at_ms: now_ms(),
            idempotency_key: idempotency_key.as_ref(),
        },
        || fresh_ids.next_id(),
    );
    Intake::new(&settings.internal_api_url, request_id, &access_token)
        .submit(&events)
        .await
        .map_err(|error| ApiError::IntakeUnavailable(error.to_string()))?;
    Ok(accepted(&events))
}

/// Whether the caller may delete a review whose live author is `author` (`None`: the
/// review is missing or already deleted). Ids are canonical UUIDs.
fn may_delete_review(author: Option<&str>, caller_id: Option<&str>) -> ApiResult<()> {
    match author {
        None => Err(ApiError::ReviewNotFound),
        Some(author) if caller_id == Some(author) => Ok(()),
        Some(_) => Err(ApiError::NotReviewAuthor),
    }
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
                assert!(route.action(&method).is_some(), "{method} {path}");
                documented.insert(format!("{method} {path}"));
            }
        }
        let served = [
            "GET /api/v1/ugc/openapi.json",
            "POST /api/v1/ugc/events",
            "GET /api/v1/ugc/me/progress/{film_id}",
            "GET /api/v1/ugc/me/bookmarks",
            "PUT /api/v1/ugc/films/{film_id}/bookmark",
            "DELETE /api/v1/ugc/films/{film_id}/bookmark",
            "GET /api/v1/ugc/films/{film_id}/rating",
            "PUT /api/v1/ugc/films/{film_id}/rating",
            "DELETE /api/v1/ugc/films/{film_id}/rating",
            "GET /api/v1/ugc/films/{film_id}/reviews",
            "POST /api/v1/ugc/films/{film_id}/reviews",
            "DELETE /api/v1/ugc/reviews/{review_id}",
            "PUT /api/v1/ugc/reviews/{review_id}/like",
            "DELETE /api/v1/ugc/reviews/{review_id}/like",
            "GET /api/v1/ugc/analytics/top_films",
            "GET /api/v1/ugc/analytics/daily_viewers",
            "GET /api/v1/ugc/analytics/completion_rate",
        ];
        assert_eq!(
            documented,
            served
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<BTreeSet<_>>()
        );
    }

    /// Every `$ref` of the OpenAPI document points at a component it defines.
    #[test]
    fn openapi_references_resolve() {
        let document: Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        let mut references = Vec::new();
        collect_references(&document, &mut references);
        assert!(!references.is_empty());
        for reference in references {
            let pointer = reference
                .strip_prefix('#')
                .expect("a local reference")
                .to_owned();
            assert!(document.pointer(&pointer).is_some(), "{reference}");
        }
    }

    fn collect_references(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, inner) in object {
                    match (key.as_str(), inner) {
                        ("$ref", Value::String(reference)) => out.push(reference.clone()),
                        _ => collect_references(inner, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect_references(item, out)),
            _ => {}
        }
    }

    /// Only the live review's author may delete it: a missing or deleted review is 404
    /// `review_not_found`, someone else's 403 `not_review_author`.
    #[test]
    fn only_the_author_may_delete_a_live_review() {
        const AUTHOR: &str = "10000000-0000-4000-8000-000000000001";
        const OTHER: &str = "20000000-0000-4000-8000-000000000002";
        assert!(may_delete_review(Some(AUTHOR), Some(AUTHOR)).is_ok());
        assert!(matches!(
            may_delete_review(Some(AUTHOR), Some(OTHER)),
            Err(ApiError::NotReviewAuthor)
        ));
        assert!(matches!(
            may_delete_review(Some(AUTHOR), None),
            Err(ApiError::NotReviewAuthor)
        ));
        assert!(matches!(
            may_delete_review(None, Some(AUTHOR)),
            Err(ApiError::ReviewNotFound)
        ));
    }

    /// The caller is the token's `sub` in canonical form, as the read models key it;
    /// a `sub` that is not a UUID is nobody.
    #[test]
    fn caller_is_the_canonical_token_sub() {
        let claims = |sub: &str| AccessClaims {
            sub: sub.to_owned(),
            sid: "s".into(),
            roles: Vec::new(),
            permissions: Vec::new(),
            iat: 0,
            exp: 1,
            iss: "cinema-auth".into(),
            aud: "cinema".into(),
            act: None,
        };
        assert_eq!(
            caller_id(&claims("10000000-0000-4000-8000-00000000000A")).as_deref(),
            Some("10000000-0000-4000-8000-00000000000a")
        );
        assert_eq!(caller_id(&claims("admin")), None);
    }
}

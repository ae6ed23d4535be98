//! The catalog edge component: films, genres and persons, read from the host's search
//! index and cached in key-value.
//!
//! A request goes: [`resource::Route`] (404 `route_not_found`, 405 for non-GET) →
//! access token ([`cinema_edge::authenticate`], on every route but
//! `/api/v1/openapi.json`) → [`params`] validation into a [`resource::Resource`] (422
//! `invalid_parameter`) → [`cache`] lookup at the current index version → on a miss,
//! [`upstream`] (the host's internal search API) and [`views`] (the public payload) →
//! the paid-content rule (checked on hits and misses alike) → `If-None-Match` (304) or
//! 200 with `ETag`, `Cache-Control: private, no-cache` and `X-Cache: hit|miss`.
//!
//! Modules: [`params`] and [`resource`] (pure parsing and validation), [`views`] (pure
//! payload shaping), [`cache`] (key-value cache and ETags), [`upstream`] (the host
//! client), [`settings`] (Spin variables), [`error`] (statuses and stable codes).

mod cache;
mod error;
mod params;
mod resource;
mod settings;
mod upstream;
mod views;

use bytes::Bytes;
use cinema_domain::token::AccessClaims;
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

use cache::{Cache, Entry, entry_key, etag, if_none_match_matches};
use error::{ApiError, ApiResult, Reply, empty, json};
use resource::{Resource, Route};
use settings::Settings;
use upstream::{REQUEST_ID_HEADER, Upstream, UpstreamError};

/// Role that may watch subscription films.
pub const SUBSCRIBER_ROLE: &str = "subscriber";
/// Permission that may watch subscription films without the role (staff, partners).
pub const PREMIUM_PERMISSION: &str = "films:premium";
/// `access` of films for subscribers only.
pub const SUBSCRIPTION_ACCESS: &str = "subscription";

/// Total hits of a list.
const TOTAL_COUNT_HEADER: HeaderName = HeaderName::from_static("x-total-count");
/// Pages of a list at the requested page size.
const PAGE_COUNT_HEADER: HeaderName = HeaderName::from_static("x-page-count");
/// `hit` or `miss`: whether the body came from the key-value cache.
const CACHE_STATUS_HEADER: HeaderName = HeaderName::from_static("x-cache");
/// Cache policy of catalog answers: per user (paid rule), revalidated with the ETag.
const CATALOG_CACHE_CONTROL: &str = "private, no-cache";

/// The OpenAPI 3 document of this component's routes.
const OPENAPI: &str = include_str!("../openapi.json");

#[http_service]
async fn handle(request: Request) -> impl IntoResponse {
    cinema_edge::reply::sized(match serve(request).await {
        Ok(reply) => reply,
        Err(error) => error.into_reply(),
    })
}

/// Whether the body came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheStatus {
    Hit,
    Miss,
}

impl CacheStatus {
    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
        })
    }
}

async fn serve(request: Request) -> ApiResult<Reply> {
    let route = Route::parse(request.uri().path()).ok_or(ApiError::RouteNotFound)?;
    if request.method() != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    if route == Route::OpenApi {
        return Ok(openapi());
    }
    let claims = cinema_edge::authenticate(request.headers())
        .await
        .map_err(ApiError::Unauthenticated)?;
    let query = request.uri().query().unwrap_or_default();
    let resource = Resource::validate(route, query)?.ok_or(ApiError::RouteNotFound)?;
    let settings = Settings::get().await?;
    let request_id = request.headers().get(REQUEST_ID_HEADER).cloned();
    let (entry, status) = load(&resource, settings, request_id).await?;
    if entry.access.as_deref() == Some(SUBSCRIPTION_ACCESS) && !may_watch_subscription(&claims) {
        return Err(ApiError::SubscriptionRequired);
    }
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    Ok(catalog_reply(entry, status, if_none_match))
}

/// The paid-content rule: subscription films need the subscriber role or the premium
/// permission.
fn may_watch_subscription(claims: &AccessClaims) -> bool {
    claims.has_role(SUBSCRIBER_ROLE) || claims.has_permission(PREMIUM_PERMISSION)
}

/// The response for `resource`: from the cache at the current index version, or from
/// the host (then cached under the version the host answered at).
async fn load(
    resource: &Resource,
    settings: &Settings,
    request_id: Option<HeaderValue>,
) -> ApiResult<(Entry, CacheStatus)> {
    let upstream = Upstream::new(&settings.internal_api_url, request_id);
    let cache = Cache::open().await;
    let known = cache
        .index_version(&upstream, settings.index_version_check_ms)
        .await;
    let canonical = resource.canonical();
    if let Some(version) = known
        && let Some(entry) = cache.get(&entry_key(version, &canonical)).await
    {
        return Ok((entry, CacheStatus::Hit));
    }

    let path = resource.upstream_path();
    let answer = upstream.get(&path).await.map_err(|error| match error {
        UpstreamError::NotFound => match resource.missing() {
            Some(missing) => ApiError::NotFound(missing),
            None => ApiError::SearchUnavailable(format!("GET {path}: 404")),
        },
        UpstreamError::Rejected { field, message } => ApiError::HostRejected { field, message },
        UpstreamError::Unavailable(detail) => ApiError::SearchUnavailable(detail),
    })?;
    let presented = views::present(resource, &answer.body).map_err(|error| {
        ApiError::SearchUnavailable(format!("GET {path}: unexpected answer: {error}"))
    })?;
    let version = answer.version.or(known);
    let entry = Entry {
        etag: etag(version.unwrap_or(0), presented.body.as_bytes()),
        body: presented.body.into(),
        total: presented.total,
        page_count: presented.page_count,
        access: presented.access,
    };
    // Without a known version there is nothing to invalidate by: do not cache.
    if let (Some(known), Some(version)) = (known, version) {
        cache.put(&entry_key(version, &canonical), &entry).await;
        cache.saw_version(known, version);
    }
    Ok((entry, CacheStatus::Miss))
}

/// 200 with the body, or 304 when `If-None-Match` names its ETag.
fn catalog_reply(entry: Entry, status: CacheStatus, if_none_match: Option<&str>) -> Reply {
    let not_modified = if_none_match.is_some_and(|value| if_none_match_matches(value, &entry.etag));
    let mut reply = if not_modified {
        empty(StatusCode::NOT_MODIFIED)
    } else {
        json(StatusCode::OK, entry.body)
    };
    let headers = reply.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&entry.etag) {
        headers.insert(header::ETAG, value);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CATALOG_CACHE_CONTROL),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Authorization"));
    headers.insert(CACHE_STATUS_HEADER, status.header_value());
    if let Some(total) = entry.total {
        headers.insert(TOTAL_COUNT_HEADER, HeaderValue::from(total));
    }
    if let Some(pages) = entry.page_count {
        headers.insert(PAGE_COUNT_HEADER, HeaderValue::from(pages));
    }
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

//! The catalog API's errors: one enum, each variant with its status and stable code,
//! and the response helpers every reply goes through.
//!
//! Details of host and configuration failures are logged once, in
//! [`ApiError::into_reply`], and never sent to clients.

use cinema_domain::error::ErrorBody;
use cinema_edge::AuthError;
use http::{HeaderValue, StatusCode, header};

use crate::params::InvalidParameter;
use crate::resource::Missing;

/// Stable error codes of this component.
pub mod code {
    pub const INVALID_PARAMETER: &str = "invalid_parameter";
    pub const SUBSCRIPTION_REQUIRED: &str = "subscription_required";
    pub const FILM_NOT_FOUND: &str = "film_not_found";
    pub const GENRE_NOT_FOUND: &str = "genre_not_found";
    pub const PERSON_NOT_FOUND: &str = "person_not_found";
    pub const ROUTE_NOT_FOUND: &str = "route_not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const SEARCH_UNAVAILABLE: &str = "search_unavailable";
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// Everything a catalog request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 422: a query or path parameter failed validation; names it.
    InvalidParameter(InvalidParameter),
    /// 422: the host refused a parameter the component let through (a validation gap
    /// between the two; logged).
    HostRejected { field: String, message: String },
    /// 401 (or 503 when the token keys are unavailable): from `cinema_edge`.
    Unauthenticated(AuthError),
    /// 403: a subscription film for a caller without a subscription.
    SubscriptionRequired,
    /// 404: the film, genre or person does not exist.
    NotFound(Missing),
    /// 404: no such route.
    RouteNotFound,
    /// 405: the route only answers GET.
    MethodNotAllowed,
    /// 503: the host's search API is unreachable, failing or not ready; the detail is
    /// logged, not sent.
    SearchUnavailable(String),
    /// 500: a configuration error; the detail is logged, not sent.
    Internal(String),
}

pub type ApiResult<T, E = ApiError> = Result<T, E>;

impl From<InvalidParameter> for ApiError {
    fn from(error: InvalidParameter) -> Self {
        Self::InvalidParameter(error)
    }
}

impl ApiError {
    /// Status and body of this error.
    fn parts(&self) -> (StatusCode, ErrorBody) {
        let body = |code: &str, message: &str| ErrorBody::new(code, message);
        match self {
            Self::InvalidParameter(invalid) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody::for_field(
                    code::INVALID_PARAMETER,
                    invalid.message.clone(),
                    invalid.field,
                ),
            ),
            Self::HostRejected { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody::for_field(code::INVALID_PARAMETER, message.clone(), field.clone()),
            ),
            Self::Unauthenticated(error) => error.client_reply(),
            Self::SubscriptionRequired => (
                StatusCode::FORBIDDEN,
                body(
                    code::SUBSCRIPTION_REQUIRED,
                    "this film is for subscribers only",
                ),
            ),
            Self::NotFound(Missing::Film) => (
                StatusCode::NOT_FOUND,
                body(code::FILM_NOT_FOUND, "no film has this uuid"),
            ),
            Self::NotFound(Missing::Genre) => (
                StatusCode::NOT_FOUND,
                body(code::GENRE_NOT_FOUND, "no genre has this uuid"),
            ),
            Self::NotFound(Missing::Person) => (
                StatusCode::NOT_FOUND,
                body(code::PERSON_NOT_FOUND, "no person has this uuid"),
            ),
            Self::RouteNotFound => (
                StatusCode::NOT_FOUND,
                body(code::ROUTE_NOT_FOUND, "no such route"),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                body(code::METHOD_NOT_ALLOWED, "this route only answers GET"),
            ),
            Self::SearchUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                body(
                    code::SEARCH_UNAVAILABLE,
                    "the catalog search is unavailable; try again shortly",
                ),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                body(
                    code::INTERNAL_ERROR,
                    "something went wrong; it has been logged",
                ),
            ),
        }
    }

    /// The response for this error; internal details are logged here, once.
    pub fn into_reply(self) -> Reply {
        match &self {
            Self::SearchUnavailable(detail) => eprintln!("catalog: search unavailable: {detail}"),
            Self::Internal(detail) => eprintln!("catalog: internal error: {detail}"),
            Self::HostRejected { field, message } => {
                eprintln!("catalog: the host refused {field} after validation: {message}");
            }
            Self::Unauthenticated(error @ AuthError::KeysUnavailable(_)) => {
                eprintln!("catalog: cannot authenticate: {error}");
            }
            _ => {}
        }
        let (status, body) = self.parts();
        let mut reply = json(status, serde_json::to_vec(&body).unwrap_or_default());
        let headers = reply.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            Self::Unauthenticated(_) if status == StatusCode::UNAUTHORIZED => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            }
            _ => {}
        }
        reply
    }
}

pub use cinema_edge::reply::{Reply, json};

pub use cinema_edge::reply::empty;

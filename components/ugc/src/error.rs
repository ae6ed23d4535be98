//! The ugc API's errors: one enum, each variant with its status and stable code, and
//! the response helpers every reply goes through.
//!
//! Details of intake, database and configuration failures are logged once, in
//! [`ApiError::into_reply`], and never sent to clients.

use cinema_domain::error::ErrorBody;
use cinema_edge::AuthError;
use http::{HeaderValue, StatusCode, header};

use crate::db::DbError;
use crate::input::{InputError, Invalid};

/// Stable error codes of this component.
pub mod code {
    pub const VALIDATION_FAILED: &str = "validation_failed";
    pub const BAD_JSON: &str = "bad_json";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const ROUTE_NOT_FOUND: &str = "route_not_found";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const INTAKE_UNAVAILABLE: &str = "intake_unavailable";
    pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";
    pub const PROGRESS_NOT_FOUND: &str = "progress_not_found";
    pub const REVIEW_NOT_FOUND: &str = "review_not_found";
    pub const NOT_REVIEW_AUTHOR: &str = "not_review_author";
    pub const PERMISSION_REQUIRED: &str = "permission_required";
    pub const ANALYTICS_UNAVAILABLE: &str = "analytics_unavailable";
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// Everything a ugc request can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 422: a path id, header or body field breaks a rule; names it.
    Invalid(Invalid),
    /// 400: the body is not JSON (or could not be read).
    BadJson(String),
    /// 413: the body is over [`crate::MAX_BODY_BYTES`].
    BodyTooLarge,
    /// 401 (or 503 when the token keys are unavailable): from `cinema_edge`.
    Unauthenticated(AuthError),
    /// 404: no such route.
    RouteNotFound,
    /// 405: the route does not answer this method; `allow` lists those it does.
    MethodNotAllowed { allow: &'static str },
    /// 503: the host did not accept the events; the detail is logged, not sent.
    IntakeUnavailable(String),
    /// 503: Postgres cannot be reached now; the detail is logged, not sent.
    DatabaseUnavailable(String),
    /// 404: the caller has no progress in the film (yet).
    ProgressNotFound,
    /// 404: no such review, or it is deleted.
    ReviewNotFound,
    /// 403: only a review's author may delete it.
    NotReviewAuthor,
    /// 403: the token lacks the named permission.
    PermissionRequired(&'static str),
    /// 503: the host's analytics (ClickHouse) did not answer; the detail is logged.
    AnalyticsUnavailable(String),
    /// 500: a configuration error or a failed query; the detail is logged, not sent.
    Internal(String),
}

pub type ApiResult<T, E = ApiError> = Result<T, E>;

impl From<Invalid> for ApiError {
    fn from(invalid: Invalid) -> Self {
        Self::Invalid(invalid)
    }
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) => Self::DatabaseUnavailable(error.to_string()),
            DbError::Rejected { .. } | DbError::Failed(_) => Self::Internal(error.to_string()),
        }
    }
}

impl From<InputError> for ApiError {
    fn from(error: InputError) -> Self {
        match error {
            InputError::NotJson(message) => Self::BadJson(message),
            InputError::Invalid(invalid) => Self::Invalid(invalid),
        }
    }
}

impl ApiError {
    /// Status and body of this error.
    fn parts(&self) -> (StatusCode, ErrorBody) {
        let body = |code: &str, message: &str| ErrorBody::new(code, message);
        match self {
            Self::Invalid(invalid) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody::for_field(
                    code::VALIDATION_FAILED,
                    format!("{}: {}", invalid.field, invalid.message),
                    invalid.field.clone(),
                ),
            ),
            Self::BadJson(message) => (StatusCode::BAD_REQUEST, body(code::BAD_JSON, message)),
            Self::BodyTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                body(code::BODY_TOO_LARGE, "the body must be at most 1 MiB"),
            ),
            Self::Unauthenticated(error) => error.client_reply(),
            Self::RouteNotFound => (
                StatusCode::NOT_FOUND,
                body(code::ROUTE_NOT_FOUND, "no such route"),
            ),
            Self::MethodNotAllowed { allow } => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorBody::new(
                    code::METHOD_NOT_ALLOWED,
                    format!("this route only answers {allow}"),
                ),
            ),
            Self::IntakeUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                body(
                    code::INTAKE_UNAVAILABLE,
                    "events were not accepted; retry with the same Idempotency-Key",
                ),
            ),
            Self::DatabaseUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                body(
                    code::DATABASE_UNAVAILABLE,
                    "the database is unavailable; retry shortly",
                ),
            ),
            Self::ProgressNotFound => (
                StatusCode::NOT_FOUND,
                body(
                    code::PROGRESS_NOT_FOUND,
                    "no viewing progress for this film",
                ),
            ),
            Self::ReviewNotFound => (
                StatusCode::NOT_FOUND,
                body(code::REVIEW_NOT_FOUND, "no such review"),
            ),
            Self::NotReviewAuthor => (
                StatusCode::FORBIDDEN,
                body(
                    code::NOT_REVIEW_AUTHOR,
                    "only the review's author may delete it",
                ),
            ),
            Self::PermissionRequired(permission) => (
                StatusCode::FORBIDDEN,
                ErrorBody::new(
                    code::PERMISSION_REQUIRED,
                    format!("this route needs the `{permission}` permission"),
                ),
            ),
            Self::AnalyticsUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                body(
                    code::ANALYTICS_UNAVAILABLE,
                    "analytics are unavailable; retry later",
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
            Self::IntakeUnavailable(detail) => eprintln!("ugc: intake unavailable: {detail}"),
            Self::DatabaseUnavailable(detail) => eprintln!("ugc: {detail}"),
            Self::AnalyticsUnavailable(detail) => eprintln!("ugc: analytics unavailable: {detail}"),
            Self::Internal(detail) => eprintln!("ugc: internal error: {detail}"),
            Self::Unauthenticated(error @ AuthError::KeysUnavailable(_)) => {
                eprintln!("ugc: cannot authenticate: {error}");
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
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        reply
    }
}

pub use cinema_edge::reply::{Reply, json};

#[cfg(test)]
mod tests {
    use super::*;

    /// A 422 says `<field>: <message>` and names the field, with code
    /// `validation_failed`.
    #[test]
    fn invalid_input_is_422_validation_failed_naming_the_field() {
        let (status, body) =
            ApiError::Invalid(Invalid::new("events[3].position_s", "must not be negative")).parts();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body,
            ErrorBody::for_field(
                "validation_failed",
                "events[3].position_s: must not be negative",
                "events[3].position_s"
            )
        );
    }

    /// An intake failure is a 503 telling the client to retry, without the detail.
    #[test]
    fn intake_failure_is_503_without_internal_detail() {
        let (status, body) =
            ApiError::IntakeUnavailable("POST http://10.0.0.1/intake/ugc: refused".into()).parts();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body.error.code, "intake_unavailable");
        assert!(!body.error.message.contains("10.0.0.1"));
        assert!(body.error.message.contains("Idempotency-Key"));
    }

    /// Unavailable token keys are a 503 with a generic message, not the fetch detail.
    #[test]
    fn unavailable_token_keys_are_503_with_a_generic_message() {
        let (status, body) = ApiError::Unauthenticated(AuthError::KeysUnavailable(
            "fetch http://auth.internal/jwks: refused".into(),
        ))
        .parts();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body.error.code, "auth_keys_unavailable");
        assert!(!body.error.message.contains("auth.internal"));
    }

    /// An unreachable database is a 503 `database_unavailable` without the detail; a
    /// failed query is a 500.
    #[test]
    fn unreachable_database_is_503_and_a_failed_query_is_500() {
        let unavailable = ApiError::from(DbError::Unavailable(
            "failed to connect to postgres: 10.0.0.5:5432 refused".into(),
        ));
        let (status, body) = unavailable.parts();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body.error.code, "database_unavailable");
        assert!(!body.error.message.contains("10.0.0.5"));
        let (status, body) = ApiError::from(DbError::Failed(
            "relation ugc.reviews does not exist".into(),
        ))
        .parts();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.error.message.contains("ugc.reviews"));
    }

    /// Missing progress, missing reviews and someone else's review have their codes.
    #[test]
    fn read_and_deletion_refusals_have_their_statuses_and_codes() {
        let cases = [
            (ApiError::ProgressNotFound, 404, "progress_not_found"),
            (ApiError::ReviewNotFound, 404, "review_not_found"),
            (ApiError::NotReviewAuthor, 403, "not_review_author"),
        ];
        for (error, status, code) in cases {
            let (actual_status, body) = error.parts();
            assert_eq!(actual_status.as_u16(), status);
            assert_eq!(body.error.code, code);
        }
    }

    /// Size, JSON, routing and method errors have their statuses and codes.
    #[test]
    fn request_errors_have_their_statuses_and_codes() {
        let cases = [
            (ApiError::BodyTooLarge, 413, "body_too_large"),
            (ApiError::BadJson("x".into()), 400, "bad_json"),
            (ApiError::RouteNotFound, 404, "route_not_found"),
            (
                ApiError::MethodNotAllowed { allow: "POST" },
                405,
                "method_not_allowed",
            ),
            (
                ApiError::Unauthenticated(AuthError::MissingToken),
                401,
                "missing_token",
            ),
        ];
        for (error, status, code) in cases {
            let (actual_status, body) = error.parts();
            assert_eq!(actual_status.as_u16(), status);
            assert_eq!(body.error.code, code);
        }
    }
}

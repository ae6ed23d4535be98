//! The auth API's errors: one enum, each variant with its status and stable code.
//! Internal details (database errors) are logged once and never sent to clients.

use bytes::Bytes;
use cinema_domain::error::ErrorBody;
use http::StatusCode;
use http_body_util::Full;

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum ApiError {
    /// 422: input failed validation; names the field.
    Invalid { field: String, message: String },
    /// 400: the body is not the JSON the route expects.
    BadJson(String),
    /// 413: body over the limit.
    TooLarge,
    /// 401 without or with a bad access token.
    Unauthorized(&'static str, String),
    /// 401 wrong email or password.
    InvalidCredentials,
    /// 403 the account is blocked.
    Blocked,
    /// 404.
    NotFound(&'static str),
    /// 405.
    MethodNotAllowed,
    /// 409 the email belongs to another account.
    EmailTaken,
    /// 409 a unique constraint (named) refused the write.
    UniqueViolation(String),
    /// 422 a foreign key (named) refused the write: it names something that does not exist.
    ForeignKeyViolation(String),
    /// 403 the caller lacks a permission.
    Forbidden(&'static str),
    /// 404 with a stable code of its own and why.
    NotFoundCode(&'static str, &'static str),
    /// 410 a link that was valid once (a stable code and why).
    Gone(&'static str, &'static str),
    /// 403 allowed in general, refused for this target (a stable code and why).
    Refused(&'static str, &'static str),
    /// 409 a conflict with a stable code.
    Conflict(&'static str, String),
    /// 429 too many attempts; retry after the given seconds.
    TooManyAttempts(u64),
    /// 503 Postgres unreachable or no signing key: a stable code, and a detail that
    /// is logged, never sent (it may hold addresses).
    Unavailable(&'static str, String),
    /// 500 anything else; the detail is logged, not sent.
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("{field}: {message}"),
            ),
            Self::BadJson(detail) => (StatusCode::BAD_REQUEST, "bad_json", detail.clone()),
            Self::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the body is over 64 KiB".into(),
            ),
            Self::Unauthorized(code, message) => (StatusCode::UNAUTHORIZED, code, message.clone()),
            Self::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong email or password".into(),
            ),
            Self::Blocked => (
                StatusCode::FORBIDDEN,
                "user_blocked",
                "this account is blocked".into(),
            ),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{what} not found"),
            ),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method".into(),
            ),
            Self::EmailTaken => (
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email already exists".into(),
            ),
            Self::UniqueViolation(constraint) => (
                StatusCode::CONFLICT,
                "conflict",
                format!("conflicts with an existing record ({constraint})"),
            ),
            Self::ForeignKeyViolation(constraint) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                format!("refers to something that does not exist ({constraint})"),
            ),
            Self::Forbidden(permission) => (
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this needs the `{permission}` permission"),
            ),
            Self::Refused(code, message) => (StatusCode::FORBIDDEN, code, (*message).to_owned()),
            Self::Gone(code, message) => (StatusCode::GONE, code, (*message).to_owned()),
            Self::NotFoundCode(code, message) => {
                (StatusCode::NOT_FOUND, code, (*message).to_owned())
            }
            Self::Conflict(code, message) => (StatusCode::CONFLICT, code, message.clone()),
            Self::TooManyAttempts(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many failed logins; try again later".into(),
            ),
            Self::Unavailable(code, _) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                unavailable_message(code).into(),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "something went wrong; it has been logged".into(),
            ),
        }
    }

    /// The field name of a validation error, for the JSON body.
    pub(crate) fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// What a client is told for an unavailable dependency: what to do, no internals.
fn unavailable_message(code: &str) -> &'static str {
    match code {
        "database_unavailable" => "the account database is unavailable; retry shortly",
        "signing_key_missing" => {
            "no token signing key is active; an operator must run `cinema keys rotate`"
        }
        "state_store_unavailable" => "the sign-in state store is unavailable; retry shortly",
        "provider_unavailable" => "the sign-in provider did not answer; try again shortly",
        _ => "a service this request needs is unavailable; retry shortly",
    }
}

/// SQLSTATE of a unique-constraint violation.
const UNIQUE_VIOLATION: &str = "23505";
/// SQLSTATE of a foreign-key violation.
const FOREIGN_KEY_VIOLATION: &str = "23503";

impl From<spin_sdk::pg::Error> for ApiError {
    fn from(error: spin_sdk::pg::Error) -> Self {
        use spin_sdk::pg::wit::postgres::{Error as Pg, QueryError};
        match error {
            spin_sdk::pg::Error::PgError(Pg::ConnectionFailed(detail)) => Self::Unavailable(
                "database_unavailable",
                format!("the account database is unavailable ({detail})"),
            ),
            spin_sdk::pg::Error::PgError(Pg::QueryFailed(QueryError::DbError(db)))
                if db.code == UNIQUE_VIOLATION || db.code == FOREIGN_KEY_VIOLATION =>
            {
                let constraint = db
                    .extras
                    .iter()
                    .find(|(name, _)| name == "constraint")
                    .map(|(_, value)| value.clone())
                    .unwrap_or_default();
                if db.code == UNIQUE_VIOLATION {
                    Self::UniqueViolation(constraint)
                } else {
                    Self::ForeignKeyViolation(constraint)
                }
            }
            other => Self::Internal(format!("postgres: {other:?}")),
        }
    }
}

/// A finished response.
pub type Reply = http::Response<Full<Bytes>>;

/// A JSON response.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    response
}

/// An empty response (204 and friends).
pub fn empty(status: StatusCode) -> Reply {
    let mut response = http::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

impl ApiError {
    /// The response for this error; internal details are logged here, once.
    pub fn into_reply(self) -> Reply {
        let (status, code, message) = self.parts();
        match &self {
            Self::Internal(detail) => eprintln!("auth: internal error: {detail}"),
            Self::Unavailable(code, detail) => eprintln!("auth: unavailable ({code}): {detail}"),
            _ => {}
        }
        let mut body = serde_json::to_value(ErrorBody::new(code, message)).unwrap_or_default();
        if let Some(field) = self.field() {
            body["error"]["field"] = serde_json::Value::String(field.to_owned());
        }
        let mut reply = json(status, &body);
        if let Self::TooManyAttempts(seconds) = &self
            && let Ok(value) = http::HeaderValue::from_str(&seconds.to_string())
        {
            reply.headers_mut().insert(http::header::RETRY_AFTER, value);
        }
        if status == StatusCode::UNAUTHORIZED {
            reply.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dependency's failure detail (addresses, driver text) is logged, never sent: the
    /// client gets the stable code and a fixed message.
    #[test]
    fn unavailable_detail_never_reaches_the_client() {
        let detail = "postgres://postgres:secret@10.0.0.5:5432 refused the connection";
        for code in [
            "database_unavailable",
            "signing_key_missing",
            "state_store_unavailable",
            "provider_unavailable",
        ] {
            let (status, sent_code, message) = ApiError::Unavailable(code, detail.into()).parts();
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(sent_code, code);
            assert!(!message.contains("postgres://"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}

//! The admin component's errors: one enum, each variant with its status and stable
//! code, answered as JSON on `/admin/api` and as a page in the console.
//!
//! Details of database, auth and configuration failures are logged once, in
//! [`AdminError::into_reply`], and never shown.

use cinema_domain::error::ErrorBody;
use cinema_edge::pg::DbError;
use http::{HeaderValue, StatusCode, header};

use crate::reply::{Reply, html, redirect};
use crate::views;

/// Stable error codes of this component.
pub mod code {
    pub const NOT_SIGNED_IN: &str = "not_signed_in";
    pub const FORBIDDEN: &str = "forbidden";
    pub const CSRF_FAILED: &str = "csrf_failed";
    pub const NOT_FOUND: &str = "not_found";
    pub const VALIDATION_FAILED: &str = "validation_failed";
    pub const CONFLICT: &str = "conflict";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const AUTH_UNAVAILABLE: &str = "auth_unavailable";
    /// Auth refused; the API answer carries auth's own code instead.
    pub const AUTH_REFUSED: &str = "auth_refused";
    pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";
    pub const INTERNAL_ERROR: &str = "internal_error";
}

/// Which surface a request came through: the error answers in its language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/admin/...` pages: HTML, redirects to the login page.
    Console,
    /// `/admin/api/...`: JSON with a stable code.
    Api,
}

/// A field a write refused, with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// Everything an admin request can fail with.
#[derive(Debug)]
pub enum AdminError {
    /// 401 (console: to the login page): no session, or it ended.
    NotSignedIn,
    /// 403: signed in, but the role or permission does not allow this.
    Forbidden(&'static str),
    /// 403: a console write without a valid CSRF token, or from another origin.
    CsrfFailed,
    /// 404: no such route or record (`what`).
    NotFound(&'static str),
    /// 422: fields refused, each with its message.
    Invalid(Vec<FieldError>),
    /// 409: the write conflicts with what is stored (a taken name, say).
    Conflict(String),
    /// 400: a body that is not a form or JSON of the expected shape.
    BadRequest(String),
    /// Auth refused a user administration call: its status, code and message.
    AuthRefused {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// 503: the auth component did not answer; the detail is logged.
    AuthUnavailable(String),
    /// 503: Postgres cannot serve now; the detail is logged.
    DatabaseUnavailable(String),
    /// 500: anything else; the detail is logged.
    Internal(String),
}

pub type AdminResult<T, E = AdminError> = Result<T, E>;

impl From<DbError> for AdminError {
    fn from(error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) => Self::DatabaseUnavailable(error.to_string()),
            DbError::Rejected { .. } | DbError::Failed(_) => Self::Internal(error.to_string()),
        }
    }
}

impl AdminError {
    /// A single refused field.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError {
            field,
            message: message.into(),
        }])
    }

    /// Status, stable code and the message a user may see.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::NotSignedIn => (
                StatusCode::UNAUTHORIZED,
                code::NOT_SIGNED_IN,
                "sign in to the admin console first".into(),
            ),
            Self::Forbidden(what) => (StatusCode::FORBIDDEN, code::FORBIDDEN, (*what).into()),
            Self::CsrfFailed => (
                StatusCode::FORBIDDEN,
                code::CSRF_FAILED,
                "the form expired or came from another site; reload the page and try again".into(),
            ),
            Self::NotFound(what) => (
                StatusCode::NOT_FOUND,
                code::NOT_FOUND,
                format!("no such {what}"),
            ),
            Self::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                code::VALIDATION_FAILED,
                fields
                    .iter()
                    .map(|f| format!("{}: {}", f.field, f.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Self::Conflict(message) => (StatusCode::CONFLICT, code::CONFLICT, message.clone()),
            Self::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, code::BAD_REQUEST, message.clone())
            }
            Self::AuthRefused {
                status, message, ..
            } => (*status, code::AUTH_REFUSED, message.clone()),
            Self::AuthUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::AUTH_UNAVAILABLE,
                "the account service is unavailable; retry shortly".into(),
            ),
            Self::DatabaseUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                code::DATABASE_UNAVAILABLE,
                "the database is unavailable; retry shortly".into(),
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                code::INTERNAL_ERROR,
                "something went wrong; it has been logged".into(),
            ),
        }
    }

    /// The answer on `surface`; internal details are logged here, once.
    pub fn into_reply(self, surface: Surface, path: &str) -> Reply {
        match &self {
            Self::AuthUnavailable(detail) => eprintln!("admin: auth unavailable: {detail}"),
            Self::DatabaseUnavailable(detail) => eprintln!("admin: {detail}"),
            Self::Internal(detail) => eprintln!("admin: internal error: {detail}"),
            _ => {}
        }
        let (status, code, message) = self.parts();
        match surface {
            Surface::Console if matches!(self, Self::NotSignedIn) => {
                let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
                redirect(&format!("/admin/login?next={next}"))
            }
            Surface::Console => html(status, views::error_page(status, &message)),
            Surface::Api => {
                let code = match &self {
                    Self::AuthRefused { code, .. } => code.as_str(),
                    _ => code,
                };
                let mut body = ErrorBody::new(code, message);
                if let Self::Invalid(fields) = &self
                    && let Some(first) = fields.first()
                {
                    body.error.field = Some(first.field.to_owned());
                }
                let mut reply =
                    cinema_edge::reply::json(status, serde_json::to_vec(&body).unwrap_or_default());
                reply
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                if status == StatusCode::UNAUTHORIZED {
                    reply
                        .headers_mut()
                        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                }
                reply
            }
        }
    }
}

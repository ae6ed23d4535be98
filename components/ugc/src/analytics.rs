//! Analytics for privileged callers: the permission rule, and the reports forwarded to
//! the host's internal API (`/analytics/{report}`), which runs them on ClickHouse with
//! a read-only setting.
//!
//! The query string goes through unchanged; the host owns the parameter rules and
//! names a refused parameter, answered here as 422 `validation_failed` like every
//! other input error. The host unreachable or answering anything but 200 or a named
//! refusal is 503 `analytics_unavailable`.

use cinema_domain::token::AccessClaims;
use cinema_edge::outbound::HostApi;
use http::{HeaderValue, StatusCode, header};

use crate::error::{ApiError, ApiResult, Reply, json};
use crate::input::Invalid;
use crate::route::Report;

/// The permission every analytics report needs.
pub const ANALYTICS_PERMISSION: &str = "analytics:read";
/// How long a caller may reuse a report (they move with every loaded batch).
const CACHE_CONTROL: &str = "private, max-age=30";

/// `Ok` when the token grants [`ANALYTICS_PERMISSION`]; else 403
/// `permission_required`.
pub fn authorize(claims: &AccessClaims) -> ApiResult<()> {
    if claims.has_permission(ANALYTICS_PERMISSION) {
        Ok(())
    } else {
        Err(ApiError::PermissionRequired(ANALYTICS_PERMISSION))
    }
}

/// Runs `report` with the caller's `query` on the host at `internal_api_url`.
pub async fn report(
    report: Report,
    query: Option<&str>,
    internal_api_url: &str,
    request_id: Option<HeaderValue>,
) -> ApiResult<Reply> {
    let path = match query {
        Some(query) if !query.is_empty() => format!("/analytics/{}?{query}", report.name()),
        _ => format!("/analytics/{}", report.name()),
    };
    let answer = HostApi::internal(internal_api_url, "ugc", request_id)
        .get(&path)
        .await
        .map_err(|e| ApiError::AnalyticsUnavailable(e.to_string()))?;
    if answer.status == StatusCode::OK {
        let mut reply = json(StatusCode::OK, answer.body);
        reply.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        );
        return Ok(reply);
    }
    if let Some((field, message)) = answer.refused_field() {
        return Err(ApiError::Invalid(Invalid::new(field, message)));
    }
    Err(ApiError::AnalyticsUnavailable(format!(
        "GET {path}: {}",
        answer.describe()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(permissions: &[&str]) -> AccessClaims {
        AccessClaims {
            sub: "10000000-0000-4000-8000-000000000001".into(),
            sid: "s".into(),
            roles: Vec::new(),
            permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
            iat: 0,
            exp: 1,
            iss: "cinema-auth".into(),
            aud: "cinema".into(),
            act: None,
        }
    }

    /// Only `analytics:read` opens the reports; other permissions do not.
    #[test]
    fn only_analytics_read_opens_the_reports() {
        assert!(authorize(&claims(&["analytics:read"])).is_ok());
        assert!(matches!(
            authorize(&claims(&["films:premium", "content:edit"])),
            Err(ApiError::PermissionRequired("analytics:read"))
        ));
        assert!(authorize(&claims(&[])).is_err());
    }
}

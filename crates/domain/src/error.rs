//! The platform's HTTP error body: `{"error": {"code": "...", "message": "..."}}`.
//!
//! `code` is stable and machine-readable (clients branch on it); `message` is for
//! humans and never carries internal error text.

use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Code and message of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// The request parameter or body field at fault, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                field: None,
            },
        }
    }

    /// An error about one named parameter or field (`{"error": {..., "field": name}}`).
    pub fn for_field(
        code: impl Into<String>,
        message: impl Into<String>,
        field: impl Into<String>,
    ) -> Self {
        let mut body = Self::new(code, message);
        body.error.field = Some(field.into());
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire shape is exactly `{"error": {"code", "message"}}`.
    #[test]
    fn serializes_to_the_platform_shape() {
        let body = ErrorBody::new("route_not_found", "no such route");
        let json = serde_json::to_value(&body).expect("serializable");
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "route_not_found", "message": "no such route"}})
        );
    }
}

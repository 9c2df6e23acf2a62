//! API errors as types, and their one mapping to HTTP.
//!
//! Every failure a request can cause ends up as an [`ApiError`]: a status code,
//! a message, and sometimes extra headers (`Allow`, `Accept-Patch`). The body is
//! always Glance-shaped nested JSON that both python-glanceclient and openstacksdk
//! parse: `{"error": {"code": 404, "title": "Not Found", "message": "..."}}`.

use std::fmt;

use http::StatusCode;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: StatusCode,
    /// Human readable explanation (Glance's wording where it has one).
    pub message: String,
    /// Extra response headers, e.g. `Allow` on 405.
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    /// An error with the given status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 404 for an image that does not exist or that the caller may not see.
    pub fn image_not_found(id: &str) -> Self {
        Self::not_found(format!("No image found with ID {id}"))
    }

    /// 405 Method Not Allowed, with the `Allow` header listing what is.
    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method specified is not allowed for this resource.",
        )
        .with_header("Allow", allowed.join(", "))
    }

    /// 409 Conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 413 Payload Too Large (Glance: "Request Entity Too Large").
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 500: something the service itself got wrong (storage failure, bug).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 501 Not Implemented.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    /// The same error with one more response header.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Title used in the body: the status code's canonical reason, as webob gives it.
    pub fn title(&self) -> &'static str {
        match self.status {
            StatusCode::PAYLOAD_TOO_LARGE => "Request Entity Too Large",
            StatusCode::RANGE_NOT_SATISFIABLE => "Requested Range Not Satisfiable",
            s => s.canonical_reason().unwrap_or("Error"),
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Vec<u8> {
        let doc = serde_json::json!({
            "error": {
                "code": self.status.as_u16(),
                "title": self.title(),
                "message": self.message,
            }
        });
        doc.to_string().into_bytes()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.title(),
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl From<crate::ports::StoreError> for ApiError {
    fn from(e: crate::ports::StoreError) -> Self {
        ApiError::internal(e.to_string())
    }
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_nested_json_with_code_title_message() {
        let err = ApiError::image_not_found("abc");
        let v: serde_json::Value = serde_json::from_slice(&err.body()).unwrap();
        assert_eq!(v["error"]["code"], 404);
        assert_eq!(v["error"]["title"], "Not Found");
        assert_eq!(v["error"]["message"], "No image found with ID abc");
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let err = ApiError::method_not_allowed(&["GET", "PATCH", "DELETE"]);
        assert_eq!(err.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            err.headers,
            vec![("Allow", "GET, PATCH, DELETE".to_string())]
        );
    }

    #[test]
    fn too_large_uses_webob_title() {
        assert_eq!(ApiError::too_large("x").title(), "Request Entity Too Large");
    }
}

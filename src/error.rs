//! API errors as types, and their one mapping to HTTP.
//!
//! Every failure a request can cause ends up as an [`ApiError`]: a status code,
//! a message, and sometimes extra headers (`Allow`, `Accept-Patch`). The body is
//! always Glance-shaped nested JSON that both python-glanceclient and openstacksdk
//! parse: `{"error": {"code": 404, "title": "Not Found", "message": "..."}}`.
//!
//! The lower layers have their own error types (storage, blob stores, uploads,
//! format inspection, outbound HTTP, configuration); this module is the only
//! place that turns them into statuses. A 5xx never carries the lower layer's
//! text to the client: its message is fixed, and what went wrong is kept in
//! [`ApiError::detail`] for the log (see [`crate::api`], which writes it).

use std::fmt;

use http::StatusCode;

use crate::data::blob::BlobError;
use crate::data::inspect::FormatError;
use crate::data::receive::ReceiveError;
use crate::ports::{OutboundError, StoreError};
use crate::settings::ConfigError;

/// webob's explanation of a 500, which Glance answers with.
const INTERNAL_MESSAGE: &str =
    "The server has either erred or is incapable of performing the requested operation.";

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: StatusCode,
    /// Human readable explanation (Glance's wording where it has one).
    pub message: String,
    /// Extra response headers, e.g. `Allow` on 405.
    pub headers: Vec<(&'static str, String)>,
    /// What went wrong inside, for the log only (never sent to the client).
    pub detail: Option<String>,
}

impl ApiError {
    /// A client error (4xx) with the given status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        debug_assert!(
            status.as_u16() < 500,
            "5xx errors are made by internal() and unavailable(), which keep details out of the body"
        );
        Self {
            status,
            message: message.into(),
            headers: Vec::new(),
            detail: None,
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

    /// 404 for a path that routes nowhere.
    pub fn no_resource() -> Self {
        Self::not_found("The resource could not be found.")
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

    /// 500: something the service itself got wrong (storage failure, broken
    /// configuration, bug). The client sees a fixed message; `detail` is logged.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: INTERNAL_MESSAGE.to_string(),
            headers: Vec::new(),
            detail: Some(detail.to_string()),
        }
    }

    /// 503: a backend the service needs (an image store, Keystone) failed.
    /// `message` is fixed text for the client; `detail` is logged.
    pub fn unavailable(message: &'static str, detail: impl fmt::Display) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.to_string(),
            headers: Vec::new(),
            detail: Some(detail.to_string()),
        }
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
        )?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;

/// The metadata database failed: the service's fault.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

/// A variable holds something the service cannot work with.
impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        ApiError::internal(e)
    }
}

/// Message of a 503 caused by an image store.
const STORE_UNAVAILABLE: &str = "The image store is unavailable; try again later.";

/// An image store failed: it is unavailable, whatever the cause.
impl From<BlobError> for ApiError {
    fn from(e: BlobError) -> Self {
        ApiError::unavailable(STORE_UNAVAILABLE, e)
    }
}

/// Data that is not what its disk format says, or unsafe: 415, as Glance.
impl From<FormatError> for ApiError {
    fn from(e: FormatError) -> Self {
        ApiError::unsupported_media_type(e.to_string())
    }
}

/// Why an upload was not stored.
impl From<ReceiveError> for ApiError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::TooLarge(m) => ApiError::too_large(m),
            ReceiveError::Format(f) => f.into(),
            ReceiveError::SizeMismatch(m) => ApiError::bad_request(m),
            ReceiveError::Body(e) => {
                ApiError::bad_request(format!("Error reading the image data: {e}"))
            }
            ReceiveError::Store(e) => e.into(),
        }
    }
}

/// Keystone could not be asked.
impl From<OutboundError> for ApiError {
    fn from(e: OutboundError) -> Self {
        ApiError::unavailable("The identity service could not be reached.", e)
    }
}

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

    #[test]
    fn server_errors_keep_backend_text_out_of_the_body() {
        for err in [
            ApiError::from(StoreError("Expression tree is too large".into())),
            ApiError::from(BlobError::Store("injected fault at 127.0.0.1:9000".into())),
            ApiError::from(ReceiveError::Store(BlobError::Store("disk full".into()))),
        ] {
            let body = String::from_utf8(err.body()).unwrap();
            assert!(err.status.is_server_error(), "{err}");
            for secret in ["Expression", "127.0.0.1", "disk full"] {
                assert!(!body.contains(secret), "{body}");
            }
            assert!(err.detail.is_some(), "the log gets the cause");
        }
    }
}

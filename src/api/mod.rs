//! The HTTP surface of the service, independent of any host.
//!
//! A host adapter builds an [`ApiRequest`], calls the service of the component
//! ([`images::handle`], [`members::handle`], [`discovery::handle`]) with the
//! [`crate::ports::Ports`] it provides, and writes the returned [`ApiResponse`].

pub mod discovery;
pub mod images;
pub mod members;
mod request;
mod response;

pub use request::ApiRequest;
pub use response::{ApiResponse, Body};

/// Turns a service result into the response: errors become Glance-shaped JSON,
/// and every response carries `x-openstack-request-id` (the client's own, when
/// it sent a usable one).
pub(crate) fn finish(
    req: &ApiRequest,
    result: Result<ApiResponse, crate::ApiError>,
) -> ApiResponse {
    let resp = result.unwrap_or_else(ApiResponse::from);
    resp.with_header("x-openstack-request-id", req.request_id().to_string())
}

/// The path segments after `prefix`, percent-decoded; None if `path` is not below it.
/// `/v2/images` → `[]`, `/v2/images/` → `[""]`, `/v2/images/a/tags/b%20c` → `["a", "tags", "b c"]`.
pub fn segments_after(path: &str, prefix: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let rest = rest.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments() {
        assert_eq!(segments_after("/v2/images", "/v2/images"), Some(vec![]));
        assert_eq!(
            segments_after("/v2/images/", "/v2/images"),
            Some(vec!["".to_string()])
        );
        assert_eq!(
            segments_after("/v2/images/a/tags/b%20c", "/v2/images"),
            Some(vec!["a".to_string(), "tags".into(), "b c".into()])
        );
        assert_eq!(segments_after("/v2/imagesx", "/v2/images"), None);
        assert_eq!(segments_after("/v1/images", "/v2/images"), None);
    }
}

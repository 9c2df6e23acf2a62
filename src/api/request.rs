//! An incoming request as the services see it.

use std::io::Read;

use http::{HeaderMap, Method};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// Largest JSON body accepted (image metadata is small).
const MAX_JSON_BODY: u64 = 1 << 20;

/// An HTTP request: method, path, query, headers, a streaming body, and what
/// the host knows about where it came from.
pub struct ApiRequest<'a> {
    /// HTTP method.
    pub method: Method,
    /// Path, percent-encoded as received, without the query.
    pub path: String,
    /// Raw query string without `?` (empty when none).
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
    /// `scheme://host[:port]` the client used, for absolute links.
    pub base_url: String,
    /// The client's IP address, if the host reports it.
    pub client_ip: Option<std::net::IpAddr>,
    /// Whether version negotiation ([`crate::api::negotiate`]) has run.
    pub(crate) negotiated: bool,
    body: Box<dyn Read + 'a>,
    request_id: std::cell::OnceCell<String>,
}

impl<'a> ApiRequest<'a> {
    /// A request from its parts. `path_and_query` is the request target (`/v2/images?limit=1`).
    pub fn new(
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        base_url: impl Into<String>,
        client_ip: Option<std::net::IpAddr>,
        body: Box<dyn Read + 'a>,
    ) -> Self {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        ApiRequest {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers,
            base_url: base_url.into().trim_end_matches('/').to_string(),
            client_ip,
            negotiated: false,
            body,
            request_id: std::cell::OnceCell::new(),
        }
    }

    /// The request id, fixed once asked for: the client's own
    /// `X-Openstack-Request-Id` when usable (non-empty, at most 64 characters,
    /// Glance's `max_request_id_length`), else a fresh `req-<uuid>`. Every
    /// response carries it, and records made for the request (an import's
    /// task) keep it.
    pub fn request_id(&self) -> &str {
        self.request_id.get_or_init(|| {
            self.header("x-openstack-request-id")
                .map(str::trim)
                .filter(|id| !id.is_empty() && id.len() <= 64)
                .map_or_else(|| format!("req-{}", uuid::Uuid::new_v4()), str::to_string)
        })
    }

    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the client sent a body: Content-Length > 0, or (hosts drop the
    /// hop-by-hop `Transfer-Encoding` header) at least one byte to read. The
    /// byte read to find out stays in the body.
    pub fn has_body(&mut self) -> bool {
        if let Some(len) = self.header("content-length") {
            return len.trim().parse::<u64>().unwrap_or(0) > 0;
        }
        if self.headers.contains_key("transfer-encoding") {
            return true;
        }
        let mut probe = [0u8; 1];
        if !matches!(self.body.read(&mut probe), Ok(n) if n > 0) {
            return false;
        }
        let rest = std::mem::replace(&mut self.body, Box::new(std::io::empty()));
        self.body = Box::new(std::io::Cursor::new(probe).chain(rest));
        true
    }

    /// 400 if the client sent a body where none belongs.
    pub fn reject_body(&mut self) -> ApiResult<()> {
        if self.has_body() {
            return Err(ApiError::bad_request(
                "A body is not expected with this request.",
            ));
        }
        Ok(())
    }

    /// The streaming body.
    pub fn body(&mut self) -> &mut (dyn Read + 'a) {
        &mut *self.body
    }

    /// Reads and parses a JSON body: 400 when absent or malformed, 413 when huge.
    pub fn json_body(&mut self) -> ApiResult<Value> {
        let mut buf = Vec::new();
        (&mut self.body)
            .take(MAX_JSON_BODY + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ApiError::bad_request(format!("Could not read request body: {e}")))?;
        if buf.len() as u64 > MAX_JSON_BODY {
            return Err(ApiError::too_large("The request body is too large."));
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request("Body expected in request."));
        }
        serde_json::from_slice(&buf)
            .map_err(|_| ApiError::bad_request("Malformed JSON in request body."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&'static str, &str)], body: &'static [u8]) -> ApiRequest<'static> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        ApiRequest::new(
            Method::POST,
            "/v2/images?a=1",
            h,
            "http://x/",
            None,
            Box::new(body),
        )
    }

    #[test]
    fn splits_path_and_query() {
        let r = req(&[], b"");
        assert_eq!(r.path, "/v2/images");
        assert_eq!(r.query, "a=1");
        assert_eq!(r.base_url, "http://x");
    }

    #[test]
    fn json_body_errors() {
        assert_eq!(
            req(&[], b"").json_body().unwrap_err().message,
            "Body expected in request."
        );
        assert_eq!(
            req(&[], b"{bad").json_body().unwrap_err().message,
            "Malformed JSON in request body."
        );
        assert_eq!(req(&[], b"{\"a\": 1}").json_body().unwrap()["a"], 1);
    }

    #[test]
    fn body_presence() {
        assert!(!req(&[], b"").has_body());
        assert!(
            req(&[], b"x").has_body(),
            "a body without length headers is found by reading"
        );
        assert!(!req(&[("content-length", "0")], b"").has_body());
        assert!(req(&[("content-length", "2")], b"{}").has_body());
        assert!(req(&[("transfer-encoding", "chunked")], b"{}").has_body());
        let mut r = req(&[], b"xyz");
        assert!(r.has_body());
        let mut all = Vec::new();
        r.body().read_to_end(&mut all).unwrap();
        assert_eq!(all, b"xyz", "the probed byte is kept");
    }
}

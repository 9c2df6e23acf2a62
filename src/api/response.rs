//! An outgoing response as the services produce it.

use http::StatusCode;
use serde_json::Value;

use crate::error::ApiError;

/// A response body.
pub enum Body {
    /// No body (Content-Length 0).
    Empty,
    /// A complete body held in memory (JSON documents).
    Bytes(Vec<u8>),
    /// A body produced chunk by chunk (image data); a failing chunk aborts
    /// the transfer so the client sees a broken, not a short, body.
    Stream(crate::data::blob::ChunkStream),
}

/// Status, headers and body, and any work to do once they are sent.
pub struct ApiResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// Work the host runs after the response is complete (e.g. an import).
    pub deferred: Option<crate::ports::Deferred>,
}

impl ApiResponse {
    /// A JSON document response.
    pub fn json(status: StatusCode, doc: &Value) -> Self {
        Self::raw_json(status, doc.to_string().into_bytes())
    }

    /// A response with an already serialized JSON body.
    pub fn raw_json(status: StatusCode, body: Vec<u8>) -> Self {
        ApiResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Body::Bytes(body),
            deferred: None,
        }
    }

    /// A response without a body.
    pub fn empty(status: StatusCode) -> Self {
        ApiResponse {
            status,
            headers: vec![("content-length".into(), "0".into())],
            body: Body::Empty,
            deferred: None,
        }
    }

    /// The same response with one more header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The same status and headers with no body (the answer to a HEAD):
    /// an in-memory body's length is dropped with it.
    pub fn without_body(mut self) -> Self {
        if matches!(self.body, Body::Bytes(_)) {
            self.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
            self.headers.push(("content-length".into(), "0".into()));
        }
        self.body = Body::Empty;
        self
    }

    /// The same response, with `events` published after it is sent (before
    /// any other deferred work, so they keep the order things happened in).
    pub(crate) fn with_events(mut self, events: Vec<crate::notify::Event>) -> Self {
        let then = self.deferred.take();
        self.deferred = Some(Box::new(move |ports: &crate::ports::Ports| {
            crate::notify::publish(ports, &events);
            if let Some(work) = then {
                work(ports);
            }
        }));
        self
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<ApiError> for ApiResponse {
    fn from(err: ApiError) -> Self {
        let mut resp = ApiResponse::raw_json(err.status, err.body());
        for (name, value) in &err.headers {
            resp.headers.push((name.to_string(), value.clone()));
        }
        resp
    }
}

//! The outbound HTTP port: requests the service makes to other servers (an S3
//! endpoint, a web-download URL, an `http` store location, Keystone). The host
//! decides which hosts are allowed (Spin's `allowed_outbound_hosts`).

use std::fmt;
use std::io::Read;

/// A request to send. Bodies are small (S3 parts are bounded); responses stream.
#[derive(Clone)]
pub struct OutRequest {
    /// HTTP method.
    pub method: http::Method,
    /// Absolute URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
}

/// A response whose body is read as it arrives.
pub struct OutResponse {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Box<dyn Read>,
}

impl OutResponse {
    /// A header value by lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads the whole body (for small documents: S3 XML, Keystone JSON),
    /// refusing more than `limit` bytes.
    pub fn read_text(&mut self, limit: u64) -> Result<String, OutboundError> {
        let mut buf = Vec::new();
        (&mut self.body)
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| OutboundError::Io(e.to_string()))?;
        if buf.len() as u64 > limit {
            return Err(OutboundError::Io("response body too large".into()));
        }
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// Why an outbound request did not get a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The host does not allow this destination.
    Denied(String),
    /// The URL is not usable.
    BadUrl(String),
    /// Connection or protocol failure.
    Io(String),
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundError::Denied(u) => write!(f, "outbound request to {u} is not allowed"),
            OutboundError::BadUrl(u) => write!(f, "invalid URL {u}"),
            OutboundError::Io(e) => write!(f, "outbound request failed: {e}"),
        }
    }
}

impl std::error::Error for OutboundError {}

/// Sends HTTP requests.
pub trait HttpClient {
    /// Sends `req` and returns the response once its headers have arrived.
    fn send(&self, req: OutRequest) -> Result<OutResponse, OutboundError>;
}

/// How many times [`send_idempotent`] sends a request whose connection fails.
const ATTEMPTS: u32 = 3;

/// Sends a request that may safely be sent again (GET, DELETE, a PUT that
/// overwrites, a token request), again when the connection fails before an
/// answer: hosts keep connections to a server open, and the server may have
/// closed one meanwhile (Spin's outbound HTTP reports that as
/// `StreamError::Closed`), as HTTP client libraries retry.
pub fn send_idempotent(
    client: &dyn HttpClient,
    req: OutRequest,
) -> Result<OutResponse, OutboundError> {
    let mut attempt = 1;
    loop {
        match client.send(req.clone()) {
            Err(OutboundError::Io(_)) if attempt < ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

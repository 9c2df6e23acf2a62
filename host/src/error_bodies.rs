//! Glance's JSON error body on the errors hyper makes itself.
//!
//! When a request head cannot be parsed (malformed: 400, a URI too long: 414,
//! a head too large or with too many fields: 431), hyper answers on its own
//! with an empty body and closes the connection; no component sees the
//! request. Glance's clients expect `{"error": {"code", "title", "message"}}`
//! on every 4xx, so the connection's writer recognises hyper's answer and
//! sends the same status with that body instead. Spin does not (its bodies
//! stay empty): host/README.md lists the difference.
//!
//! hyper's answer is told from a component's by when it comes and what it is:
//! no request was handed to the service since the last write, no response
//! body is still being sent, and the write is one whole, short, bodiless
//! 4xx/5xx head.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Counts the requests hyper hands to the service on one connection, and
/// the responses still being sent.
#[derive(Clone, Default)]
pub struct Requests(Arc<(AtomicU64, AtomicU64)>);

/// A response being sent: held by its body until hyper drops it.
pub struct Sending(Requests);

impl Drop for Sending {
    fn drop(&mut self) {
        (self.0).0 .1.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Requests {
    /// Notes that hyper parsed a request head and called the service; the
    /// response is being sent until the guard is dropped.
    pub fn started(&self) -> Sending {
        self.0 .0.fetch_add(1, Ordering::SeqCst);
        self.0 .1.fetch_add(1, Ordering::SeqCst);
        Sending(self.clone())
    }

    fn count(&self) -> u64 {
        self.0 .0.load(Ordering::SeqCst)
    }

    fn sending(&self) -> bool {
        self.0 .1.load(Ordering::SeqCst) > 0
    }
}

/// A connection's I/O with hyper's own error answers given JSON bodies.
pub struct ErrorBodies<S> {
    inner: S,
    requests: Requests,
    /// Requests started when hyper last wrote.
    requests_at_last_write: u64,
    /// The replacement answer still to send; after it, writes are dropped
    /// (hyper closes the connection after its error answer).
    replacement: Option<(Vec<u8>, usize)>,
}

impl<S> ErrorBodies<S> {
    /// Wraps `inner`; `requests` must be told of each service call.
    pub fn new(inner: S, requests: Requests) -> Self {
        Self {
            inner,
            requests,
            requests_at_last_write: 0,
            replacement: None,
        }
    }

    fn is_hypers_answer(&self, buf: &[u8]) -> Option<u16> {
        if self.requests.sending() || self.requests.count() != self.requests_at_last_write {
            return None;
        }
        hyper_error_status(buf)
    }
}

/// The status of `buf` if it is exactly one bodiless 4xx/5xx response head,
/// as hyper writes for a request it could not parse.
fn hyper_error_status(buf: &[u8]) -> Option<u16> {
    if buf.len() > 512 || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    let rest = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let bodiless = head
        .to_ascii_lowercase()
        .contains("\r\ncontent-length: 0\r\n");
    // Exactly one head: the only blank line is the last.
    let one = head.find("\r\n\r\n") == Some(head.len() - 4);
    ((400..600).contains(&status) && bodiless && one).then_some(status)
}

/// Glance's (webob's) title for a status hyper makes.
fn title(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        s if s >= 500 => "Internal Server Error",
        _ => "Bad Request",
    }
}

/// The answer sent instead of hyper's: same status, a JSON body, closed.
fn replacement(status: u16) -> Vec<u8> {
    let t = title(status);
    let message = match status {
        414 => "The request URI is too long.".to_string(),
        431 => "The request's header fields are too large.".to_string(),
        _ => "The request could not be understood.".to_string(),
    };
    let body =
        serde_json::json!({"error": {"code": status, "title": t, "message": message}}).to_string();
    format!(
        "HTTP/1.1 {status} {t}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<S: AsyncRead + Unpin> AsyncRead for ErrorBodies<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> ErrorBodies<S> {
    /// Sends what is left of the replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.replacement {
            if *sent == bytes.len() {
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ErrorBodies<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_some() {
            // hyper's answer is replaced in full; anything after it is not sent.
            return this.poll_replacement(cx).map_ok(|()| buf.len());
        }
        if let Some(status) = this.is_hypers_answer(buf) {
            this.replacement = Some((replacement(status), 0));
            return this.poll_replacement(cx).map_ok(|()| buf.len());
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.requests_at_last_write = this.requests.count();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replacement.is_some() {
            if let Poll::Ready(Err(e)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.replacement.is_some() {
            match this.poll_replacement(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then flattens a response head into one write, which
    // is what the recognition above reads.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_a_whole_bodiless_error_head() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 00:00:00 GMT\r\n\r\n";
        assert_eq!(hyper_error_status(hyper), Some(431));
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_status(ok), None);
        let with_body = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(hyper_error_status(with_body), None);
        let two = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_status(two), None);
    }

    #[test]
    fn the_replacement_is_glances_error_document() {
        let r = String::from_utf8(replacement(414)).unwrap();
        let (head, body) = r.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 414 Request-URI Too Long\r\n"),
            "{head}"
        );
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], 414);
        assert_eq!(v["error"]["title"], "Request-URI Too Long");
    }
}

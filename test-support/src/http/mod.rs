//! A minimal HTTP/1.1 client over `TcpStream`, the one the tests, the host's
//! tests and the bench share. It controls every byte it sends (chunked
//! bodies, bodies on GET, missing or doubled headers, a socket dropped halfway)
//! and shows every byte it gets back.
//!
//! - [`Client`]: one connection per request (`Connection: close`), default
//!   headers, whole or streamed bodies both ways; [`send`] and [`request`]
//!   are the same without default headers.
//! - [`Conn`]: one keep-alive connection for many requests (the bench, the
//!   host's request-overhead measurement).
//! - [`Streaming`] / [`BodyReader`]: a response whose body is read as it
//!   arrives (`Content-Length`, chunked with trailers, or until close).
//! - [`serve_bytes`]: a loopback file server (a web-download source).
//!
//! A server may answer before it has read the whole request body (409, 413)
//! and close: like curl and urllib3, a body write that fails stops writing
//! and the response is read; a server that died instead fails when the
//! response is read.

mod client;
mod conn;
mod serve;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use serde_json::Value;

pub use client::{finish, request, send, Client};
pub use conn::Conn;
pub use serve::serve_bytes;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (chunked encoding removed).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as JSON (panics with the body text when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}), status {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, then that the body is a Glance-shaped JSON error
    /// with that code; returns its message.
    #[track_caller]
    pub fn expect_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "error content type"
        );
        let j = self.json();
        assert_eq!(j["error"]["code"], status, "error body: {j}");
        assert!(j["error"]["title"].is_string(), "error body: {j}");
        j["error"]["message"].as_str().expect("message").to_string()
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect_json(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }
}

/// A request body, as [`Client::send`] frames it.
pub enum Payload<'a> {
    /// No body, no Content-Length.
    None,
    /// A body with Content-Length.
    Bytes(&'a [u8]),
    /// A body sent with `Transfer-Encoding: chunked`, in pieces of this size.
    Chunked(&'a [u8], usize),
}

/// A response whose body is read incrementally.
pub struct Streaming<R = BufReader<TcpStream>> {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: BodyReader<R>,
}

impl<R: BufRead> Streaming<R> {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Reads the rest of the body.
    pub fn into_response(mut self) -> Response {
        let mut body = Vec::new();
        self.body.read_to_end(&mut body).expect("read body");
        Response {
            status: self.status,
            headers: self.headers,
            body,
        }
    }
}

/// Reads a response body: `Content-Length`, chunked (trailers included), or
/// until the server closes. A body framed by length or chunks is an
/// `UnexpectedEof` error if the connection ends before it does.
pub struct BodyReader<R = BufReader<TcpStream>> {
    inner: R,
    mode: BodyMode,
}

enum BodyMode {
    Length(u64),
    Chunked { left: u64, done: bool },
    Close,
}

impl<R: BufRead> BodyReader<R> {
    /// The body that follows `headers` of a response with `status`, read
    /// from `inner` (positioned just after the head).
    pub fn new(inner: R, status: u16, headers: &[(String, String)], head_only: bool) -> Self {
        let mode = if head_only || status == 204 || status == 304 {
            BodyMode::Length(0)
        } else if find_header(headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        {
            BodyMode::Chunked {
                left: 0,
                done: false,
            }
        } else if let Some(len) = find_header(headers, "content-length") {
            BodyMode::Length(len.parse().expect("content-length"))
        } else {
            BodyMode::Close
        };
        BodyReader { inner, mode }
    }

    /// Hands the rest of the body to `sink` piece by piece (through one
    /// buffer of `buf_size` bytes); returns the number of body bytes.
    pub fn copy_to(&mut self, buf_size: usize, mut sink: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut buf = vec![0u8; buf_size.max(1)];
        let mut total = 0u64;
        loop {
            let n = self.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            sink(&buf[..n]);
            total += n as u64;
        }
    }

    fn read_framed(&mut self, buf: &mut [u8], left: u64) -> io::Result<usize> {
        let max = left.min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 && max > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the body ended with {left} bytes still to come"),
            ));
        }
        Ok(n)
    }
}

impl<R: BufRead> Read for BodyReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.mode {
            BodyMode::Length(0) => Ok(0),
            BodyMode::Length(left) => {
                let n = self.read_framed(buf, left)?;
                self.mode = BodyMode::Length(left - n as u64);
                Ok(n)
            }
            BodyMode::Close => self.inner.read(buf),
            BodyMode::Chunked { done: true, .. } => Ok(0),
            BodyMode::Chunked { mut left, .. } => {
                if left == 0 {
                    let mut line = String::new();
                    self.inner.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        // The CRLF after the previous chunk.
                        line.clear();
                        self.inner.read_line(&mut line)?;
                    }
                    let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                        .map_err(|_| {
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!("bad chunk size {line:?}"),
                            )
                        })?;
                    if size == 0 {
                        // Trailers, then the final CRLF.
                        loop {
                            let mut t = String::new();
                            if self.inner.read_line(&mut t)? == 0 || t.trim().is_empty() {
                                break;
                            }
                        }
                        self.mode = BodyMode::Chunked {
                            left: 0,
                            done: true,
                        };
                        return Ok(0);
                    }
                    left = size;
                }
                let n = self.read_framed(buf, left)?;
                self.mode = BodyMode::Chunked {
                    left: left - n as u64,
                    done: false,
                };
                Ok(n)
            }
        }
    }
}

/// The first value of a header in `headers` (lower-cased names), by
/// case-insensitive name.
pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads a status line and headers (names lower-cased). A connection that
/// ends before the status line is an `UnexpectedEof` error ("connection
/// closed"), so a keep-alive client can tell a server that closed an idle
/// connection.
pub fn read_head<R: BufRead>(r: &mut R) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {line:?}"),
            )
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in the response head",
            ));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

/// Reads a response head from `r` and returns it with a reader of its body.
pub fn read_streaming<R: BufRead>(mut r: R, head_only: bool) -> io::Result<Streaming<R>> {
    let (status, headers) = read_head(&mut r)?;
    let body = BodyReader::new(r, status, &headers, head_only);
    Ok(Streaming {
        status,
        headers,
        body,
    })
}

/// Reads the response on a connection whose request has been written (the
/// body is read as it is consumed). Panics if no response head arrives.
pub fn read_response(stream: TcpStream, head_only: bool) -> Streaming {
    read_streaming(BufReader::new(stream), head_only)
        .unwrap_or_else(|e| panic!("reading the response head: {e}"))
}

/// Writes `METHOD PATH HTTP/1.1`, `Host`, then `headers` in order and the
/// blank line, in one write.
pub fn write_head<'h>(
    w: &mut impl Write,
    method: &str,
    path: &str,
    host: &str,
    headers: impl IntoIterator<Item = (&'h str, &'h str)>,
) -> io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

/// Writes one chunk of a chunked body (an empty `piece` writes nothing: the
/// last chunk is [`write_last_chunk`]).
pub fn write_chunk(w: &mut impl Write, piece: &[u8]) -> io::Result<()> {
    if piece.is_empty() {
        return Ok(());
    }
    write!(w, "{:x}\r\n", piece.len())?;
    w.write_all(piece)?;
    w.write_all(b"\r\n")
}

/// Writes the last chunk of a chunked body (no trailers).
pub fn write_last_chunk(w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"0\r\n\r\n")
}

/// `GET path` with short timeouts (connect, and `timeout` for the answer):
/// the status, or None if nothing answered. For readiness checks.
pub fn probe(addr: std::net::SocketAddr, path: &str, timeout: std::time::Duration) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    write_head(
        &mut s,
        "GET",
        path,
        &addr.to_string(),
        [("Connection", "close")],
    )
    .ok()?;
    let mut r = BufReader::new(s);
    read_head(&mut r).ok().map(|(status, _)| status)
}

/// Percent-encodes a query value (RFC 3986 unreserved characters kept).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests;

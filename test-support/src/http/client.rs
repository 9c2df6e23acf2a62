//! One connection per request: [`Client`] (with default headers) and the
//! free functions [`send`], [`request`] and [`finish`].

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::{
    read_response, write_chunk, write_head, write_last_chunk, Payload, Response, Streaming,
};

/// How long a read waits for the server before the test fails.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A client with default headers; every request opens its own connection
/// and sends `Connection: close`.
#[derive(Clone, Debug)]
pub struct Client {
    addr: SocketAddr,
    headers: Vec<(String, String)>,
}

impl Client {
    /// A client for the server at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            headers: Vec::new(),
        }
    }

    /// The same client with one more default header.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens a connection and writes a request head (`Host`, `Connection:
    /// close`, the default headers, then `headers`); the caller writes the
    /// body, if any, and reads the answer with [`finish`].
    pub fn start(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.addr));
        stream.set_read_timeout(Some(READ_TIMEOUT)).ok();
        let all = [("Connection", "close")]
            .into_iter()
            .chain(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .chain(headers.iter().copied());
        write_head(&mut stream, method, path, &self.addr.to_string(), all).expect("write head");
        stream
    }

    /// Sends a request and returns the response with its body still to be
    /// read. `Content-Length` or `Transfer-Encoding: chunked` is added as
    /// `body` needs. If writing the body fails (the server answered early
    /// and closed), writing stops and the answer is read.
    pub fn send_streaming(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Payload,
    ) -> Streaming {
        let length = match &body {
            Payload::Bytes(b) => Some(b.len().to_string()),
            _ => None,
        };
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        match (&body, &length) {
            (Payload::Bytes(_), Some(n)) => all.push(("Content-Length", n)),
            (Payload::Chunked(..), _) => all.push(("Transfer-Encoding", "chunked")),
            _ => {}
        }
        let mut stream = self.start(method, path, &all);
        let _ = write_body(&mut stream, body);
        read_response(stream, method == "HEAD")
    }

    /// Sends a request and reads the whole response.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Payload,
    ) -> Response {
        self.send_streaming(method, path, headers, body)
            .into_response()
    }

    /// GET.
    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], Payload::None)
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, &[], Payload::None)
    }

    /// POST a JSON document.
    pub fn post_json(&self, path: &str, doc: &Value) -> Response {
        let body = doc.to_string();
        self.send(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Payload::Bytes(body.as_bytes()),
        )
    }

    /// PATCH with the v2.1 JSON-patch media type.
    pub fn patch(&self, path: &str, ops: &Value) -> Response {
        self.patch_as(path, "application/openstack-images-v2.1-json-patch", ops)
    }

    /// PATCH with a given media type.
    pub fn patch_as(&self, path: &str, media_type: &str, ops: &Value) -> Response {
        let body = ops.to_string();
        self.send(
            "PATCH",
            path,
            &[("Content-Type", media_type)],
            Payload::Bytes(body.as_bytes()),
        )
    }

    /// PUT without a body.
    pub fn put(&self, path: &str) -> Response {
        self.send("PUT", path, &[], Payload::None)
    }

    /// Creates an image and returns its JSON (asserting 201).
    #[track_caller]
    pub fn create_image(&self, doc: &Value) -> Value {
        self.post_json("/v2/images", doc).expect_json(201)
    }

    /// PUTs a body produced piece by piece with `Transfer-Encoding: chunked`
    /// (as glanceclient does), never holding it whole. A piece the server no
    /// longer takes (it answered early, e.g. 413, and closed) ends the upload
    /// and the answer is read.
    pub fn put_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        pieces: impl Iterator<Item = Vec<u8>>,
    ) -> Response {
        let mut h: Vec<(&str, &str)> = vec![("Transfer-Encoding", "chunked")];
        h.extend_from_slice(headers);
        let mut stream = self.start("PUT", path, &h);
        for piece in pieces {
            if write_chunk(&mut stream, &piece).is_err() {
                return finish(stream);
            }
        }
        let _ = write_last_chunk(&mut stream);
        finish(stream)
    }

    /// GETs `path`, handing the body to `sink` as it arrives; returns the
    /// response (with an empty body) and the number of body bytes.
    pub fn get_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        sink: impl FnMut(&[u8]),
    ) -> (Response, u64) {
        let stream = self.start("GET", path, headers);
        let mut s = read_response(stream, false);
        let total = s
            .body
            .copy_to(1 << 20, sink)
            .unwrap_or_else(|e| panic!("GET {path}: reading the body: {e}"));
        let resp = Response {
            status: s.status,
            headers: s.headers,
            body: Vec::new(),
        };
        (resp, total)
    }
}

/// Writes a request body as [`Client::send`] frames it.
fn write_body(stream: &mut TcpStream, body: Payload) -> std::io::Result<()> {
    match body {
        Payload::None => Ok(()),
        Payload::Bytes(b) => stream.write_all(b),
        Payload::Chunked(b, size) => {
            for piece in b.chunks(size.max(1)) {
                write_chunk(stream, piece)?;
            }
            write_last_chunk(stream)
        }
    }
}

/// Reads the whole response of a request whose body the caller wrote itself
/// (after [`Client::start`]).
pub fn finish(stream: TcpStream) -> Response {
    read_response(stream, false).into_response()
}

/// Sends a request without default headers (`Content-Length` added for a
/// body) and returns the response with its body still to be read.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Streaming {
    let payload = body.map_or(Payload::None, Payload::Bytes);
    Client::new(addr).send_streaming(method, path, headers, payload)
}

/// One request without default headers, fully read.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    send(addr, method, path, headers, body).into_response()
}

//! A minimal HTTP/1.1 client over `TcpStream`, so tests control every byte
//! (chunked bodies, bodies on GET, missing headers) and see every byte back.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A header value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
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

/// A request body.
pub enum Payload<'a> {
    /// No body, no Content-Length.
    None,
    /// A body with Content-Length.
    Bytes(&'a [u8]),
    /// A body sent with `Transfer-Encoding: chunked`, in pieces of this size.
    Chunked(&'a [u8], usize),
}

/// A client with default headers.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    headers: Vec<(String, String)>,
}

impl Client {
    /// A client for the service at `addr`.
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

    /// Sends a request and reads the whole response.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Payload,
    ) -> Response {
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
        // A server may answer before it has read the body (409, 413, ...)
        // and close; like curl and urllib3, stop writing then and read the
        // answer. A server that died instead fails in `read_response`.
        let _ = write_body(&mut stream, body);
        read_response(stream, method == "HEAD")
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
}

/// Writes a request body as `send` frames it.
fn write_body(stream: &mut TcpStream, body: Payload) -> std::io::Result<()> {
    match body {
        Payload::None => Ok(()),
        Payload::Bytes(b) => stream.write_all(b),
        Payload::Chunked(b, size) => {
            for piece in b.chunks(size.max(1)) {
                write!(stream, "{:x}\r\n", piece.len())?;
                stream.write_all(piece)?;
                stream.write_all(b"\r\n")?;
            }
            stream.write_all(b"0\r\n\r\n")
        }
    }
}

fn read_response(stream: TcpStream, head_only: bool) -> Response {
    let mut r = BufReader::new(stream);
    let (status, headers) = read_head(&mut r);
    let mut line = String::new();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if head_only || status == 204 || status == 304 {
        return Response {
            status,
            headers,
            body,
        };
    }
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line).expect("chunk size");
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .expect("hex size");
            if size == 0 {
                line.clear();
                let _ = r.read_line(&mut line);
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk).expect("chunk");
            body.extend_from_slice(&chunk);
            line.clear();
            r.read_line(&mut line).expect("chunk end");
        }
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body).expect("body");
    } else {
        r.read_to_end(&mut body).expect("body");
    }
    Response {
        status,
        headers,
        body,
    }
}

impl Client {
    /// Opens a connection and writes a request head; the caller streams the body.
    pub fn start(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(300))).ok();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(headers.iter().copied())
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write head");
        stream
    }

    /// PUTs a body produced piece by piece with `Transfer-Encoding: chunked`
    /// (as glanceclient does), never holding it whole.
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
            if piece.is_empty() {
                continue;
            }
            let ok = write!(stream, "{:x}\r\n", piece.len())
                .and_then(|_| stream.write_all(&piece))
                .and_then(|_| stream.write_all(b"\r\n"));
            if ok.is_err() {
                // The server answered early (e.g. 413) and closed.
                return read_response(stream, false);
            }
        }
        let _ = stream.write_all(b"0\r\n\r\n");
        read_response(stream, false)
    }

    /// GETs `path`, handing the body to `sink` as it arrives; returns the
    /// response (with an empty body) and the number of body bytes.
    pub fn get_stream(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        mut sink: impl FnMut(&[u8]),
    ) -> (Response, u64) {
        let stream = self.start("GET", path, headers);
        let mut r = BufReader::new(stream);
        let (status, headers) = read_head(&mut r);
        let resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        if status != 204 {
            if let Some(len) = resp
                .header("content-length")
                .and_then(|v| v.parse::<u64>().ok())
            {
                let mut left = len;
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let n = r.read(&mut buf[..want]).expect("body");
                    assert!(n > 0, "body ended after {total} of {len} bytes");
                    sink(&buf[..n]);
                    total += n as u64;
                    left -= n as u64;
                }
            } else {
                loop {
                    let n = r.read(&mut buf).expect("body");
                    if n == 0 {
                        break;
                    }
                    sink(&buf[..n]);
                    total += n as u64;
                }
            }
        }
        (resp, total)
    }
}

fn read_head(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// Reads the response of a request whose body the caller streamed itself.
pub fn finish(stream: TcpStream) -> Response {
    read_response(stream, false)
}

/// Serves `body` over HTTP on a free loopback port, to any number of GET and
/// HEAD requests (a web-download source); returns `http://ADDR/<name>`.
pub fn serve_bytes(body: Vec<u8>, name: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let head_only = buf[..n].starts_with(b"HEAD");
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                if !head_only {
                    let _ = s.write_all(&body);
                }
            });
        }
    });
    format!("http://{addr}/{name}")
}

//! [`Conn`]: one keep-alive HTTP/1.1 connection for many sequential
//! requests, with `TCP_NODELAY`, optional default headers and a path prefix;
//! it reconnects when the server has closed it. Errors are strings, so a
//! load generator can count them instead of stopping.

use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::Value;

use super::{read_streaming, write_head, Response, Streaming};

/// A persistent connection to one endpoint.
pub struct Conn {
    /// `host:port`, also sent as `Host`.
    host: String,
    /// A path prefix put before every request path (from the endpoint URL).
    prefix: String,
    headers: Vec<(String, String)>,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// Connects to `endpoint` (`http://host:port[/prefix]`); `headers` go
    /// with every request.
    pub fn open(endpoint: &str, headers: Vec<(String, String)>) -> Result<Conn, String> {
        let rest = endpoint
            .strip_prefix("http://")
            .ok_or("only http:// endpoints are supported")?;
        let (host, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let mut c = Conn {
            host: host.to_string(),
            prefix: prefix.trim_end_matches('/').to_string(),
            headers,
            stream: None,
        };
        c.reconnect()?;
        Ok(c)
    }

    /// Connects to `addr` with no default headers (panics if it cannot).
    pub fn new(addr: SocketAddr) -> Conn {
        Conn::open(&format!("http://{addr}"), Vec::new()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Drops the current connection (if any) and opens a new one.
    pub fn reconnect(&mut self) -> Result<(), String> {
        self.stream = None;
        let s =
            TcpStream::connect(&self.host).map_err(|e| format!("connect {}: {e}", self.host))?;
        s.set_nodelay(true).ok();
        self.stream = Some(BufReader::new(s));
        Ok(())
    }

    /// Writes a request head: the default headers, then `extra`, then
    /// `Content-Length` when `length` is given.
    fn write_request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        length: Option<u64>,
    ) -> Result<&mut BufReader<TcpStream>, String> {
        let length = length.map(|n| n.to_string());
        let stream = self.stream.as_mut().ok_or("not connected")?;
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
            .chain(length.as_deref().map(|n| ("Content-Length", n)));
        write_head(
            stream.get_mut(),
            method,
            &format!("{}{path}", self.prefix),
            &self.host,
            headers,
        )
        .map_err(|e| e.to_string())?;
        Ok(stream)
    }

    /// Reads a response head on this connection.
    fn read_head(
        &mut self,
        head_only: bool,
    ) -> Result<Streaming<&mut BufReader<TcpStream>>, String> {
        let stream = self.stream.as_mut().ok_or("not connected")?;
        read_streaming(stream, head_only).map_err(|e| e.to_string())
    }

    /// One request on this connection (no reconnect): writes the head
    /// (`Content-Length` when `body` is not empty) and the body, reads the
    /// whole response.
    pub fn exchange(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, String> {
        let length = (!body.is_empty()).then_some(body.len() as u64);
        let stream = self.write_request(method, path, extra, length)?;
        stream
            .get_mut()
            .write_all(body)
            .map_err(|e| e.to_string())?;
        let s = self.read_head(method == "HEAD")?;
        read_all(s)
    }

    /// `GET path` on this connection: status and body (panics on an error).
    pub fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        let r = self
            .exchange("GET", path, &[], &[])
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (r.status, r.body)
    }

    /// Sends a request with an optional JSON body (`Content-Type:
    /// application/json` unless `extra` has one); returns the JSON response
    /// (or Null for an empty one). Non-2xx is an error. A request that fails
    /// on the connection is tried once more on a new one (the server may
    /// have closed an idle keep-alive connection).
    pub fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut headers = extra.to_vec();
        if !body.is_empty()
            && !extra
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type", "application/json"));
        }
        let resp = match self.exchange(method, path, &headers, body.as_bytes()) {
            Ok(r) => r,
            Err(_) => {
                self.reconnect()?;
                self.exchange(method, path, &headers, body.as_bytes())?
            }
        };
        if !(200..300).contains(&resp.status) {
            return Err(format!(
                "{method} {path}: HTTP {}: {}",
                resp.status,
                resp.text()
            ));
        }
        if resp.body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| format!("{method} {path}: bad JSON: {e}"))
    }

    /// On a new connection, PUTs `size` bytes made of `block` repeated (the
    /// last copy cut short) with `Content-Length`; returns the status. Non-2xx
    /// is an error. A body write that fails (the server answered early and
    /// closed) stops writing and the answer is read.
    pub fn put_repeated(
        &mut self,
        path: &str,
        size: u64,
        block: &[u8],
        extra: &[(&str, &str)],
    ) -> Result<u16, String> {
        assert!(!block.is_empty() || size == 0, "an empty block");
        self.reconnect()?;
        let stream = self.write_request("PUT", path, extra, Some(size))?;
        let w = stream.get_mut();
        let mut left = size;
        let mut write_error = None;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            if let Err(e) = w.write_all(&block[..n]) {
                write_error = Some(e);
                break;
            }
            left -= n as u64;
        }
        let resp = match self.read_head(false).and_then(read_all) {
            Ok(r) => r,
            Err(e) => {
                return Err(match write_error {
                    Some(w) => format!("PUT {path}: writing the body: {w}; then: {e}"),
                    None => e,
                })
            }
        };
        if !(200..300).contains(&resp.status) {
            return Err(format!("PUT {path}: HTTP {}: {}", resp.status, resp.text()));
        }
        Ok(resp.status)
    }

    /// On a new connection, GETs `path` and discards the body (read through
    /// one 1 MiB buffer); returns the number of body bytes. Non-2xx is an
    /// error.
    pub fn get_discard(&mut self, path: &str) -> Result<u64, String> {
        self.reconnect()?;
        self.write_request("GET", path, &[], None)?;
        let mut s = self.read_head(false)?;
        if !(200..300).contains(&s.status) {
            let status = s.status;
            let mut body = Vec::new();
            s.body.read_to_end(&mut body).map_err(|e| e.to_string())?;
            return Err(format!(
                "GET {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        s.body.copy_to(1 << 20, |_| {}).map_err(|e| e.to_string())
    }
}

/// Reads a whole response whose head has been read.
fn read_all<R: io::BufRead>(s: Streaming<R>) -> Result<Response, String> {
    let Streaming {
        status,
        headers,
        mut body,
    } = s;
    let mut bytes = Vec::new();
    body.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

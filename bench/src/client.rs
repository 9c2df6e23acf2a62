//! A keep-alive HTTP/1.1 connection that reconnects when the server closes it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use serde_json::Value;

/// A persistent connection to one endpoint, with default headers.
pub struct Conn {
    host: String,
    prefix: String,
    headers: Vec<(String, String)>,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// Connects to `endpoint` (`http://host:port[/prefix]`).
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

    fn reconnect(&mut self) -> Result<(), String> {
        let s =
            TcpStream::connect(&self.host).map_err(|e| format!("connect {}: {e}", self.host))?;
        s.set_nodelay(true).ok();
        self.stream = Some(BufReader::new(s));
        Ok(())
    }

    /// Sends a request with an optional JSON body; returns the JSON response
    /// (or Null for an empty one). Non-2xx is an error.
    pub fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, resp) = match self.exchange(method, path, body.as_bytes(), extra) {
            Ok(r) => r,
            Err(_) => {
                // The server may have closed an idle keep-alive connection.
                self.reconnect()?;
                self.exchange(method, path, body.as_bytes(), extra)?
            }
        };
        if !(200..300).contains(&status) {
            return Err(format!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&resp)
            ));
        }
        if resp.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&resp).map_err(|e| format!("{method} {path}: bad JSON: {e}"))
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Result<(u16, Vec<u8>), String> {
        let stream = self.stream.as_mut().ok_or("not connected")?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\n",
            self.prefix, self.host
        );
        let has_ct = extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            if !has_ct {
                head.push_str("Content-Type: application/json\r\n");
            }
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let w = stream.get_mut();
        w.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        w.write_all(body).map_err(|e| e.to_string())?;
        read_response(stream)
    }
}

/// How a response's body is framed.
enum Framing {
    Length(u64),
    Chunked,
    None,
}

/// Reads a status line and headers.
fn read_head(r: &mut BufReader<TcpStream>) -> Result<(u16, Framing), String> {
    let mut line = String::new();
    if r.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        return Err("connection closed".into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut framing = Framing::None;
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    if let Ok(n) = v.trim().parse() {
                        framing = Framing::Length(n);
                    }
                }
                "transfer-encoding" if v.trim().eq_ignore_ascii_case("chunked") => {
                    framing = Framing::Chunked;
                }
                _ => {}
            }
        }
    }
    Ok((status, framing))
}

/// Reads a body framed as `framing`, handing each piece to `sink`; returns
/// the number of body bytes.
fn read_body(
    r: &mut BufReader<TcpStream>,
    framing: Framing,
    mut sink: impl FnMut(&[u8]),
) -> Result<u64, String> {
    let mut buf = vec![0u8; 1 << 20];
    let mut copy = |r: &mut BufReader<TcpStream>, mut left: u64| -> Result<u64, String> {
        let total = left;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = r.read(&mut buf[..want]).map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("body ended early".into());
            }
            sink(&buf[..n]);
            left -= n as u64;
        }
        Ok(total)
    };
    match framing {
        Framing::None => Ok(0),
        Framing::Length(n) => copy(r, n),
        Framing::Chunked => {
            let mut total = 0;
            let mut line = String::new();
            loop {
                line.clear();
                r.read_line(&mut line).map_err(|e| e.to_string())?;
                let size = u64::from_str_radix(line.trim(), 16).map_err(|e| e.to_string())?;
                if size > 0 {
                    total += copy(r, size)?;
                }
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf).map_err(|e| e.to_string())?;
                if size == 0 {
                    return Ok(total);
                }
            }
        }
    }
}

/// Reads a whole response: status and body.
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(u16, Vec<u8>), String> {
    let (status, framing) = read_head(r)?;
    let mut body = Vec::new();
    read_body(r, framing, |piece| body.extend_from_slice(piece))?;
    Ok((status, body))
}

impl Conn {
    /// PUTs `size` bytes (a repeated pseudo-random block) as the body,
    /// streamed from one buffer; returns the status.
    pub fn put_bytes(
        &mut self,
        path: &str,
        size: u64,
        extra: &[(&str, &str)],
    ) -> Result<u16, String> {
        self.reconnect()?;
        let stream = self.stream.as_mut().ok_or("not connected")?;
        let mut head = format!(
            "PUT {}{path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {size}\r\n",
            self.prefix, self.host
        );
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(extra.iter().copied())
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let block = noise_block();
        let w = stream.get_mut();
        w.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            w.write_all(&block[..n]).map_err(|e| e.to_string())?;
            left -= n as u64;
        }
        let (status, body) = read_response(stream)?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "PUT {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(status)
    }

    /// GETs `path` and discards the body; returns the number of body bytes.
    pub fn get_discard(&mut self, path: &str) -> Result<u64, String> {
        self.reconnect()?;
        let stream = self.stream.as_mut().ok_or("not connected")?;
        let mut head = format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\n",
            self.prefix, self.host
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream
            .get_mut()
            .write_all(head.as_bytes())
            .map_err(|e| e.to_string())?;
        let (status, framing) = read_head(stream)?;
        if !(200..300).contains(&status) {
            let mut body = Vec::new();
            read_body(stream, framing, |piece| body.extend_from_slice(piece))?;
            return Err(format!(
                "GET {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        read_body(stream, framing, |_| {})
    }
}

/// 1 MiB of xorshift noise (incompressible, cheap to produce once).
fn noise_block() -> &'static [u8] {
    static BLOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut s: u64 = 0x9e3779b97f4a7c15;
        (0..(1 << 17))
            .flat_map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s.to_le_bytes()
            })
            .collect()
    })
}

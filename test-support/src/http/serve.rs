//! A loopback file server for tests that need an HTTP source.

use std::io::{Read, Write};
use std::net::TcpListener;

/// Serves `body` over HTTP on a free loopback port, to any number of GET and
/// HEAD requests (a web-download source); returns `http://ADDR/<name>`.
pub fn serve_bytes(body: Vec<u8>, name: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
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

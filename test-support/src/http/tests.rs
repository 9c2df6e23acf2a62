//! The client against small loopback servers written byte by byte.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

/// A server running `handle` on each connection; returns its address and
/// the number of connections accepted so far.
fn server(
    handle: impl Fn(BufReader<TcpStream>) + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let (n, handle) = (conns.clone(), Arc::new(handle));
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            n.fetch_add(1, Ordering::SeqCst);
            let handle = handle.clone();
            std::thread::spawn(move || handle(BufReader::new(s)));
        }
    });
    (addr, conns)
}

/// Reads a request head; returns its lines (empty when the client closed).
fn head(r: &mut BufReader<TcpStream>) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            return Vec::new();
        }
        if l.trim().is_empty() {
            return lines;
        }
        lines.push(l.trim_end().to_string());
    }
}

fn content_length(lines: &[String]) -> usize {
    lines
        .iter()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0)
}

#[test]
fn bodies_by_length_by_chunks_with_trailers_and_until_close() {
    let (addr, _) = server(|mut r| {
        let lines = head(&mut r);
        let s = r.get_mut();
        let _ = match lines[0].split_whitespace().nth(1).unwrap() {
            "/length" => s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),
            "/chunked" => s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n",
            ),
            "/close" => s.write_all(b"HTTP/1.1 200 OK\r\n\r\nhello"),
            _ => s.write_all(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
        };
    });
    let c = Client::new(addr);
    for path in ["/length", "/chunked", "/close"] {
        let r = c.get(path);
        assert_eq!((r.status, r.text().as_str()), (200, "hello"), "{path}");
    }
    let r = c.get("/none");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("X-a"), Some("1"), "names are case-insensitive");
    let (r, n) = c.get_stream("/chunked", &[], |_| {});
    assert_eq!((r.status, n), (200, 5));
    let mut s = send(addr, "GET", "/length", &[], None);
    let mut first = [0u8; 2];
    s.body.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"he");
    assert_eq!(s.into_response().text(), "llo");
}

#[test]
fn a_body_cut_short_is_an_error() {
    let (addr, _) = server(|mut r| {
        head(&mut r);
        let _ = r
            .get_mut()
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    });
    let mut s = send(addr, "GET", "/", &[], None);
    let mut body = Vec::new();
    let e = s.body.read_to_end(&mut body).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(body, b"hello");
}

#[test]
fn requests_are_written_as_given() {
    let (addr, _) = server(|mut r| {
        let lines = head(&mut r);
        let mut body = vec![0u8; content_length(&lines)];
        r.read_exact(&mut body).unwrap();
        let echo = format!("{}\n{}", lines.join("\n"), String::from_utf8_lossy(&body));
        let _ = write!(
            r.get_mut(),
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{echo}",
            echo.len()
        );
    });
    let c = Client::new(addr).with_header("X-Default", "d");
    let text = c
        .send(
            "POST",
            "/p?q=1",
            &[("X-Extra", "e")],
            Payload::Bytes(b"abc"),
        )
        .text();
    assert_eq!(
        text,
        format!(
            "POST /p?q=1 HTTP/1.1\nHost: {addr}\nConnection: close\nX-Default: d\nX-Extra: e\nContent-Length: 3\nabc"
        )
    );
}

/// A server that answers 413 after the head, reads nothing more and closes.
fn early_answer_server() -> SocketAddr {
    server(|mut r| {
        head(&mut r);
        let _ = r.get_mut().write_all(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\nConnection: close\r\n\r\ntoo big!",
        );
        std::thread::sleep(Duration::from_millis(200));
    })
    .0
}

#[test]
fn an_early_answer_is_read_when_the_body_write_fails() {
    let addr = early_answer_server();
    let big = vec![7u8; 64 << 20];
    let c = Client::new(addr);
    let r = c.send("PUT", "/", &[], Payload::Bytes(&big));
    assert_eq!((r.status, r.text().as_str()), (413, "too big!"));
    let r = c.send("PUT", "/", &[], Payload::Chunked(&big, 1 << 20));
    assert_eq!(r.status, 413);
    let r = c.put_stream("/", &[], (0..64).map(|_| vec![1u8; 1 << 20]));
    assert_eq!(r.status, 413);
    let mut conn = Conn::new(addr);
    let e = conn
        .put_repeated("/", 64 << 20, &[3u8; 1 << 16], &[])
        .unwrap_err();
    assert!(e.contains("HTTP 413: too big!"), "{e}");
}

#[test]
fn keep_alive_connection_reuses_its_socket_and_reconnects_when_closed() {
    let (addr, conns) = server(|mut r| {
        // Two requests per connection, then close.
        for i in 0..2 {
            let lines = head(&mut r);
            if lines.is_empty() {
                return;
            }
            let mut body = vec![0u8; content_length(&lines)];
            r.read_exact(&mut body).unwrap();
            let s = r.get_mut();
            let _ = if i == 0 {
                s.write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
                )
            } else {
                s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 8\r\n\r\n{\"a\":1}\n")
            };
        }
    });
    let mut c = Conn::open(&format!("http://{addr}/"), vec![("X-H".into(), "v".into())]).unwrap();
    assert_eq!(
        c.json("GET", "/a", None, &[]).unwrap(),
        serde_json::json!({})
    );
    let v = c
        .json("POST", "/b", Some(&serde_json::json!({"x": 1})), &[])
        .unwrap();
    assert_eq!(v["a"], 1);
    assert_eq!(conns.load(Ordering::SeqCst), 1, "one connection for both");
    // The server closed after two: the next request reconnects.
    assert_eq!(
        c.json("GET", "/c", None, &[]).unwrap(),
        serde_json::json!({})
    );
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    assert_eq!(c.get("/d"), (201, b"{\"a\":1}\n".to_vec()));
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    assert_eq!(c.get_discard("/e").unwrap(), 2);
    assert_eq!(
        conns.load(Ordering::SeqCst),
        3,
        "a download gets its own connection"
    );
}

#[test]
fn query_values_are_percent_encoded() {
    assert_eq!(enc("a b/c?d=é~"), "a%20b%2Fc%3Fd%3D%C3%A9~");
}

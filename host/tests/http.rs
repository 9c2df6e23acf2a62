//! The HTTP side as a client sees it, on glance-host and (when it is here) on real Spin:
//! the `spin-*` headers a client sends, requests Spin fails, HTTP/2, header limits; and
//! glance-host's own connection timeouts.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use test_support::http::read_response;
use test_support::Runtime;

/// Every `spin-*` header a client may send, with a forged value.
const FORGED: &[(&str, &str)] = &[
    ("spin-client-addr", "127.0.0.1:1"),
    ("spin-full-url", "http://evil/"),
    ("spin-path-info", "/forged"),
    ("spin-matched-route", "/forged/..."),
    ("spin-component-route", "/forged"),
    ("spin-raw-component-route", "/forged/..."),
    ("spin-base-path", "/forged"),
    ("spin-path-match-user-id", "forged"),
];

#[test]
fn client_spin_headers_stay_before_the_runtimes_own() {
    for runtime in runtimes() {
        let app = probe_app("forged-headers", |m| m);
        let probe = Probe::start(&app, runtime, &[]);
        let stream = TcpStream::connect(probe.addr()).unwrap();
        let local = stream.local_addr().unwrap();
        let mut s = stream;
        let path = "/users/42/items/widget?q=1";
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n", probe.addr());
        for (k, v) in FORGED {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("Connection: close\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        let resp = read_response(s, false).into_response();
        assert_eq!(resp.status, 200, "{}", probe.name());
        let h = &resp.json()["headers"];
        let real = [
            ("spin-client-addr", local.to_string()),
            ("spin-full-url", format!("http://{}{path}", probe.addr())),
            ("spin-path-info", String::new()),
            ("spin-matched-route", "/users/:user_id/items/:item".into()),
            ("spin-component-route", "/users/:user_id/items/:item".into()),
            (
                "spin-raw-component-route",
                "/users/:user_id/items/:item".into(),
            ),
            ("spin-base-path", "/".into()),
            ("spin-path-match-user-id", "42".into()),
        ];
        for ((name, forged), (_, value)) in FORGED.iter().zip(real.iter()) {
            assert_eq!(
                h[*name],
                serde_json::json!([forged, value]),
                "{}: {name}: the client's value, then the runtime's ({h})",
                probe.name()
            );
        }
        // Not sent by the client: one value.
        assert_eq!(h["spin-path-match-item"], "widget", "{}", probe.name());
    }
}

#[test]
fn requests_spin_fails_and_errors() {
    for runtime in runtimes() {
        let app = probe_app("fails", |m| m);
        let probe = Probe::start(&app, runtime, &[]);
        let name = probe.name();
        // A routed request without Host: the connection closes without an answer.
        let got = raw_exchange(probe.addr(), b"GET /x HTTP/1.1\r\n\r\n");
        assert!(got.is_empty(), "{name}: {}", String::from_utf8_lossy(&got));
        // Nor with a Host that differs from the URI's authority.
        let got = raw_exchange(
            probe.addr(),
            b"GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n",
        );
        assert!(got.is_empty(), "{name}: {}", String::from_utf8_lossy(&got));
        // A service-chaining Host is removed, which leaves none.
        let got = raw_exchange(
            probe.addr(),
            b"GET /x HTTP/1.1\r\nHost: other.spin.internal\r\n\r\n",
        );
        assert!(got.is_empty(), "{name}: {}", String::from_utf8_lossy(&got));
        // The well-known paths need no Host.
        let got = raw_exchange(
            probe.addr(),
            b"GET /.well-known/spin/health HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let r = read_response_from(&got);
        assert_eq!((r.status, r.text().as_str()), (200, "OK"), "{name}");
        // An absolute-form URI without Host: the URI's authority; spin-full-url says
        // `localhost` (it is built from the Host header).
        let got = raw_exchange(
            probe.addr(),
            b"GET http://a.example/abs HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let r = read_response_from(&got);
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(
            r.json()["headers"]["spin-full-url"],
            "http://localhost/abs",
            "{name}"
        );
        // A header value that is not UTF-8: 500, empty body.
        let got = raw_exchange(
            probe.addr(),
            b"GET /x HTTP/1.1\r\nHost: h\r\nX-Bin: \xff\xfe\r\nConnection: close\r\n\r\n",
        );
        let resp = read_response_bytes(&got);
        assert_eq!((resp.0, resp.1.len()), (500, 0), "{name}");
        // A trap: 500, empty body, and the next request is served.
        let r = probe.get("/trap");
        assert_eq!((r.status, r.body.len()), (500, 0), "{name}");
        assert_eq!(probe.get("/ok").status, 200, "{name}");
    }
}

/// Status and body of a whole `Connection: close` response.
fn read_response_bytes(raw: &[u8]) -> (u16, Vec<u8>) {
    let r = read_response_from(raw);
    (r.status, r.body)
}

fn read_response_from(raw: &[u8]) -> test_support::Response {
    test_support::http::read_streaming(std::io::BufReader::new(raw), false)
        .expect("an HTTP response")
        .into_response()
}

#[test]
fn http2_with_prior_knowledge_on_the_same_port() {
    for runtime in runtimes() {
        let app = probe_app("h2", |m| m);
        let probe = Probe::start(&app, runtime, &[]);
        let addr = probe.addr();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let (status, version, body) = rt.block_on(h2_get(addr, "/h2?x=1"));
        assert_eq!(
            (status, version),
            (200, http::Version::HTTP_2),
            "{}",
            probe.name()
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["path"], "/h2", "{}", probe.name());
        // No Host header in HTTP/2: spin-full-url says localhost.
        assert_eq!(
            v["headers"]["spin-full-url"],
            "http://localhost/h2?x=1",
            "{}",
            probe.name()
        );
        assert_eq!(
            v["headers"]["spin-client-addr"]
                .as_str()
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .map(|a| a.ip().is_loopback()),
            Some(true),
            "{}",
            probe.name()
        );
    }
}

async fn h2_get(addr: SocketAddr, path: &str) -> (u16, http::Version, Vec<u8>) {
    use http_body_util::{BodyExt, Empty};
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}{path}"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.expect("HTTP/2 request");
    let status = resp.status().as_u16();
    let version = resp.version();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, version, body)
}

#[test]
fn header_limits_are_hypers() {
    for runtime in runtimes() {
        let app = probe_app("limits", |m| m);
        // Spin's variable for its --http1-max-buf-size.
        let probe = Probe::start(&app, runtime, &[("SPIN_HTTP1_MAX_BUF_SIZE", "16384")]);
        let name = probe.name();
        let addr = probe.addr();
        let with_header = |len: usize| {
            let head = format!(
                "GET /x HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
                "a".repeat(len)
            );
            read_response_bytes(&raw_exchange(addr, head.as_bytes())).0
        };
        assert_eq!(with_header(8 << 10), 200, "{name}");
        assert_eq!(with_header(20 << 10), 431, "{name}");
        // hyper's limit of 100 headers.
        let many = |n: usize| {
            let mut head = String::from("GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n");
            for i in 0..n {
                head.push_str(&format!("X-H{i}: v\r\n"));
            }
            head.push_str("\r\n");
            read_response_bytes(&raw_exchange(addr, head.as_bytes())).0
        };
        assert_eq!(many(90), 200, "{name}");
        assert_eq!(many(120), 431, "{name}");
    }
}

/// A difference from Spin (host/README.md): the requests hyper answers itself
/// get Glance's JSON error document from glance-host, an empty body from Spin.
#[test]
fn hypers_own_errors_carry_glances_json_body_on_glance_host() {
    for runtime in runtimes() {
        let app = probe_app("hyper-errors", |m| m);
        let probe = Probe::start(&app, runtime, &[]);
        let name = probe.name();
        let addr = probe.addr();
        let mut many = String::from("GET /x HTTP/1.1\r\nHost: h\r\n");
        for i in 0..120 {
            many.push_str(&format!("X-H{i}: v\r\n"));
        }
        many.push_str("\r\n");
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(70_000));
        // A good request first: hyper's answer to the second is still told apart.
        let after_one = format!("GET /x HTTP/1.1\r\nHost: h\r\n\r\n{many}");
        let cases: [(&str, &[u8], u16); 4] = [
            ("malformed request line", b"NOT HTTP\r\n\r\n", 400),
            ("too many header fields", many.as_bytes(), 431),
            ("URI too long", long_uri.as_bytes(), 414),
            ("second request's head too large", after_one.as_bytes(), 431),
        ];
        for (what, raw, status) in cases {
            let answer = raw_exchange(addr, raw);
            // The last response on the connection is hyper's.
            let text = String::from_utf8_lossy(&answer);
            let last = text
                .rfind("HTTP/1.1 ")
                .map(|i| &answer[i..])
                .unwrap_or(&answer);
            let (got, body) = read_response_bytes(last);
            assert_eq!(got, status, "{name}: {what}");
            match runtime {
                test_support::Runtime::GlanceHost => {
                    let doc: serde_json::Value = serde_json::from_slice(&body)
                        .unwrap_or_else(|e| panic!("{name}: {what}: not JSON ({e}): {text}"));
                    assert_eq!(doc["error"]["code"], status, "{name}: {what}");
                    assert!(doc["error"]["title"].is_string(), "{name}: {what}");
                    assert!(doc["error"]["message"].is_string(), "{name}: {what}");
                }
                test_support::Runtime::Spin => assert!(body.is_empty(), "{name}: {what}: {text}"),
            }
        }
    }
}

#[test]
fn http1_max_buf_size_below_hypers_minimum_is_refused() {
    let app = probe_app("bufsize", |m| m);
    let (status, _, stderr) = HostCmd::up(&app)
        .arg("--http1-max-buf-size")
        .arg("100")
        .run();
    assert!(!status.success());
    assert!(stderr.contains("at least 8192"), "{stderr}");
}

/// Writes the request head one byte every `every` until the server closes the
/// connection; returns when it did (or `None` if it had not after `give_up`).
fn trickle(addr: SocketAddr, every: Duration, give_up: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    let head = b"GET /slow HTTP/1.1\r\nHost: h\r\nX-Slow: "
        .iter()
        .chain(std::iter::repeat(&b'a'));
    let mut buf = [0u8; 1024];
    for b in head {
        if started.elapsed() > give_up {
            return None;
        }
        if s.write_all(&[*b]).is_err() {
            return Some(started.elapsed());
        }
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(started.elapsed()),
        }
        std::thread::sleep(every);
    }
    unreachable!()
}

#[test]
fn header_timeout_closes_trickling_connections() {
    let app = probe_app("header-timeout", |m| m);
    let host = HostCmd::up(&app)
        .env("GLANCE_HOST_HEADER_TIMEOUT_MS", "1000")
        .env("GLANCE_HOST_IDLE_TIMEOUT_MS", "60000")
        .start();
    let addr = host.addr;
    let threads: Vec<_> = (0..50)
        .map(|_| {
            std::thread::spawn(move || {
                trickle(addr, Duration::from_millis(100), Duration::from_secs(10))
            })
        })
        .collect();
    // And one that sends nothing at all.
    let silent = std::thread::spawn(move || {
        let started = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
        started.elapsed()
    });
    for t in threads {
        let closed = t.join().unwrap().expect("closed within 10 s");
        assert!(
            closed >= Duration::from_millis(900) && closed < Duration::from_secs(4),
            "closed after {closed:?}"
        );
    }
    let closed = silent.join().unwrap();
    assert!(
        closed >= Duration::from_millis(900) && closed < Duration::from_secs(4),
        "silent connection closed after {closed:?}"
    );
    // The host still serves.
    assert_eq!(host.get("/after").status, 200);
}

#[test]
fn spin_holds_a_trickling_connection() {
    // The difference above: on Spin the same client is still connected when the
    // glance-host timeout would have closed it, and gets its answer.
    if real_spin().is_none() {
        test_support::report("real Spin not found: skipped");
        return;
    }
    let app = probe_app("spin-trickle", |m| m);
    let probe = Probe::start(&app, Runtime::Spin, &[]);
    let mut s = TcpStream::connect(probe.addr()).unwrap();
    let started = Instant::now();
    for b in b"GET /slow HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Slow: " {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    while started.elapsed() < Duration::from_millis(2500) {
        s.write_all(b"a").unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    s.write_all(b"\r\n\r\n").unwrap();
    let r = read_response(s, false).into_response();
    assert_eq!(r.status, 200);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    use std::io::{BufRead, BufReader};
    // The idle timeout (the header timeout set longer).
    let app = probe_app("idle-timeout", |m| m);
    let host = HostCmd::up(&app)
        .env("GLANCE_HOST_HEADER_TIMEOUT_MS", "30000")
        .env("GLANCE_HOST_IDLE_TIMEOUT_MS", "500")
        .start();
    let idle_close = |addr: SocketAddr, path: &str| {
        let s = TcpStream::connect(addr).unwrap();
        let mut r = BufReader::new(s);
        write!(r.get_mut(), "GET {path} HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        let mut resp = read_response(r.get_ref().try_clone().unwrap(), false);
        let mut body = Vec::new();
        resp.body.read_to_end(&mut body).unwrap();
        assert_eq!(resp.status, 200);
        let done = Instant::now();
        r.get_ref()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = String::new();
        let n = r.read_line(&mut rest).unwrap_or(0);
        assert_eq!(n, 0, "nothing more on the connection: {rest}");
        (done.elapsed(), body.len())
    };
    let (after, _) = idle_close(host.addr, "/idle");
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(3),
        "closed {after:?} after the response"
    );
    // A response that takes longer than the idle timeout is not cut: the request is
    // in flight until its body is sent.
    let (after, len) = idle_close(host.addr, "/stream?n=100000&chunk=1000&delay_ms=1500");
    assert_eq!(len, 100000);
    assert!(after < Duration::from_secs(3), "{after:?}");
    drop(host);

    // hyper's header timeout also covers the wait for the next request.
    let host = HostCmd::up(&app)
        .env("GLANCE_HOST_HEADER_TIMEOUT_MS", "700")
        .env("GLANCE_HOST_IDLE_TIMEOUT_MS", "0")
        .start();
    let (after, _) = idle_close(host.addr, "/idle");
    assert!(
        after >= Duration::from_millis(550) && after < Duration::from_secs(3),
        "closed {after:?} after the response"
    );
}

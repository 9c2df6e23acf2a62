//! Outbound HTTP from components, limited by `allowed_outbound_hosts`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use test_support::http::enc;

/// A loopback HTTP server answering every request with `upstream-ok <path>`; counts hits.
fn upstream() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let h = h.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                        break;
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                let body = format!("upstream-ok {path}");
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, hits)
}

#[test]
fn allowed_host_works_and_others_are_denied() {
    let (port, hits) = upstream();
    let (other_port, other_hits) = upstream();
    let app = probe_app("outbound", |m| m);
    let host = HostCmd::up(&app)
        .env("SPIN_VARIABLE_UPSTREAM_PORT", &port.to_string())
        .start();

    // Allowed: the templated entry http://127.0.0.1:{{ upstream_port }}.
    let url = format!("http://127.0.0.1:{port}/hello?x=1");
    let v = host.get_json(&format!("/?fetch={}", enc(&url)));
    assert_eq!(v["fetch"]["status"], 200, "{v}");
    assert_eq!(v["fetch"]["body"], "upstream-ok /hello?x=1");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Another port, another host name for the same address, another scheme: denied.
    for url in [
        format!("http://127.0.0.1:{other_port}/"),
        format!("http://localhost:{port}/"),
        format!("https://127.0.0.1:{port}/"),
    ] {
        let v = host.get_json(&format!("/?fetch={}", enc(&url)));
        let err = v["fetch"]["err"].as_str().unwrap_or_default();
        assert!(err.contains("HttpRequestDenied"), "{url}: {v}");
    }
    assert_eq!(other_hits.load(Ordering::SeqCst), 0);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "denied requests never leave the host"
    );
    assert!(host.wait_stderr("non-allowed host"));

    // A component without allowed_outbound_hosts can reach nothing.
    let v = host.get_json(&format!("/restricted/?fetch={}", enc(&url)));
    assert!(
        v["fetch"]["err"]
            .as_str()
            .unwrap_or_default()
            .contains("HttpRequestDenied"),
        "{v}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn wildcard_and_self_entries() {
    let (port, hits) = upstream();
    let app = probe_app("outbound-wild", |m| {
        m.replace(
            "allowed_outbound_hosts = [\"http://127.0.0.1:{{ upstream_port }}\", \"redis://127.0.0.1:{{ redis_port }}\"]",
            "allowed_outbound_hosts = [\"*://localhost:*\", \"http://self\"]",
        )
    });
    let host = HostCmd::up(&app).start();
    let v = host.get_json(&format!(
        "/?fetch={}",
        enc(&format!("http://localhost:{port}/w"))
    ));
    assert_eq!(v["fetch"]["body"], "upstream-ok /w", "{v}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let v = host.get_json(&format!(
        "/?fetch={}",
        enc(&format!("http://127.0.0.1:{port}/w"))
    ));
    assert!(
        v["fetch"]["err"]
            .as_str()
            .unwrap_or_default()
            .contains("HttpRequestDenied"),
        "{v}"
    );

    // `self`: a request to http://self.alt/... reaches this very app.
    let v = host.get_json(&format!(
        "/?fetch={}",
        enc("http://self.alt/v2/images/x?var=greeting")
    ));
    assert_eq!(v["fetch"]["status"], 200, "{v}");
    let inner: serde_json::Value =
        serde_json::from_str(v["fetch"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["headers"]["spin-matched-route"], "/v2/images/...");
}

#[test]
fn redis_publish_reaches_a_subscriber() {
    use std::time::Duration;
    use test_support::redis::{RedisServer, Subscriber};
    let redis = RedisServer::start();
    let url = redis.url();
    for runtime in runtimes() {
        let app = probe_app("redis", |m| m);
        let port = redis.port().to_string();
        let probe = Probe::start(&app, runtime, &[("SPIN_VARIABLE_REDIS_PORT", &port)]);
        let name = probe.name();
        let mut sub = Subscriber::new(&redis, "glance-test");
        let v = probe.get_json(&format!(
            "/?redis={}&publish=glance-test&message={}",
            enc(&url),
            enc(&format!("hello from {name}"))
        ));
        assert_eq!(
            (v["redis"].as_str(), v["publish"].as_str()),
            (Some("ok"), Some("ok")),
            "{name}: {v}"
        );
        let got = sub.next_message(Duration::from_secs(5)).expect("a message");
        assert_eq!(got, format!("hello from {name}"));

        // set, get, del; the value is really in Redis.
        let key = format!("k-{name}");
        let v = probe.get_json(&format!(
            "/?redis={}&rset={key}&rvalue=v1&rget={key}",
            enc(&url)
        ));
        assert_eq!(
            (v["rset"].as_str(), v["rget"].as_str()),
            (Some("ok"), Some("v1")),
            "{name}: {v}"
        );
        assert_eq!(redis.command(&["GET", &key]).unwrap(), "v1");
        let v = probe.get_json(&format!("/?redis={}&rdel={key},absent", enc(&url)));
        assert_eq!(v["rdel"], 1, "{name}: {v}");
        let v = probe.get_json(&format!("/?redis={}&rget={key}", enc(&url)));
        assert!(v["rget"].is_null(), "{name}: {v}");

        // Not in allowed_outbound_hosts: another port, or a component allowed nothing.
        let v = probe.get_json(&format!("/?redis={}", enc("redis://127.0.0.1:1")));
        assert_eq!(v["redis"], "Error::InvalidAddress", "{name}: {v}");
        let v = probe.get_json(&format!("/restricted/?redis={}", enc(&url)));
        assert_eq!(v["redis"], "Error::InvalidAddress", "{name}: {v}");
    }
}

//! Routing and the `spin-*` request headers, checked over HTTP against the probe.

mod common;

use common::*;
use test_support::http::read_response;

/// The route that served `path`, as the probe saw it in `spin-matched-route`.
fn matched(host: &Host, path: &str) -> String {
    let v = host.get_json(path);
    v["headers"]["spin-matched-route"]
        .as_str()
        .unwrap_or_else(|| panic!("no spin-matched-route for {path}: {v}"))
        .to_string()
}

fn check_precedence(host: &Host) {
    let cases = [
        ("/v2/images", "/v2/images/..."),
        ("/v2/images/", "/v2/images/..."),
        ("/v2/images/abc", "/v2/images/..."),
        ("/v2/images/abc/tags/t1", "/v2/images/..."),
        ("/v2/images/abc/members", "/v2/images/:id/members/..."),
        ("/v2/images/abc/members/m1", "/v2/images/:id/members/..."),
        (
            "/v2/images/special/members/m1",
            "/v2/images/special/members/...",
        ),
        ("/v2/images/special/tags", "/v2/images/..."),
        ("/exact", "/exact"),
        ("/exact/", "/exact"),
        ("/exact/more", "/exact/..."),
        ("/users/7/items/x", "/users/:user_id/items/:item"),
        ("/users/7/items", "/..."),
        ("/", "/..."),
        ("/versions", "/..."),
        ("/v2/images?x=/exact", "/v2/images/..."),
    ];
    for (path, route) in cases {
        assert_eq!(matched(host, path), route, "route for {path}");
    }
}

#[test]
fn fixed_beats_param_beats_wildcard() {
    let app = probe_app("precedence", |m| m);
    let host = HostCmd::up(&app).start();
    check_precedence(&host);
}

#[test]
fn precedence_does_not_depend_on_manifest_order() {
    // Move every [[trigger.http]] block into the reverse order.
    let app = probe_app("precedence-reversed", |m| {
        let (head, rest) = m.split_once("[[trigger.http]]").unwrap();
        let (triggers, components) = rest.split_once("# Granted everything").unwrap();
        let mut blocks: Vec<&str> = triggers.split("[[trigger.http]]").collect();
        blocks.reverse();
        let reversed: String = blocks
            .iter()
            .map(|b| format!("[[trigger.http]]{}\n", b.trim_end()))
            .collect();
        format!("{head}{reversed}\n# Granted everything{components}")
    });
    let manifest = std::fs::read_to_string(app.join("spin.toml")).unwrap();
    assert!(
        manifest.find("route = \"/...\"").unwrap()
            < manifest.find("route = \"/v2/images/...\"").unwrap(),
        "the catch-all now comes first"
    );
    let host = HostCmd::up(&app).start();
    check_precedence(&host);
}

#[test]
fn spin_headers_have_spin_values() {
    let app = probe_app("headers", |m| m);
    let host = HostCmd::up(&app).start();

    // Connect ourselves to know the client address the host should report.
    let stream = std::net::TcpStream::connect(host.addr).unwrap();
    let local = stream.local_addr().unwrap();
    use std::io::{Read, Write};
    let mut s = stream;
    let path = "/v2/images/abc/members/m1/?limit=1&x=%2F";
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nspin-full-url: http://evil/\r\nspin-path-match-id: forged\r\nConnection: close\r\n\r\n",
        host.addr
    )
    .unwrap();
    let mut resp = read_response(s, false);
    let mut body = Vec::new();
    resp.body.read_to_end(&mut body).unwrap();
    assert_eq!(resp.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let h = &v["headers"];
    let expect = |name: &str, value: &str| {
        assert_eq!(h[name].as_str(), Some(value), "{name} in {h}");
    };
    // A client's `spin-*` header stays, before the host's (tests/http.rs has them all).
    assert_eq!(
        h["spin-full-url"],
        serde_json::json!(["http://evil/", format!("http://{}{path}", host.addr)]),
        "{h}"
    );
    expect("spin-path-info", "/m1/");
    expect("spin-matched-route", "/v2/images/:id/members/...");
    expect("spin-raw-component-route", "/v2/images/:id/members/...");
    expect("spin-component-route", "/v2/images/:id/members");
    expect("spin-base-path", "/");
    expect("spin-client-addr", &local.to_string());
    assert_eq!(
        h["spin-path-match-id"],
        serde_json::json!(["forged", "abc"])
    );
    assert_eq!(v["path"], "/v2/images/abc/members/m1/");
    assert_eq!(v["query"], "limit=1&x=%2F");

    // Underscores in parameter names become dashes; exact routes have no path info.
    let v = host.get_json("/users/42/items/widget");
    let h = &v["headers"];
    assert_eq!(h["spin-path-match-user-id"], "42", "{h}");
    assert_eq!(h["spin-path-match-item"], "widget", "{h}");
    assert_eq!(h["spin-path-info"], "", "{h}");
    assert_eq!(h["spin-component-route"], "/users/:user_id/items/:item");

    // The catch-all: empty component route, path info is the whole path.
    let v = host.get_json("/some/where");
    let h = &v["headers"];
    assert_eq!(h["spin-matched-route"], "/...");
    assert_eq!(h["spin-raw-component-route"], "/...");
    assert_eq!(h["spin-component-route"], "");
    assert_eq!(h["spin-path-info"], "/some/where");

    // A wildcard matching its own prefix: empty path info.
    let v = host.get_json("/v2/images");
    assert_eq!(v["headers"]["spin-path-info"], "");
    assert_eq!(v["headers"]["spin-component-route"], "/v2/images");
}

#[test]
fn unknown_route_is_404_and_well_known_paths_answer() {
    let app = probe_app("notfound", |m| {
        m.replace("route = \"/...\"", "route = \"/probe/...\"")
    });
    let host = HostCmd::up(&app).start();
    for path in ["/", "/nope", "/v2", "/exactly", "/users/1/items"] {
        let r = host.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.body.is_empty(), "{path}: 404 has an empty body");
    }
    assert_eq!(host.get("/probe/x").status, 200);

    let r = host.get("/.well-known/spin/health");
    assert_eq!((r.status, r.text().as_str()), (200, "OK"));
    let info = host.get_json("/.well-known/spin/info");
    assert_eq!(info["name"], "glance-host-probe");
    assert_eq!(info["version"], "0.1.0");
    assert_eq!(host.get("/.well-known/spin/other").status, 404);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    use std::io::{BufRead, BufReader, Read, Write};
    let app = probe_app("keepalive", |m| m);
    let host = HostCmd::up(&app).start();
    let stream = std::net::TcpStream::connect(host.addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for i in 0..3 {
        write!(writer, "GET /k{i} HTTP/1.1\r\nHost: {}\r\n\r\n", host.addr).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut len = None;
        let mut chunked = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let l = line.trim().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length:") {
                len = Some(v.trim().parse::<usize>().unwrap());
            }
            if l == "transfer-encoding: chunked" {
                chunked = true;
            }
        }
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0; len.expect("length or chunked")];
            reader.read_exact(&mut body).unwrap();
        }
    }
}

//! Self-test of the end-to-end harness: the real Keystone (test-support/src/keystone.rs,
//! tests/keystone/) and the counting proxy (test-support/src/proxy.rs). No Glance here.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::http::Response;
use test_support::keystone::{Keystone, PASSWORD};
use test_support::proxy::CountingProxy;
use test_support::Client;

/// GET /v3/auth/tokens through `client` (e.g. the proxy).
fn validate(client: &Client, auth: &str, subject: &str) -> Response {
    client.send(
        "GET",
        "/v3/auth/tokens",
        &[("X-Auth-Token", auth), ("X-Subject-Token", subject)],
        test_support::http::Payload::None,
    )
}

fn role_names(body: &Value) -> Vec<String> {
    let mut roles: Vec<String> = body["token"]["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("no token.roles in {body}"))
        .iter()
        .map(|r| r["name"].as_str().expect("role name").to_string())
        .collect();
    roles.sort();
    roles
}

#[test]
fn keystone_tokens_validation_revocation_through_proxy() {
    let t = Instant::now();
    let ks = Keystone::start();
    eprintln!("keystone started in {:.1?} at {}", t.elapsed(), ks.url);
    assert!(ks.url.starts_with("http://127.0.0.1:") && !ks.url.ends_with("/v3"));

    let alpha = ks.project_id("alpha");
    let beta = ks.project_id("beta");
    assert_eq!(alpha.len(), 32, "project id {alpha}");
    assert_ne!(alpha, beta);
    for p in ["admin", "service"] {
        assert_eq!(ks.project_id(p).len(), 32);
    }

    let t = Instant::now();
    let glance = ks.token("glance", PASSWORD, "service");
    let alpha_member = ks.token("alpha-member", PASSWORD, "alpha");
    let beta_reader = ks.token("beta-reader", PASSWORD, "beta");
    let admin = ks.token("admin", PASSWORD, "admin");
    eprintln!("4 tokens in {:.1?}", t.elapsed());
    // The other fixture users exist too; a wrong password does not authenticate.
    ks.token("alpha-reader", PASSWORD, "alpha");
    ks.token("beta-member", PASSWORD, "beta");
    assert_eq!(ks.issue("alpha-member", "wrong", "alpha").status, 401);
    assert_eq!(
        ks.issue("alpha-member", PASSWORD, "beta").status,
        401,
        "alpha-member has no role on beta"
    );

    let proxy = CountingProxy::start(ks.addr);
    assert!(proxy.url.starts_with("http://127.0.0.1:"));
    let via = Client::new(proxy.addr);
    assert_eq!(proxy.requests(), 0);

    // The service user validates other users' tokens.
    let r = validate(&via, &glance, &alpha_member);
    let body = r.expect_json(200);
    assert_eq!(body["token"]["project"]["id"], alpha.as_str(), "{body}");
    assert_eq!(body["token"]["project"]["name"], "alpha");
    assert_eq!(body["token"]["user"]["name"], "alpha-member");
    assert!(body["token"]["expires_at"].is_string());
    let roles = role_names(&body);
    eprintln!("alpha-member token roles: {roles:?}");
    assert_eq!(roles, ["member", "reader"], "member implies reader");

    let body = validate(&via, &glance, &beta_reader).expect_json(200);
    assert_eq!(body["token"]["project"]["id"], beta.as_str());
    let roles = role_names(&body);
    eprintln!("beta-reader token roles: {roles:?}");
    assert_eq!(roles, ["reader"]);

    let body = validate(&via, &glance, &admin).expect_json(200);
    let roles = role_names(&body);
    eprintln!("admin token roles: {roles:?}");
    assert_eq!(roles, ["admin", "manager", "member", "reader"]);

    // glance holds only the service role, and that is what lets it validate:
    // a reader may not validate someone else's token.
    let body = validate(&via, &glance, &glance).expect_json(200);
    let roles = role_names(&body);
    eprintln!("glance token roles: {roles:?}");
    assert_eq!(roles, ["service"]);
    assert_eq!(validate(&via, &beta_reader, &alpha_member).status, 403);
    assert_eq!(validate(&via, &glance, "not-a-token").status, 404);

    assert_eq!(proxy.requests(), 6, "{:?}", proxy.request_lines());
    assert!(proxy
        .request_lines()
        .iter()
        .all(|l| l == "GET /v3/auth/tokens HTTP/1.1"));
    proxy.reset();
    assert_eq!(proxy.requests(), 0);

    // Revocation.
    ks.revoke(&alpha_member);
    assert_eq!(validate(&via, &glance, &alpha_member).status, 404);
    assert_eq!(
        validate(&via, &glance, &beta_reader).status,
        200,
        "only that token is revoked"
    );
    assert_eq!(proxy.requests(), 2, "revoke went to Keystone directly");
    // A new token for the same user is valid.
    let again = ks.token("alpha-member", PASSWORD, "alpha");
    assert_eq!(ks.validate(&glance, &again).status, 200);
}

#[test]
fn keystone_tokens_expire() {
    let ks = Keystone::start_with_expiration(3);
    assert_eq!(ks.expiration, 3);
    let glance = ks.token("glance", PASSWORD, "service");
    let member = ks.token("alpha-member", PASSWORD, "alpha");
    let t = Instant::now();
    let r = ks.validate(&glance, &member);
    assert_eq!(r.status, 200, "{}", r.text());
    let expires = r.json()["token"]["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    eprintln!("short-lived token expires_at {expires}");
    std::thread::sleep(Duration::from_secs(5).saturating_sub(t.elapsed()));
    let fresh_glance = ks.token("glance", PASSWORD, "service");
    let r = ks.validate(&fresh_glance, &member);
    assert_eq!(
        r.status,
        404,
        "expired token must not validate: {}",
        r.text()
    );
}

/// A keep-alive upstream: answers every request (bodies by Content-Length or
/// chunked) with `200 ok` on the same connection.
fn keep_alive_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let c = c.unwrap();
            std::thread::spawn(move || {
                let mut w = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let (mut len, mut chunked) = (0usize, false);
                    loop {
                        let mut h = String::new();
                        r.read_line(&mut h).unwrap();
                        let h = h.trim().to_ascii_lowercase();
                        if h.is_empty() {
                            break;
                        }
                        if let Some(v) = h.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        chunked |= h == "transfer-encoding: chunked";
                    }
                    if chunked {
                        loop {
                            let mut s = String::new();
                            r.read_line(&mut s).unwrap();
                            let n = usize::from_str_radix(s.trim(), 16).unwrap();
                            let mut b = vec![0; n + 2]; // data and CRLF (no trailers)
                            r.read_exact(&mut b).unwrap();
                            if n == 0 {
                                break;
                            }
                        }
                    } else {
                        let mut b = vec![0; len];
                        r.read_exact(&mut b).unwrap();
                    }
                    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .unwrap();
                }
            });
        }
    });
    addr
}

#[test]
fn proxy_counts_keep_alive_and_pipelined_requests() {
    let proxy = CountingProxy::start(keep_alive_upstream());
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Three pipelined requests on one connection; the bodies contain text that
    // looks like request lines and must not be counted.
    let body = b"GET /fake HTTP/1.1\r\n\r\n";
    let mut reqs = format!(
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    reqs.extend_from_slice(body);
    reqs.extend_from_slice(b"PUT /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    reqs.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    reqs.extend_from_slice(body);
    reqs.extend_from_slice(b"\r\n0\r\n\r\n");
    reqs.extend_from_slice(b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    s.write_all(&reqs).unwrap();
    let expect = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".repeat(3);
    let mut got = vec![0; expect.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, expect);
    assert_eq!(proxy.requests(), 3, "{:?}", proxy.request_lines());
    assert_eq!(
        proxy.request_lines(),
        ["POST /a HTTP/1.1", "PUT /b HTTP/1.1", "GET /c HTTP/1.1"]
    );
    // One more on the same connection after a pause.
    s.write_all(b"DELETE /d HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = vec![0; expect.len() / 3];
    s.read_exact(&mut got).unwrap();
    assert_eq!(proxy.requests(), 4);
    proxy.reset();
    assert_eq!(proxy.requests(), 0);
    // And a separate connection.
    let r = Client::new(proxy.addr).get("/e");
    assert_eq!(r.status, 200);
    assert_eq!(proxy.request_lines(), ["GET /e HTTP/1.1"]);
}

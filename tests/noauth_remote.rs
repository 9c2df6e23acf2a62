//! noauth answers loopback clients only (`noauth_allow_remote=false`), and a
//! remote client cannot pass for one by sending `spin-client-addr` itself.
//!
//! The components judge the client by the `spin-client-addr` header the
//! runtime sets. Spin keeps a client's header of that name and appends its
//! own after it; glance-host today replaces it (it may come to append, as
//! Spin does). The adapter trusts only the last value, so both must refuse a
//! remote client whatever it sends.
//!
//! Each test makes two network namespaces of its own joined by a veth pair:
//! the service runs in `glance-<pid>-<n>` listening on 192.0.2.1, the remote
//! client in `glance-<pid>-<n+1>` with 192.0.2.2 as its only address, so its
//! packets cross the veth and arrive from a non-loopback address. curl (a real
//! client) and the tests' own HTTP client (on a thread inside the client's
//! namespace) send the requests; a loopback client inside the service's
//! namespace (curl bound to 127.0.0.1) is the sanity check that the service
//! answers at all. The namespaces are deleted on drop, also when a test
//! panics. Making namespaces needs root: without it the tests fail saying so.
//!
//! Runs on either runtime: `GLANCE_RUNTIME=spin cargo test --release --test
//! noauth_remote`.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use serde_json::json;
use test_support::{Client, Netns, Response, Service};

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// The service in a namespace of its own and a remote client's namespace.
/// Fields drop in order: the service stops before its namespace goes.
struct Remote {
    svc: Service,
    server: Netns,
    client: Netns,
}

impl Remote {
    fn start() -> Remote {
        let server = Netns::new();
        let client = Netns::new();
        server.veth(
            &format!("{SERVER_IP}/24"),
            &client,
            &format!("{CLIENT_IP}/24"),
        );
        let svc = Service::builder()
            .netns(&server)
            .listen_ip(IpAddr::V4(SERVER_IP))
            .start();
        assert!(!svc.addr.ip().is_loopback(), "listens on {}", svc.addr);
        Remote {
            svc,
            server,
            client,
        }
    }

    /// `curl` from the remote client's namespace, from 192.0.2.2.
    fn remote(&self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Response {
        curl(
            &self.client,
            CLIENT_IP,
            method,
            &self.url(path),
            headers,
            body,
        )
    }

    /// `curl` bound to 127.0.0.1 inside the service's own namespace.
    fn local(&self, method: &str, path: &str, headers: &[&str], body: Option<&str>) -> Response {
        curl(
            &self.server,
            Ipv4Addr::LOCALHOST,
            method,
            &self.url(path),
            headers,
            body,
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.svc.base)
    }
}

/// Runs curl in `ns` with `source` as the local address; returns the response.
fn curl(
    ns: &Netns,
    source: Ipv4Addr,
    method: &str,
    url: &str,
    headers: &[&str],
    body: Option<&str>,
) -> Response {
    let mut cmd = ns.command("curl");
    cmd.args(["-sS", "-i", "--max-time", "60", "-X", method])
        .arg("--interface")
        .arg(source.to_string());
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
    }
    cmd.arg(url);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("run curl: {e} (is curl installed?)"));
    assert!(
        out.status.success(),
        "curl {method} {url} from {source} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    parse(&out.stdout)
}

/// `curl -i` output: status line, headers, blank line, body.
fn parse(out: &[u8]) -> Response {
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(out)));
    let head = String::from_utf8_lossy(&out[..split]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: out[split + 4..].to_vec(),
    }
}

/// Asserts a 401 with Glance's JSON error saying why.
#[track_caller]
fn assert_refused(r: &Response, what: &str) {
    assert_eq!(r.status, 401, "{what}: {} {}", r.status, r.text());
    let message = r.expect_error(401);
    assert!(message.contains("loopback"), "{what}: message {message:?}");
}

/// Forged `spin-client-addr` headers a remote client might send (curl -H).
const FORGED: &[(&str, &[&str])] = &[
    ("no spin-client-addr", &[]),
    (
        "one forged spin-client-addr",
        &["spin-client-addr: 127.0.0.1:1"],
    ),
    (
        "two forged spin-client-addr",
        &[
            "spin-client-addr: 127.0.0.1:1",
            "spin-client-addr: 127.0.0.1:2",
        ],
    ),
    (
        "forged IPv4 and IPv6 loopback",
        &["spin-client-addr: 127.0.0.1:1", "spin-client-addr: [::1]:1"],
    ),
    ("mixed-case name", &["Spin-Client-Addr: 127.0.0.1:1"]),
    (
        "comma-separated list",
        &["spin-client-addr: 127.0.0.1:1, 127.0.0.1:2"],
    ),
];

#[test]
fn a_remote_client_gets_401_with_or_without_a_forged_client_addr() {
    let net = Remote::start();
    for (what, headers) in FORGED {
        let r = net.remote("GET", "/v2/images", headers, None);
        assert_refused(&r, &format!("GET /v2/images, {what}"));
    }

    // The write that the forged header once let through: a public image as
    // admin, with every identity header a remote client can claim.
    let name = format!("forged-{}", test_support::uuid_like());
    let doc =
        json!({"name": name, "visibility": "public", "disk_format": "raw", "container_format": "bare"})
            .to_string();
    let r = net.remote(
        "POST",
        "/v2/images",
        &[
            "spin-client-addr: 127.0.0.1:1",
            "Content-Type: application/json",
            "X-Project-Id: admin",
            "X-User-Id: admin",
            "X-Roles: admin,member,reader",
        ],
        Some(&doc),
    );
    assert_refused(&r, "POST /v2/images with a forged spin-client-addr");

    // The tests' own client, whose bytes are exactly what it is told: one
    // request with the header twice, from a thread in the client namespace.
    let addr = net.svc.addr;
    let r = net.client.run(|| {
        Client::new(addr)
            .with_header("spin-client-addr", "127.0.0.1:1")
            .with_header("spin-client-addr", "127.0.0.1:3000")
            .get("/v2/images")
    });
    assert_refused(&r, "test-support client, two forged spin-client-addr");

    // Sanity: the service answers a loopback client in its namespace, and
    // the forged create made nothing.
    let r = net.local("GET", &format!("/v2/images?name={name}"), &[], None);
    let list = r.expect_json(200);
    assert_eq!(
        list["images"],
        json!([]),
        "the refused create made an image"
    );
}

#[test]
fn a_loopback_client_in_the_namespace_gets_200() {
    let net = Remote::start();
    let r = net.local("GET", "/v2/images", &[], None);
    assert!(r.expect_json(200)["images"].is_array(), "{}", r.text());

    // The runtime's own value wins for a local client too: a loopback client
    // sending a remote-looking spin-client-addr is still loopback.
    let r = net.local(
        "GET",
        "/v2/images",
        &["spin-client-addr: 192.0.2.2:1"],
        None,
    );
    r.expect_json(200);

    let r = net.local(
        "POST",
        "/v2/images",
        &["Content-Type: application/json"],
        Some(r#"{"name": "from-loopback", "disk_format": "raw", "container_format": "bare"}"#),
    );
    assert_eq!(r.expect_json(201)["name"], "from-loopback");

    // A client in the service's namespace that does not bind to 127.0.0.1
    // comes from the veth address: not loopback either.
    let r = curl(
        &net.server,
        SERVER_IP,
        "GET",
        &net.url("/v2/images"),
        &[],
        None,
    );
    assert_refused(&r, "GET /v2/images from 192.0.2.1");
}

/// The namespaces go when their guard drops, also while a test panics.
#[test]
fn namespaces_are_deleted_when_a_test_panics() {
    let names = std::panic::catch_unwind(|| {
        let a = Netns::new();
        let b = Netns::new();
        a.veth("198.51.100.1/24", &b, "198.51.100.2/24");
        let names = (a.name().to_string(), b.name().to_string());
        assert!(listed(&names.0) && listed(&names.1), "made {names:?}");
        std::panic::panic_any(names)
    })
    .expect_err("the closure panics")
    .downcast::<(String, String)>()
    .expect("the names");
    assert!(!listed(&names.0), "{} left behind", names.0);
    assert!(!listed(&names.1), "{} left behind", names.1);
}

fn listed(name: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

//! End-to-end: web-download reaches only the operator's `download_hosts` —
//! not the S3 endpoint or Keystone (which the component's manifest grant also
//! covers), not loopback, link-local (the metadata service) or private
//! addresses, and not through a redirect. Loopback servers count every
//! request they get: the refused ones get none.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::{Client, Service};

/// A loopback server that counts requests and answers each with `answer`.
struct Counting {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Counting {
    fn start(answer: String) -> Counting {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = hits.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                // The request head, up to its blank line.
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let mut stream = stream;
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        Counting { port, hits }
    }

    /// Answers 200 with a small body.
    fn ok() -> Counting {
        Counting::start(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello".into(),
        )
    }

    /// Answers with a redirect to `to`.
    fn redirect(to: &str) -> Counting {
        Counting::start(format!(
            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

fn image(c: &Client) -> String {
    c.create_image(&json!({"name": "w", "disk_format": "raw", "container_format": "bare"}))["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn web_download(c: &Client, id: &str, uri: &str) -> test_support::Response {
    c.post_json(
        &format!("/v2/images/{id}/import"),
        &json!({"method": {"name": "web-download", "uri": uri}}),
    )
}

fn finished_task(c: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = c.get(&format!("/v2/images/{id}/tasks")).expect_json(200);
        if let Some(t) = tasks["tasks"]
            .as_array()
            .and_then(|a| a.last())
            .filter(|t| t["status"] == "success" || t["status"] == "failure")
        {
            return t.clone();
        }
        assert!(Instant::now() < deadline, "the import never ended: {tasks}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn web_download_reaches_only_the_operators_hosts() {
    let s3 = Counting::ok();
    let keystone = Counting::ok();
    let elsewhere = Counting::ok();
    let redirector = Counting::redirect(&elsewhere.url("/secret"));
    let svc = Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_DOWNLOAD_HOSTS", &redirector.url("")),
            ("SPIN_VARIABLE_S3_ENDPOINT", &s3.url("")),
            ("SPIN_VARIABLE_KEYSTONE_URL", &keystone.url("")),
        ])
        .start();
    let c = svc.client();
    let refused = [
        s3.url("/glance-images/some-object"),
        keystone.url("/v3/auth/tokens"),
        elsewhere.url("/x.img"),
        format!("http://[::1]:{}/x.img", elsewhere.port),
        format!("http://localhost:{}/x.img", elsewhere.port),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/x.img".to_string(),
        format!("http://user@127.0.0.1:{}/x.img", redirector.port),
    ];
    for uri in &refused {
        let id = image(&c);
        let msg = web_download(&c, &id, uri).expect_error(400);
        assert_eq!(
            msg,
            format!("URI for web-download does not pass filtering: {uri}")
        );
        let img = c.get(&format!("/v2/images/{id}")).expect_json(200);
        assert_eq!(img["status"], "queued", "{uri}");
    }
    // An allowed host that redirects to one that is not: accepted, then the
    // redirect is not followed and the task says so without transport detail.
    let id = image(&c);
    assert_eq!(
        web_download(&c, &id, &redirector.url("/image.raw")).status,
        202
    );
    let task = finished_task(&c, &id);
    assert_eq!(task["status"], "failure", "{task}");
    let message = task["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("is not an allowed download host"),
        "{message}"
    );
    assert_eq!(redirector.hits(), 1, "the allowed host was asked once");
    assert_eq!(
        (s3.hits(), keystone.hits(), elsewhere.hits()),
        (0, 0, 0),
        "refused hosts got no request"
    );
}

#[test]
fn a_wildcard_never_reaches_loopback_link_local_or_private_addresses() {
    let target = Counting::ok();
    let svc = Service::builder()
        .env("SPIN_VARIABLE_DOWNLOAD_HOSTS", "http://*:*")
        .start();
    let c = svc.client();
    for uri in [
        target.url("/x.img"),
        format!("http://[::1]:{}/x.img", target.port),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://192.168.1.1/x.img".to_string(),
        "http://0.0.0.0/x.img".to_string(),
    ] {
        let id = image(&c);
        web_download(&c, &id, &uri).expect_error(400);
    }
    assert_eq!(target.hits(), 0);
}

#[test]
fn a_failed_fetch_says_could_not_fetch_without_connection_details() {
    // Allowed, but nothing listens there.
    let port = test_support::free_port();
    let svc = Service::builder()
        .env(
            "SPIN_VARIABLE_DOWNLOAD_HOSTS",
            &format!("http://127.0.0.1:{port}"),
        )
        .start();
    let c = svc.client();
    let id = image(&c);
    let uri = format!("http://127.0.0.1:{port}/x.img");
    assert_eq!(web_download(&c, &id, &uri).status, 202);
    let task = finished_task(&c, &id);
    let message = task["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("could not fetch {uri}")),
        "{message}"
    );
    for detail in ["refused", "Connection", "os error", "StreamError", "tcp"] {
        assert!(
            !message.contains(detail),
            "transport detail leaked: {message}"
        );
    }
}

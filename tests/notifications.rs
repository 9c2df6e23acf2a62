//! End-to-end: Glance's notifications published to a real `redis-server`
//! (Debian's, started by the test) over the runtime's outbound Redis, after
//! each response. A subscriber on the channel sees create → update → upload
//! (prepare, upload, activate) → member create/update → delete, each in
//! oslo.messaging's notification shape with Glance's payload fields, with
//! timestamps in request order.

use std::time::Duration;

use serde_json::{json, Value};
use test_support::data::{hashes, noise_vec};
use test_support::http::Payload;
use test_support::redis::{RedisServer, Subscriber};
use test_support::{new_project, report, Service};

const CHANNEL: &str = "glance.notifications";

/// The next notification on the channel, parsed.
fn next(sub: &mut Subscriber) -> Value {
    let msg = sub
        .next_message(Duration::from_secs(20))
        .expect("a notification within 20 s");
    serde_json::from_str(&msg).unwrap_or_else(|e| panic!("not JSON ({e}): {msg}"))
}

#[test]
fn lifecycle_events_reach_a_redis_subscriber_in_order() {
    let redis = RedisServer::start();
    let mut sub = Subscriber::new(&redis, CHANNEL);
    let url = redis.url();
    let svc = Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_NOTIFICATION_DRIVER", "redis"),
            ("SPIN_VARIABLE_NOTIFICATION_REDIS_URL", &url),
            ("SPIN_VARIABLE_NOTIFICATION_REDIS_CHANNEL", CHANNEL),
        ])
        .start();
    let owner_project = new_project();
    let consumer_project = new_project();
    let owner = svc.project(&owner_project, "member");
    let consumer = svc.project(&consumer_project, "member");

    // Events are published after each response, so one request's events come
    // in order, but a next request's may overtake them: like a consumer that
    // orders by `timestamp`, the test reads each request's events before the
    // next request and checks the timestamps rise across all of them.
    let mut got: Vec<Value> = Vec::new();
    let mut expect = |sub: &mut Subscriber, types: &[&str]| {
        for t in types {
            let n = next(sub);
            assert_eq!(n["event_type"], *t, "{n}");
            got.push(n);
        }
    };
    let img = owner.create_image(&json!({
        "name": "evented", "disk_format": "raw", "container_format": "bare"
    }));
    expect(&mut sub, &["image.create"]);
    let id = img["id"].as_str().expect("id").to_string();
    let image_path = format!("/v2/images/{id}");
    owner
        .patch(
            &image_path,
            &json!([{"op": "add", "path": "/purpose", "value": "events"}]),
        )
        .expect_json(200);
    expect(&mut sub, &["image.update"]);
    let data = noise_vec(61, 3_000_000);
    let r = owner.send(
        "PUT",
        &format!("{image_path}/file"),
        &[("Content-Type", "application/octet-stream")],
        Payload::Bytes(&data),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    expect(
        &mut sub,
        &["image.prepare", "image.upload", "image.activate"],
    );
    let members = format!("{image_path}/members");
    owner
        .post_json(&members, &json!({"member": consumer_project}))
        .expect_json(200);
    expect(&mut sub, &["image.member.create"]);
    let accept = json!({"status": "accepted"}).to_string();
    let r = consumer.send(
        "PUT",
        &format!("{members}/{consumer_project}"),
        &[("Content-Type", "application/json")],
        Payload::Bytes(accept.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    expect(&mut sub, &["image.member.update"]);
    assert_eq!(owner.delete(&image_path).status, 204);
    expect(&mut sub, &["image.delete"]);
    let stamps: Vec<&str> = got
        .iter()
        .map(|n| n["timestamp"].as_str().unwrap_or(""))
        .collect();
    assert!(
        stamps.windows(2).all(|w| w[0] <= w[1]),
        "timestamps in request order: {stamps:?}"
    );

    let (md5, sha512) = hashes(&data);
    for n in &got {
        assert_eq!(n["priority"], "INFO", "{n}");
        assert_eq!(n["publisher_id"], "image.localhost", "{n}");
        assert!(
            n["message_id"].as_str().is_some_and(|m| m.len() == 36),
            "{n}"
        );
        assert!(n["timestamp"].is_string(), "{n}");
    }
    let payload = |i: usize| &got[i]["payload"];
    // Image events carry the image as Glance formats it.
    assert_eq!(payload(0)["id"], id.as_str());
    assert_eq!(payload(0)["status"], "queued");
    assert_eq!(payload(0)["owner"], owner_project.as_str());
    assert_eq!(payload(0)["is_public"], false);
    assert_eq!(payload(1)["properties"]["purpose"], "events");
    assert_eq!(payload(2)["status"], "saving");
    assert_eq!(payload(4)["status"], "active");
    assert_eq!(payload(4)["checksum"], md5.as_str());
    assert_eq!(payload(4)["os_hash_value"], sha512.as_str());
    assert_eq!(payload(4)["size"], data.len());
    // Member events carry the membership.
    assert_eq!(payload(5)["image_id"], id.as_str());
    assert_eq!(payload(5)["member_id"], consumer_project.as_str());
    assert_eq!(payload(5)["status"], "pending");
    assert_eq!(payload(6)["status"], "accepted");
    // The delete says the image is gone.
    assert_eq!(payload(7)["id"], id.as_str());
    assert_eq!(payload(7)["deleted"], true);
    assert_eq!(payload(7)["status"], "deleted");
    report(&format!(
        "{} notifications on {CHANNEL} at {url} ({} runtime)",
        got.len(),
        svc.runtime().name()
    ));
}

#[test]
fn a_broken_redis_neither_fails_nor_holds_up_requests() {
    // A "Redis" that closes every connection at once: publishing fails after
    // the response, and the failure is logged, never answered. (The port
    // stays ours: a port merely left free could be taken by another test's
    // server, which would hold the connection open.)
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let svc = Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_NOTIFICATION_DRIVER", "redis"),
            (
                "SPIN_VARIABLE_NOTIFICATION_REDIS_URL",
                &format!("redis://127.0.0.1:{port}"),
            ),
        ])
        .start();
    let c = svc.project(&new_project(), "member");
    for i in 0..3 {
        let img = c.create_image(&json!({"name": format!("quiet-{i}")}));
        assert_eq!(img["status"], "queued");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !svc.stderr().contains("publishing image.create to Redis") {
        assert!(
            std::time::Instant::now() < deadline,
            "the failed publish is logged: {}",
            svc.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

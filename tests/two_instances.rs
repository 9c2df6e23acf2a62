//! Past one machine: two real-Spin instances serving one deployment. Image
//! data and the token cache live in Redis (Spin's `type = "redis"`
//! key-value store) or the data in S3 (moto), and the metadata in one SQLite
//! database file both instances open. Requests alternate between the
//! instances: what one does, the other sees.
//!
//! Real Spin only (glance-host offers `spin` key-value stores alone); without
//! Spin (`$SPIN_BIN`, else `../shared/spin/spin`) the tests say so and pass.

use std::path::PathBuf;

use serde_json::json;
use test_support::data::{hashes, noise_vec};
use test_support::http::Payload;
use test_support::keystone::Keystone;
use test_support::proxy::CountingProxy;
use test_support::python::S3Server;
use test_support::redis::RedisServer;
use test_support::{report, root, Client, Runtime, Service, ServiceBuilder, TempDir};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");

/// Real Spin, if this machine has it.
fn spin() -> Option<PathBuf> {
    let bin = std::env::var_os("SPIN_BIN")
        .filter(|b| !b.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/spin/spin"));
    if bin.exists() {
        Some(bin)
    } else {
        report(&format!(
            "real Spin not found ({}): the two-instance deployment tests need it",
            bin.display()
        ));
        None
    }
}

/// The metadata database both instances open.
fn shared_sqlite(dir: &TempDir) -> String {
    format!(
        "[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
        dir.join("glance.db").display()
    )
}

fn pair(builder: ServiceBuilder) -> (Service, Service) {
    let a = builder.clone().runtime(Runtime::Spin).start();
    let b = builder.runtime(Runtime::Spin).start();
    (a, b)
}

fn image(c: &Client) -> String {
    c.create_image(&json!({"name": "shared", "disk_format": "raw", "container_format": "bare"}))
        ["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// Upload on one, download on the other; racing uploads; delete seen by both.
fn data_moves_between(ca: &Client, cb: &Client) {
    let id = image(ca);
    let data = noise_vec(31, 5_000_000);
    let (md5, _) = hashes(&data);
    let r = ca.send(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        Payload::Chunked(&data, 1 << 20),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let img = cb.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(img["checksum"], md5.as_str());
    assert_eq!(
        cb.get(&format!("/v2/images/{id}/file")).body,
        data,
        "downloaded on B"
    );

    // Concurrent uploads of one image on A and on B: one wins, the other 409.
    let id = image(ca);
    let uploads: Vec<_> = [ca.clone(), cb.clone()]
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let (id, data) = (id.clone(), noise_vec(40 + i as u64, 4_000_000));
            std::thread::spawn(move || {
                c.send(
                    "PUT",
                    &format!("/v2/images/{id}/file"),
                    &[OCTET],
                    Payload::Chunked(&data, 1 << 20),
                )
                .status
            })
        })
        .collect();
    let mut statuses: Vec<u16> = uploads
        .into_iter()
        .map(|u| u.join().expect("upload"))
        .collect();
    statuses.sort();
    assert_eq!(statuses, vec![204, 409], "one upload wins");
    let on_a = ca.get(&format!("/v2/images/{id}/file")).body;
    assert_eq!(on_a, cb.get(&format!("/v2/images/{id}/file")).body);
    assert_eq!(on_a.len(), 4_000_000);

    // Deleted on A: gone on B.
    assert_eq!(ca.delete(&format!("/v2/images/{id}")).status, 204);
    cb.get(&format!("/v2/images/{id}")).expect_error(404);
}

#[test]
fn two_spin_instances_share_image_data_and_tokens_in_redis() {
    if spin().is_none() {
        return;
    }
    let redis = RedisServer::start();
    let ks = Keystone::start();
    let proxy = CountingProxy::start(ks.url.trim_start_matches("http://").parse().expect("addr"));
    let dir = TempDir::new("two-redis");
    let builder = Service::builder()
        .keystone_url(&proxy.url)
        .image_data_store(&format!("type = \"redis\"\nurl = \"{}\"", redis.url()))
        .runtime_config(&format!(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n{}",
            redis.url(),
            shared_sqlite(&dir)
        ));
    let (a, b) = pair(builder);
    let token = ks.token("alpha-member", "secret", "alpha");
    let with = |svc: &Service| svc.client().with_header("X-Auth-Token", &token);
    with(&a).get("/v2/images").expect_json(200);
    let asked = proxy.requests();
    assert!(asked >= 1, "A asked Keystone");
    // The token A validated is in the shared cache: B asks Keystone nothing.
    for _ in 0..5 {
        with(&b).get("/v2/images").expect_json(200);
    }
    assert_eq!(proxy.requests(), asked, "B found A's validation in Redis");
    data_moves_between(&with(&a), &with(&b));
    report(&format!(
        "two Spin instances over Redis {}: token validated once for both ({asked} Keystone requests)",
        redis.url()
    ));
}

#[test]
fn two_spin_instances_share_image_data_in_s3() {
    if spin().is_none() {
        return;
    }
    let s3 = S3Server::start("glance-two");
    let dir = TempDir::new("two-s3");
    let builder = Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_STORES", "s3"),
            ("SPIN_VARIABLE_DEFAULT_STORE", "s3"),
            ("SPIN_VARIABLE_S3_ENDPOINT", &s3.endpoint),
            ("SPIN_VARIABLE_S3_BUCKET", "glance-two"),
            ("SPIN_VARIABLE_S3_ACCESS_KEY", "testing"),
            ("SPIN_VARIABLE_S3_SECRET_KEY", "testing"),
            ("SPIN_VARIABLE_S3_PART_SIZE", "5242880"),
        ])
        .runtime_config(&shared_sqlite(&dir));
    let (a, b) = pair(builder);
    data_moves_between(&a.client(), &b.client());
    report("two Spin instances over S3 (moto) and one SQLite file: data and deletes shared");
}

//! End-to-end: the `s3` store against a real S3-compatible server (moto,
//! pip-installed by the test setup, on loopback), next to the `kv` store.

use serde_json::json;
use test_support::data::{hashes, noise, noise_vec, Hashes};
use test_support::http::Payload;
use test_support::python::S3Server;
use test_support::Service;

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");
const BUCKET: &str = "glance-images";

fn start() -> (S3Server, Service) {
    let s3 = S3Server::start(BUCKET);
    let svc = Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_STORES", "kv,s3"),
            ("SPIN_VARIABLE_S3_ENDPOINT", &s3.endpoint),
            ("SPIN_VARIABLE_S3_BUCKET", BUCKET),
            ("SPIN_VARIABLE_S3_ACCESS_KEY", "testing"),
            ("SPIN_VARIABLE_S3_SECRET_KEY", "testing"),
            ("SPIN_VARIABLE_S3_PART_SIZE", "8388608"),
        ])
        .start();
    (s3, svc)
}

fn image(c: &test_support::Client) -> String {
    c.create_image(&json!({"name": "s3", "disk_format": "raw", "container_format": "bare"}))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn s3_store_round_trips_multipart_copies_and_deletes() {
    let (s3, svc) = start();
    let c = svc.client();

    // Multi-store discovery.
    let stores = c.get("/v2/info/stores").expect_json(200);
    assert_eq!(
        stores["stores"],
        json!([
            {"id": "kv", "description": "Image data in chunks in a Spin key-value store", "default": "true"},
            {"id": "s3", "description": "S3-compatible object store"}
        ])
    );
    let created = c.post_json("/v2/images", &json!({"name": "x"}));
    assert_eq!(created.header("openstack-image-store-ids"), Some("kv,s3"));

    // A small image: one PUT.
    let small_id = image(&c);
    let small = noise_vec(1, 300_000);
    let r = c.send(
        "PUT",
        &format!("/v2/images/{small_id}/file"),
        &[OCTET, ("X-Image-Meta-Store", "s3")],
        Payload::Bytes(&small),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let img = c.get(&format!("/v2/images/{small_id}")).expect_json(200);
    assert_eq!(img["stores"], "s3");
    assert_eq!(c.get(&format!("/v2/images/{small_id}/file")).body, small);
    let ranged = c.send(
        "GET",
        &format!("/v2/images/{small_id}/file"),
        &[("Range", "bytes=100-199")],
        Payload::None,
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, small[100..200]);
    assert_eq!(s3.objects(BUCKET).len(), 1);

    // A 100 MiB image: a multipart upload (moto's ETag ends in -<parts>).
    let big_id = image(&c);
    let total: u64 = 100 << 20;
    let mut local = Hashes::default();
    let pieces = noise(2, total, 1 << 20).inspect(|p| local.update(p));
    let r = c.put_stream(
        &format!("/v2/images/{big_id}/file"),
        &[OCTET, ("X-Image-Meta-Store", "s3")],
        pieces,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let (md5, sha) = local.finish();
    let img = c.get(&format!("/v2/images/{big_id}")).expect_json(200);
    assert_eq!(img["checksum"], md5.as_str());
    assert_eq!(img["os_hash_value"], sha.as_str());
    let objects = s3.objects(BUCKET);
    let big = objects
        .iter()
        .find(|(k, _)| k.starts_with(&big_id))
        .expect("big object in bucket");
    assert!(
        big.1.trim_matches('"').ends_with("-13"),
        "multipart ETag expected, got {}",
        big.1
    );
    let mut remote = Hashes::default();
    let (resp, n) = c.get_stream(&format!("/v2/images/{big_id}/file"), &[], |b| {
        remote.update(b)
    });
    assert_eq!((resp.status, n), (200, total));
    assert_eq!(remote.finish(), (md5, sha));

    // copy-image kv -> s3, then drop the kv copy.
    let kv_id = image(&c);
    let data = noise_vec(3, 2_000_000);
    assert_eq!(
        c.send(
            "PUT",
            &format!("/v2/images/{kv_id}/file"),
            &[OCTET],
            Payload::Bytes(&data)
        )
        .status,
        204
    );
    assert_eq!(c.get(&format!("/v2/images/{kv_id}")).json()["stores"], "kv");
    let r = c.post_json(
        &format!("/v2/images/{kv_id}/import"),
        &json!({"method": {"name": "copy-image"}, "stores": ["s3"]}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let img = c.get(&format!("/v2/images/{kv_id}")).json();
        if img["stores"] == "kv,s3" {
            assert_eq!(img["os_glance_importing_to_stores"], "");
            assert_eq!(img["os_glance_failed_import"], "");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "copy did not finish: {img}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Copying again to a store that holds it is refused.
    c.post_json(
        &format!("/v2/images/{kv_id}/import"),
        &json!({"method": {"name": "copy-image"}, "stores": ["s3"]}),
    )
    .expect_error(400);
    assert_eq!(c.delete(&format!("/v2/stores/kv/{kv_id}")).status, 204);
    assert_eq!(c.get(&format!("/v2/images/{kv_id}")).json()["stores"], "s3");
    assert_eq!(svc.stored_chunks(&kv_id), 0);
    assert_eq!(c.get(&format!("/v2/images/{kv_id}/file")).body, data);
    assert_eq!(
        hashes(&data).0,
        c.get(&format!("/v2/images/{kv_id}")).json()["checksum"]
            .as_str()
            .unwrap()
    );
    c.delete(&format!("/v2/stores/s3/{kv_id}"))
        .expect_error(403);

    // Deleting images removes their objects.
    for id in [&small_id, &big_id, &kv_id] {
        assert_eq!(c.delete(&format!("/v2/images/{id}")).status, 204);
    }
    assert!(
        s3.objects(BUCKET).is_empty(),
        "objects remain: {:?}",
        s3.objects(BUCKET)
    );
}

#[test]
fn unknown_store_is_refused() {
    let (_s3, svc) = start();
    let c = svc.client();
    let id = image(&c);
    c.send(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET, ("X-Image-Meta-Store", "tape")],
        Payload::Bytes(b"x"),
    )
    .expect_error(400);
    assert_eq!(
        c.get(&format!("/v2/images/{id}")).json()["status"],
        "queued"
    );
}

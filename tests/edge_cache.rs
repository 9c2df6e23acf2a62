//! End-to-end: two sites. A central service (an `s3` store on moto) behind a
//! loopback proxy that counts what reaches it, and an edge instance in edge
//! site mode (`upstream_glance_url` = the proxy) with an image cache.
//!
//! Ten concurrent downloads of one 256 MiB image at the edge cost exactly one
//! download at the central site, every copy byte-for-byte and checksum equal;
//! an image the caller may not see centrally is 404 at the edge; a central
//! delete stops the edge serving it within `upstream_ttl`; a fill killed
//! midway (SIGKILL) leaves no cache entry and no unreachable byte in the
//! cache store once reclaimed, and the next download fills it again.

use std::collections::BTreeSet;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::json;
use test_support::data::{noise, Hashes};
use test_support::proxy::CountingProxy;
use test_support::python::S3Server;
use test_support::{Client, Service};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");
const BUCKET: &str = "glance-images";
const TTL: u64 = 2;
const STALE: u64 = 4;
const MIB: u64 = 1 << 20;

fn central(s3: &S3Server) -> Service {
    Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_STORES", "s3"),
            ("SPIN_VARIABLE_DEFAULT_STORE", "s3"),
            ("SPIN_VARIABLE_S3_ENDPOINT", &s3.endpoint),
            ("SPIN_VARIABLE_S3_BUCKET", BUCKET),
            ("SPIN_VARIABLE_S3_ACCESS_KEY", "testing"),
            ("SPIN_VARIABLE_S3_SECRET_KEY", "testing"),
            ("SPIN_VARIABLE_S3_PART_SIZE", "16777216"),
        ])
        .start()
}

fn edge(upstream: &str) -> Service {
    Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_UPSTREAM_GLANCE_URL", upstream),
            ("SPIN_VARIABLE_UPSTREAM_TTL", &TTL.to_string()),
            ("SPIN_VARIABLE_IMAGE_CACHE_MAX_SIZE", "1GB"),
            ("SPIN_VARIABLE_STALE_UPLOAD_SECONDS", &STALE.to_string()),
        ])
        .start()
}

/// Creates an image at the central site and uploads `size` bytes of noise
/// (seed `seed`); returns (id, md5).
fn upload(c: &Client, visibility: &str, seed: u64, size: u64) -> (String, String) {
    let img = c.create_image(&json!({"name": "boot", "disk_format": "raw",
        "container_format": "bare", "visibility": visibility}));
    let id = img["id"].as_str().unwrap().to_string();
    let mut h = Hashes::default();
    let pieces = noise(seed, size, MIB as usize).inspect(|p| h.update(p));
    let r = c.put_stream(&format!("/v2/images/{id}/file"), &[OCTET], pieces);
    assert_eq!(r.status, 204, "{}", r.text());
    let (md5, _) = h.finish();
    let shown = c.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(shown["checksum"], md5.as_str());
    (id, md5)
}

/// Downloads `id` at `c`; returns (status, bytes, md5, x-image-cache).
fn download(c: &Client, id: &str) -> (u16, u64, String, String) {
    let mut h = Hashes::default();
    let (resp, n) = c.get_stream(&format!("/v2/images/{id}/file"), &[], |b| h.update(b));
    let via = resp.header("x-image-cache").unwrap_or("").to_string();
    (resp.status, n, h.finish().0, via)
}

/// Waits until the edge lists `id` as cached: a fill is published by the
/// deferred work after its response, so a client that has read the last
/// byte can be a moment ahead of it (by more on a loaded machine).
fn wait_cached(edge: &Service, id: &str) {
    let admin = edge.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = admin.get("/v2/cache").expect_json(200);
        let cached = listed["cached_images"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["image_id"] == id));
        if cached {
            return;
        }
        assert!(Instant::now() < deadline, "{id} never published: {listed}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// [`cache_census`] once the fill that just served a download has settled
/// (published, its lease dropped): (0, 0, 0) unless something was left.
fn settled_census(edge: &Service, id: &str) -> (u64, i64, i64) {
    wait_cached(edge, id);
    // Publication drops the lease and the heartbeat right after the entry
    // turns ready, in separate statements.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let census = cache_census(edge);
        if census == (0, 0, 0) || Instant::now() >= deadline {
            return census;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn file_requests(proxy: &CountingProxy, id: &str) -> usize {
    proxy
        .request_lines()
        .iter()
        .filter(|l| l.contains(&format!("/v2/images/{id}/file")))
        .count()
}

/// Bytes in the edge's cache store that no ready entry references, and the
/// number of cache entries and leases left.
fn cache_census(svc: &Service) -> (u64, i64, i64) {
    let db = rusqlite::Connection::open(svc.state_dir.join("sqlite_db.db")).expect("metadata db");
    let mut stmt = db
        .prepare("SELECT url FROM cache_entries WHERE state = 'ready'")
        .expect("select");
    let referenced: BTreeSet<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(0);
    let filling = count("SELECT COUNT(*) FROM cache_entries WHERE state != 'ready'");
    let leases = count("SELECT COUNT(*) FROM leases");
    let kv_path = svc.state_dir.join("image_cache.db");
    if !kv_path.exists() {
        return (0, filling, leases);
    }
    let kv = rusqlite::Connection::open(kv_path).expect("cache kv db");
    let mut stmt = kv
        .prepare("SELECT key, length(value) FROM spin_key_value WHERE store = 'image_cache'")
        .expect("select kv");
    let unreachable = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .expect("kv rows")
        .map(|r| r.expect("kv row"))
        .filter(|(key, _)| {
            let prefix = key.rsplit_once('/').map_or(key.as_str(), |(p, _)| p);
            !referenced.contains(&format!("kv://image_cache/{prefix}"))
        })
        .map(|(_, n)| n)
        .sum();
    (unreachable, filling, leases)
}

#[test]
fn two_sites_one_wan_fetch_per_image_visibility_ttl_and_a_killed_fill() {
    let s3 = S3Server::start(BUCKET);
    let central = central(&s3);
    let proxy = CountingProxy::start(central.addr);
    let mut edge = edge(&proxy.url);
    let admin = central.client();

    // Ten concurrent downloads of one 256 MiB image: one central download.
    let size = 256 * MIB;
    let t0 = Instant::now();
    let (id, md5) = upload(&admin, "public", 1, size);
    eprintln!("256 MiB uploaded at the central site in {:?}", t0.elapsed());
    let started = Instant::now();
    let results: Vec<(u16, u64, String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let c = edge.project("p2", "member");
                let id = id.clone();
                s.spawn(move || download(&c, &id))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    eprintln!("10 concurrent edge downloads of 256 MiB in {took:?}");
    for (status, n, got, _) in &results {
        assert_eq!((*status, *n, got.as_str()), (200, size, md5.as_str()));
    }
    let vias: Vec<&str> = results.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(
        file_requests(&proxy, &id),
        1,
        "10 edge downloads ({vias:?}, {took:?}) cost one central download"
    );
    assert_eq!(vias.iter().filter(|v| **v == "miss").count(), 1, "{vias:?}");
    // Later downloads are hits (once the fill is published).
    wait_cached(&edge, &id);
    let (_, _, got, via) = download(&edge.project("p3", "member"), &id);
    assert_eq!((got.as_str(), via.as_str()), (md5.as_str(), "hit"));
    assert_eq!(file_requests(&proxy, &id), 1);

    // What the caller may not see centrally is 404 at the edge.
    let p1 = central.project("p1", "member");
    let (private, private_md5) = upload(&p1, "private", 2, MIB);
    let other = edge.project("p2", "member");
    assert_eq!(other.get(&format!("/v2/images/{private}")).status, 404);
    assert_eq!(other.get(&format!("/v2/images/{private}/file")).status, 404);
    let owner = edge.project("p1", "member");
    let shown = owner.get(&format!("/v2/images/{private}")).expect_json(200);
    assert_eq!(shown["checksum"], private_md5.as_str());
    assert_eq!(download(&owner, &private).2, private_md5);
    // Writes act on local images only.
    assert_eq!(owner.delete(&format!("/v2/images/{private}")).status, 404);

    // A central delete stops edge service within upstream_ttl.
    assert_eq!(admin.delete(&format!("/v2/images/{id}")).status, 204);
    let deleted = Instant::now();
    let viewer = edge.project("p2", "member");
    loop {
        let r = viewer.get(&format!("/v2/images/{id}/file"));
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            deleted.elapsed() < Duration::from_secs(TTL) + Duration::from_millis(1500),
            "still served {:?} after the central delete",
            deleted.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(viewer.get(&format!("/v2/images/{id}")).status, 404);
    eprintln!("central delete: edge 404 after {:?}", deleted.elapsed());

    // A fill killed midway (SIGKILL) leaves no entry and no orphan bytes.
    let (big, big_md5) = upload(&admin, "public", 3, 64 * MIB);
    let mut stream =
        edge.project("p2", "member")
            .start("GET", &format!("/v2/images/{big}/file"), &[]);
    let mut seen = vec![0u8; 4 << 20];
    stream
        .read_exact(&mut seen)
        .expect("the first bytes of the fill");
    let (unreachable, filling, _) = cache_census(&edge);
    assert!(filling == 1 && unreachable > 0, "a fill is under way");
    edge = edge.restart();
    drop(stream);
    let killed = Instant::now();
    let c = edge.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Reclamation slices run after writes.
        let tmp = c.create_image(&json!({"name": "tick"}));
        assert_eq!(
            c.delete(&format!("/v2/images/{}", tmp["id"].as_str().unwrap()))
                .status,
            204
        );
        let (unreachable, filling, leases) = cache_census(&edge);
        if (unreachable, filling, leases) == (0, 0, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not reclaimed: {unreachable} bytes, {filling} fills, {leases} leases"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "killed fill reclaimed {:?} after the restart",
        killed.elapsed()
    );
    let listed = c.get("/v2/cache").expect_json(200);
    assert!(
        listed["cached_images"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["image_id"] != big.as_str()),
        "{listed}"
    );
    // The next download fills it again, from one more central download.
    let before = file_requests(&proxy, &big);
    let (status, n, got, via) = download(&edge.project("p2", "member"), &big);
    assert_eq!(
        (status, n, got.as_str(), via.as_str()),
        (200, 64 * MIB, big_md5.as_str(), "miss")
    );
    assert_eq!(file_requests(&proxy, &big), before + 1);
    assert_eq!(settled_census(&edge, &big), (0, 0, 0));
}

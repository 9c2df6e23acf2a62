//! End-to-end: the service is killed (SIGKILL) at seeded random points while
//! it uploads, stages, imports from the web, copies into S3, deletes and
//! patches, and restarted on the same state each time. Afterwards nothing
//! acknowledged is lost, no image is stuck, and — once reclamation has run —
//! no byte in the key-value store or the S3 bucket is unreachable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::data::{hashes, noise_vec};
use test_support::http::{serve_bytes, Payload};
use test_support::python::S3Server;
use test_support::{report, Client, Service};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");
const BUCKET: &str = "glance-crash";
/// `stale_upload_seconds` of these tests: abandoned work heals this soon.
const STALE: u64 = 2;

/// xorshift64*: a seeded, repeatable source of kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn start(s3: &S3Server) -> Service {
    Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_STORES", "kv,s3"),
            ("SPIN_VARIABLE_S3_ENDPOINT", &s3.endpoint),
            ("SPIN_VARIABLE_S3_BUCKET", BUCKET),
            ("SPIN_VARIABLE_S3_ACCESS_KEY", "testing"),
            ("SPIN_VARIABLE_S3_SECRET_KEY", "testing"),
            ("SPIN_VARIABLE_S3_PART_SIZE", "5242880"),
            ("SPIN_VARIABLE_STALE_UPLOAD_SECONDS", &STALE.to_string()),
            ("SPIN_VARIABLE_DOWNLOAD_HOSTS", "http://127.0.0.1:*"),
        ])
        .start()
}

fn create(c: &Client) -> String {
    c.create_image(&json!({"name": "crash", "disk_format": "raw", "container_format": "bare"}))
        ["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn put(c: &Client, path: &str, data: &[u8]) -> u16 {
    c.send("PUT", path, &[OCTET], Payload::Chunked(data, 1 << 20))
        .status
}

/// The operations killed midway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Upload,
    Stage,
    WebDownload,
    CopyToS3,
    Delete,
    Patch,
}

const OPS: [Op; 6] = [
    Op::Upload,
    Op::Stage,
    Op::WebDownload,
    Op::CopyToS3,
    Op::Delete,
    Op::Patch,
];

/// Starts `op` on a fresh image in the background; returns the image id.
fn launch(
    c: &Client,
    op: Op,
    data: &'static [u8],
    source: &str,
) -> (String, std::thread::JoinHandle<()>) {
    let id = create(c);
    // Operations on data need some first (done before the kill window).
    if matches!(op, Op::CopyToS3 | Op::Delete) {
        assert_eq!(put(c, &format!("/v2/images/{id}/file"), data), 204);
    }
    let (c2, id2, source) = (c.clone(), id.clone(), source.to_string());
    let worker = std::thread::spawn(move || {
        // The service dies under these requests: their failures are expected.
        let _ = std::panic::catch_unwind(move || match op {
            Op::Upload => {
                put(&c2, &format!("/v2/images/{id2}/file"), data);
            }
            Op::Stage => {
                put(&c2, &format!("/v2/images/{id2}/stage"), data);
            }
            Op::WebDownload => {
                c2.post_json(
                    &format!("/v2/images/{id2}/import"),
                    &json!({"method": {"name": "web-download", "uri": source}}),
                );
            }
            Op::CopyToS3 => {
                c2.post_json(
                    &format!("/v2/images/{id2}/import"),
                    &json!({"method": {"name": "copy-image"}, "stores": ["s3"]}),
                );
            }
            Op::Delete => {
                c2.delete(&format!("/v2/images/{id2}"));
            }
            Op::Patch => {
                let writers: Vec<_> = (0..6)
                    .map(|i| {
                        let (c3, id3) = (c2.clone(), id2.clone());
                        std::thread::spawn(move || {
                            let _ = std::panic::catch_unwind(|| {
                                c3.patch(
                                    &format!("/v2/images/{id3}"),
                                    &json!([{"op": "add", "path": format!("/p{i}"), "value": "v"}]),
                                )
                            });
                        })
                    })
                    .collect();
                for w in writers {
                    let _ = w.join();
                }
            }
        });
    });
    (id, worker)
}

/// What the state files say: live images' data references, every key-value
/// chunk, leases and garbage left.
struct Census {
    referenced: BTreeSet<String>,
    kv_chunks: Vec<(String, u64)>,
    leases: i64,
    garbage: i64,
}

fn census(svc: &Service) -> Census {
    let db = rusqlite::Connection::open(svc.state_dir.join("sqlite_db.db")).expect("metadata db");
    let mut referenced = BTreeSet::new();
    let mut stmt = db
        .prepare("SELECT locations, staging FROM images WHERE deleted = 0")
        .expect("select");
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })
        .expect("rows");
    for row in rows {
        let (locations, staging) = row.expect("row");
        let locations: Vec<Value> = serde_json::from_str(&locations).expect("locations");
        for l in locations {
            referenced.insert(l["url"].as_str().unwrap_or_default().to_string());
        }
        if let Some(s) = staging {
            let s: Value = serde_json::from_str(&s).expect("staging");
            referenced.insert(
                s["location"]["url"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap_or(0);
    let leases = count("SELECT COUNT(*) FROM leases");
    let garbage = count("SELECT COUNT(*) FROM garbage");
    let kv = rusqlite::Connection::open(svc.state_dir.join("image_data.db")).expect("kv db");
    let mut stmt = kv
        .prepare("SELECT key, length(value) FROM spin_key_value WHERE store = 'image_data'")
        .expect("select kv");
    let kv_chunks = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })
        .expect("kv rows")
        .map(|r| r.expect("kv row"))
        .collect();
    Census {
        referenced,
        kv_chunks,
        leases,
        garbage,
    }
}

impl Census {
    /// Bytes of key-value chunks no live image references.
    fn unreachable_kv(&self) -> u64 {
        self.kv_chunks
            .iter()
            .filter(|(key, _)| {
                let prefix = key.rsplit_once('/').map_or(key.as_str(), |(p, _)| p);
                !self
                    .referenced
                    .contains(&format!("kv://image_data/{prefix}"))
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// (unreachable object bytes, open multipart uploads) in the bucket.
fn unreachable_s3(s3: &S3Server, referenced: &BTreeSet<String>) -> (u64, usize) {
    let listing = s3.client().get(&format!("/{BUCKET}?list-type=2")).text();
    let mut bytes = 0;
    for c in listing.split("<Contents>").skip(1) {
        let tag = |t: &str| {
            c.split(&format!("<{t}>"))
                .nth(1)
                .and_then(|x| x.split(&format!("</{t}>")).next())
                .unwrap_or("")
                .to_string()
        };
        if !referenced.contains(&format!("s3://{BUCKET}/{}", tag("Key"))) {
            bytes += tag("Size").parse::<u64>().unwrap_or(0);
        }
    }
    let uploads = s3.client().get(&format!("/{BUCKET}?uploads")).text();
    (bytes, uploads.matches("<Upload>").count())
}

/// Images the state shows mid-work, before anyone reads them (reading heals).
fn work_in_progress(svc: &Service) -> BTreeSet<String> {
    let db = rusqlite::Connection::open(svc.state_dir.join("sqlite_db.db")).expect("metadata db");
    let mut stmt = db
        .prepare(
            "SELECT id FROM images WHERE deleted = 0 AND (status IN ('saving', 'importing') \
             OR (status = 'uploading' AND staging IS NULL) \
             OR json_extract(properties, '$.os_glance_importing_to_stores') != '')",
        )
        .expect("select");
    let ids = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    ids
}

/// Drives reclamation (slices run after writes) until no lease or garbage
/// row is left.
fn reclaim(svc: &Service) {
    let c = svc.client();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = census(svc);
        if left.leases == 0 && left.garbage == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "reclamation did not finish: {} leases, {} garbage rows",
            left.leases,
            left.garbage
        );
        let id = create(&c);
        assert_eq!(c.delete(&format!("/v2/images/{id}")).status, 204);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_settled(c: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let img = c.get(&format!("/v2/images/{id}")).expect_json(200);
        let importing = img["os_glance_importing_to_stores"].as_str().unwrap_or("");
        if img["status"] != "importing" && importing.is_empty() {
            return img;
        }
        assert!(Instant::now() < deadline, "import never ended: {img}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigkill_at_random_points_loses_nothing_and_every_image_heals() {
    let s3 = S3Server::start(BUCKET);
    let mut svc = start(&s3);
    let data: &'static [u8] = Box::leak(noise_vec(77, 24 << 20).into_boxed_slice());
    let source = serve_bytes(data.to_vec(), "source.raw");
    let mut rng = Rng(0x5eed_0fc0_ffee);
    let mut kills: BTreeMap<Op, usize> = BTreeMap::new();
    let mut images: Vec<(Op, String)> = Vec::new();
    // Images the kill left mid-work (seen in the state right after the restart).
    let mut left_mid_work: BTreeMap<Op, usize> = BTreeMap::new();
    let points = 54;
    for point in 0..points {
        let op = OPS[point % OPS.len()];
        let c = svc.client();
        let (id, worker) = launch(&c, op, data, &source);
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        svc = svc.restart();
        let _ = worker.join();
        *kills.entry(op).or_default() += 1;
        if work_in_progress(&svc).contains(&id) {
            *left_mid_work.entry(op).or_default() += 1;
        }
        images.push((op, id));
    }
    let before = census(&svc);
    let s3_before = unreachable_s3(&s3, &before.referenced);
    // Abandoned work is stale after STALE seconds; then heal and reclaim.
    std::thread::sleep(Duration::from_secs(STALE + 1));
    let c = svc.client();
    let mut active = 0;
    for (op, id) in &images {
        let r = c.get(&format!("/v2/images/{id}"));
        if r.status == 404 {
            assert_eq!(*op, Op::Delete, "only deleted images are gone: {id}");
            continue;
        }
        let img = wait_settled(&c, id);
        match img["status"].as_str() {
            Some("active") => {
                // Acknowledged data is intact.
                let got = c.get(&format!("/v2/images/{id}/file"));
                assert_eq!(got.status, 200, "{img}");
                let (md5, _) = hashes(&got.body);
                assert_eq!(img["checksum"].as_str(), Some(md5.as_str()), "{img}");
                assert_eq!(img["size"].as_u64(), Some(got.body.len() as u64));
                active += 1;
            }
            Some("queued") => {
                // Usable again: takes a new upload.
                assert_eq!(
                    put(&c, &format!("/v2/images/{id}/file"), &data[..1 << 20]),
                    204
                );
            }
            Some("uploading") => {
                // Staged before the kill: the import goes on from there.
                let r = c.post_json(
                    &format!("/v2/images/{id}/import"),
                    &json!({"method": {"name": "glance-direct"}}),
                );
                assert_eq!(r.status, 202, "{}", r.text());
                assert_eq!(wait_settled(&c, id)["status"], "active");
            }
            other => panic!("image {id} after {op:?} is {other:?}: {img}"),
        }
    }
    reclaim(&svc);
    let after = census(&svc);
    let (s3_bytes, s3_uploads) = unreachable_s3(&s3, &after.referenced);
    let in_s3 = after
        .referenced
        .iter()
        .filter(|u| u.starts_with("s3://"))
        .count();
    let mut table = String::from(
        "kill points per operation (op: kills, images the kill left mid-work, all healed):\n",
    );
    for op in OPS {
        table.push_str(&format!(
            "  {op:?}: {} kills, {} left mid-work\n",
            kills.get(&op).copied().unwrap_or(0),
            left_mid_work.get(&op).copied().unwrap_or(0)
        ));
    }
    table.push_str(&format!(
        "  {active} images active and intact ({in_s3} copies in S3); unreachable before \
         reclamation / after: kv bytes {} / {}, s3 bytes {} / {s3_bytes}, open multipart uploads \
         {} / {s3_uploads}",
        before.unreachable_kv(),
        after.unreachable_kv(),
        s3_before.0,
        s3_before.1
    ));
    report(&table);
    assert_eq!(after.unreachable_kv(), 0, "unreachable key-value bytes");
    assert_eq!((s3_bytes, s3_uploads), (0, 0), "unreachable S3 data");
}

#[test]
fn upload_racing_delete_leaks_nothing() {
    let svc = Service::start();
    let c = svc.client();
    let data = noise_vec(5, 3_000_000);
    let mut rng = Rng(42);
    let trials = 200;
    let mut both = 0;
    for _ in 0..trials {
        let id = create(&c);
        let (c1, id1, d1) = (c.clone(), id.clone(), data.clone());
        let up = std::thread::spawn(move || put(&c1, &format!("/v2/images/{id1}/file"), &d1));
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        let del = c.delete(&format!("/v2/images/{id}")).status;
        let up = up.join().expect("upload thread");
        assert_eq!(del, 204);
        assert!([204, 404, 409, 410].contains(&up), "upload answered {up}");
        if up == 204 {
            both += 1;
        }
    }
    reclaim(&svc);
    let left = census(&svc);
    report(&format!(
        "upload x delete: {trials} trials, {both} with both acknowledged; leaked bytes {}",
        left.unreachable_kv()
    ));
    assert_eq!(left.unreachable_kv(), 0);
    assert!(left.kv_chunks.is_empty(), "every image was deleted");
}

#[test]
fn an_upload_among_patch_writers_never_sticks() {
    let svc = Service::start();
    let c = svc.client();
    let data = noise_vec(6, 2_000_000);
    for trial in 0..20 {
        let id = create(&c);
        let writers: Vec<_> = (0..15)
            .map(|i| {
                let (c2, id2) = (c.clone(), id.clone());
                std::thread::spawn(move || {
                    c2.patch(
                        &format!("/v2/images/{id2}"),
                        &json!([{"op": "add", "path": format!("/w{i}"), "value": "x"}]),
                    )
                    .status
                })
            })
            .collect();
        let up = put(&c, &format!("/v2/images/{id}/file"), &data);
        let statuses: Vec<u16> = writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect();
        assert_eq!(up, 204, "trial {trial}");
        assert!(
            statuses.iter().all(|s| *s == 200),
            "trial {trial}: {statuses:?}"
        );
        let img = c.get(&format!("/v2/images/{id}")).expect_json(200);
        assert_eq!(img["status"], "active", "trial {trial}: {img}");
        for i in 0..15 {
            assert_eq!(img[format!("w{i}")], "x", "trial {trial}: {img}");
        }
    }
}

#[test]
fn sixteen_concurrent_patch_writers_lose_nothing_and_never_conflict() {
    let svc = Service::start();
    let c = svc.client();
    let id = create(&c);
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let (c2, id2) = (c.clone(), id.clone());
            std::thread::spawn(move || {
                (0..5)
                    .map(|round| {
                        c2.patch(
                            &format!("/v2/images/{id2}"),
                            &json!([{"op": "add", "path": format!("/k{i}_{round}"), "value": "v"}]),
                        )
                        .status
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let statuses: Vec<u16> = writers
        .into_iter()
        .flat_map(|w| w.join().expect("writer"))
        .collect();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    let img = c.get(&format!("/v2/images/{id}")).expect_json(200);
    let lost = (0..16)
        .flat_map(|i| (0..5).map(move |r| format!("k{i}_{r}")))
        .filter(|k| img[k.as_str()] != "v")
        .count();
    report(&format!(
        "16 PATCH writers x 5: {} answers, {conflicts} conflicts, {lost} lost updates",
        statuses.len()
    ));
    assert_eq!((conflicts, lost), (0, 0), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

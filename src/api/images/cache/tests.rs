//! The cache API and the edge site mode through the harness, with a fake
//! upstream Glance that counts what it is asked.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::api::harness::{as_project, Harness};
use crate::api::images::handle;
use crate::data::stores::CACHE_LABEL;
use crate::ports::outbound::{HttpClient, OutRequest, OutResponse, OutboundError};
use crate::ports::Database;

const OCTET: (&str, &str) = ("content-type", "application/octet-stream");

/// An upstream image: its record, its data, the projects that see it.
type UpstreamImage = (Value, Vec<u8>, Vec<String>);

/// A fake upstream Glance: images by id.
#[derive(Default)]
struct FakeUpstream {
    images: RefCell<BTreeMap<String, UpstreamImage>>,
    requests: RefCell<Vec<String>>,
}

impl FakeUpstream {
    fn add(&self, id: &str, data: &[u8], seen_by: &[&str]) {
        let md5: String = Md5::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let rec = json!({"id": id, "status": "active", "size": data.len(), "checksum": md5,
            "owner": "central", "visibility": "public", "name": "up"});
        self.images.borrow_mut().insert(
            id.into(),
            (
                rec,
                data.to_vec(),
                seen_by.iter().map(|s| s.to_string()).collect(),
            ),
        );
    }

    fn count(&self, suffix: &str) -> usize {
        self.requests
            .borrow()
            .iter()
            .filter(|r| r.ends_with(suffix))
            .count()
    }
}

impl HttpClient for FakeUpstream {
    fn send(&self, req: OutRequest) -> Result<OutResponse, OutboundError> {
        let path = req.url.trim_start_matches("http://central");
        self.requests.borrow_mut().push(path.to_string());
        let project = req
            .headers
            .iter()
            .find(|(k, _)| k == "x-project-id")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let rest = path.trim_start_matches("/v2/images/");
        let (id, file) = match rest.strip_suffix("/file") {
            Some(id) => (id, true),
            None => (rest, false),
        };
        let images = self.images.borrow();
        let reply = |status: u16, body: Vec<u8>| OutResponse {
            status,
            headers: Vec::new(),
            body: Box::new(std::io::Cursor::new(body)),
        };
        Ok(match images.get(id) {
            Some((_, _, seen)) if !seen.contains(&project) => reply(404, Vec::new()),
            Some((_, data, _)) if file => reply(200, data.clone()),
            Some((rec, _, _)) => reply(200, rec.to_string().into_bytes()),
            None => reply(404, Vec::new()),
        })
    }
}

fn edge(upstream: Rc<FakeUpstream>) -> Harness {
    let mut h = Harness::new();
    h.http = upstream;
    h.set("image_cache_max_size", "1000");
    h.set("upstream_glance_url", "http://central");
    h.set("upstream_ttl", "60");
    h.set("kv_chunk_size", "64");
    h
}

const ID: &str = "11111111-2222-3333-4444-555555555555";

#[test]
fn an_edge_serves_upstream_images_through_the_cache_once() {
    let up = Rc::new(FakeUpstream::default());
    let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    up.add(ID, &data, &["p1", "p2"]);
    let h = edge(up.clone());
    let p1 = as_project("p1", "member");
    let shown = h
        .call(handle, "GET", &format!("/v2/images/{ID}"), &p1, b"")
        .expect(200);
    assert_eq!(shown["name"], "up");
    let first = h.call(handle, "GET", &format!("/v2/images/{ID}/file"), &p1, b"");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-image-cache"), Some("miss"));
    assert_eq!(first.body, data);
    let p2 = as_project("p2", "member");
    for who in [&p1, &p2] {
        let again = h.call(handle, "GET", &format!("/v2/images/{ID}/file"), who, b"");
        assert_eq!(again.header("x-image-cache"), Some("hit"));
        assert_eq!(again.body, data);
    }
    assert_eq!(up.count("/file"), 1, "one transfer from the central site");
    // A range is served from the cache too.
    let part = h.call(
        handle,
        "GET",
        &format!("/v2/images/{ID}/file"),
        &[p1[0], p1[1], ("range", "bytes=10-19")],
        b"",
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &data[10..20]);
    // The admin's cache list shows it.
    let list = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    assert_eq!(list["cached_images"][0]["image_id"], ID);
    assert_eq!(list["cached_images"][0]["size"], 300);
    assert!(list["cached_images"][0]["hits"].as_i64().unwrap() >= 3);
}

#[test]
fn what_the_upstream_hides_is_404_and_a_central_delete_ends_service_after_the_ttl() {
    let up = Rc::new(FakeUpstream::default());
    up.add(ID, b"0123456789", &["p1"]);
    let h = edge(up.clone());
    let p1 = as_project("p1", "member");
    let p3 = as_project("p3", "member");
    h.call(handle, "GET", &format!("/v2/images/{ID}"), &p3, b"")
        .error(404);
    h.call(handle, "GET", &format!("/v2/images/{ID}/file"), &p3, b"")
        .error(404);
    let got = h.call(handle, "GET", &format!("/v2/images/{ID}/file"), &p1, b"");
    assert_eq!((got.status, got.body.as_slice()), (200, &b"0123456789"[..]));
    // Deleted centrally: within the TTL the edge still serves it ...
    up.images.borrow_mut().clear();
    h.call(handle, "GET", &format!("/v2/images/{ID}"), &p1, b"")
        .expect(200);
    // ... after it, it does not.
    h.db.execute(
        "UPDATE upstream_views SET fetched_at = fetched_at - 61",
        &[],
    )
    .unwrap();
    h.call(handle, "GET", &format!("/v2/images/{ID}/file"), &p1, b"")
        .error(404);
    h.call(handle, "GET", &format!("/v2/images/{ID}"), &p1, b"")
        .error(404);
    // Writes act on local images only.
    h.call(handle, "DELETE", &format!("/v2/images/{ID}"), &p1, b"")
        .error(404);
}

#[test]
fn the_cache_api_queues_lists_deletes_and_clears() {
    let h = Harness::new();
    // Without a cache: the rule first (403), then 404.
    h.call(handle, "GET", "/v2/cache", &as_project("p1", "member"), b"")
        .error(403);
    h.call(handle, "GET", "/v2/cache", &[], b"").error(404);
    h.set("image_cache_max_size", "10MB");
    h.call(handle, "GET", "/v2/cache", &as_project("p1", "member"), b"")
        .error(403);
    let empty = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    assert_eq!(empty, json!({"cached_images": [], "queued_images": []}));
    h.call(handle, "PUT", &format!("/v2/cache/{ID}"), &[], b"")
        .error(404);
    let img = h
        .json(
            handle,
            "POST",
            "/v2/images",
            &[],
            &json!({"name": "c", "disk_format": "raw", "container_format": "bare"}),
        )
        .expect(201);
    let id = img["id"].as_str().unwrap().to_string();
    let msg = h
        .call(handle, "PUT", &format!("/v2/cache/{id}"), &[], b"")
        .error(400);
    assert!(msg.contains("active"), "{msg}");
    h.call(
        handle,
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        b"cached bytes",
    )
    .expect(204);
    // Queued, and fetched after the response (the harness runs deferred work).
    h.call(handle, "PUT", &format!("/v2/cache/{id}"), &[], b"")
        .expect(202);
    let list = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    assert_eq!(list["cached_images"][0]["image_id"], id.as_str());
    assert_eq!(list["queued_images"], json!([]));
    let hit = h.call(handle, "GET", &format!("/v2/images/{id}/file"), &[], b"");
    assert_eq!(hit.header("x-image-cache"), Some("hit"));
    assert_eq!(hit.body, b"cached bytes");
    let pruned = h
        .call(handle, "POST", "/v2/cache/prune", &[], b"")
        .expect(200);
    assert_eq!(
        pruned,
        json!({"total_files_pruned": 0, "total_bytes_pruned": 0})
    );
    h.call(handle, "POST", "/v2/cache/clean", &[], b"")
        .expect(200);
    h.call(
        handle,
        "DELETE",
        "/v2/cache",
        &[("x-image-cache-clear-target", "invalid")],
        b"",
    )
    .error(400);
    h.call(handle, "DELETE", "/v2/cache", &[], b"").expect(204);
    let list = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    assert_eq!(list, json!({"cached_images": [], "queued_images": []}));
    // The entry's data went with it: only nothing is left in the cache store.
    crate::data::reclaim::slice(&ports(&h));
    assert!(h.kv.store(CACHE_LABEL).map.borrow().is_empty());
    h.call(handle, "DELETE", &format!("/v2/cache/{ID}"), &[], b"")
        .error(404);
}

#[test]
fn eviction_keeps_the_cache_under_its_size_least_recently_used_first() {
    let up = Rc::new(FakeUpstream::default());
    let ids: Vec<String> = (0..3)
        .map(|i| format!("11111111-2222-3333-4444-55555555555{i}"))
        .collect();
    for id in &ids {
        up.add(id, &[7u8; 400], &["p1"]);
    }
    let h = edge(up.clone());
    let p1 = as_project("p1", "member");
    let get = |id: &str| h.call(handle, "GET", &format!("/v2/images/{id}/file"), &p1, b"");
    assert_eq!(get(&ids[0]).header("x-image-cache"), Some("miss"));
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(get(&ids[1]).header("x-image-cache"), Some("miss"));
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(get(&ids[0]).header("x-image-cache"), Some("hit"));
    std::thread::sleep(std::time::Duration::from_millis(5));
    // 3 × 400 > 1000: the least recently used (ids[1]) goes.
    assert_eq!(get(&ids[2]).header("x-image-cache"), Some("miss"));
    let list = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    let cached: Vec<&str> = list["cached_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["image_id"].as_str().unwrap())
        .collect();
    let mut want = vec![ids[0].as_str(), ids[2].as_str()];
    want.sort();
    assert_eq!(cached, want);
    // Its chunks are gone; the others' are all there is.
    let keys = h.kv.store(CACHE_LABEL).map.borrow().len();
    assert_eq!(keys, 2 * 400usize.div_ceil(64), "no orphan chunks");
}

#[test]
fn a_fill_that_breaks_off_leaves_no_entry_and_no_bytes() {
    let up = Rc::new(FakeUpstream::default());
    up.add(ID, &[9u8; 500], &["p1"]);
    let h = edge(up.clone());
    let ports = ports(&h);
    let mut req_headers = http::HeaderMap::new();
    req_headers.insert("x-project-id", "p1".parse().unwrap());
    req_headers.insert("x-roles", "member".parse().unwrap());
    let req = crate::api::ApiRequest::new(
        http::Method::GET,
        &format!("/v2/images/{ID}/file"),
        req_headers,
        "http://127.0.0.1:3000",
        "127.0.0.1".parse().ok(),
        Box::new(std::io::Cursor::new(Vec::new())),
    );
    let mut resp = handle(&ports, req);
    // The client reads two chunks and goes away.
    if let crate::api::Body::Stream(s) = &mut resp.body {
        s.next().unwrap().unwrap();
    }
    let deferred = resp.deferred.take();
    drop(resp);
    if let Some(work) = deferred {
        work(&ports);
    }
    let list = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    assert_eq!(list["cached_images"], json!([]));
    assert!(h.kv.store(CACHE_LABEL).map.borrow().is_empty());
    let leases = h.db.execute("SELECT id FROM leases", &[]).unwrap();
    assert!(leases.rows.is_empty());
    // The next download fills it.
    let again = h.call(
        handle,
        "GET",
        &format!("/v2/images/{ID}/file"),
        &as_project("p1", "member"),
        b"",
    );
    assert_eq!(again.header("x-image-cache"), Some("miss"));
    assert_eq!(again.body, vec![9u8; 500]);
}

fn ports(h: &Harness) -> crate::ports::Ports<'_> {
    crate::ports::Ports {
        db: &h.db,
        vars: &h.vars,
        kv: &h.kv,
        http: h.http.clone(),
        log: &h.log,
        pubsub: &h.pubsub,
    }
}

#[test]
fn glance_download_takes_the_remote_data_formats_and_listed_properties() {
    let up = Rc::new(FakeUpstream::default());
    let data = b"remote image bytes".to_vec();
    up.add(ID, &data, &["p1"]);
    {
        let mut images = up.images.borrow_mut();
        let rec = &mut images.get_mut(ID).unwrap().0;
        rec["disk_format"] = json!("raw");
        rec["container_format"] = json!("ovf");
        rec["hw_cpu_cores"] = json!("5");
        rec["trait:STORAGE_DISK_SSD"] = json!("required");
        rec["os_distro"] = json!("rhel");
        rec["speed"] = json!("88mph");
    }
    let h = edge(up.clone());
    h.set(
        "import_methods",
        "glance-direct,web-download,copy-image,glance-download",
    );
    h.set("download_hosts", "http://central");
    let p1 = as_project("p1", "member");
    let dst = h
        .json(
            handle,
            "POST",
            "/v2/images",
            &p1,
            &json!({"name": "dst", "disk_format": "iso", "container_format": "bare",
                    "os_distro": "windows"}),
        )
        .expect(201);
    let dst = dst["id"].as_str().unwrap().to_string();
    let import = |remote: &str| {
        h.json(
            handle,
            "POST",
            &format!("/v2/images/{dst}/import"),
            &p1,
            &json!({"method": {"name": "glance-download", "glance_image_id": remote,
                    "glance_region": "RegionOne"}}),
        )
    };
    assert!(import("foo")
        .error(400)
        .contains("does not look like a UUID"));
    // A missing remote image: the task fails, the image is queued as it was.
    import("99999999-2222-3333-4444-555555555555").expect(202);
    let img = h
        .call(handle, "GET", &format!("/v2/images/{dst}"), &p1, b"")
        .expect(200);
    assert_eq!(
        (img["status"].as_str(), img["os_distro"].as_str()),
        (Some("queued"), Some("windows"))
    );
    import(ID).expect(202);
    let img = h
        .call(handle, "GET", &format!("/v2/images/{dst}"), &p1, b"")
        .expect(200);
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(
        (
            img["disk_format"].as_str(),
            img["container_format"].as_str()
        ),
        (Some("raw"), Some("ovf"))
    );
    assert_eq!(img["hw_cpu_cores"], "5");
    assert_eq!(img["trait:STORAGE_DISK_SSD"], "required");
    assert_eq!(img["os_distro"], "rhel");
    assert!(img.get("speed").is_none());
    let got = h.call(handle, "GET", &format!("/v2/images/{dst}/file"), &p1, b"");
    assert_eq!(got.body, data);
    let tasks = h
        .call(handle, "GET", &format!("/v2/images/{dst}/tasks"), &p1, b"")
        .expect(200);
    let statuses: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses.contains(&"failure") && statuses.contains(&"success"),
        "{statuses:?}"
    );
}

#[test]
fn an_edge_prefetches_an_upstream_image_queued_by_an_admin() {
    let up = Rc::new(FakeUpstream::default());
    up.add(ID, &[3u8; 200], &["admin"]);
    let h = edge(up.clone());
    h.call(handle, "PUT", &format!("/v2/cache/{ID}"), &[], b"")
        .expect(202);
    let list = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    assert_eq!(list["cached_images"][0]["image_id"], ID);
    assert_eq!(list["queued_images"], json!([]));
    assert_eq!(up.count("/file"), 1);
    h.call(handle, "DELETE", &format!("/v2/cache/{ID}"), &[], b"")
        .expect(204);
    let list = h.call(handle, "GET", "/v2/cache", &[], b"").expect(200);
    assert_eq!(list["cached_images"], json!([]));
}

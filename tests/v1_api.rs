//! End-to-end: the Images API v1 over HTTP — metadata in `x-image-meta-*`
//! headers, one set of records with v2 (each version reads what the other
//! wrote), v1 members, and bad input that gets a clear 4xx with a JSON body.

use serde_json::{json, Value};
use test_support::data::{hashes, noise_vec};
use test_support::http::Payload;
use test_support::redis::{RedisServer, Subscriber};
use test_support::{new_project, shared, uuid_like, Client, Response, Service};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");

/// POST /v1/images with `headers` and `data`; asserts 201, returns the image.
fn create(c: &Client, headers: &[(&str, &str)], data: &[u8]) -> Value {
    let mut h = headers.to_vec();
    h.push(OCTET);
    let body = if data.is_empty() {
        Payload::None
    } else {
        Payload::Bytes(data)
    };
    c.send("POST", "/v1/images", &h, body).expect_json(201)["image"].clone()
}

fn id_of(img: &Value) -> String {
    img["id"].as_str().expect("id").to_string()
}

fn head(c: &Client, id: &str) -> Response {
    c.send("HEAD", &format!("/v1/images/{id}"), &[], Payload::None)
}

#[test]
fn metadata_goes_in_headers_and_data_in_bodies() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    // glanceclient percent-encodes every header value; the name is stored decoded.
    let img = create(
        &c,
        &[
            ("x-image-meta-name", "My%20Test%20Image%20%C3%A9"),
            ("x-image-meta-disk_format", "raw"),
            ("x-image-meta-container_format", "bare"),
            ("x-image-meta-min_ram", "64"),
            ("x-image-meta-property-os-distro", "debian%2Fsid"),
        ],
        b"",
    );
    assert_eq!(img["name"], "My Test Image é");
    assert_eq!(img["status"], "queued");
    assert_eq!(img["is_public"], false);
    assert_eq!(img["deleted"], false);
    assert_eq!(img["properties"], json!({"os_distro": "debian/sid"}));
    let id = id_of(&img);

    let meta = head(&c, &id);
    assert_eq!(meta.status, 200);
    assert!(meta.body.is_empty());
    assert_eq!(meta.header("x-image-meta-id"), Some(id.as_str()));
    assert_eq!(
        meta.header("x-image-meta-name"),
        Some("My Test Image %C3%A9"),
        "response headers stay ASCII"
    );
    assert_eq!(meta.header("x-image-meta-status"), Some("queued"));
    assert_eq!(meta.header("x-image-meta-min_ram"), Some("64"));
    assert_eq!(meta.header("x-image-meta-is_public"), Some("False"));
    assert_eq!(
        meta.header("x-image-meta-property-os_distro"),
        Some("debian/sid")
    );

    // Queued: no data to read yet.
    c.get(&format!("/v1/images/{id}")).expect_error(404);

    let data = noise_vec(3, 1_500_000);
    let (md5, _) = hashes(&data);
    let put = c.send(
        "PUT",
        &format!("/v1/images/{id}"),
        &[OCTET, ("x-glance-registry-purge-props", "false")],
        Payload::Chunked(&data, 65_536),
    );
    let active = put.expect_json(200)["image"].clone();
    assert_eq!(active["status"], "active");
    assert_eq!(active["size"], data.len());
    assert_eq!(active["checksum"], md5.as_str());
    assert_eq!(put.header("etag"), Some(md5.as_str()));

    let got = c.get(&format!("/v1/images/{id}"));
    assert_eq!(got.status, 200);
    assert!(got.body == data, "data differs");
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        got.header("content-length"),
        Some(data.len().to_string().as_str())
    );
    assert_eq!(got.header("x-image-meta-checksum"), Some(md5.as_str()));
    assert_eq!(got.header("etag"), Some(md5.as_str()));

    let brief = c.get("/v1/images").expect_json(200);
    let entry = brief["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id.as_str())
        .expect("listed");
    assert_eq!(
        entry,
        &json!({"id": id, "name": "My Test Image é", "size": data.len(), "disk_format": "raw",
                "container_format": "bare", "checksum": md5})
    );

    let del = c.delete(&format!("/v1/images/{id}"));
    assert_eq!(del.status, 200);
    let gone = head(&c, &id);
    assert_eq!((gone.status, gone.body.len()), (404, 0));
}

#[test]
fn post_with_data_is_active_at_once_and_location_is_absolute() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let data = noise_vec(5, 70_000);
    let r = c.send(
        "POST",
        "/v1/images",
        &[
            OCTET,
            ("x-image-meta-name", "with-data"),
            ("x-image-meta-disk_format", "raw"),
            ("x-image-meta-container_format", "bare"),
            ("x-image-meta-size", "70000"),
            ("x-image-meta-checksum", &hashes(&data).0),
        ],
        Payload::Bytes(&data),
    );
    let img = r.expect_json(201)["image"].clone();
    assert_eq!(img["status"], "active");
    assert_eq!(img["size"], 70_000);
    let id = id_of(&img);
    assert_eq!(
        r.header("location"),
        Some(format!("{}/v1/images/{id}", svc.base).as_str())
    );
}

#[test]
fn lists_take_the_admin_manuals_filters_sort_and_paging() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let tag = &uuid_like()[..8];
    let prop = "x-image-meta-property-v1tag";
    for (name, disk, size) in [("b", "raw", 20), ("a", "raw", 10), ("c", "iso", 0)] {
        let data = vec![b'x'; size];
        let mut h = vec![
            ("x-image-meta-name", name),
            ("x-image-meta-disk_format", disk),
            (prop, tag),
        ];
        if size > 0 {
            h.push(("x-image-meta-container_format", "bare"));
        }
        create(&c, &h, &data);
    }
    let names = |q: &str| -> Vec<String> {
        let r = c
            .get(&format!("/v1/images/detail?property-v1tag={tag}&{q}"))
            .expect_json(200);
        r["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("sort_key=name&sort_dir=asc"), ["a", "b", "c"]);
    assert_eq!(names("sort_key=name&sort_dir=desc"), ["c", "b", "a"]);
    assert_eq!(names("sort_key=size&sort_dir=desc&limit=2"), ["b", "a"]);
    assert_eq!(
        names("disk_format=raw&sort_key=name&sort_dir=asc"),
        ["a", "b"]
    );
    assert_eq!(names("status=queued"), ["c"]);
    assert_eq!(names("size_min=15"), ["b"]);
    assert_eq!(names("size_max=15&status=active"), ["a"]);
    assert_eq!(names("name=a"), ["a"]);
    assert_eq!(
        names("container_format=bare&sort_key=name&sort_dir=asc"),
        ["a", "b"]
    );
    assert_eq!(names("is_public=true"), Vec::<String>::new());
    // Paging by marker, as the client does it.
    let first = c
        .get(&format!(
            "/v1/images/detail?property-v1tag={tag}&sort_key=name&sort_dir=asc&limit=1"
        ))
        .expect_json(200);
    let marker = first["images"][0]["id"].as_str().unwrap();
    assert_eq!(
        names(&format!("sort_key=name&sort_dir=asc&marker={marker}")),
        ["b", "c"]
    );
    // changes-since lists deleted images too.
    let gone = c
        .get(&format!("/v1/images/detail?property-v1tag={tag}&name=c"))
        .expect_json(200)["images"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(c.delete(&format!("/v1/images/{gone}")).status, 200);
    let since = c
        .get(&format!(
            "/v1/images/detail?property-v1tag={tag}&changes-since=2000-01-01T00:00:00Z"
        ))
        .expect_json(200);
    let deleted: Vec<&Value> = since["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "deleted")
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(
        (deleted[0]["id"].as_str(), &deleted[0]["deleted"]),
        (Some(gone.as_str()), &json!(true))
    );
}

#[test]
fn an_image_made_through_v1_reads_the_same_through_v2() {
    let svc = shared();
    let p = new_project();
    let c = svc.project(&p, "member");
    let data = noise_vec(11, 90_000);
    let v1 = create(
        &c,
        &[
            ("x-image-meta-name", "made%20in%20v1"),
            ("x-image-meta-is_public", "False"),
            ("x-image-meta-disk_format", "raw"),
            ("x-image-meta-container_format", "bare"),
            ("x-image-meta-property-hw_disk_bus", "scsi"),
            ("x-image-meta-property-os_distro", "cirros"),
        ],
        &data,
    );
    let id = id_of(&v1);
    let v2 = c.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(v2["name"], "made in v1");
    assert_eq!(v2["visibility"], "private", "is_public False");
    assert_eq!(v2["hw_disk_bus"], "scsi");
    assert_eq!(v2["os_distro"], "cirros");
    assert_eq!(v2["checksum"], v1["checksum"]);
    assert_eq!(v2["size"], data.len());
    assert_eq!(v2["owner"], p.as_str());
    assert_eq!(v2["status"], "active");
    let file = c.get(&format!("/v2/images/{id}/file"));
    assert!(file.body == data, "v2 reads v1's data");

    // Without is_public: shared, as v2 creates; is_public True: public (admin).
    let plain = create(&c, &[("x-image-meta-name", "plain")], b"");
    let v2 = c
        .get(&format!("/v2/images/{}", id_of(&plain)))
        .expect_json(200);
    assert_eq!(v2["visibility"], "shared");
    let admin = svc.project(&new_project(), "admin");
    let public = create(&admin, &[("x-image-meta-is_public", "True")], b"");
    let v2 = c
        .get(&format!("/v2/images/{}", id_of(&public)))
        .expect_json(200);
    assert_eq!(v2["visibility"], "public");
    // v1 update changes what v2 reads.
    let r = c
        .send(
            "PUT",
            &format!("/v1/images/{id}"),
            &[
                ("x-image-meta-name", "renamed"),
                ("x-glance-registry-purge-props", "false"),
                ("x-image-meta-property-os_distro", "debian"),
            ],
            Payload::None,
        )
        .expect_json(200);
    assert_eq!(
        r["image"]["properties"],
        json!({"hw_disk_bus": "scsi", "os_distro": "debian"})
    );
    let v2 = c.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(
        (v2["name"].as_str(), v2["os_distro"].as_str()),
        (Some("renamed"), Some("debian"))
    );
}

#[test]
fn an_image_made_through_v2_reads_the_same_through_v1() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let v2 = c.create_image(&json!({
        "name": "made in v2", "visibility": "private", "disk_format": "raw",
        "container_format": "bare", "os_distro": "fedora", "hw_rng_model": "virtio",
    }));
    let id = id_of(&v2);
    let data = noise_vec(13, 50_000);
    c.send(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        Payload::Bytes(&data),
    );
    let checksum = hashes(&data).0;
    let meta = head(&c, &id);
    assert_eq!(meta.status, 200);
    assert_eq!(meta.header("x-image-meta-name"), Some("made in v2"));
    assert_eq!(meta.header("x-image-meta-is_public"), Some("False"));
    assert_eq!(meta.header("x-image-meta-status"), Some("active"));
    assert_eq!(
        meta.header("x-image-meta-checksum"),
        Some(checksum.as_str())
    );
    assert_eq!(meta.header("x-image-meta-size"), Some("50000"));
    assert_eq!(
        meta.header("x-image-meta-property-os_distro"),
        Some("fedora")
    );
    assert_eq!(
        meta.header("x-image-meta-property-hw_rng_model"),
        Some("virtio")
    );
    let got = c.get(&format!("/v1/images/{id}"));
    assert!(got.body == data, "v1 reads v2's data");
    let detail = c
        .get("/v1/images/detail?name=made%20in%20v2")
        .expect_json(200);
    let img = &detail["images"][0];
    assert_eq!(img["id"], id.as_str());
    assert_eq!(img["is_public"], false);
    assert_eq!(img["checksum"], checksum.as_str());
    assert_eq!(
        img["properties"],
        json!({"os_distro": "fedora", "hw_rng_model": "virtio"})
    );
}

#[test]
fn members_are_shared_between_versions_and_a_member_gets_403_not_500() {
    let svc = shared();
    let (op, mp, other) = (new_project(), new_project(), new_project());
    let owner = svc.project(&op, "member");
    let member = svc.project(&mp, "member");
    let stranger = svc.project(&other, "member");
    let id = id_of(&create(&owner, &[("x-image-meta-name", "to-share")], b""));
    let members = format!("/v1/images/{id}/members");

    let r = owner.send(
        "PUT",
        &format!("{members}/{mp}"),
        &[("Content-Type", "application/json")],
        Payload::Bytes(br#"{"member": {"can_share": false}}"#),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let listed = owner.get(&members).expect_json(200);
    assert_eq!(
        listed,
        json!({"members": [{"member_id": mp, "can_share": false}]})
    );
    // The same membership through v2 (pending: v1 has no status).
    let v2 = owner
        .get(&format!("/v2/images/{id}/members"))
        .expect_json(200);
    assert_eq!(v2["members"][0]["member_id"], mp.as_str());
    assert_eq!(v2["members"][0]["status"], "pending");
    // v1 lists shared images whatever the membership's status.
    let seen = member.get("/v1/images").expect_json(200);
    assert!(seen["images"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id.as_str()));
    let shared_with = member
        .get(&format!("/v1/shared-images/{mp}"))
        .expect_json(200);
    assert_eq!(
        shared_with,
        json!({"shared_images": [{"image_id": id, "can_share": false}]})
    );

    // Glance 15 answered 500 when a member changed the owner's image.
    let msg = member
        .send(
            "PUT",
            &format!("/v1/images/{id}"),
            &[("x-image-meta-name", "mine")],
            Payload::None,
        )
        .expect_error(403);
    assert!(!msg.is_empty());
    member.delete(&format!("/v1/images/{id}")).expect_error(403);
    member
        .send("PUT", &format!("{members}/{other}"), &[], Payload::None)
        .expect_error(403);
    // Others see nothing.
    stranger.get(&members).expect_error(404);
    stranger
        .send("PUT", &format!("/v1/images/{id}"), &[], Payload::None)
        .expect_error(404);

    // Replace: the member keeps can_share when the entry omits it.
    let r = owner.send(
        "PUT",
        &members,
        &[("Content-Type", "application/json")],
        Payload::Bytes(
            json!({"memberships": [{"member_id": mp, "can_share": true}, {"member_id": other}]})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let r = owner.send(
        "PUT",
        &members,
        &[("Content-Type", "application/json")],
        Payload::Bytes(
            json!({"memberships": [{"member_id": mp}]})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 204);
    let listed = owner.get(&members).expect_json(200);
    assert_eq!(
        listed,
        json!({"members": [{"member_id": mp, "can_share": true}]})
    );
    // With can_share the member shares onward.
    let r = member.send("PUT", &format!("{members}/{other}"), &[], Payload::None);
    assert_eq!(r.status, 204, "{}", r.text());
    stranger.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(owner.delete(&format!("{members}/{other}")).status, 204);
    stranger.get(&format!("/v2/images/{id}")).expect_error(404);
}

/// The next `n` notifications' event types, checking each is about `id`.
fn events(sub: &mut Subscriber, id: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let msg = sub
                .next_message(std::time::Duration::from_secs(10))
                .expect("a notification");
            let doc: Value = serde_json::from_str(&msg).expect("JSON");
            let p = &doc["payload"];
            assert_eq!(
                p["id"].as_str().or(p["image_id"].as_str()),
                Some(id),
                "{doc}"
            );
            doc["event_type"].as_str().expect("event_type").to_string()
        })
        .collect()
}

/// v1's acts are announced as v2's are, by both components, over the
/// runtime's outbound Redis to a real subscriber.
#[test]
fn v1_acts_are_notified_on_redis() {
    let redis = RedisServer::start();
    let svc = Service::builder()
        .envs(&[
            ("SPIN_VARIABLE_NOTIFICATION_DRIVER", "redis"),
            ("SPIN_VARIABLE_NOTIFICATION_REDIS_URL", &redis.url()),
        ])
        .start();
    let mut sub = Subscriber::new(&redis, "notifications.info");
    let c = svc.project(&new_project(), "member");
    let img = create(
        &c,
        &[
            ("x-image-meta-name", "n"),
            ("x-image-meta-is_public", "False"),
        ],
        b"some data",
    );
    let id = id_of(&img);
    assert_eq!(
        events(&mut sub, &id, 4),
        [
            "image.create",
            "image.prepare",
            "image.upload",
            "image.activate"
        ]
    );
    c.send(
        "PUT",
        &format!("/v1/images/{id}"),
        &[("x-image-meta-name", "m")],
        Payload::None,
    )
    .expect_json(200);
    assert_eq!(events(&mut sub, &id, 1), ["image.update"]);
    let member = format!("/v1/images/{id}/members/{}", new_project());
    let put = c.send("PUT", &member, &[], Payload::None);
    assert_eq!(put.status, 204, "{}", put.text());
    assert_eq!(
        events(&mut sub, &id, 2),
        ["image.update", "image.member.create"]
    );
    assert_eq!(c.delete(&member).status, 204);
    assert_eq!(events(&mut sub, &id, 1), ["image.member.delete"]);
    assert_eq!(c.delete(&format!("/v1/images/{id}")).status, 200);
    assert_eq!(events(&mut sub, &id, 1), ["image.delete"]);
}

#[test]
fn the_version_document_lists_v1() {
    let svc = shared();
    let v = svc.client().get("/versions").expect_json(200);
    let ids: Vec<(String, String)> = v["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().into(),
                e["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let tail = &ids[ids.len() - 2..];
    assert_eq!(
        tail,
        [
            ("v1.1".to_string(), "DEPRECATED".to_string()),
            ("v1.0".into(), "DEPRECATED".into())
        ]
    );
    let last = v["versions"].as_array().unwrap().last().unwrap();
    assert_eq!(last["links"][0]["href"], format!("{}/v1/", svc.base));
}

/// (method, path, headers, body, status) — each must be a JSON error.
type Case<'a> = (&'a str, String, Vec<(&'a str, String)>, Vec<u8>, u16);

#[test]
fn bad_v1_input_is_a_clear_4xx_with_a_json_body() {
    let svc = shared();
    let p = new_project();
    let c = svc.project(&p, "member");
    let data = b"0123456789".to_vec();
    let active = id_of(&create(
        &c,
        &[
            ("x-image-meta-disk_format", "raw"),
            ("x-image-meta-container_format", "bare"),
        ],
        &data,
    ));
    let protected = id_of(&create(&c, &[("x-image-meta-protected", "True")], b""));
    let queued = id_of(&create(&c, &[], b""));
    let taken = uuid_like();
    create(&c, &[("x-image-meta-id", &taken)], b"");
    let s = |v: &str| v.to_string();
    let h = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    let img = |id: &str| format!("/v1/images/{id}");
    let json_ct = ("Content-Type", s("application/json"));
    let octet = ("Content-Type", s("application/octet-stream"));
    let formats = h(&[
        ("x-image-meta-disk_format", "raw"),
        ("x-image-meta-container_format", "bare"),
    ]);
    let with = |extra: &[(&'static str, &str)]| {
        let mut v = formats.clone();
        v.push(octet.clone());
        v.extend(h(extra));
        v
    };
    let mut unsafe_qcow2 = vec![0u8; 65_536];
    unsafe_qcow2[..4].copy_from_slice(b"QFI\xfb");
    unsafe_qcow2[4..8].copy_from_slice(&3u32.to_be_bytes());
    unsafe_qcow2[8..16].copy_from_slice(&512u64.to_be_bytes());
    unsafe_qcow2[24..32].copy_from_slice(&(1u64 << 20).to_be_bytes());
    let post = s("/v1/images");
    let cases: Vec<Case> = vec![
        // Headers that do not parse or name nothing.
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-foo", "1")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-size", "abc")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-size", "-1")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-min_ram", "lots")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-min_disk", "-5")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-disk_format", "floppy")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-container_format", "crate")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[
                ("x-image-meta-disk_format", "aki"),
                ("x-image-meta-container_format", "bare"),
            ]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            vec![("x-image-meta-name", "n".repeat(256))],
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            vec![("x-image-meta-checksum", "c".repeat(33))],
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-id", "not-a-uuid")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-is_public", "maybe")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-protected", "perhaps")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-created_at", "yesterday")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-name", "%FF%FE")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-property-kernel_id", "not-a-uuid")]),
            vec![],
            400,
        ),
        // What v1 could carry but this service does not take.
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-location", "http://example.com/x.img")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-glance-api-copy-from", "http://example.com/x.img")]),
            vec![],
            400,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-store", "swift")]),
            vec![],
            400,
        ),
        // Data that is not what the headers say.
        (
            "POST",
            post.clone(),
            {
                let mut v = formats.clone();
                v.push(json_ct.clone());
                v
            },
            b"{}".to_vec(),
            400,
        ),
        (
            "POST",
            post.clone(),
            with(&[("x-image-meta-size", "5")]),
            data.clone(),
            400,
        ),
        (
            "POST",
            post.clone(),
            with(&[("x-image-meta-checksum", "00000000000000000000000000000000")]),
            data.clone(),
            400,
        ),
        ("POST", post.clone(), vec![octet.clone()], unsafe_qcow2, 415),
        // The rules.
        (
            "POST",
            post.clone(),
            vec![("x-image-meta-id", taken.clone())],
            vec![],
            409,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-is_public", "True")]),
            vec![],
            403,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-owner", "someone-else")]),
            vec![],
            403,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-property-os_glance_x", "1")]),
            vec![],
            403,
        ),
        (
            "POST",
            post.clone(),
            h(&[("x-image-meta-property-size", "1")]),
            vec![],
            403,
        ),
        (
            "PUT",
            img(&active),
            h(&[("x-image-meta-status", "queued")]),
            vec![],
            403,
        ),
        (
            "PUT",
            img(&active),
            vec![("x-image-meta-id", uuid_like())],
            vec![],
            403,
        ),
        (
            "PUT",
            img(&active),
            h(&[("x-image-meta-size", "99")]),
            vec![],
            403,
        ),
        (
            "PUT",
            img(&active),
            h(&[("x-image-meta-disk_format", "qcow2")]),
            vec![],
            403,
        ),
        ("PUT", img(&active), vec![octet.clone()], data.clone(), 409),
        (
            "PUT",
            img(&queued),
            vec![json_ct.clone()],
            b"{}".to_vec(),
            400,
        ),
        ("PUT", img(&uuid_like()), vec![], vec![], 404),
        ("GET", img(&queued), vec![], vec![], 404),
        ("GET", img("not-a-uuid"), vec![], vec![], 404),
        ("DELETE", img(&protected), vec![], vec![], 403),
        ("DELETE", img(&uuid_like()), vec![], vec![], 404),
        ("PATCH", post.clone(), vec![], vec![], 405),
        ("HEAD", s("/v1/images/detail"), vec![], vec![], 405),
        // List parameters.
        (
            "GET",
            s("/v1/images/detail?sort_key=owner"),
            vec![],
            vec![],
            400,
        ),
        (
            "GET",
            s("/v1/images/detail?sort_dir=sideways"),
            vec![],
            vec![],
            400,
        ),
        ("GET", s("/v1/images?limit=ten"), vec![], vec![], 400),
        ("GET", s("/v1/images?limit=-1"), vec![], vec![], 400),
        (
            "GET",
            s("/v1/images/detail?marker=abc"),
            vec![],
            vec![],
            400,
        ),
        (
            "GET",
            format!("/v1/images/detail?marker={}", uuid_like()),
            vec![],
            vec![],
            400,
        ),
        (
            "GET",
            s("/v1/images/detail?size_min=big"),
            vec![],
            vec![],
            400,
        ),
        (
            "GET",
            s("/v1/images/detail?is_public=sometimes"),
            vec![],
            vec![],
            400,
        ),
        (
            "GET",
            s("/v1/images/detail?changes-since=last-week"),
            vec![],
            vec![],
            400,
        ),
        (
            "GET",
            s("/v1/images/detail?protected=kind-of"),
            vec![],
            vec![],
            400,
        ),
        // Members.
        (
            "PUT",
            format!("/v1/images/{queued}/members/p2"),
            vec![json_ct.clone()],
            br#"{"member": 1}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/images/{queued}/members/p2"),
            vec![json_ct.clone()],
            br#"{"member": {"can_share": "yes"}}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/images/{queued}/members/p2"),
            vec![json_ct.clone()],
            b"{not json".to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/images/{queued}/members"),
            vec![json_ct.clone()],
            b"{}".to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/images/{queued}/members"),
            vec![json_ct.clone()],
            br#"{"memberships": [{"can_share": true}]}"#.to_vec(),
            400,
        ),
        (
            "PUT",
            format!("/v1/images/{queued}/members/{}", "m".repeat(256)),
            vec![],
            vec![],
            400,
        ),
        (
            "GET",
            format!("/v1/images/{queued}/members/p2"),
            vec![],
            vec![],
            405,
        ),
        (
            "DELETE",
            format!("/v1/images/{queued}/members/nobody"),
            vec![],
            vec![],
            404,
        ),
        (
            "GET",
            format!("/v1/images/{}/members", uuid_like()),
            vec![],
            vec![],
            404,
        ),
    ];
    assert!(cases.len() >= 20);
    let mut failures = Vec::new();
    for (method, path, headers, body, status) in &cases {
        let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let payload = if body.is_empty() {
            Payload::None
        } else {
            Payload::Bytes(body)
        };
        let r = c.send(method, path, &hs, payload);
        if *method == "HEAD" {
            if r.status != *status {
                failures.push(format!(
                    "{method} {path} {headers:?}: {} (wanted {status})",
                    r.status
                ));
            }
            continue;
        }
        let ok = r.status == *status
            && r.header("content-type") == Some("application/json")
            && serde_json::from_slice::<Value>(&r.body).is_ok_and(|j| {
                j["error"]["code"] == *status
                    && j["error"]["title"].is_string()
                    && j["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
            });
        if !ok {
            failures.push(format!(
                "{method} {path} {headers:?}: {} {} (wanted {status})",
                r.status,
                r.text()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    test_support::report(&format!(
        "v1 bad inputs: {} cases, each a JSON 4xx",
        cases.len()
    ));
    // Nothing a refused create sent was kept, and the image the rules kept is intact.
    let after = c.get(&format!("/v1/images/{active}")).body;
    assert_eq!(after, data);
}

//! The v1 API driven natively through the harness, in both components.

use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::api::harness::{as_project, Harness, Reply};
use crate::api::{images, members};

const OCTET: (&str, &str) = ("content-type", "application/octet-stream");

fn md5_hex(data: &[u8]) -> String {
    Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// POST /v1/images with headers (and a body); the new image's JSON.
fn create(h: &Harness, headers: &[(&str, &str)], body: &[u8]) -> Value {
    let r = h.call(images::handle, "POST", "/v1/images", headers, body);
    r.expect(201)["image"].clone()
}

fn id_of(img: &Value) -> String {
    img["id"].as_str().expect("id").to_string()
}

fn head(h: &Harness, id: &str, who: &[(&str, &str)]) -> Reply {
    h.call(
        images::handle,
        "HEAD",
        &format!("/v1/images/{id}"),
        who,
        b"",
    )
}

#[test]
fn reserve_upload_download_delete() {
    let h = Harness::new();
    let img = create(
        &h,
        &[
            ("x-image-meta-name", "My%20Test%20Image"),
            ("x-image-meta-disk_format", "raw"),
            ("x-image-meta-container_format", "bare"),
            ("x-image-meta-property-os-distro", "debian"),
            OCTET,
        ],
        b"",
    );
    assert_eq!(img["status"], "queued");
    assert_eq!(img["name"], "My Test Image", "percent-decoded");
    assert_eq!(img["is_public"], false);
    assert_eq!(img["properties"], json!({"os_distro": "debian"}));
    let id = id_of(&img);

    let meta = head(&h, &id, &[]);
    assert_eq!(meta.status, 200);
    assert!(meta.body.is_empty());
    assert_eq!(meta.header("x-image-meta-status"), Some("queued"));
    assert_eq!(meta.header("x-image-meta-size"), Some("0"));
    assert_eq!(
        meta.header("x-image-meta-property-os_distro"),
        Some("debian")
    );

    let data = b"hello world".repeat(100);
    let put = h.call(
        images::handle,
        "PUT",
        &format!("/v1/images/{id}"),
        &[OCTET, ("x-glance-registry-purge-props", "false")],
        &data,
    );
    let active = put.expect(200)["image"].clone();
    assert_eq!(active["status"], "active");
    assert_eq!(active["size"], data.len());
    assert_eq!(active["checksum"], md5_hex(&data));
    assert_eq!(put.header("etag"), Some(md5_hex(&data).as_str()));
    assert_eq!(active["properties"]["os_distro"], "debian");

    let got = h.call(images::handle, "GET", &format!("/v1/images/{id}"), &[], b"");
    assert_eq!((got.status, got.body == data), (200, true));
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        got.header("x-image-meta-checksum"),
        Some(md5_hex(&data).as_str())
    );

    // Data again: the image is not queued any more.
    h.call(
        images::handle,
        "PUT",
        &format!("/v1/images/{id}"),
        &[OCTET],
        b"x",
    )
    .error(409);

    let del = h.call(
        images::handle,
        "DELETE",
        &format!("/v1/images/{id}"),
        &[],
        b"",
    );
    assert_eq!(del.status, 200);
    let gone = head(&h, &id, &[]);
    assert_eq!(
        (gone.status, gone.body.len()),
        (404, 0),
        "HEAD errors have no body"
    );
    h.call(images::handle, "GET", &format!("/v1/images/{id}"), &[], b"")
        .error(404);
}

#[test]
fn create_with_data_is_all_or_nothing() {
    let h = Harness::new();
    let formats = [
        ("x-image-meta-disk_format", "raw"),
        ("x-image-meta-container_format", "bare"),
        OCTET,
    ];
    let img = create(&h, &formats, b"abc");
    assert_eq!(
        (img["status"].as_str(), img["size"].as_u64()),
        (Some("active"), Some(3))
    );
    assert_eq!(img["checksum"], "900150983cd24fb0d6963f7d28e17f72");

    let before = h
        .call(images::handle, "GET", "/v1/images", &[], b"")
        .expect(200);
    let mut bad_size = formats.to_vec();
    bad_size.push(("x-image-meta-size", "5"));
    let msg = h
        .call(images::handle, "POST", "/v1/images", &bad_size, b"abc")
        .error(400);
    assert!(msg.contains("size"), "{msg}");
    let mut bad_sum = formats.to_vec();
    bad_sum.push(("x-image-meta-checksum", "0000"));
    let msg = h
        .call(images::handle, "POST", "/v1/images", &bad_sum, b"abc")
        .error(400);
    assert!(msg.starts_with("Supplied checksum (0000)"), "{msg}");

    // Data without formats: bare, and the format the data shows.
    let raw = create(&h, &[OCTET], b"abc");
    assert_eq!(
        (
            raw["disk_format"].as_str(),
            raw["container_format"].as_str()
        ),
        (Some("raw"), Some("bare"))
    );
    let mut qcow2 = vec![0u8; 1 << 16];
    qcow2[..4].copy_from_slice(b"QFI\xfb");
    qcow2[4..8].copy_from_slice(&3u32.to_be_bytes());
    qcow2[24..32].copy_from_slice(&(1u64 << 30).to_be_bytes());
    let shown = create(&h, &[OCTET], &qcow2);
    assert_eq!(shown["disk_format"], "qcow2");
    assert_eq!(shown["virtual_size"], 1u64 << 30);
    // Size 0 and no body: an image of no bytes, active at once (as Glance).
    let empty = create(&h, &[("x-image-meta-size", "0")], b"");
    assert_eq!(empty["status"], "active");
    assert_eq!(empty["checksum"], md5_hex(b""));
    let got = h.call(
        images::handle,
        "GET",
        &format!("/v1/images/{}", id_of(&empty)),
        &[],
        b"",
    );
    assert_eq!((got.status, got.body.len()), (200, 0));
    // An amazon format named alone names the other one.
    let aki = create(&h, &[("x-image-meta-disk_format", "aki")], b"");
    assert_eq!(aki["container_format"], "aki");
    let ari = id_of(&create(&h, &[], b""));
    let r = h
        .call(
            images::handle,
            "PUT",
            &format!("/v1/images/{ari}"),
            &[("x-image-meta-container_format", "ari")],
            b"",
        )
        .expect(200);
    assert_eq!(r["image"]["disk_format"], "ari");
    // ... under the same safety checks as a declared one.
    qcow2[8..16].copy_from_slice(&512u64.to_be_bytes());
    h.call(images::handle, "POST", "/v1/images", &[OCTET], &qcow2)
        .error(415);
    let msg = h
        .call(
            images::handle,
            "POST",
            "/v1/images",
            &[("content-type", "application/json"), formats[0], formats[1]],
            b"{}",
        )
        .error(400);
    assert_eq!(msg, "Content-Type must be application/octet-stream");

    let after = h
        .call(images::handle, "GET", "/v1/images", &[], b"")
        .expect(200);
    let count = |l: &Value| l["images"].as_array().map_or(0, Vec::len);
    assert_eq!(
        count(&after),
        count(&before) + 5,
        "refused creates leave no image"
    );

    let id = uuid::Uuid::new_v4().to_string();
    create(&h, &[("x-image-meta-id", &id)], b"");
    let msg = h
        .call(
            images::handle,
            "POST",
            "/v1/images",
            &[("x-image-meta-id", &id)],
            b"",
        )
        .error(409);
    assert_eq!(msg, format!("An image with identifier {id} already exists"));
}

#[test]
fn one_record_for_both_versions() {
    let h = Harness::new();
    let p1 = as_project("p1", "member");
    let mut hdrs = p1.to_vec();
    hdrs.extend([
        ("x-image-meta-name", "v1-made"),
        ("x-image-meta-is_public", "False"),
        ("x-image-meta-property-hw_disk_bus", "scsi"),
        ("x-image-meta-disk_format", "raw"),
        ("x-image-meta-container_format", "bare"),
        OCTET,
    ]);
    let v1 = create(&h, &hdrs, b"data");
    let v2 = h
        .call(
            images::handle,
            "GET",
            &format!("/v2/images/{}", id_of(&v1)),
            &p1,
            b"",
        )
        .expect(200);
    assert_eq!(v2["name"], "v1-made");
    assert_eq!(v2["visibility"], "private");
    assert_eq!(v2["hw_disk_bus"], "scsi");
    assert_eq!(v2["checksum"], v1["checksum"]);
    assert_eq!(v2["owner"], "p1");

    let made = h
        .json(
            images::handle,
            "POST",
            "/v2/images",
            &p1,
            &json!({"name": "v2-made", "os_distro": "fedora"}),
        )
        .expect(201);
    let meta = head(&h, made["id"].as_str().unwrap(), &p1);
    assert_eq!(meta.header("x-image-meta-name"), Some("v2-made"));
    assert_eq!(meta.header("x-image-meta-is_public"), Some("False"));
    assert_eq!(
        meta.header("x-image-meta-property-os_distro"),
        Some("fedora")
    );
    // Created without is_public: shared, as v2 creates.
    let plain = create(&h, &p1, b"");
    let v2 = h
        .call(
            images::handle,
            "GET",
            &format!("/v2/images/{}", id_of(&plain)),
            &p1,
            b"",
        )
        .expect(200);
    assert_eq!(v2["visibility"], "shared");
}

#[test]
fn update_merges_or_purges_properties_and_keeps_v2_rules() {
    let h = Harness::new();
    let p1 = as_project("p1", "member");
    let mut hdrs = p1.to_vec();
    hdrs.extend([
        ("x-image-meta-property-a", "1"),
        ("x-image-meta-property-b", "2"),
    ]);
    let id = id_of(&create(&h, &hdrs, b""));
    let path = format!("/v1/images/{id}");
    let mut keep = p1.to_vec();
    keep.extend([
        ("x-glance-registry-purge-props", "false"),
        ("x-image-meta-property-c", "3"),
        ("x-image-meta-min_ram", "512"),
    ]);
    let r = h.call(images::handle, "PUT", &path, &keep, b"").expect(200);
    assert_eq!(
        r["image"]["properties"],
        json!({"a": "1", "b": "2", "c": "3"})
    );
    assert_eq!(r["image"]["min_ram"], 512);
    // Without the header Glance purges what is not named.
    let mut purge = p1.to_vec();
    purge.push(("x-image-meta-property-b", "20"));
    let r = h
        .call(images::handle, "PUT", &path, &purge, b"")
        .expect(200);
    assert_eq!(r["image"]["properties"], json!({"b": "20"}));

    let mut public = p1.to_vec();
    public.push(("x-image-meta-is_public", "True"));
    h.call(images::handle, "PUT", &path, &public, b"")
        .error(403);
    let mut owner = p1.to_vec();
    owner.push(("x-image-meta-owner", "p9"));
    h.call(images::handle, "PUT", &path, &owner, b"").error(403);
    let mut status = p1.to_vec();
    status.push(("x-image-meta-status", "active"));
    h.call(images::handle, "PUT", &path, &status, b"")
        .error(403);
    let mut reserved = p1.to_vec();
    reserved.push(("x-image-meta-property-os_glance_x", "1"));
    h.call(images::handle, "PUT", &path, &reserved, b"")
        .error(403);
    // Another project sees nothing; a member sees but may not change (403, not 500).
    let p2 = as_project("p2", "member");
    head(&h, &id, &p2).expect(404);
    h.call(
        members::handle,
        "PUT",
        &format!("{path}/members/p2"),
        &p1,
        b"",
    )
    .expect(204);
    head(&h, &id, &p2).expect(200);
    h.call(images::handle, "PUT", &path, &p2, b"").error(403);
    h.call(images::handle, "DELETE", &path, &p2, b"").error(403);
}

#[test]
fn lists_filter_sort_page_and_show_changes() {
    let h = Harness::new();
    let p1 = as_project("p1", "member");
    let mut ids = Vec::new();
    for (name, distro) in [("c", "debian"), ("a", "fedora"), ("b", "debian")] {
        let mut hdrs = p1.to_vec();
        hdrs.extend([
            ("x-image-meta-name", name),
            ("x-image-meta-disk_format", "qcow2"),
            ("x-image-meta-property-os_distro", distro),
        ]);
        ids.push(id_of(&create(&h, &hdrs, b"")));
    }
    let names = |q: &str| -> Vec<String> {
        let r = h
            .call(
                images::handle,
                "GET",
                &format!("/v1/images/detail?{q}"),
                &p1,
                b"",
            )
            .expect(200);
        r["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("sort_key=name&sort_dir=asc"), ["a", "b", "c"]);
    assert_eq!(names("sort_key=name&sort_dir=desc"), ["c", "b", "a"]);
    assert_eq!(
        names("sort_key=name&sort_dir=asc&property-os_distro=debian"),
        ["b", "c"]
    );
    assert_eq!(names("sort_key=name&sort_dir=asc&limit=2"), ["a", "b"]);
    let a = &ids[1];
    assert_eq!(
        names(&format!("sort_key=name&sort_dir=asc&limit=2&marker={a}")),
        ["b", "c"]
    );
    assert_eq!(names("name=b&disk_format=qcow2&status=queued"), ["b"]);
    assert_eq!(names("disk_format=raw").len(), 0);
    h.call(
        images::handle,
        "GET",
        "/v1/images/detail?marker=8d3e5b5e-2f0a-4c4a-9a55-0c0f6f0b9c01",
        &p1,
        b"",
    )
    .error(400);
    let brief = h
        .call(images::handle, "GET", "/v1/images", &p1, b"")
        .expect(200);
    assert_eq!(brief["images"][0].as_object().map(|o| o.len()), Some(6));

    // changes-since also lists what was deleted since.
    h.call(
        images::handle,
        "DELETE",
        &format!("/v1/images/{}", ids[0]),
        &p1,
        b"",
    )
    .expect(200);
    let since = h
        .call(
            images::handle,
            "GET",
            "/v1/images/detail?changes-since=2000-01-01T00:00:00",
            &p1,
            b"",
        )
        .expect(200);
    let deleted: Vec<&Value> = since["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["deleted"] == true)
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["status"], "deleted");
    assert!(deleted[0]["deleted_at"].is_string());
    assert_eq!(names("").len(), 2, "without it, deleted images stay out");
}

#[test]
fn members_with_can_share() {
    let h = Harness::new();
    let p1 = as_project("p1", "member");
    let mut hdrs = p1.to_vec();
    hdrs.push(("x-image-meta-is_public", "False"));
    let id = id_of(&create(&h, &hdrs, b""));
    let members_path = format!("/v1/images/{id}/members");
    let call = |method: &str, path: &str, who: &[(&str, &str)], body: &Value| {
        if body.is_null() {
            h.call(members::handle, method, path, who, b"")
        } else {
            h.json(members::handle, method, path, who, body)
        }
    };
    call(
        "PUT",
        &format!("{members_path}/p2"),
        &p1,
        &json!({"member": {"can_share": true}}),
    )
    .expect(204);
    // Sharing a private image makes it shared.
    let v2 = h
        .call(images::handle, "GET", &format!("/v2/images/{id}"), &p1, b"")
        .expect(200);
    assert_eq!(v2["visibility"], "shared");
    call("PUT", &format!("{members_path}/p3"), &p1, &Value::Null).expect(204);
    let listed = call("GET", &members_path, &p1, &Value::Null).expect(200);
    assert_eq!(
        listed,
        json!({"members": [{"member_id": "p2", "can_share": true}, {"member_id": "p3", "can_share": false}]})
    );
    // v1 members are v2 members (pending until the member answers).
    let v2m = h
        .call(
            members::handle,
            "GET",
            &format!("/v2/images/{id}/members"),
            &p1,
            b"",
        )
        .expect(200);
    assert_eq!(v2m["members"][0]["status"], "pending");

    // p2 may share onward; p3 may not.
    let p2 = as_project("p2", "member");
    let p3 = as_project("p3", "member");
    call("PUT", &format!("{members_path}/p4"), &p2, &Value::Null).expect(204);
    call("PUT", &format!("{members_path}/p5"), &p3, &Value::Null).error(403);
    // A member sees its own entry only.
    let own = call("GET", &members_path, &p3, &Value::Null).expect(200);
    assert_eq!(
        own,
        json!({"members": [{"member_id": "p3", "can_share": false}]})
    );

    // Replace: p2 keeps can_share when the entry omits it.
    call(
        "PUT",
        &members_path,
        &p1,
        &json!({"memberships": [{"member_id": "p2"}, {"member_id": "p6", "can_share": true}]}),
    )
    .expect(204);
    let listed = call("GET", &members_path, &p1, &Value::Null).expect(200);
    assert_eq!(
        listed,
        json!({"members": [{"member_id": "p2", "can_share": true}, {"member_id": "p6", "can_share": true}]})
    );
    let shared = call("GET", "/v1/shared-images/p6", &p1, &Value::Null).expect(200);
    assert_eq!(
        shared,
        json!({"shared_images": [{"image_id": id, "can_share": true}]})
    );
    let hidden = call("GET", "/v1/shared-images/p6", &p3, &Value::Null).expect(200);
    assert_eq!(
        hidden,
        json!({"shared_images": []}),
        "p3 is no member any more"
    );

    call("DELETE", &format!("{members_path}/p6"), &p1, &Value::Null).expect(204);
    call("DELETE", &format!("{members_path}/p6"), &p1, &Value::Null).error(404);
    let r = call("GET", &format!("{members_path}/p2"), &p1, &Value::Null);
    assert_eq!((r.status, r.header("allow")), (405, Some("PUT, DELETE")));
    call("PUT", &members_path, &p1, &json!({"members": []})).error(400);
    call(
        "PUT",
        &format!("{members_path}/p7"),
        &p1,
        &json!({"member": {"can_share": "yes"}}),
    )
    .error(400);

    // Public images have no members.
    let mut admin_pub = as_project("p1", "admin").to_vec();
    admin_pub.push(("x-image-meta-is_public", "True"));
    let pub_id = id_of(&create(&h, &admin_pub, b""));
    call(
        "PUT",
        &format!("/v1/images/{pub_id}/members/p2"),
        &p1,
        &Value::Null,
    )
    .error(403);
}

#[test]
fn routes_and_methods() {
    let h = Harness::new();
    let r = h.call(images::handle, "HEAD", "/v1/images/detail", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = h.call(images::handle, "DELETE", "/v1/images/detail", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = h.call(images::handle, "PATCH", "/v1/images", &[], b"");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, POST")));
    let r = h.call(images::handle, "POST", "/v1/images/x", &[], b"");
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    h.call(images::handle, "GET", "/v1/images/not-a-uuid", &[], b"")
        .error(404);
}

/// The event types published so far, in order (the Redis driver's envelopes).
fn published(h: &Harness) -> Vec<String> {
    h.pubsub
        .messages
        .borrow()
        .iter()
        .map(|(_, _, body)| {
            let doc: Value = serde_json::from_slice(body).expect("json");
            doc["event_type"].as_str().expect("event_type").to_string()
        })
        .collect()
}

#[test]
fn v1_acts_publish_the_events_v2_acts_do() {
    let h = Harness::new();
    h.set("notification_driver", "redis");
    let p1 = as_project("p1", "member");
    let mut hdrs = p1.to_vec();
    hdrs.extend([
        ("x-image-meta-name", "n"),
        ("x-image-meta-is_public", "False"),
        OCTET,
    ]);
    let id = id_of(&create(&h, &hdrs, b"data"));
    assert_eq!(
        published(&h),
        [
            "image.create",
            "image.prepare",
            "image.upload",
            "image.activate"
        ]
    );
    let path = format!("/v1/images/{id}");
    let mut rename = p1.to_vec();
    rename.push(("x-image-meta-name", "m"));
    h.call(images::handle, "PUT", &path, &rename, b"")
        .expect(200);
    // Nothing changed, nothing published.
    h.call(images::handle, "PUT", &path, &rename, b"")
        .expect(200);
    let members_path = format!("/v1/images/{id}/members");
    h.call(
        members::handle,
        "PUT",
        &format!("{members_path}/p2"),
        &p1,
        b"",
    )
    .expect(204);
    h.json(
        members::handle,
        "PUT",
        &members_path,
        &p1,
        &json!({"memberships": [{"member_id": "p3"}]}),
    )
    .expect(204);
    h.call(
        members::handle,
        "DELETE",
        &format!("{members_path}/p3"),
        &p1,
        b"",
    )
    .expect(204);
    h.call(images::handle, "DELETE", &path, &p1, b"")
        .expect(200);
    assert_eq!(
        published(&h)[4..],
        [
            "image.update",
            // The private image became shared for its first member.
            "image.update",
            "image.member.create",
            "image.member.delete",
            "image.member.create",
            "image.member.delete",
            "image.delete"
        ]
    );
    for (_, _, body) in h.pubsub.messages.borrow().iter() {
        let doc: Value = serde_json::from_slice(body).expect("json");
        let p = &doc["payload"];
        assert_eq!(
            p["id"].as_str().or(p["image_id"].as_str()),
            Some(id.as_str())
        );
    }
}

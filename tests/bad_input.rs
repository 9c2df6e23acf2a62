//! End-to-end: bad input gets a clear 4xx with a Glance-shaped JSON error body,
//! never a 500. Each case asserts the status and the error document.

use serde_json::json;
use test_support::http::Payload;
use test_support::{new_project, shared, uuid_like, Client};

fn member() -> Client {
    shared().project(&new_project(), "member")
}

fn image(c: &Client) -> String {
    c.create_image(&json!({"name": "target"}))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn malformed_and_misshapen_bodies() {
    let c = member();
    let r = c.send(
        "POST",
        "/v2/images",
        &[("Content-Type", "application/json")],
        Payload::Bytes(b"{\"name\": "),
    );
    assert_eq!(r.expect_error(400), "Malformed JSON in request body.");
    let r = c.send(
        "POST",
        "/v2/images",
        &[("Content-Type", "application/json")],
        Payload::None,
    );
    assert_eq!(r.expect_error(400), "Body expected in request.");
    c.post_json("/v2/images", &json!([1, 2])).expect_error(400);
    c.post_json("/v2/images", &json!("just a string"))
        .expect_error(400);
}

#[test]
fn create_schema_violations() {
    let c = member();
    for (doc, status) in [
        (json!({"disk_format": "floppy"}), 400),
        (json!({"container_format": "crate"}), 400),
        (json!({"visibility": "everyone"}), 400),
        (json!({"name": "x".repeat(256)}), 400),
        (json!({"min_ram": -1}), 400),
        (json!({"min_disk": "big"}), 400),
        (json!({"protected": "yes"}), 400),
        (json!({"tags": "not-a-list"}), 400),
        (json!({"tags": ["x".repeat(256)]}), 400),
        (json!({"id": "not-a-uuid"}), 400),
        (json!({"os_distro": 7}), 400),
        (json!({"ramdisk_id": "not-a-uuid"}), 400),
        (json!({"k".repeat(256): "v"}), 400),
        (json!({"status": "active"}), 403),
        (json!({"size": 5}), 403),
        (json!({"checksum": "abc"}), 403),
        (json!({"self": "/x"}), 403),
        (json!({"location": "http://x"}), 403),
        (json!({"deleted": "1"}), 403),
        (json!({"os_glance_import_task": "x"}), 403),
        (json!({"visibility": "public"}), 403),
        (json!({"owner": "someone-else"}), 403),
    ] {
        let r = c.post_json("/v2/images", &doc);
        let msg = r.expect_error(status);
        assert!(!msg.is_empty(), "{doc}");
    }
}

#[test]
fn duplicate_id_conflicts() {
    let c = member();
    let id = uuid_like();
    c.create_image(&json!({"id": id}));
    let msg = c
        .post_json("/v2/images", &json!({"id": id}))
        .expect_error(409);
    assert!(msg.contains(&id), "{msg}");
}

#[test]
fn patch_bad_media_type_ops_and_paths() {
    let c = member();
    let path = format!("/v2/images/{}", image(&c));
    let r = c.send(
        "PATCH",
        &path,
        &[("Content-Type", "application/json")],
        Payload::Bytes(b"[]"),
    );
    r.expect_error(415);
    assert_eq!(
        r.header("accept-patch"),
        Some("application/openstack-images-v2.0-json-patch, application/openstack-images-v2.1-json-patch")
    );
    c.send("PATCH", &path, &[], Payload::Bytes(b"[]"))
        .expect_error(415);
    for (ops, status) in [
        (json!({"op": "replace"}), 400),
        (json!([1]), 400),
        (json!([{"op": "move", "path": "/name", "from": "/x"}]), 400),
        (json!([{"op": "test", "path": "/name", "value": "x"}]), 400),
        (json!([{"path": "/name", "value": "x"}]), 400),
        (json!([{"op": "replace", "value": "x"}]), 400),
        (json!([{"op": "replace", "path": "/name"}]), 400),
        (
            json!([{"op": "replace", "path": "name", "value": "x"}]),
            400,
        ),
        (
            json!([{"op": "replace", "path": "/a//b", "value": "x"}]),
            400,
        ),
        (json!([{"op": "add", "path": "/tags/-", "value": "x"}]), 400),
        (
            json!([{"op": "replace", "path": "/disk_format", "value": "floppy"}]),
            400,
        ),
        (
            json!([{"op": "replace", "path": "/min_ram", "value": -5}]),
            400,
        ),
        (json!([{"op": "add", "path": "/custom", "value": 12}]), 400),
        (
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            403,
        ),
        (json!([{"op": "replace", "path": "/id", "value": "x"}]), 403),
        (json!([{"op": "replace", "path": "/size", "value": 1}]), 403),
        (
            json!([{"op": "replace", "path": "/created_at", "value": "x"}]),
            403,
        ),
        (
            json!([{"op": "add", "path": "/os_glance_x", "value": "x"}]),
            403,
        ),
        (
            json!([{"op": "add", "path": "/deleted", "value": "x"}]),
            403,
        ),
        (
            json!([{"op": "add", "path": "/locations/-", "value": {"url": "http://x", "metadata": {}}}]),
            403,
        ),
    ] {
        c.patch(&path, &ops).expect_error(status);
    }
    let r = c.send(
        "PATCH",
        &path,
        &[(
            "Content-Type",
            "application/openstack-images-v2.1-json-patch",
        )],
        Payload::Bytes(b"[{"),
    );
    r.expect_error(400);
}

#[test]
fn list_parameters() {
    let c = member();
    for q in [
        "limit=-1",
        "limit=abc",
        "marker=does-not-exist",
        &format!("marker={}", uuid_like()),
        "sort_key=owner",
        "sort_dir=sideways",
        "sort=name:up",
        "sort=name:asc&sort_key=name",
        "sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc",
        "visibility=everyone",
        "member_status=maybe",
        "os_hidden=perhaps",
        "protected=yes",
        "size_min=small",
        "name=like:foo",
        "created_at=gt:yesterday",
        "created_at=about:2020-01-01T00:00:00Z",
        "changes-since=2020-01-01T00:00:00Z",
        "name=in:%22unclosed",
    ] {
        let r = c.get(&format!("/v2/images?{q}"));
        r.expect_error(400);
    }
    // A huge limit is capped, not refused.
    c.get("/v2/images?limit=1000000").expect_json(200);
}

#[test]
fn ids_and_unknown_images() {
    let c = member();
    c.get("/v2/images/not-a-uuid").expect_error(404);
    c.delete("/v2/images/not-a-uuid").expect_error(404);
    let missing = uuid_like();
    let msg = c.get(&format!("/v2/images/{missing}")).expect_error(404);
    assert!(msg.contains(&missing));
    c.patch(&format!("/v2/images/{missing}"), &json!([]))
        .expect_error(404);
    c.delete(&format!("/v2/images/{missing}/tags/x"))
        .expect_error(404);
}

#[test]
fn bodies_where_none_belong() {
    let c = member();
    let id = image(&c);
    c.send(
        "GET",
        &format!("/v2/images/{id}"),
        &[],
        Payload::Bytes(b"{}"),
    )
    .expect_error(400);
    c.send(
        "DELETE",
        &format!("/v2/images/{id}"),
        &[],
        Payload::Bytes(b"{}"),
    )
    .expect_error(400);
    c.send(
        "PUT",
        &format!("/v2/images/{id}/tags/t"),
        &[],
        Payload::Bytes(b"x"),
    )
    .expect_error(400);
    c.send(
        "POST",
        &format!("/v2/images/{id}/actions/deactivate"),
        &[],
        Payload::Chunked(b"x", 1),
    )
    .expect_error(400);
    // The image is untouched.
    c.get(&format!("/v2/images/{id}")).expect_json(200);
}

#[test]
fn tag_too_long_and_quotas() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let id = image(&c);
    c.put(&format!("/v2/images/{id}/tags/{}", "t".repeat(256)))
        .expect_error(400);
    let many: Vec<String> = (0..129).map(|i| format!("t{i}")).collect();
    c.post_json("/v2/images", &json!({"tags": many}))
        .expect_error(413);
    let mut props = serde_json::Map::new();
    for i in 0..129 {
        props.insert(format!("p{i}"), json!("v"));
    }
    c.post_json("/v2/images", &serde_json::Value::Object(props))
        .expect_error(413);
}

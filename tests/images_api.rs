//! End-to-end: the image metadata API over HTTP through glance-host and the
//! real .wasm components.

use serde_json::{json, Value};
use test_support::{new_project, shared, uuid_like};

fn ids(list: &Value) -> Vec<String> {
    list["images"]
        .as_array()
        .expect("images array")
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["images"]
        .as_array()
        .expect("images array")
        .iter()
        .map(|i| i["name"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn version_discovery() {
    let svc = shared();
    let c = svc.client();
    let v = c.get("/versions").expect_json(200);
    let versions = v["versions"].as_array().unwrap();
    let current: Vec<&Value> = versions
        .iter()
        .filter(|e| e["status"] == "CURRENT")
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], "v2.17");
    assert_eq!(versions[0]["links"][0]["href"], format!("{}/v2/", svc.base));
    let root = c.get("/");
    assert_eq!(root.status, 300);
    assert_eq!(root.json(), v);
    assert_eq!(c.get("/v3/images").status, 300);
    assert_eq!(c.get("/v1/images").status, 200, "v1 is served");
    c.get("/v1/nothing-here").expect_error(404);
    c.get("/v2/").expect_error(404);
    c.get("/v2/nothing-here").expect_error(404);
}

/// The runtime (Spin, or glance-host as Spin does) keeps a client's `spin-*` header
/// and appends its own after it; the service reads the last one, so a forged
/// client address or URL changes nothing. (A forged non-loopback address from a
/// loopback client would be refused by the noauth check if it were believed.)
#[test]
fn forged_spin_headers_are_not_believed() {
    let svc = shared();
    for forged in ["127.0.0.1:1", "192.0.2.7:1", "[2001:db8::1]:1", "junk"] {
        let c = svc.client().with_header("spin-client-addr", forged);
        let r = c.get("/v2/images?limit=1");
        assert_eq!(r.status, 200, "spin-client-addr: {forged}: {}", r.text());
        let created = c.create_image(&json!({"name": "forged-addr"}));
        assert_eq!(created["owner"].as_str().map(str::is_empty), Some(false));
    }
    let c = svc
        .client()
        .with_header("spin-full-url", "http://evil.example/x");
    let v = c.get("/versions").expect_json(200);
    assert_eq!(
        v["versions"][0]["links"][0]["href"],
        format!("{}/v2/", svc.base)
    );
}

#[test]
fn create_show_defaults_and_links() {
    let svc = shared();
    let p = new_project();
    let c = svc.project(&p, "member");
    let resp = c.post_json(
        "/v2/images",
        &json!({"name": "cirros", "disk_format": "qcow2", "container_format": "bare",
                "os_distro": "cirros", "tags": ["a", "b", "a"], "min_ram": 64}),
    );
    let img = resp.expect_json(201);
    let id = img["id"].as_str().unwrap();
    assert_eq!(
        resp.header("location").unwrap(),
        format!("{}/v2/images/{id}", svc.base)
    );
    assert!(resp
        .header("x-openstack-request-id")
        .unwrap()
        .starts_with("req-"));
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(img["status"], "queued");
    assert_eq!(img["visibility"], "shared");
    assert_eq!(img["owner"], p.as_str());
    assert_eq!(img["protected"], false);
    assert_eq!(img["os_hidden"], false);
    assert_eq!(img["min_disk"], 0);
    assert_eq!(img["min_ram"], 64);
    assert_eq!(img["checksum"], Value::Null);
    assert_eq!(img["os_hash_algo"], Value::Null);
    assert_eq!(img["os_hash_value"], Value::Null);
    assert_eq!(img["size"], Value::Null);
    assert_eq!(img["virtual_size"], Value::Null);
    assert_eq!(img["os_distro"], "cirros");
    assert_eq!(img["tags"], json!(["a", "b"]));
    assert_eq!(img["self"], format!("/v2/images/{id}"));
    assert_eq!(img["file"], format!("/v2/images/{id}/file"));
    assert_eq!(img["schema"], "/v2/schemas/image");
    let created = img["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 20, "YYYY-MM-DDTHH:MM:SSZ: {created}");
    assert!(created.ends_with('Z'));
    assert_eq!(img["updated_at"], img["created_at"]);

    let shown = c.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(shown, img);

    // A client-chosen id is kept.
    let my_id = uuid_like();
    let mine = c.create_image(&json!({"id": my_id, "name": "chosen"}));
    assert_eq!(mine["id"], my_id.as_str());
}

#[test]
fn private_images_are_invisible_to_other_projects() {
    let svc = shared();
    let owner = svc.project(&new_project(), "member");
    let other = svc.project(&new_project(), "member");
    let img = owner.create_image(&json!({"name": "secret", "visibility": "private"}));
    let path = format!("/v2/images/{}", img["id"].as_str().unwrap());
    other.get(&path).expect_error(404);
    other.delete(&path).expect_error(404);
    other
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .expect_error(404);
    other.put(&format!("{path}/tags/t")).expect_error(404);
    assert!(
        !ids(&other.get("/v2/images?visibility=all").expect_json(200))
            .contains(&img["id"].as_str().unwrap().to_string())
    );
    // ...and still there for the owner.
    owner.get(&path).expect_json(200);
}

#[test]
fn visible_but_not_yours_is_forbidden() {
    let svc = shared();
    let admin = svc.client();
    let other = svc.project(&new_project(), "member");
    let img = admin.create_image(&json!({"name": "pub", "visibility": "public"}));
    let path = format!("/v2/images/{}", img["id"].as_str().unwrap());
    other.get(&path).expect_json(200);
    other
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/name", "value": "x"}]),
        )
        .expect_error(403);
    other.delete(&path).expect_error(403);
    admin.delete(&path);
}

#[test]
fn patch_both_dialects_and_per_op_outcomes() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let img = c.create_image(&json!({"name": "before", "os_distro": "debian"}));
    let path = format!("/v2/images/{}", img["id"].as_str().unwrap());

    let after = c
        .patch(
            &path,
            &json!([
                {"op": "replace", "path": "/name", "value": "after"},
                {"op": "replace", "path": "/disk_format", "value": "raw"},
                {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
                {"op": "remove", "path": "/os_distro"},
                {"op": "replace", "path": "/tags", "value": ["x", "y"]},
                {"op": "replace", "path": "/min_disk", "value": 2},
                {"op": "replace", "path": "/protected", "value": true}
            ]),
        )
        .expect_json(200);
    assert_eq!(after["name"], "after");
    assert_eq!(after["disk_format"], "raw");
    assert_eq!(after["hw_disk_bus"], "scsi");
    assert!(after.get("os_distro").is_none());
    assert_eq!(after["tags"], json!(["x", "y"]));
    assert_eq!(after["min_disk"], 2);
    assert_eq!(after["protected"], true);

    // The draft-4 dialect Tempest uses: op name as key.
    let v20 = "application/openstack-images-v2.0-json-patch";
    let t = c
        .patch_as(
            &path,
            v20,
            &json!([{"replace": "/name", "value": "tempest"}]),
        )
        .expect_json(200);
    assert_eq!(t["name"], "tempest");
    c.patch_as(&path, v20, &json!([{"add": "/name", "value": "x"}]))
        .expect_error(409);
    c.patch_as(&path, v20, &json!([{"add": "/new_prop", "value": "1"}]))
        .expect_json(200);
    c.patch_as(&path, v20, &json!([{"add": "/new_prop", "value": "2"}]))
        .expect_error(409);

    // Glance's per-op outcomes.
    c.patch(
        &path,
        &json!([{"op": "replace", "path": "/missing", "value": "x"}]),
    )
    .expect_error(409);
    c.patch(&path, &json!([{"op": "remove", "path": "/missing"}]))
        .expect_error(409);
    c.patch(&path, &json!([{"op": "remove", "path": "/name"}]))
        .expect_error(403);
    c.patch(
        &path,
        &json!([{"op": "replace", "path": "/owner", "value": "someone"}]),
    )
    .expect_error(403);
    c.patch(
        &path,
        &json!([{"op": "replace", "path": "/visibility", "value": "public"}]),
    )
    .expect_error(403);
    let comm = c
        .patch(
            &path,
            &json!([{"op": "replace", "path": "/visibility", "value": "community"}]),
        )
        .expect_json(200);
    assert_eq!(comm["visibility"], "community");
    // A failing op aborts the whole patch.
    c.patch(
        &path,
        &json!([
            {"op": "replace", "path": "/name", "value": "partial"},
            {"op": "remove", "path": "/missing"}
        ]),
    )
    .expect_error(409);
    assert_eq!(c.get(&path).expect_json(200)["name"], "tempest");
    // updated_at moves, created_at does not.
    let shown = c.get(&path).expect_json(200);
    assert_eq!(shown["created_at"], img["created_at"]);
}

#[test]
fn delete_protected_then_unprotected() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let img = c.create_image(&json!({"name": "keep", "protected": true}));
    let path = format!("/v2/images/{}", img["id"].as_str().unwrap());
    let msg = c.delete(&path).expect_error(403);
    assert!(msg.contains("protected"), "{msg}");
    c.patch(
        &path,
        &json!([{"op": "replace", "path": "/protected", "value": false}]),
    )
    .expect_json(200);
    let gone = c.delete(&path);
    assert_eq!(gone.status, 204);
    assert!(gone.body.is_empty());
    c.get(&path).expect_error(404);
    c.delete(&path).expect_error(404);
    // The id of a deleted image is never reused.
    c.post_json("/v2/images", &json!({"id": img["id"]}))
        .expect_error(409);
}

#[test]
fn tags_add_and_remove() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let img = c.create_image(&json!({"name": "tagged"}));
    let path = format!("/v2/images/{}", img["id"].as_str().unwrap());
    assert_eq!(c.put(&format!("{path}/tags/web%20server")).status, 204);
    assert_eq!(
        c.put(&format!("{path}/tags/web%20server")).status,
        204,
        "idempotent"
    );
    assert_eq!(c.put(&format!("{path}/tags/db")).status, 204);
    assert_eq!(
        c.get(&path).expect_json(200)["tags"],
        json!(["web server", "db"])
    );
    assert_eq!(c.delete(&format!("{path}/tags/db")).status, 204);
    c.delete(&format!("{path}/tags/db")).expect_error(404);
    assert_eq!(c.get(&path).expect_json(200)["tags"], json!(["web server"]));
    c.put(&format!("/v2/images/{}/tags/x", uuid_like()))
        .expect_error(404);
}

#[test]
fn deactivate_rules() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let img = c.create_image(&json!({"name": "q"}));
    let path = format!("/v2/images/{}", img["id"].as_str().unwrap());
    c.send(
        "POST",
        &format!("{path}/actions/deactivate"),
        &[],
        test_support::http::Payload::None,
    )
    .expect_error(403);
    c.send(
        "POST",
        &format!("{path}/actions/reactivate"),
        &[],
        test_support::http::Payload::None,
    )
    .expect_error(403);
}

#[test]
fn list_filters_sorting_and_pagination() {
    let svc = shared();
    let p = new_project();
    let c = svc.project(&p, "member");
    let mut created = Vec::new();
    for (i, name) in ["delta", "alpha", "charlie", "bravo", "echo"]
        .iter()
        .enumerate()
    {
        let img = c.create_image(&json!({
            "name": name,
            "disk_format": if i % 2 == 0 { "qcow2" } else { "raw" },
            "container_format": "bare",
            "visibility": if i == 4 { "private" } else { "shared" },
            "tags": if i < 2 { json!(["gold", "linux"]) } else { json!(["linux"]) },
            "os_distro": if i < 3 { "debian" } else { "fedora" },
            "protected": i == 1,
            "os_hidden": i == 3,
            "min_ram": i * 100,
        }));
        created.push(img);
    }
    let q = |query: &str| {
        c.get(&format!("/v2/images?owner={p}&{query}"))
            .expect_json(200)
    };

    assert_eq!(
        names(&q("sort_key=name&sort_dir=asc")),
        ["alpha", "charlie", "delta", "echo"]
    );
    assert_eq!(
        names(&q("sort=name:desc")),
        ["echo", "delta", "charlie", "alpha"]
    );
    assert_eq!(names(&q("os_hidden=true")), ["bravo"]);
    assert_eq!(
        names(&q("tag=gold&tag=linux&sort=name:asc")),
        ["alpha", "delta"]
    );
    assert_eq!(names(&q("disk_format=raw")), ["alpha"]);
    assert_eq!(names(&q("os_distro=fedora")), ["echo"]);
    assert_eq!(names(&q("protected=true")), ["alpha"]);
    assert_eq!(names(&q("visibility=private")), ["echo"]);
    assert_eq!(
        names(&q("name=in:alpha,echo&sort=name:asc")),
        ["alpha", "echo"]
    );
    assert_eq!(names(&q("name=eq:charlie")), ["charlie"]);
    assert_eq!(names(&q("min_ram=200")), ["charlie"]);
    assert_eq!(
        names(&q(
            "member_status=all&status=queued&container_format=bare&sort=name:asc"
        ))
        .len(),
        4
    );
    assert_eq!(names(&q("created_at=gte:2000-01-01T00:00:00Z")).len(), 4);
    assert_eq!(names(&q("created_at=lt:2000-01-01T00:00:00Z")).len(), 0);
    assert_eq!(q("sort=name:asc")["schema"], "/v2/schemas/images");

    // Paging: follow `next` until it is gone; every filter and sort rides along.
    let mut seen = Vec::new();
    let mut url = format!("/v2/images?owner={p}&sort_key=name&sort_dir=asc&limit=2");
    let first = c.get(&url).expect_json(200);
    assert_eq!(
        first["first"],
        format!("/v2/images?owner={p}&sort_key=name&sort_dir=asc&limit=2")
    );
    let mut pages = 0;
    loop {
        let page = c.get(&url).expect_json(200);
        pages += 1;
        seen.extend(names(&page));
        match page.get("next").and_then(Value::as_str) {
            Some(next) => {
                assert!(
                    next.contains("sort_key=name") && next.contains("limit=2"),
                    "{next}"
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["alpha", "charlie", "delta", "echo"]);
    assert_eq!(pages, 2, "no trailing empty page");

    // Default page size is limit_param_default (25) and limit=0 is empty.
    assert_eq!(q("limit=0")["images"], json!([]));
}

#[test]
fn list_visibility_for_other_projects() {
    let svc = shared();
    let p = new_project();
    let owner = svc.project(&p, "member");
    let admin = svc.client();
    let stranger = svc.project(&new_project(), "member");
    let shared_img = owner.create_image(&json!({"name": "s"}));
    let comm = owner.create_image(&json!({"name": "c", "visibility": "community"}));
    let public = admin.create_image(&json!({"name": "p", "visibility": "public", "owner": p}));
    let listed = ids(&stranger
        .get(&format!("/v2/images?owner={p}"))
        .expect_json(200));
    assert_eq!(listed, vec![public["id"].as_str().unwrap().to_string()]);
    let community = ids(&stranger
        .get(&format!("/v2/images?owner={p}&visibility=community"))
        .expect_json(200));
    assert_eq!(community, vec![comm["id"].as_str().unwrap().to_string()]);
    // Community images are visible by id; shared ones without membership are not.
    stranger
        .get(&format!("/v2/images/{}", comm["id"].as_str().unwrap()))
        .expect_json(200);
    stranger
        .get(&format!(
            "/v2/images/{}",
            shared_img["id"].as_str().unwrap()
        ))
        .expect_error(404);
    // The admin sees every project's images (but not others' community ones by default).
    let all = ids(&admin.get(&format!("/v2/images?owner={p}")).expect_json(200));
    assert_eq!(all.len(), 2, "{all:?}");
}

#[test]
fn routing_and_methods() {
    let svc = shared();
    let c = svc.client();
    let id = uuid_like();
    let r = c.send(
        "HEAD",
        &format!("/v2/images/{id}"),
        &[],
        test_support::http::Payload::None,
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE"));
    let r = c.send("PUT", "/v2/images", &[], test_support::http::Payload::None);
    r.expect_error(405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    c.get("/v2/images/").expect_error(404);
    c.delete("/v2/images/").expect_error(404);
    c.get(&format!("/v2/images/{id}/no-such-thing"))
        .expect_error(404);
    c.send(
        "POST",
        "/v2/schemas/image",
        &[],
        test_support::http::Payload::None,
    )
    .expect_error(405);
}

#[test]
fn schemas_are_served() {
    let svc = shared();
    let c = svc.client();
    for (path, name) in [
        ("image", "image"),
        ("images", "images"),
        ("member", "member"),
        ("members", "members"),
        ("metadefs/namespace", "namespace"),
        ("metadefs/namespaces", "namespaces"),
        ("metadefs/resource_type", "resource_type_association"),
        ("metadefs/resource_types", "resource_type_associations"),
        ("metadefs/property", "property"),
        ("metadefs/properties", "properties"),
        ("metadefs/object", "object"),
        ("metadefs/objects", "objects"),
        ("metadefs/tag", "tag"),
        ("metadefs/tags", "tags"),
    ] {
        let doc = c.get(&format!("/v2/schemas/{path}")).expect_json(200);
        assert_eq!(doc["name"], name, "{path}");
    }
    let image = c.get("/v2/schemas/image").expect_json(200);
    assert_eq!(image["properties"]["name"]["maxLength"], 255);
    assert_eq!(image["properties"]["os_distro"]["is_base"], false);
    c.get("/v2/schemas/nope").expect_error(404);
}

#[test]
fn noauth_headers_and_defaults() {
    let svc = shared();
    // Without identity headers: the configured default (admin of project "admin").
    let img = svc.client().create_image(&json!({"name": "default-owner"}));
    assert_eq!(img["owner"], "admin");
    // X-Tenant-Id works as X-Project-Id does.
    let t = test_support::Client::new(svc.addr)
        .with_header("X-Tenant-Id", "tenant-x")
        .with_header("X-Roles", "member")
        .create_image(&json!({"name": "t"}));
    assert_eq!(t["owner"], "tenant-x");
    // A reader cannot create.
    svc.project(&new_project(), "reader")
        .post_json("/v2/images", &json!({}))
        .expect_error(403);
}

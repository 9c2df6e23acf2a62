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

/// One bad request and the 4xx it must get.
struct Case {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
}

fn case(method: &'static str, path: impl Into<String>, status: u16) -> Case {
    Case {
        method,
        path: path.into(),
        headers: Vec::new(),
        body: None,
        status,
    }
}

impl Case {
    fn json(mut self, doc: serde_json::Value) -> Case {
        self.headers
            .push(("Content-Type", "application/json".into()));
        self.body = Some(doc.to_string().into_bytes());
        self
    }

    fn raw(mut self, content_type: &'static str, body: &[u8]) -> Case {
        self.headers.push(("Content-Type", content_type.into()));
        self.body = Some(body.to_vec());
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Case {
        self.headers.push((name, value.into()));
        self
    }
}

/// Every route, every way of getting it wrong: each answer is the expected
/// 4xx with a Glance-shaped JSON error, and none is a 5xx.
#[test]
fn every_route_answers_bad_input_with_a_json_4xx() {
    let project = new_project();
    let c = shared().project(&project, "member");
    let id = image(&c);
    let active = c
        .create_image(&json!({"name": "a", "disk_format": "raw", "container_format": "bare"}))
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let put = c.send(
        "PUT",
        &format!("/v2/images/{active}/file"),
        &[("Content-Type", "application/octet-stream")],
        Payload::Bytes(b"0123456789"),
    );
    assert_eq!(put.status, 204);
    let missing = uuid_like();
    let mut cases: Vec<Case> = Vec::new();
    // Methods a route does not take: 405 (with Allow) on every route.
    let routes: &[(&str, &[&str])] = &[
        ("/v2/images", &["GET", "POST"]),
        ("/v2/images/{id}", &["GET", "PATCH", "DELETE"]),
        ("/v2/images/{id}/file", &["GET", "PUT"]),
        ("/v2/images/{id}/stage", &["PUT"]),
        ("/v2/images/{id}/import", &["POST"]),
        ("/v2/images/{id}/tasks", &["GET"]),
        ("/v2/images/{id}/tags/t", &["PUT", "DELETE"]),
        ("/v2/images/{id}/actions/deactivate", &["POST"]),
        ("/v2/images/{id}/actions/reactivate", &["POST"]),
        ("/v2/images/{id}/members", &["GET", "POST"]),
        ("/v2/images/{id}/members/m", &["GET", "PUT", "DELETE"]),
        ("/v2/info/import", &["GET"]),
        ("/v2/schemas/image", &["GET"]),
        ("/v2/schemas/metadefs/namespace", &["GET"]),
        ("/openapi.yaml", &["GET"]),
    ];
    for (route, allowed) in routes {
        let path = route.replace("{id}", &id);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            if !allowed.contains(&method) {
                cases.push(case(method, path.clone(), 405));
            }
        }
    }
    // Unknown and malformed image ids: 404 on every image route.
    for bad in [missing.as_str(), "not-a-uuid", "%00", "x%2Fy"] {
        for (method, suffix) in [
            ("GET", ""),
            ("DELETE", ""),
            ("GET", "/file"),
            ("GET", "/tasks"),
            ("PUT", "/tags/t"),
            ("DELETE", "/tags/t"),
            ("POST", "/actions/deactivate"),
            ("POST", "/actions/reactivate"),
            ("GET", "/members"),
            ("GET", "/members/m"),
            ("DELETE", "/members/m"),
        ] {
            cases.push(case(method, format!("/v2/images/{bad}{suffix}"), 404));
        }
        cases.push(
            case("PATCH", format!("/v2/images/{bad}"), 404)
                .raw("application/openstack-images-v2.1-json-patch", b"[]"),
        );
        cases.push(
            case("PUT", format!("/v2/images/{bad}/file"), 404)
                .raw("application/octet-stream", b"x"),
        );
        cases.push(
            case("POST", format!("/v2/images/{bad}/import"), 404)
                .json(json!({"method": {"name": "glance-direct"}})),
        );
        cases.push(
            case("POST", format!("/v2/images/{bad}/members"), 404).json(json!({"member": "p"})),
        );
    }
    // Paths that route nowhere.
    for path in [
        "/v2/nothing",
        "/v2/images/x/y/z",
        "/v2/images/x/actions/explode",
        "/v2/info/nothing",
        "/v2/schemas/nope",
        "/v2/schemas/metadefs/nope",
    ] {
        cases.push(case("GET", path, 404));
    }
    // Bodies: malformed, misshapen, too big, where none belongs.
    let big = vec![b' '; (1 << 20) + 10];
    for (method, path) in [
        ("POST", "/v2/images".to_string()),
        ("POST", format!("/v2/images/{id}/import")),
        ("POST", format!("/v2/images/{id}/members")),
    ] {
        cases.push(case(method, path.clone(), 400).raw("application/json", b"{"));
        cases.push(case(method, path.clone(), 400).raw("application/json", b""));
        cases.push(case(method, path.clone(), 400).json(json!([1])));
        cases.push(case(method, path.clone(), 400).json(json!("s")));
        cases.push(case(method, path.clone(), 413).raw("application/json", &big));
    }
    for path in [
        format!("/v2/images/{id}"),
        format!("/v2/images/{id}/tasks"),
        format!("/v2/images/{id}/members"),
        "/v2/info/import".to_string(),
        "/v2/schemas/image".to_string(),
    ] {
        cases.push(case("GET", path, 400).raw("application/json", b"{}"));
    }
    for path in [
        format!("/v2/images/{id}/tags/x"),
        format!("/v2/images/{id}/actions/deactivate"),
    ] {
        let method = if path.contains("tags") { "PUT" } else { "POST" };
        cases.push(case(method, path, 400).raw("text/plain", b"body"));
    }
    // PATCH: media types, operations, paths.
    let patch = format!("/v2/images/{id}");
    for ct in [
        "application/json",
        "text/plain",
        "application/openstack-images-v9-json-patch",
    ] {
        cases.push(case("PATCH", patch.clone(), 415).raw(ct, b"[]"));
    }
    let pt = "application/openstack-images-v2.1-json-patch";
    for (ops, status) in [
        (json!({"op": "add"}), 400),
        (
            json!([{"op": "explode", "path": "/name", "value": "x"}]),
            400,
        ),
        (json!([{"op": "add", "path": "name", "value": "x"}]), 400),
        (json!([{"op": "add", "path": "/name"}]), 400),
        (
            json!([{"op": "replace", "path": "/status", "value": "active"}]),
            403,
        ),
        (
            json!([{"op": "replace", "path": "/id", "value": missing}]),
            403,
        ),
        (
            json!([{"op": "replace", "path": "/disk_format", "value": "floppy"}]),
            400,
        ),
        (
            json!([{"op": "replace", "path": "/visibility", "value": "everyone"}]),
            400,
        ),
        (
            json!([{"op": "replace", "path": "/min_ram", "value": -5}]),
            400,
        ),
        (json!([{"op": "remove", "path": "/name"}]), 403),
        (json!([{"op": "remove", "path": "/not-there"}]), 409),
        (
            json!([{"op": "add", "path": "/os_glance_x", "value": "v"}]),
            403,
        ),
        (
            json!([{"op": "add", "path": "/locations/-", "value": {}}]),
            403,
        ),
        (json!([{"op": "add", "path": "/a/b", "value": "v"}]), 400),
        (
            json!([{"op": "replace", "path": "/protected", "value": "yes"}]),
            400,
        ),
    ] {
        cases.push(case("PATCH", patch.clone(), status).raw(pt, ops.to_string().as_bytes()));
    }
    // List parameters.
    let many_tags: Vec<String> = (0..150).map(|i| format!("tag=t{i}")).collect();
    for q in [
        "limit=-1".to_string(),
        "limit=x".into(),
        "sort_dir=sideways".into(),
        "sort_key=nope".into(),
        "sort=name:up".into(),
        "sort=nope:asc".into(),
        "sort_key=name&sort=name:asc".into(),
        format!("marker={missing}"),
        "marker=not-a-uuid".into(),
        "member_status=maybe".into(),
        "visibility=everyone".into(),
        "os_hidden=maybe".into(),
        "protected=maybe".into(),
        "size_min=big".into(),
        "size_max=huge".into(),
        "created_at=gt:yesterday".into(),
        "updated_at=sometime:2020-01-01T00:00:00Z".into(),
        "name=in:%22open".into(),
        "changes-since=2020-01-01".into(),
        many_tags.join("&"),
    ] {
        cases.push(case("GET", format!("/v2/images?{q}"), 400));
    }
    // Data: content types, sizes, ranges, states.
    let file = format!("/v2/images/{id}/file");
    cases.push(case("PUT", file.clone(), 415).raw("application/json", b"x"));
    cases.push(case("PUT", file.clone(), 415).raw("text/plain", b"x"));
    cases.push(
        case("PUT", file.clone(), 400)
            .raw("application/octet-stream", b"x")
            .header("x-openstack-image-size", "many"),
    );
    cases.push(case("PUT", file.clone(), 400).raw("application/octet-stream", b"x"));
    cases.push(case("PUT", format!("/v2/images/{id}/stage"), 415).raw("text/plain", b"x"));
    let data = format!("/v2/images/{active}/file");
    for (range, status) in [
        ("bytes=-0", 416),
        ("bytes=5-2", 416),
        ("bytes=100-", 416),
        ("items=0-1", 416),
        ("bytes=abc", 416),
        ("bytes=0-1,3-4", 400),
    ] {
        cases.push(case("GET", data.clone(), status).header("Range", range));
    }
    cases.push(case("PUT", data.clone(), 409).raw("application/octet-stream", b"again"));
    // Import requests.
    let import = format!("/v2/images/{id}/import");
    for (doc, status) in [
        (json!({}), 400),
        (json!({"method": "web-download"}), 400),
        (json!({"method": {}}), 400),
        (json!({"method": {"name": "teleport"}}), 400),
        (json!({"method": {"name": "web-download"}}), 400),
        (
            json!({"method": {"name": "web-download", "uri": "ftp://x/y"}}),
            400,
        ),
        (
            json!({"method": {"name": "web-download", "uri": "http://127.0.0.1/x"}}),
            400,
        ),
        (
            json!({"method": {"name": "glance-direct"}, "stores": "kv"}),
            400,
        ),
        (
            json!({"method": {"name": "glance-direct"}, "stores": [1]}),
            400,
        ),
        (
            json!({"method": {"name": "glance-direct"}, "all_stores": "yes"}),
            400,
        ),
        (
            json!({"method": {"name": "glance-direct"}, "all_stores_must_succeed": false}),
            400,
        ),
        (json!({"method": {"name": "glance-direct"}}), 409),
        (json!({"method": {"name": "copy-image"}}), 409),
    ] {
        cases.push(case("POST", import.clone(), status).json(doc));
    }
    // Tags.
    cases.push(case(
        "PUT",
        format!("/v2/images/{id}/tags/{}", "t".repeat(256)),
        400,
    ));
    cases.push(case(
        "DELETE",
        format!("/v2/images/{id}/tags/not-there"),
        404,
    ));
    // Actions on the wrong status.
    cases.push(case(
        "POST",
        format!("/v2/images/{id}/actions/deactivate"),
        403,
    ));
    cases.push(case(
        "POST",
        format!("/v2/images/{id}/actions/reactivate"),
        403,
    ));
    // Members of an image that is not shared, and bad member documents.
    let private = c.create_image(&json!({"name": "p", "visibility": "private"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    cases.push(
        case("POST", format!("/v2/images/{private}/members"), 403).json(json!({"member": "p2"})),
    );
    cases.push(case("GET", format!("/v2/images/{private}/members"), 403));
    let members = format!("/v2/images/{id}/members");
    for doc in [
        json!({}),
        json!({"member": ""}),
        json!({"member": 5}),
        json!({"member": "x".repeat(256)}),
    ] {
        cases.push(case("POST", members.clone(), 400).json(doc));
    }
    cases.push(case("GET", format!("{members}/nobody"), 404));
    cases.push(case("DELETE", format!("{members}/nobody"), 404));
    for doc in [json!({}), json!({"status": "maybe"}), json!({"status": 3})] {
        cases.push(case("PUT", format!("{members}/nobody"), 400).json(doc));
    }
    cases.push(case("PUT", format!("{members}/nobody"), 404).json(json!({"status": "accepted"})));
    // Stores API in single-store mode.
    cases.push(case("GET", "/v2/info/stores", 404));
    cases.push(case("GET", "/v2/info/stores/detail", 404));
    cases.push(case("DELETE", format!("/v2/stores/kv/{active}"), 404));

    let mut failures = Vec::new();
    let mut server_errors = 0;
    for case in &cases {
        let headers: Vec<(&str, &str)> =
            case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = case.body.as_deref().map_or(Payload::None, Payload::Bytes);
        let r = c.send(case.method, &case.path, &headers, body);
        if r.status >= 500 {
            server_errors += 1;
        }
        let json_error = r.header("content-type") == Some("application/json")
            && serde_json::from_slice::<serde_json::Value>(&r.body)
                .is_ok_and(|j| j["error"]["code"] == r.status && j["error"]["title"].is_string());
        if r.status != case.status || !json_error {
            failures.push(format!(
                "{} {} -> {} (expected {}): {}",
                case.method,
                case.path.chars().take(120).collect::<String>(),
                r.status,
                case.status,
                r.text().chars().take(200).collect::<String>()
            ));
        }
    }
    // A blank roles header means no roles: the owner's own image is not
    // readable without `reader`.
    let rolesless = shared().project(&project, " ");
    rolesless
        .get(&format!("/v2/images/{active}"))
        .expect_error(404);
    let total = cases.len() + 1;
    test_support::report(&format!(
        "bad input over every route: {total} cases, {} as expected with a JSON error, \
         {server_errors} server errors",
        total - failures.len()
    ));
    assert!(total >= 200, "only {total} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Requests the runtime's HTTP layer (hyper) answers before any component
/// sees them. glance-host gives them Glance's JSON error document; real Spin
/// sends the status with an empty body (host/README.md lists the difference).
#[test]
fn host_made_errors_are_4xx_with_glances_body_on_glance_host() {
    use std::io::{Read, Write};
    let svc = shared();
    let addr = svc.client().addr();
    let mut many = String::from("GET /v2/images HTTP/1.1\r\nHost: h\r\n");
    for i in 0..120 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a request line that is not HTTP",
            b"HELLO\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a header without a colon",
            b"GET /v2/images HTTP/1.1\r\nHost: h\r\nbroken\r\n\r\n".to_vec(),
            400,
        ),
        (
            "a space in the header name",
            b"GET /v2/images HTTP/1.1\r\nHost: h\r\nX Y: z\r\n\r\n".to_vec(),
            400,
        ),
        ("120 header fields", many.into_bytes(), 431),
        (
            "a 70 kB URI",
            format!(
                "GET /v2/images?name={} HTTP/1.1\r\nHost: h\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes(),
            414,
        ),
    ];
    for (what, raw, status) in cases {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(&raw).expect("write");
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {text}"
        );
        match svc.runtime() {
            test_support::Runtime::GlanceHost => {
                let doc: serde_json::Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
                assert_eq!(doc["error"]["code"], status, "{what}");
                assert!(
                    doc["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{what}"
                );
            }
            test_support::Runtime::Spin => assert_eq!(body, "", "{what}: Spin's body"),
        }
    }
}

//! The catalog driven natively through the images service's entry point.

use serde_json::json;

use crate::api::harness::{as_project, Harness};
use crate::api::images::handle;

const ADMIN: [(&str, &str); 2] = [
    ("x-project-id", "admin"),
    ("x-roles", "admin,member,reader"),
];

fn h() -> Harness {
    Harness::new()
}

#[test]
fn namespace_with_everything_nested_round_trips() {
    let h = h();
    let ns = json!({
        "namespace": "OS::Test::Watchdog",
        "display_name": "Watchdog",
        "visibility": "public",
        "protected": true,
        "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "hw_"}],
        "properties": {"watchdog_action": {"title": "A", "type": "string", "enum": ["reset", "none"]}},
        "objects": [{"name": "o", "required": ["x"], "properties": {"x": {"title": "X", "type": "integer"}}}],
        "tags": [{"name": "a"}, {"name": "b"}],
    });
    let r = h.json(handle, "POST", "/v2/metadefs/namespaces", &ADMIN, &ns);
    let created = r.expect(201);
    assert_eq!(
        r.header("location"),
        Some("http://127.0.0.1:3000/v2/metadefs/namespaces/OS::Test::Watchdog")
    );
    assert_eq!(created["owner"], "admin");
    assert_eq!(
        created["properties"]["watchdog_action"]["enum"],
        json!(["reset", "none"])
    );
    let again = h.json(handle, "POST", "/v2/metadefs/namespaces", &ADMIN, &ns);
    assert!(again.error(409).contains("already exists"));

    let shown = h
        .call(
            handle,
            "GET",
            "/v2/metadefs/namespaces/OS::Test::Watchdog?resource_type=OS::Glance::Image",
            &ADMIN,
            b"",
        )
        .expect(200);
    assert!(
        shown["properties"]["hw_watchdog_action"].is_object(),
        "{shown}"
    );
    assert_eq!(shown["objects"][0]["required"], json!(["hw_x"]));
    assert_eq!(shown["tags"], json!([{"name": "b"}, {"name": "a"}]));

    let listed = h
        .call(
            handle,
            "GET",
            "/v2/metadefs/namespaces?resource_types=OS::Glance::Image",
            &ADMIN,
            b"",
        )
        .expect(200);
    assert_eq!(listed["namespaces"][0]["namespace"], "OS::Test::Watchdog");
    assert_eq!(
        listed["namespaces"][0]["resource_type_associations"][0]["prefix"],
        "hw_"
    );
    let rts = h
        .call(handle, "GET", "/v2/metadefs/resource_types", &ADMIN, b"")
        .expect(200);
    assert_eq!(rts["resource_types"][0]["name"], "OS::Glance::Image");

    // Protected: not deletable, nor its contents.
    let del = h.call(
        handle,
        "DELETE",
        "/v2/metadefs/namespaces/OS::Test::Watchdog",
        &ADMIN,
        b"",
    );
    assert!(del.error(403).contains("protected"));
    let del = h.call(
        handle,
        "DELETE",
        "/v2/metadefs/namespaces/OS::Test::Watchdog/tags/a",
        &ADMIN,
        b"",
    );
    del.error(403);
    let put =
        json!({"namespace": "OS::Test::Watchdog", "protected": false, "visibility": "public"});
    let updated = h
        .json(
            handle,
            "PUT",
            "/v2/metadefs/namespaces/OS::Test::Watchdog",
            &ADMIN,
            &put,
        )
        .expect(200);
    assert_eq!(updated["protected"], false);
    h.call(
        handle,
        "DELETE",
        "/v2/metadefs/namespaces/OS::Test::Watchdog",
        &ADMIN,
        b"",
    )
    .expect(204);
    h.call(
        handle,
        "GET",
        "/v2/metadefs/namespaces/OS::Test::Watchdog",
        &ADMIN,
        b"",
    )
    .error(404);
}

#[test]
fn objects_properties_tags_and_associations() {
    let h = h();
    h.json(
        handle,
        "POST",
        "/v2/metadefs/namespaces",
        &ADMIN,
        &json!({"namespace": "n"}),
    )
    .expect(201);
    let base = "/v2/metadefs/namespaces/n";
    // Objects.
    let o = h
        .json(
            handle,
            "POST",
            &format!("{base}/objects"),
            &ADMIN,
            &json!({"name": "o1", "description": "d"}),
        )
        .expect(201);
    assert_eq!(o["self"], "/v2/metadefs/namespaces/n/objects/o1");
    h.json(
        handle,
        "POST",
        &format!("{base}/objects"),
        &ADMIN,
        &json!({"name": "o1"}),
    )
    .error(409);
    let renamed = h
        .json(
            handle,
            "PUT",
            &format!("{base}/objects/o1"),
            &ADMIN,
            &json!({"name": "o2"}),
        )
        .expect(200);
    assert_eq!(renamed["name"], "o2");
    assert!(
        renamed.get("description").is_none(),
        "a PUT replaces the object"
    );
    h.call(handle, "GET", &format!("{base}/objects/o1"), &ADMIN, b"")
        .error(404);
    let list = h
        .call(handle, "GET", &format!("{base}/objects"), &ADMIN, b"")
        .expect(200);
    assert_eq!(list["objects"][0]["name"], "o2");
    h.call(handle, "DELETE", &format!("{base}/objects/o2"), &ADMIN, b"")
        .expect(204);
    // Properties.
    let prop = json!({"name": "p", "title": "P", "type": "integer", "minimum": 1});
    let created = h
        .json(handle, "POST", &format!("{base}/properties"), &ADMIN, &prop)
        .expect(201);
    assert_eq!(
        created,
        json!({"name": "p", "title": "P", "type": "integer", "minimum": 1})
    );
    h.json(handle, "POST", &format!("{base}/properties"), &ADMIN, &prop)
        .error(409);
    let bad = h.json(
        handle,
        "POST",
        &format!("{base}/properties"),
        &ADMIN,
        &json!({"name": "q", "title": "Q"}),
    );
    assert!(bad.error(400).contains("'type' is a required property"));
    let props = h
        .call(handle, "GET", &format!("{base}/properties"), &ADMIN, b"")
        .expect(200);
    assert_eq!(props["properties"]["p"]["minimum"], 1);
    assert!(props["properties"]["p"].get("name").is_none());
    h.json(
        handle,
        "PUT",
        &format!("{base}/properties/p"),
        &ADMIN,
        &json!({"name": "p2", "title": "P", "type": "string"}),
    )
    .expect(200);
    h.call(handle, "GET", &format!("{base}/properties/p2"), &ADMIN, b"")
        .expect(200);
    // Tags: one, several (replacing or appending), case-insensitive names.
    h.call(handle, "POST", &format!("{base}/tags/c"), &ADMIN, b"")
        .expect(201);
    h.call(handle, "POST", &format!("{base}/tags/C"), &ADMIN, b"")
        .error(409);
    let tags = json!({"tags": [{"name": "x"}, {"name": "y"}]});
    h.json(handle, "POST", &format!("{base}/tags"), &ADMIN, &tags)
        .expect(201);
    let list = h
        .call(handle, "GET", &format!("{base}/tags"), &ADMIN, b"")
        .expect(200);
    assert_eq!(
        list["tags"],
        json!([{"name": "y"}, {"name": "x"}]),
        "c was replaced"
    );
    let mut append = ADMIN.to_vec();
    append.push(("x-openstack-append", "True"));
    h.json(
        handle,
        "POST",
        &format!("{base}/tags"),
        &append,
        &json!({"tags": [{"name": "w"}]}),
    )
    .expect(201);
    h.json(
        handle,
        "POST",
        &format!("{base}/tags"),
        &append,
        &json!({"tags": [{"name": "W"}]}),
    )
    .error(409);
    h.json(
        handle,
        "POST",
        &format!("{base}/tags"),
        &ADMIN,
        &json!({"tags": [{"name": "z"}, {"name": "z"}]}),
    )
    .error(409);
    let list = h
        .call(
            handle,
            "GET",
            &format!("{base}/tags?sort_key=name&sort_dir=asc&limit=2"),
            &ADMIN,
            b"",
        )
        .expect(200);
    assert_eq!(list["tags"], json!([{"name": "w"}, {"name": "x"}]));
    h.json(
        handle,
        "PUT",
        &format!("{base}/tags/w"),
        &ADMIN,
        &json!({"name": "x"}),
    )
    .error(409);
    h.json(
        handle,
        "PUT",
        &format!("{base}/tags/w"),
        &ADMIN,
        &json!({"name": "w2"}),
    )
    .expect(200);
    h.call(handle, "DELETE", &format!("{base}/tags"), &ADMIN, b"")
        .expect(204);
    let list = h
        .call(handle, "GET", &format!("{base}/tags"), &ADMIN, b"")
        .expect(200);
    assert_eq!(list["tags"], json!([]));
    // Associations.
    let a = json!({"name": "OS::Nova::Flavor", "prefix": "hw:"});
    h.json(
        handle,
        "POST",
        &format!("{base}/resource_types"),
        &ADMIN,
        &a,
    )
    .expect(201);
    h.json(
        handle,
        "POST",
        &format!("{base}/resource_types"),
        &ADMIN,
        &a,
    )
    .error(409);
    let list = h
        .call(
            handle,
            "GET",
            &format!("{base}/resource_types"),
            &ADMIN,
            b"",
        )
        .expect(200);
    assert_eq!(list["resource_type_associations"][0]["prefix"], "hw:");
    h.call(
        handle,
        "DELETE",
        &format!("{base}/resource_types/OS::Nova::Flavor"),
        &ADMIN,
        b"",
    )
    .expect(204);
    h.call(
        handle,
        "DELETE",
        &format!("{base}/resource_types/OS::Nova::Flavor"),
        &ADMIN,
        b"",
    )
    .error(404);
    h.call(
        handle,
        "DELETE",
        &format!("{base}/resource_types/OS::Nope"),
        &ADMIN,
        b"",
    )
    .error(404);
}

#[test]
fn default_policy_readers_read_public_admins_write() {
    let h = h();
    for (name, vis) in [("pub", "public"), ("priv", "private")] {
        h.json(
            handle,
            "POST",
            "/v2/metadefs/namespaces",
            &ADMIN,
            &json!({"namespace": name, "visibility": vis}),
        )
        .expect(201);
    }
    let member = as_project("p1", "member,reader");
    let listed = h
        .call(handle, "GET", "/v2/metadefs/namespaces", &member, b"")
        .expect(200);
    let names: Vec<&str> = listed["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["namespace"].as_str())
        .collect();
    assert_eq!(names, ["pub"]);
    h.call(handle, "GET", "/v2/metadefs/namespaces/pub", &member, b"")
        .expect(200);
    h.call(handle, "GET", "/v2/metadefs/namespaces/priv", &member, b"")
        .error(404);
    h.call(
        handle,
        "GET",
        "/v2/metadefs/namespaces/priv/objects",
        &member,
        b"",
    )
    .error(404);
    h.json(
        handle,
        "POST",
        "/v2/metadefs/namespaces",
        &member,
        &json!({"namespace": "mine"}),
    )
    .error(403);
    h.json(
        handle,
        "POST",
        "/v2/metadefs/namespaces/pub/objects",
        &member,
        &json!({"name": "o"}),
    )
    .error(403);
    h.json(
        handle,
        "POST",
        "/v2/metadefs/namespaces/priv/objects",
        &member,
        &json!({"name": "o"}),
    )
    .error(404);
    h.call(
        handle,
        "DELETE",
        "/v2/metadefs/namespaces/pub",
        &member,
        b"",
    )
    .error(403);
    h.call(handle, "GET", "/v2/metadefs/resource_types", &member, b"")
        .expect(200);
    let nobody = as_project("p1", "");
    h.call(handle, "GET", "/v2/metadefs/namespaces", &nobody, b"")
        .error(403);
}

#[test]
fn paging_and_bad_input_are_clear_4xx() {
    let h = h();
    for n in ["a", "b", "c"] {
        h.json(
            handle,
            "POST",
            "/v2/metadefs/namespaces",
            &ADMIN,
            &json!({"namespace": n}),
        )
        .expect(201);
    }
    let page = h
        .call(
            handle,
            "GET",
            "/v2/metadefs/namespaces?sort_key=namespace&sort_dir=asc&limit=2",
            &ADMIN,
            b"",
        )
        .expect(200);
    assert_eq!(page["namespaces"].as_array().unwrap().len(), 2);
    let next = page["next"].as_str().unwrap().to_string();
    assert_eq!(
        next,
        "/v2/metadefs/namespaces?sort_key=namespace&sort_dir=asc&limit=2&marker=b"
    );
    let rest = h.call(handle, "GET", &next, &ADMIN, b"").expect(200);
    assert_eq!(rest["namespaces"][0]["namespace"], "c");
    assert!(rest.get("next").is_none());
    for (target, status) in [
        ("/v2/metadefs/namespaces?limit=x", 400),
        ("/v2/metadefs/namespaces?limit=-1", 400),
        ("/v2/metadefs/namespaces?sort_dir=up", 400),
        ("/v2/metadefs/namespaces?sort_key=nope", 400),
        ("/v2/metadefs/namespaces?visibility=shared", 400),
        ("/v2/metadefs/namespaces?marker=nope", 404),
        ("/v2/metadefs/namespaces/a/tags?marker=nope", 404),
        ("/v2/metadefs/nothing", 404),
    ] {
        h.call(handle, "GET", target, &ADMIN, b"").error(status);
    }
    let r = h.call(handle, "PATCH", "/v2/metadefs/namespaces/a", &ADMIN, b"");
    r.error(405);
    assert_eq!(r.header("allow"), Some("GET, PUT, DELETE"));
    for (method, target, body) in [
        ("POST", "/v2/metadefs/namespaces", "{bad"),
        ("POST", "/v2/metadefs/namespaces", "[]"),
        ("POST", "/v2/metadefs/namespaces", r#"{"namespace": 1}"#),
        (
            "POST",
            "/v2/metadefs/namespaces",
            r#"{"namespace": "x", "objects": [{"description": "no name"}]}"#,
        ),
        (
            "POST",
            "/v2/metadefs/namespaces",
            r#"{"namespace": "x", "tags": [{"name": "t"}, {"name": "T"}]}"#,
        ),
        (
            "POST",
            "/v2/metadefs/namespaces",
            r#"{"namespace": "x", "self": "/x"}"#,
        ),
        ("PUT", "/v2/metadefs/namespaces/a", r#"{"namespace": "b"}"#),
        (
            "POST",
            "/v2/metadefs/namespaces/a/objects",
            r#"{"name": "o", "required": "x"}"#,
        ),
        ("POST", "/v2/metadefs/namespaces/a/tags", r#"{"tags": "x"}"#),
        (
            "POST",
            "/v2/metadefs/namespaces/a/resource_types",
            r#"{"prefix": "x"}"#,
        ),
        (
            "PUT",
            "/v2/metadefs/namespaces/a/tags/none",
            r#"{"name": "y"}"#,
        ),
    ] {
        let r = h.call(handle, method, target, &ADMIN, body.as_bytes());
        assert!(
            (400..500).contains(&r.status),
            "{method} {target} {body}: {}",
            r.status
        );
        r.error(r.status);
    }
    let long = "t".repeat(81);
    h.call(
        handle,
        "POST",
        &format!("/v2/metadefs/namespaces/a/tags/{long}"),
        &ADMIN,
        b"",
    )
    .error(400);
    // Nothing of the refused bodies was written.
    h.call(handle, "GET", "/v2/metadefs/namespaces/x", &ADMIN, b"")
        .error(404);
}

//! The metadata definitions catalog end to end: Glance's own catalog files
//! (from the `glance` package on PyPI, see `test_support::metadefs`) loaded
//! over HTTP as an operator loads them, listed for images, exported and
//! loaded again; then driven with `glance md-*` and `openstack image metadef
//! ...`, their output asserted.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use test_support::cli::{cloud_entry, column, openstackclient_venv, CloudCli};
use test_support::keystone::Keystone;
use test_support::python::{glance, prop, table};
use test_support::{metadefs, Payload, Service};

/// The identity of an admin in noauth mode.
const ADMIN: &[(&str, &str)] = &[
    ("X-Project-Id", "admin"),
    ("X-Roles", "admin,member,reader"),
];

fn get(svc: &Service, path: &str) -> Value {
    let r = svc.client().send("GET", path, ADMIN, Payload::None);
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    serde_json::from_slice(&r.body).expect("JSON")
}

#[test]
fn glances_catalog_loads_lists_for_images_and_exports() {
    let svc = Service::start();
    let catalog = metadefs::catalog();
    let loaded = metadefs::load(&svc.client(), ADMIN);
    assert_eq!(loaded.len(), catalog.len());
    assert!(
        loaded.len() >= 30,
        "Glance 33 ships 32 namespaces: {loaded:?}"
    );

    // The namespaces that describe images, with their properties as an image
    // carries them (the association's prefix, e.g. `hw_`).
    let for_images: BTreeSet<String> = catalog
        .iter()
        .filter(|(_, doc)| {
            doc["resource_type_associations"]
                .as_array()
                .is_some_and(|a| a.iter().any(|r| r["name"] == "OS::Glance::Image"))
        })
        .map(|(_, doc)| doc["namespace"].as_str().unwrap_or_default().to_string())
        .collect();
    let listed = get(
        &svc,
        "/v2/metadefs/namespaces?resource_types=OS::Glance::Image&limit=100",
    );
    let names: BTreeSet<String> = listed["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .map(|n| n["namespace"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, for_images);
    for (file, doc) in &catalog {
        let name = doc["namespace"].as_str().unwrap_or_default();
        if !for_images.contains(name) {
            continue;
        }
        let prefix = doc["resource_type_associations"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["name"] == "OS::Glance::Image"))
            .and_then(|r| r["prefix"].as_str())
            .unwrap_or("");
        let shown = get(
            &svc,
            &format!("/v2/metadefs/namespaces/{name}?resource_type=OS::Glance::Image"),
        );
        let want: BTreeSet<String> = doc["properties"]
            .as_object()
            .map(|p| p.keys().map(|k| format!("{prefix}{k}")).collect())
            .unwrap_or_default();
        let have: BTreeSet<String> = shown["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(have, want, "{file}");
        // Each definition is the file's.
        if let Some((key, def)) = doc["properties"].as_object().and_then(|p| p.iter().next()) {
            assert_eq!(
                shown["properties"][format!("{prefix}{key}")],
                *def,
                "{file}: {key}"
            );
        }
    }
    let types = get(&svc, "/v2/metadefs/resource_types");
    let types: Vec<&str> = column(&types["resource_types"], "name");
    for t in [
        "OS::Glance::Image",
        "OS::Nova::Flavor",
        "OS::Cinder::Volume",
    ] {
        assert!(types.contains(&t), "{types:?}");
    }

    // Export: a namespace shown is the whole namespace; without its
    // read-only attributes it loads again, unchanged.
    let name = "OS::Compute::Watchdog";
    let mut exported = get(&svc, &format!("/v2/metadefs/namespaces/{name}"));
    for key in ["self", "schema", "created_at", "updated_at"] {
        exported.as_object_mut().expect("object").remove(key);
    }
    let r = svc.client().send(
        "PUT",
        &format!("/v2/metadefs/namespaces/{name}"),
        &[ADMIN, &[("Content-Type", "application/json")]].concat(),
        Payload::Bytes(
            json!({"namespace": name, "visibility": "public"})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = svc.client().send(
        "DELETE",
        &format!("/v2/metadefs/namespaces/{name}"),
        ADMIN,
        Payload::None,
    );
    assert_eq!(r.status, 204);
    let body = exported.to_string();
    let r = svc.client().send(
        "POST",
        "/v2/metadefs/namespaces",
        &[ADMIN, &[("Content-Type", "application/json")]].concat(),
        Payload::Bytes(body.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let again = get(&svc, &format!("/v2/metadefs/namespaces/{name}"));
    assert_eq!(again["properties"], exported["properties"]);
    assert_eq!(again["protected"], exported["protected"]);
    assert_eq!(
        column(&again["resource_type_associations"], "name"),
        column(&exported["resource_type_associations"], "name")
    );
    // A second load of the same file is a 409, nothing changed.
    let r = svc.client().send(
        "POST",
        "/v2/metadefs/namespaces",
        &[ADMIN, &[("Content-Type", "application/json")]].concat(),
        Payload::Bytes(body.as_bytes()),
    );
    assert_eq!(r.status, 409);
}

#[test]
fn glance_md_commands() {
    let svc = Service::start();
    let file = metadefs::catalog_dir().join("compute-watchdog.json");
    let file = file.to_str().expect("utf-8 path");
    // md-namespace-import: a catalog file, as one command.
    let out = glance(&svc, &["md-namespace-import", "--file", file]);
    assert_eq!(
        prop(out.expect_ok(), "namespace").as_deref(),
        Some("OS::Compute::Watchdog")
    );

    let out = glance(
        &svc,
        &[
            "md-namespace-create",
            "gc-ns",
            "--display-name",
            "GC",
            "--visibility",
            "public",
        ],
    );
    let shown = out.expect_ok();
    assert_eq!(prop(shown, "display_name").as_deref(), Some("GC"));
    assert_eq!(prop(shown, "visibility").as_deref(), Some("public"));

    let listed = glance(&svc, &["md-namespace-list"]);
    let rows = table(listed.expect_ok());
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.first())
        .map(String::as_str)
        .collect();
    assert!(
        names.contains(&"gc-ns") && names.contains(&"OS::Compute::Watchdog"),
        "{names:?}"
    );

    glance(
        &svc,
        &[
            "md-property-create",
            "gc-ns",
            "--name",
            "speed",
            "--title",
            "Speed",
            "--type",
            "integer",
            "--schema",
            r#"{"type": "integer", "minimum": 1}"#,
        ],
    )
    .expect_ok();
    let props = glance(&svc, &["md-property-list", "gc-ns"]);
    assert!(props.expect_ok().contains("speed"), "{}", props.stdout);
    let p = glance(&svc, &["md-property-show", "gc-ns", "speed"]);
    assert_eq!(prop(p.expect_ok(), "minimum").as_deref(), Some("1"));

    glance(
        &svc,
        &["md-object-create", "gc-ns", "--name", "cpu", "--schema",
          r#"{"description": "CPU", "properties": {"cores": {"type": "integer", "title": "Cores"}}}"#],
    )
    .expect_ok();
    let objs = glance(&svc, &["md-object-list", "gc-ns"]);
    assert!(objs.expect_ok().contains("cpu"), "{}", objs.stdout);
    let core = glance(&svc, &["md-object-property-show", "gc-ns", "cpu", "cores"]);
    assert_eq!(prop(core.expect_ok(), "title").as_deref(), Some("Cores"));

    glance(&svc, &["md-tag-create-multiple", "gc-ns", "--names", "a,b"]).expect_ok();
    let tags = table(glance(&svc, &["md-tag-list", "gc-ns"]).expect_ok());
    let mut tags: Vec<&str> = tags
        .iter()
        .skip(1)
        .filter_map(|r| r.first())
        .map(String::as_str)
        .collect();
    tags.sort();
    assert_eq!(tags, ["a", "b"]);
    // (`--append` is not driven: glanceclient 4.13 sends its header as a
    // boolean, which requests refuses before sending; the service's append
    // is checked over HTTP by the native tests.)
    glance(&svc, &["md-tag-create-multiple", "gc-ns", "--names", "z"]).expect_ok();
    let tags = table(glance(&svc, &["md-tag-list", "gc-ns"]).expect_ok());
    assert_eq!(tags.len(), 2, "replaced: {tags:?}");

    glance(
        &svc,
        &[
            "md-resource-type-associate",
            "gc-ns",
            "--name",
            "OS::Glance::Image",
            "--prefix",
            "gc_",
        ],
    )
    .expect_ok();
    let rts = glance(&svc, &["md-resource-type-list"]);
    assert!(rts.expect_ok().contains("OS::Glance::Image"));
    let assoc = glance(&svc, &["md-namespace-resource-type-list", "gc-ns"]);
    assert!(assoc.expect_ok().contains("gc_"), "{}", assoc.stdout);
    let filtered = glance(
        &svc,
        &["md-namespace-list", "--resource-types", "OS::Glance::Image"],
    );
    assert!(filtered.expect_ok().contains("gc-ns"));
    let show = glance(
        &svc,
        &[
            "md-namespace-show",
            "gc-ns",
            "--resource-type",
            "OS::Glance::Image",
        ],
    );
    assert!(show.expect_ok().contains("gc_speed"), "{}", show.stdout);

    // A duplicate is refused with Glance's message.
    let dup = glance(&svc, &["md-namespace-create", "gc-ns"]);
    assert!(
        !dup.ok && dup.stderr.contains("already exists"),
        "{}",
        dup.stderr
    );

    glance(&svc, &["md-namespace-delete", "gc-ns"]).expect_ok();
    let gone = glance(&svc, &["md-namespace-show", "gc-ns"]);
    assert!(!gone.ok, "{}", gone.stdout);
}

#[test]
fn openstack_image_metadef_commands() {
    let ks = Keystone::start();
    let svc = Service::builder().keystone(&ks).start();
    let direct = format!("    image_endpoint_override: {}\n", svc.base);
    let yaml = format!(
        "clouds:\n{}{}",
        cloud_entry("admin", &ks.url, "admin", "admin", &direct),
        cloud_entry("alpha", &ks.url, "alpha-member", "alpha", &direct),
    );
    let os = CloudCli::new(
        &openstackclient_venv().join("bin/openstack"),
        &yaml,
        &["-f", "json"],
        &[("PYTHONWARNINGS", "ignore")],
    );
    let created = os.json(
        "admin",
        &[
            "image",
            "metadef",
            "namespace",
            "create",
            "osc-ns",
            "--display-name",
            "OSC",
            "--public",
        ],
    );
    assert_eq!(created["namespace"], "osc-ns");
    assert_eq!(created["visibility"], "public");
    let list = os.json("admin", &["image", "metadef", "namespace", "list"]);
    assert!(list.to_string().contains("osc-ns"), "{list}");
    os.ok(
        "admin",
        &[
            "image",
            "metadef",
            "namespace",
            "set",
            "osc-ns",
            "--description",
            "described",
            "--public",
        ],
    );
    let shown = os.json(
        "admin",
        &["image", "metadef", "namespace", "show", "osc-ns"],
    );
    assert_eq!(shown["description"], "described");

    let p = os.json(
        "admin",
        &[
            "image",
            "metadef",
            "property",
            "create",
            "--name",
            "speed",
            "--title",
            "Speed",
            "--type",
            "integer",
            "--schema",
            r#"{"minimum": 1}"#,
            "osc-ns",
        ],
    );
    assert_eq!(p["name"], "speed");
    let props = os.json("admin", &["image", "metadef", "property", "list", "osc-ns"]);
    assert!(props.to_string().contains("speed"), "{props}");
    let p = os.json(
        "admin",
        &["image", "metadef", "property", "show", "osc-ns", "speed"],
    );
    assert_eq!(p["title"], "Speed");

    let o = os.json(
        "admin",
        &[
            "image",
            "metadef",
            "object",
            "create",
            "--namespace",
            "osc-ns",
            "cpu",
        ],
    );
    assert_eq!(o["name"], "cpu");
    let objs = os.json("admin", &["image", "metadef", "object", "list", "osc-ns"]);
    assert!(objs.to_string().contains("cpu"), "{objs}");
    let o = os.json(
        "admin",
        &["image", "metadef", "object", "show", "osc-ns", "cpu"],
    );
    assert_eq!(o["name"], "cpu");

    os.ok(
        "admin",
        &[
            "image",
            "metadef",
            "resource",
            "type",
            "association",
            "create",
            "osc-ns",
            "OS::Glance::Image",
        ],
    );
    let types = os.json("admin", &["image", "metadef", "resource", "type", "list"]);
    assert!(types.to_string().contains("OS::Glance::Image"), "{types}");
    let assoc = os.json(
        "admin",
        &[
            "image",
            "metadef",
            "resource",
            "type",
            "association",
            "list",
            "osc-ns",
        ],
    );
    assert!(assoc.to_string().contains("OS::Glance::Image"), "{assoc}");

    // A member reads the public namespace but may not change the catalog.
    let seen = os.json(
        "alpha",
        &["image", "metadef", "namespace", "show", "osc-ns"],
    );
    assert_eq!(seen["namespace"], "osc-ns");
    let refused = os.run(
        "alpha",
        &["image", "metadef", "namespace", "create", "alpha-ns"],
    );
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("403") || refused.stderr.contains("Forbidden"),
        "{}",
        refused.stderr
    );

    os.ok(
        "admin",
        &["image", "metadef", "object", "delete", "osc-ns", "cpu"],
    );
    os.ok(
        "admin",
        &["image", "metadef", "property", "delete", "osc-ns", "speed"],
    );
    os.ok(
        "admin",
        &["image", "metadef", "namespace", "delete", "osc-ns"],
    );
    let gone = os.run(
        "admin",
        &["image", "metadef", "namespace", "show", "osc-ns"],
    );
    assert!(!gone.ok);
}

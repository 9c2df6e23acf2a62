//! python-glanceclient (pip-installed) drives the metadata API end to end.

use test_support::python::{glance, prop, table};
use test_support::Service;

#[test]
fn glanceclient_metadata_workflow() {
    let svc = Service::start();
    let tag = &test_support::uuid_like()[..8];
    let name = |n: &str| format!("gc-{tag}-{n}");

    // image-create without data, with --property.
    let out = glance(
        &svc,
        &[
            "image-create",
            "--name",
            &name("bravo"),
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--property",
            "os_distro=cirros",
            "--property",
            "hw_disk_bus=scsi",
        ],
    );
    let created = out.expect_ok();
    let id = prop(created, "id").expect("id in output");
    assert_eq!(
        prop(created, "name").as_deref(),
        Some(name("bravo").as_str())
    );
    assert_eq!(prop(created, "status").as_deref(), Some("queued"));
    assert_eq!(prop(created, "os_distro").as_deref(), Some("cirros"));
    assert_eq!(prop(created, "hw_disk_bus").as_deref(), Some("scsi"));
    for n in ["charlie", "alpha"] {
        glance(
            &svc,
            &[
                "image-create",
                "--name",
                &name(n),
                "--property",
                "os_distro=other",
            ],
        )
        .expect_ok();
    }

    // image-list --sort-key name --sort-dir asc: ours come back in name order.
    let listed = glance(
        &svc,
        &["image-list", "--sort-key", "name", "--sort-dir", "asc"],
    );
    let ours: Vec<String> = table(listed.expect_ok())
        .into_iter()
        .filter_map(|row| row.get(1).cloned())
        .filter(|n| n.starts_with(&format!("gc-{tag}")))
        .collect();
    assert_eq!(ours, vec![name("alpha"), name("bravo"), name("charlie")]);

    // image-list --property-filter picks only the matching image.
    let filtered = glance(
        &svc,
        &["image-list", "--property-filter", "os_distro=cirros"],
    );
    let rows = table(filtered.expect_ok());
    let ids: Vec<&String> = rows
        .iter()
        .filter_map(|r| r.first())
        .filter(|c| *c != "ID")
        .collect();
    assert_eq!(ids, vec![&id]);

    // image-show.
    let shown = glance(&svc, &["image-show", &id]);
    assert_eq!(
        prop(shown.expect_ok(), "os_distro").as_deref(),
        Some("cirros")
    );

    // image-update --property (and a rename).
    let updated = glance(
        &svc,
        &[
            "image-update",
            &id,
            "--property",
            "os_version=12",
            "--name",
            &name("renamed"),
        ],
    );
    let updated = updated.expect_ok();
    assert_eq!(prop(updated, "os_version").as_deref(), Some("12"));
    assert_eq!(
        prop(updated, "name").as_deref(),
        Some(name("renamed").as_str())
    );

    // image-tag-update / image-tag-delete.
    glance(&svc, &["image-tag-update", &id, "golden"]).expect_ok();
    let shown = glance(&svc, &["image-show", &id]);
    assert_eq!(
        prop(shown.expect_ok(), "tags").as_deref(),
        Some(r#"["golden"]"#)
    );
    glance(&svc, &["image-tag-delete", &id, "golden"]).expect_ok();
    let shown = glance(&svc, &["image-show", &id]);
    assert_eq!(prop(shown.expect_ok(), "tags").as_deref(), Some("[]"));

    // image-delete, then it is gone.
    glance(&svc, &["image-delete", &id]).expect_ok();
    let gone = glance(&svc, &["image-show", &id]);
    assert!(
        !gone.ok,
        "image-show after delete should fail: {}",
        gone.stdout
    );
    assert!(
        gone.stderr.contains("No image") || gone.stderr.contains("404"),
        "stderr: {}",
        gone.stderr
    );
}

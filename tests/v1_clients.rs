//! python-glanceclient 4.13's v1 client, unchanged, against the v1 API: the
//! Python API as its README (the seeds) wrote it, and the
//! `glance --os-image-api-version 1` CLI.

use test_support::data::{hashes, noise_vec};
use test_support::python::{client_script, glance_v1, prop, table, Run};
use test_support::{new_project, shared, TempDir};

#[test]
fn the_readme_python_api_runs_as_written() {
    let svc = shared();
    let work = TempDir::new("gc-v1");
    let tag = &test_support::uuid_like()[..8];
    let work_dir = work.to_string_lossy();
    let f = client_script("glanceclient_v1.py", &[&svc.base, &work_dir, tag]);

    assert_eq!(f["created_status"], "queued");
    assert_eq!(f["updated_status"], "active");
    assert_eq!(f["size"], f["len"]);
    assert_eq!(f["checksum"], f["md5"], "md5 of the data uploaded");
    assert_eq!(f["copy_equal"], true, "image.data() gives the bytes back");
    assert_eq!(f["properties"]["my_custom_property"], "value");
    assert_eq!(f["name"], format!("My Test Image {tag}"));
    assert_eq!(f["after_delete"], 404);

    let l = &f["list"];
    let names = |k: &str| -> Vec<String> {
        l[k].as_array()
            .unwrap_or_else(|| panic!("{k}: {l}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("asc"), ["alpha", "bravo", "charlie"]);
    assert_eq!(names("desc"), ["charlie", "bravo", "alpha"]);
    assert_eq!(
        names("paged_asc"),
        ["alpha", "bravo", "charlie"],
        "page size 1"
    );
    assert_eq!(
        names("paged_desc"),
        ["charlie", "bravo", "alpha"],
        "by size, pages of 2"
    );
    assert_eq!(names("limit"), ["alpha", "bravo"]);
    assert_eq!(names("name"), ["bravo"]);
    assert_eq!(names("disk_format"), ["alpha", "charlie"]);
    assert_eq!(names("container_format"), ["bravo"]);
    assert_eq!(names("status"), ["alpha", "bravo", "charlie"]);
    assert!(names("queued").is_empty());
    assert_eq!(names("size_range"), ["bravo"]);
    assert_eq!(names("size_min"), ["bravo", "charlie"]);
    assert_eq!(f["default_order_is_created_at_desc"], true);
}

/// The IDs column of an `image-list` table.
fn listed_names(run: &Run) -> Vec<String> {
    table(run.expect_ok())
        .into_iter()
        .filter(|r| r.first().is_some_and(|c| c != "ID"))
        .filter_map(|r| r.get(1).cloned())
        .collect()
}

#[test]
fn the_v1_cli_creates_lists_updates_shares_downloads_and_deletes() {
    let svc = shared();
    let work = TempDir::new("gc-v1-cli");
    let tag = &test_support::uuid_like()[..8];
    let name = |n: &str| format!("v1 cli {tag} {n}");
    let data = noise_vec(7, 200_000);
    let file = work.join("disk.img");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_string_lossy().into_owned();
    let filter = format!("v1tag={tag}");

    // image-create --file: active, with md5 and size, the name as typed
    // (glanceclient percent-encodes it; Glance 15 stored "v1%20cli%20...").
    let created = glance_v1(
        svc,
        &[
            "image-create",
            "--name",
            &name("b"),
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--property",
            &filter,
            "--file",
            &file,
        ],
    );
    let out = created.expect_ok();
    let id = prop(out, "id").expect("id");
    assert_eq!(prop(out, "status").as_deref(), Some("active"));
    assert_eq!(prop(out, "name"), Some(name("b")));
    assert_eq!(prop(out, "checksum"), Some(hashes(&data).0));
    assert_eq!(prop(out, "size"), Some(data.len().to_string()));
    assert_eq!(prop(out, "Property 'v1tag'").as_deref(), Some(tag));
    for n in ["c", "a"] {
        glance_v1(
            svc,
            &["image-create", "--name", &name(n), "--property", &filter],
        )
        .expect_ok();
    }

    // image-list: sort both ways, the property filter, small pages.
    let by = |dir: &str, page: &str| {
        glance_v1(
            svc,
            &[
                "image-list",
                "--sort-key",
                "name",
                "--sort-dir",
                dir,
                "--property-filter",
                &filter,
                "--page-size",
                page,
            ],
        )
    };
    assert_eq!(
        listed_names(&by("asc", "1")),
        [name("a"), name("b"), name("c")]
    );
    assert_eq!(
        listed_names(&by("desc", "2")),
        [name("c"), name("b"), name("a")]
    );
    let raw_only = glance_v1(
        svc,
        &[
            "image-list",
            "--property-filter",
            &filter,
            "--disk-format",
            "raw",
        ],
    );
    assert_eq!(listed_names(&raw_only), [name("b")]);

    // image-show.
    let shown = glance_v1(svc, &["image-show", &id]);
    let shown = shown.expect_ok();
    assert_eq!(prop(shown, "name"), Some(name("b")));
    assert_eq!(prop(shown, "is_public").as_deref(), Some("False"));
    assert_eq!(prop(shown, "disk_format").as_deref(), Some("raw"));

    // image-update --property (merged with what is there).
    let updated = glance_v1(
        svc,
        &[
            "image-update",
            &id,
            "--property",
            "hw_disk_bus=scsi",
            "--min-ram",
            "256",
        ],
    );
    let updated = updated.expect_ok();
    assert_eq!(
        prop(updated, "Property 'hw_disk_bus'").as_deref(),
        Some("scsi")
    );
    assert_eq!(prop(updated, "Property 'v1tag'").as_deref(), Some(tag));
    assert_eq!(prop(updated, "min_ram").as_deref(), Some("256"));

    // image-download --file.
    let target = work.join("copy.img");
    glance_v1(
        svc,
        &["image-download", &id, "--file", &target.to_string_lossy()],
    )
    .expect_ok();
    assert!(
        std::fs::read(&target).unwrap() == data,
        "downloaded bytes differ"
    );

    // member-create / member-list / member-delete.
    let (p2, p3) = (new_project(), new_project());
    glance_v1(svc, &["member-create", &id, &p2, "--can-share"]).expect_ok();
    glance_v1(svc, &["member-create", &id, &p3]).expect_ok();
    let members = |run: Run| -> Vec<(String, String)> {
        let mut rows: Vec<(String, String)> = table(run.expect_ok())
            .into_iter()
            .filter(|r| r.first().is_some_and(|c| c != "Image ID"))
            .map(|r| (r[1].clone(), r[2].clone()))
            .collect();
        rows.sort();
        rows
    };
    let listed = members(glance_v1(svc, &["member-list", "--image-id", &id]));
    let mut want = vec![
        (p2.clone(), "True".to_string()),
        (p3.clone(), String::new()),
    ];
    want.sort();
    assert_eq!(
        listed, want,
        "glanceclient prints can_share false as an empty cell"
    );
    let of_p2 = glance_v1(svc, &["member-list", "--tenant-id", &p2]);
    let of_p2 = table(of_p2.expect_ok());
    assert!(of_p2.iter().any(|r| r.first() == Some(&id)), "{of_p2:?}");
    glance_v1(svc, &["member-delete", &id, &p2]).expect_ok();
    let listed = members(glance_v1(svc, &["member-list", "--image-id", &id]));
    assert_eq!(listed, [(p3.clone(), String::new())]);
    // The image is shared with p3, as v2 sees it.
    let v2 = svc
        .project(&p3, "member")
        .get(&format!("/v2/images/{id}"))
        .expect_json(200);
    assert_eq!(v2["visibility"], "shared");

    // image-delete, then it is gone.
    for n in ["a", "b", "c"] {
        glance_v1(svc, &["image-delete", &name(n)]).expect_ok();
    }
    let gone = glance_v1(svc, &["image-show", &id]);
    assert!(!gone.ok, "image-show after delete: {}", gone.stdout);
    assert!(
        gone.stdout.contains("No image with a name or ID"),
        "{}",
        gone.stdout
    );
}

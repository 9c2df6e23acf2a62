//! The Rust OpenStack CLI `osc` (crate `openstack_cli`, version
//! [`OSC_VERSION`], built once with `cargo install --locked` into the test
//! cache) against the service with Keystone authentication: a clouds.yaml
//! with password credentials, the image endpoint found in Keystone's catalog,
//! `-o json` output read back and asserted.
//!
//! osc 0.13 builds the URL of the next page from Glance's relative `next`
//! link with the endpoint's *domain name* and fails for an IP address
//! ("endpoint url must have domain set"), so the catalog names the service
//! `http://localhost:PORT`, as a real deployment names it by host name.
//! osc has no image member commands; sharing goes through `osc api image`.

use serde_json::{json, Value};

use test_support::cli::{cloud_entry, column, osc_binary, CloudCli, OSC_VERSION};
use test_support::data::{hashes, noise_vec};
use test_support::keystone::Keystone;
use test_support::Service;

/// `osc` with a clouds.yaml holding the clouds `alpha` (alpha-member) and
/// `beta` (beta-member); JSON goes to standard output, hints to stderr.
fn osc(ks: &Keystone) -> CloudCli {
    let yaml = format!(
        "clouds:\n{}{}",
        cloud_entry("alpha", &ks.url, "alpha-member", "alpha", ""),
        cloud_entry("beta", &ks.url, "beta-member", "beta", ""),
    );
    CloudCli::new(
        osc_binary(),
        &yaml,
        &["-o", "json"],
        &[("NO_COLOR", "1"), ("RUST_BACKTRACE", "0")],
    )
}

fn names(list: &Value) -> Vec<&str> {
    column(list, "name")
}

fn ids(list: &Value) -> Vec<&str> {
    column(list, "id")
}

#[test]
fn osc_image_commands_with_keystone_catalog() {
    let ks = Keystone::start();
    let svc = Service::builder().keystone(&ks).start();
    ks.register_endpoint("identity", &format!("{}/v3", ks.url));
    ks.register_endpoint("image", &format!("http://localhost:{}", svc.addr.port()));
    let osc = osc(&ks);
    let alpha = ks.project_id("alpha");
    let beta = ks.project_id("beta");

    let version = osc.ok("alpha", &["--version"]);
    assert!(version.contains(OSC_VERSION), "{version}");

    // image create: a queued record with the given attributes.
    let img = osc.json(
        "alpha",
        &[
            "image",
            "image",
            "create",
            "--name",
            "osc-rust",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--min-disk",
            "1",
            "--property",
            "os_distro=cirros",
            "--tags",
            "one",
            "--tags",
            "two",
        ],
    );
    let id = img["id"].as_str().expect("id").to_string();
    assert_eq!(img["name"], "osc-rust");
    assert_eq!(img["status"], "queued", "{img}");
    assert_eq!(img["disk_format"], "raw");
    assert_eq!(img["container_format"], "bare");
    assert_eq!(img["min_disk"], 1);
    assert_eq!(img["os_distro"], "cirros");
    assert_eq!(img["owner"], alpha.as_str());
    assert_eq!(img["visibility"], "shared");
    assert_eq!(img["tags"], json!(["one", "two"]));
    assert_eq!(img["size"], Value::Null);

    // image upload --file: active, with the file's size and checksums.
    let data = noise_vec(77, 3_100_000);
    let (md5, sha512) = hashes(&data);
    let file = osc.path("upload.raw");
    std::fs::write(&file, &data).expect("write file");
    osc.ok("alpha", &["image", "image", "upload", &id, "--file", &file]);
    let shown = osc.json("alpha", &["image", "image", "show", &id]);
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(shown["size"], 3_100_000);
    assert_eq!(shown["virtual_size"], 3_100_000);
    assert_eq!(shown["checksum"], md5.as_str());
    assert_eq!(shown["os_hash_algo"], "sha512");
    assert_eq!(shown["os_hash_value"], sha512.as_str());

    // image download --file: the same bytes.
    let saved = osc.path("saved.raw");
    osc.ok(
        "alpha",
        &["image", "image", "download", &id, "--file", &saved],
    );
    let back = std::fs::read(&saved).expect("downloaded file");
    assert_eq!(back.len(), data.len());
    assert_eq!(hashes(&back), (md5.clone(), sha512.clone()));

    // image set: JSON-patch from the flags.
    let set = osc.json(
        "alpha",
        &[
            "image",
            "image",
            "set",
            &id,
            "--name",
            "osc-rust-renamed",
            "--min-ram",
            "256",
            "--property",
            "os_distro=fedora",
        ],
    );
    assert_eq!(set["name"], "osc-rust-renamed", "{set}");
    assert_eq!(set["min_ram"], 256);
    assert_eq!(set["os_distro"], "fedora");
    assert_eq!(set["checksum"], md5.as_str());

    // Four more images (no data) for listing: filters, server-side sort and
    // paging through `next` links.
    let mut all_ids = vec![id.clone()];
    for name in ["osc-d", "osc-b", "osc-c", "osc-a"] {
        let img = osc.json(
            "alpha",
            &[
                "image",
                "image",
                "create",
                "--name",
                name,
                "--property",
                "batch=listing",
            ],
        );
        assert_eq!(img["status"], "queued");
        all_ids.push(img["id"].as_str().expect("id").to_string());
    }
    let list = osc.json("alpha", &["image", "image", "list"]);
    let mut listed = ids(&list);
    listed.sort_unstable();
    let mut want: Vec<&str> = all_ids.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(listed, want);
    let sorted = osc.json("alpha", &["image", "image", "list", "--sort", "name:asc"]);
    assert_eq!(
        names(&sorted),
        ["osc-a", "osc-b", "osc-c", "osc-d", "osc-rust-renamed"]
    );
    // Two per page: three requests, the same five in the same order.
    let paged = osc.json(
        "alpha",
        &[
            "image",
            "image",
            "list",
            "--sort-key",
            "name",
            "--sort-dir",
            "desc",
            "--page-size",
            "2",
        ],
    );
    assert_eq!(
        names(&paged),
        ["osc-rust-renamed", "osc-d", "osc-c", "osc-b", "osc-a"]
    );
    let by_status = osc.json(
        "alpha",
        &[
            "image", "image", "list", "--status", "queued", "--sort", "name:asc",
        ],
    );
    assert_eq!(names(&by_status), ["osc-a", "osc-b", "osc-c", "osc-d"]);
    let by_tag = osc.json("alpha", &["image", "image", "list", "--tag", "two"]);
    assert_eq!(ids(&by_tag), [id.as_str()]);
    let by_name = osc.json("alpha", &["image", "image", "list", "--name", "osc-c"]);
    assert_eq!(names(&by_name), ["osc-c"]);
    let by_size = osc.json(
        "alpha",
        &["image", "image", "list", "--size-min", "3000000"],
    );
    assert_eq!(ids(&by_size), [id.as_str()]);

    // Another project sees none of it.
    assert_eq!(osc.json("beta", &["image", "image", "list"]), json!([]));
    let out = osc.run("beta", &["image", "image", "show", &id]);
    assert!(!out.ok, "beta must not see alpha's image: {}", out.stdout);

    // Sharing through `osc api image` (no native member commands).
    let members = format!("images/{id}/members");
    let member = osc.json(
        "alpha",
        &[
            "api",
            "image",
            &members,
            "-m",
            "post",
            "--body",
            &json!({"member": beta}).to_string(),
        ],
    );
    assert_eq!(member["member_id"], beta.as_str());
    assert_eq!(member["status"], "pending");
    let accepted = osc.json(
        "beta",
        &[
            "api",
            "image",
            &format!("{members}/{beta}"),
            "-m",
            "put",
            "--body",
            r#"{"status": "accepted"}"#,
        ],
    );
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(
        ids(&osc.json("beta", &["image", "image", "list"])),
        [id.as_str()]
    );
    let theirs = osc.path("beta.raw");
    osc.ok(
        "beta",
        &["image", "image", "download", &id, "--file", &theirs],
    );
    assert_eq!(
        hashes(&std::fs::read(&theirs).expect("beta's file")),
        (md5.clone(), sha512.clone())
    );
    // The consumer cannot delete it.
    let out = osc.run("beta", &["image", "image", "delete", &id]);
    assert!(!out.ok, "a member must not delete the image");
    assert!(
        osc.json("alpha", &["image", "image", "show", &id])["status"] == "active",
        "image survived the member's delete"
    );

    // image delete: gone for good.
    for i in &all_ids {
        osc.ok("alpha", &["image", "image", "delete", i]);
    }
    let out = osc.run("alpha", &["image", "image", "show", &id]);
    assert!(!out.ok, "deleted image still shown: {}", out.stdout);
    assert_eq!(osc.json("alpha", &["image", "image", "list"]), json!([]));
}

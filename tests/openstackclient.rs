//! python-openstackclient (`openstack image ...`, pinned in
//! tests/clients/openstackclient-requirements.txt) against the service with
//! Keystone authentication, the way an operator uses it: a clouds.yaml with
//! password credentials, the image endpoint found in Keystone's catalog, and
//! `-f json` output read back and asserted.

use std::path::Path;

use serde_json::Value;

use test_support::cli::{cloud_entry, column, openstackclient_venv, CloudCli};
use test_support::data::{hashes, noise_vec};
use test_support::keystone::Keystone;
use test_support::Service;

/// python-openstackclient with a clouds.yaml holding one cloud per fixture
/// user: `alpha` (alpha-member), `beta` (beta-member), and `alpha-direct`,
/// which names the image endpoint itself (`image_endpoint_override`) instead
/// of looking it up in the catalog. Stdin is /dev/null, so a create without
/// `--file` uploads nothing, as in a cron job.
fn openstack(ks: &Keystone, svc: &Service) -> CloudCli {
    let direct = format!("    image_endpoint_override: {}\n", svc.base);
    let yaml = format!(
        "clouds:\n{}{}{}",
        cloud_entry("alpha", &ks.url, "alpha-member", "alpha", ""),
        cloud_entry("beta", &ks.url, "beta-member", "beta", ""),
        cloud_entry("alpha-direct", &ks.url, "alpha-member", "alpha", &direct),
    );
    CloudCli::new(
        &openstackclient_venv().join("bin/openstack"),
        &yaml,
        &["-f", "json"],
        &[("PYTHONWARNINGS", "ignore")],
    )
}

fn names(list: &Value) -> Vec<&str> {
    column(list, "Name")
}

fn ids(list: &Value) -> Vec<&str> {
    column(list, "ID")
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).expect("write file");
    p.to_str().expect("utf-8 path").to_string()
}

#[test]
fn openstack_image_commands_with_keystone_catalog() {
    let ks = Keystone::start();
    let svc = Service::builder().keystone(&ks).start();
    // `image add project` resolves the project through the identity service,
    // which openstackclient finds in the catalog like the image service.
    ks.register_endpoint("identity", &format!("{}/v3", ks.url));
    let os = openstack(&ks, &svc);
    let beta = ks.project_id("beta");
    let alpha = ks.project_id("alpha");

    // Before the image service is in the catalog, only the cloud naming its
    // endpoint (image_endpoint_override) reaches it.
    let out = os.run("alpha", &["image", "list", "-f", "json"]);
    assert!(
        !out.ok,
        "no image endpoint in the catalog yet: {}",
        out.stdout
    );
    assert_eq!(
        os.json("alpha-direct", &["image", "list"]),
        Value::Array(vec![])
    );
    ks.register_endpoint("image", &svc.base);

    // image create --file: uploaded and active, checksums of the file.
    let data = noise_vec(41, 2_500_000);
    let (md5, sha512) = hashes(&data);
    let file = write(&os.home, "upload.raw", &data);
    let img = os.json(
        "alpha",
        &[
            "image",
            "create",
            "--file",
            &file,
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--property",
            "os_distro=cirros",
            "--tag",
            "first",
            "osc-uploaded",
        ],
    );
    let id = img["id"].as_str().expect("id").to_string();
    assert_eq!(img["name"], "osc-uploaded");
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(img["size"], 2_500_000);
    assert_eq!(img["checksum"], md5.as_str());
    assert_eq!(img["disk_format"], "raw");
    assert_eq!(img["container_format"], "bare");
    assert_eq!(img["owner"], alpha.as_str());
    assert_eq!(img["visibility"], "shared");
    assert_eq!(img["tags"], serde_json::json!(["first"]));
    assert_eq!(img["properties"]["os_distro"], "cirros");
    assert_eq!(img["properties"]["os_hash_algo"], "sha512");
    assert_eq!(img["properties"]["os_hash_value"], sha512.as_str());

    // Three more images to filter and sort; one a real qcow2 (qemu-img),
    // whose virtual size Glance reads from the header.
    let qcow2 = os.home.join("osc-a.qcow2");
    let made = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&qcow2)
        .arg("64M")
        .status()
        .expect("qemu-img");
    assert!(made.success(), "qemu-img create failed");
    let mut created = vec![];
    for (i, name) in ["osc-b", "osc-a", "osc-c"].iter().enumerate() {
        let (f, format) = if *name == "osc-a" {
            (qcow2.to_str().unwrap().to_string(), "qcow2")
        } else {
            (
                write(&os.home, name, &noise_vec(50 + i as u64, 1000 + i)),
                "raw",
            )
        };
        let img = os.json(
            "alpha",
            &[
                "image",
                "create",
                "--file",
                &f,
                "--disk-format",
                format,
                "--property",
                "batch=sorted",
                name,
            ],
        );
        assert_eq!(img["status"], "active", "{img}");
        assert_eq!(img["disk_format"], format);
        if format == "qcow2" {
            assert_eq!(img["virtual_size"], 64 << 20, "{img}");
        }
        created.push(img["id"].as_str().expect("id").to_string());
    }

    // image list: all four; --property filters on the server; --sort orders.
    let list = os.json("alpha", &["image", "list"]);
    let mut listed = ids(&list);
    listed.sort_unstable();
    let mut want: Vec<&str> = created.iter().map(String::as_str).collect();
    want.push(&id);
    want.sort_unstable();
    assert_eq!(listed, want);
    let sorted = os.json(
        "alpha",
        &[
            "image",
            "list",
            "--property",
            "batch=sorted",
            "--sort",
            "name:desc",
        ],
    );
    assert_eq!(names(&sorted), ["osc-c", "osc-b", "osc-a"]);
    let sorted = os.json("alpha", &["image", "list", "--sort", "name:asc"]);
    assert_eq!(names(&sorted), ["osc-a", "osc-b", "osc-c", "osc-uploaded"]);
    // --limit is sent to the server (default order: newest first); --sort
    // then orders that page on the client.
    let page = os.json(
        "alpha",
        &["image", "list", "--limit", "2", "--sort", "name:asc"],
    );
    assert_eq!(names(&page), ["osc-a", "osc-c"]);
    let by_tag = os.json("alpha", &["image", "list", "--tag", "first"]);
    assert_eq!(ids(&by_tag), [id.as_str()]);

    // image list --long: the extra columns.
    let long = os.json(
        "alpha",
        &["image", "list", "--long", "--property", "os_distro=cirros"],
    );
    let row = &long.as_array().expect("list")[0];
    assert_eq!(long.as_array().unwrap().len(), 1, "{long}");
    assert_eq!(row["ID"], id.as_str());
    assert_eq!(row["Disk Format"], "raw");
    assert_eq!(row["Container Format"], "bare");
    assert_eq!(row["Size"], 2_500_000);
    assert_eq!(row["Checksum"], md5.as_str());
    assert_eq!(row["Status"], "active");
    assert_eq!(row["Visibility"], "shared");
    assert_eq!(row["Protected"], false);
    assert_eq!(row["Project"], alpha.as_str());
    assert_eq!(row["Hash Algorithm"], "sha512");
    assert_eq!(row["Hash Value"], sha512.as_str());
    assert_eq!(row["Tags"], serde_json::json!(["first"]));

    // image set --property/--tag, then image show.
    os.ok(
        "alpha",
        &[
            "image",
            "set",
            "--property",
            "hw_disk_bus=scsi",
            "--tag",
            "second",
            "--min-ram",
            "64",
            &id,
        ],
    );
    let shown = os.json("alpha", &["image", "show", &id]);
    assert_eq!(shown["properties"]["hw_disk_bus"], "scsi");
    assert_eq!(shown["properties"]["os_distro"], "cirros");
    assert_eq!(shown["min_ram"], 64);
    let mut tags: Vec<&str> = shown["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["first", "second"]);
    // By name, too.
    let by_name = os.json("alpha", &["image", "show", "osc-uploaded"]);
    assert_eq!(by_name["id"], id.as_str());
    // image unset removes them again.
    os.ok(
        "alpha",
        &[
            "image",
            "unset",
            "--property",
            "hw_disk_bus",
            "--tag",
            "second",
            &id,
        ],
    );
    let shown = os.json("alpha", &["image", "show", &id]);
    assert!(shown["properties"].get("hw_disk_bus").is_none(), "{shown}");
    assert_eq!(shown["tags"], serde_json::json!(["first"]));

    // image save --file: the same bytes.
    let saved = os.home.join("saved.raw");
    os.ok(
        "alpha",
        &["image", "save", "--file", saved.to_str().unwrap(), &id],
    );
    let back = std::fs::read(&saved).expect("saved file");
    assert_eq!(back.len(), data.len());
    assert_eq!(hashes(&back), (md5.clone(), sha512.clone()));

    // Sharing: the consumer does not see the image until it is a member.
    let out = os.run("beta", &["image", "show", &id]);
    assert!(!out.ok, "beta must not see alpha's image: {}", out.stdout);
    let member = os.json("alpha", &["image", "add", "project", &id, &beta]);
    assert_eq!(member["image_id"], id.as_str());
    assert_eq!(member["member_id"], beta.as_str());
    assert_eq!(member["status"], "pending");
    let members = os.json("alpha", &["image", "member", "list", &id]);
    assert_eq!(
        members,
        serde_json::json!([{"Image ID": id, "Member ID": beta, "Status": "pending"}])
    );
    // Pending: not in the consumer's default list, but under --shared and
    // --member-status pending, and it can be shown.
    assert!(!ids(&os.json("beta", &["image", "list"])).contains(&id.as_str()));
    let pending = os.json(
        "beta",
        &["image", "list", "--shared", "--member-status", "pending"],
    );
    assert_eq!(ids(&pending), [id.as_str()]);
    assert_eq!(os.json("beta", &["image", "show", &id])["status"], "active");

    // image set --accept by the consumer: listed, and downloadable by it.
    os.ok("beta", &["image", "set", "--accept", &id]);
    let members = os.json("alpha", &["image", "member", "list", &id]);
    assert_eq!(members[0]["Status"], "accepted", "{members}");
    assert_eq!(ids(&os.json("beta", &["image", "list"])), [id.as_str()]);
    let theirs = os.home.join("beta.raw");
    os.ok(
        "beta",
        &["image", "save", "--file", theirs.to_str().unwrap(), &id],
    );
    assert_eq!(
        hashes(&std::fs::read(&theirs).expect("beta's file")),
        (md5.clone(), sha512.clone())
    );
    // The consumer may not change or delete the image, nor the owner accept
    // on the consumer's behalf.
    let out = os.run("beta", &["image", "set", "--property", "x=y", &id]);
    assert!(!out.ok && out.stderr.contains("403"), "{}", out.stderr);
    let out = os.run("beta", &["image", "delete", &id]);
    assert!(!out.ok && out.stderr.contains("403"), "{}", out.stderr);
    let out = os.run("alpha", &["image", "set", "--accept", &id]);
    assert!(!out.ok, "the owner is not a member: {}", out.stdout);

    // --reject: out of the default list again.
    os.ok("beta", &["image", "set", "--reject", &id]);
    assert!(!ids(&os.json("beta", &["image", "list"])).contains(&id.as_str()));
    let members = os.json("alpha", &["image", "member", "list", &id]);
    assert_eq!(members[0]["Status"], "rejected", "{members}");

    // image remove project: access gone.
    os.ok("alpha", &["image", "remove", "project", &id, &beta]);
    assert_eq!(
        os.json("alpha", &["image", "member", "list", &id]),
        Value::Array(vec![])
    );
    let out = os.run("beta", &["image", "show", &id]);
    assert!(!out.ok, "beta lost access: {}", out.stdout);

    // image delete (several at once): gone from show and list.
    let mut del = vec!["image", "delete", id.as_str()];
    del.extend(created.iter().map(String::as_str));
    os.ok("alpha", &del);
    let out = os.run("alpha", &["image", "show", &id]);
    assert!(!out.ok, "deleted image still shown: {}", out.stdout);
    assert!(out.stderr.contains("No Image found"), "{}", out.stderr);
    assert_eq!(os.json("alpha", &["image", "list"]), Value::Array(vec![]));
}

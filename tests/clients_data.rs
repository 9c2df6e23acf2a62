//! Real clients moving image data: python-glanceclient and openstacksdk
//! (pip-installed), including a web-download import from a loopback server.

use test_support::data::{hashes, noise_vec};
use test_support::http::serve_bytes;
use test_support::python::{glance, prop, sdk_script};
use test_support::{Service, TempDir};

fn wait_active(svc: &Service, id: &str) -> serde_json::Value {
    let c = svc.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let img = c.get(&format!("/v2/images/{id}")).json();
        if img["status"] == "active"
            || img["os_glance_failed_import"]
                .as_str()
                .is_some_and(|f| !f.is_empty())
        {
            return img;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "import did not finish: {img}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn glanceclient_data_commands() {
    let svc = Service::builder()
        .env("SPIN_VARIABLE_DOWNLOAD_HOSTS", "http://127.0.0.1:*")
        .start();
    let dir = TempDir::new("gc-data");
    let data = noise_vec(21, 3_000_000);
    let (md5, sha) = hashes(&data);
    let file = dir.join("image.raw");
    std::fs::write(&file, &data).unwrap();
    let file = file.to_str().unwrap();

    // image-create --file --progress uploads in one go.
    let out = glance(
        &svc,
        &[
            "image-create",
            "--name",
            "gc-file",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--file",
            file,
            "--progress",
        ],
    );
    let out = out.expect_ok();
    let id = prop(out, "id").expect("id");
    assert_eq!(prop(out, "status").as_deref(), Some("active"));
    assert_eq!(prop(out, "checksum").as_deref(), Some(md5.as_str()));
    assert_eq!(prop(out, "os_hash_value").as_deref(), Some(sha.as_str()));
    assert_eq!(prop(out, "size").as_deref(), Some("3000000"));

    // image-download --file gets the same bytes back (glanceclient verifies the hash too).
    let back = dir.join("back.raw");
    glance(
        &svc,
        &["image-download", &id, "--file", back.to_str().unwrap()],
    )
    .expect_ok();
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // image-upload into an existing queued image.
    let out = glance(
        &svc,
        &[
            "image-create",
            "--name",
            "gc-later",
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
        ],
    );
    let later = prop(out.expect_ok(), "id").expect("id");
    glance(&svc, &["image-upload", &later, "--file", file]).expect_ok();
    let shown = glance(&svc, &["image-show", &later]);
    assert_eq!(prop(shown.expect_ok(), "status").as_deref(), Some("active"));
    assert_eq!(
        prop(shown.expect_ok(), "checksum").as_deref(),
        Some(md5.as_str())
    );

    // image-create-via-import with web-download from a loopback server.
    let other = noise_vec(22, 1_500_000);
    let uri = serve_bytes(other.clone(), "image.raw");
    let out = glance(
        &svc,
        &[
            "image-create-via-import",
            "--import-method",
            "web-download",
            "--uri",
            &uri,
            "--disk-format",
            "raw",
            "--container-format",
            "bare",
            "--name",
            "gc-web",
        ],
    );
    let web = prop(out.expect_ok(), "id").expect("id");
    let img = wait_active(&svc, &web);
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(img["checksum"], hashes(&other).0.as_str());
    assert_eq!(
        svc.client().get(&format!("/v2/images/{web}/file")).body,
        other
    );

    // import-info lists the methods; stores-info says single store.
    let info = glance(&svc, &["import-info"]);
    assert!(info.expect_ok().contains("web-download"), "{}", info.stdout);
    let stores = glance(&svc, &["stores-info"]);
    assert!(
        format!("{}{}", stores.stdout, stores.stderr)
            .contains("Multi Backend support is not enabled"),
        "{} {}",
        stores.stdout,
        stores.stderr
    );
}

#[test]
fn web_download_from_a_host_not_allowed_fails_cleanly() {
    // The default `download_hosts` does not include plain-http loopback servers.
    let svc = Service::start();
    let c = svc.client();
    let uri = serve_bytes(noise_vec(23, 100_000), "image.raw");
    let id = c.create_image(
        &serde_json::json!({"name": "w", "disk_format": "raw", "container_format": "bare"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Refused when asked, as Glance's URI filtering does: nothing is fetched.
    let r = c.post_json(
        &format!("/v2/images/{id}/import"),
        &serde_json::json!({"method": {"name": "web-download", "uri": uri}}),
    );
    let msg = r.expect_error(400);
    assert_eq!(
        msg,
        format!("URI for web-download does not pass filtering: {uri}")
    );
    let img = c.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(img["status"], "queued");
    assert_eq!(svc.stored_chunks(&id), 0);
    c.post_json(
        &format!("/v2/images/{id}/import"),
        &serde_json::json!({"method": {"name": "web-download", "uri": "ftp://x/y"}}),
    )
    .expect_error(400);
}

#[test]
fn glanceclient_stores_info_in_multi_store_mode() {
    let svc = Service::builder()
        .env("SPIN_VARIABLE_STORES", "kv,http")
        .start();
    let out = glance(&svc, &["stores-info"]);
    let out = out.expect_ok();
    assert!(
        out.contains("\"id\": \"kv\"") && out.contains("\"default\": \"true\""),
        "{out}"
    );
    assert!(
        out.contains("\"id\": \"http\"") && out.contains("\"read-only\": \"true\""),
        "{out}"
    );
}

#[test]
fn openstacksdk_create_image_and_download() {
    let svc = Service::start();
    let dir = TempDir::new("sdk");
    let data = noise_vec(24, 2_200_000);
    let src = dir.join("in.raw");
    let dst = dir.join("out.raw");
    std::fs::write(&src, &data).unwrap();
    let facts = sdk_script(
        "sdk_data.py",
        &[&svc.base, src.to_str().unwrap(), dst.to_str().unwrap()],
    );
    assert_eq!(facts["status"], "active");
    assert_eq!(facts["checksum"], hashes(&data).0.as_str());
    assert_eq!(facts["size"], data.len());
    assert_eq!(std::fs::read(&dst).unwrap(), data);
}

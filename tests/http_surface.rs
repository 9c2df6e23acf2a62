//! End-to-end: the HTTP surface around the API as Glance 33 shows it —
//! `/v2.N/...` URLs and `Accept: application/vnd.openstack.images-v2.N`
//! (version negotiation) for every version the version document serves,
//! `/healthcheck`, the version list of a multi-store deployment (2.8,
//! 2.10–2.13, so `glance image-tasks` finds v2.12), 401 before 404 under
//! Keystone, and `hashing_algorithm`.

use serde_json::{json, Value};
use test_support::http::Payload;
use test_support::keystone::Keystone;
use test_support::{new_project, shared, Service};

fn version_ids(doc: &Value) -> Vec<String> {
    doc["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn versioned_urls_and_accept_headers_are_v2() {
    let svc = shared();
    let c = svc.project(&new_project(), "member");
    let id = c.create_image(&json!({"name": "negotiated", "visibility": "shared"}))["id"]
        .as_str()
        .expect("id")
        .to_string();
    for v in ["v2.0", "v2.1", "v2.9", "v2.15", "v2.17"] {
        let img = c.get(&format!("/{v}/images/{id}")).expect_json(200);
        assert_eq!(img["name"], "negotiated", "{v}");
        // Links stay /v2/..., as Glance's.
        assert_eq!(img["self"], format!("/v2/images/{id}").as_str());
    }
    let list = c.get("/v2.1/images").expect_json(200);
    assert!(list["images"].is_array(), "{list}");
    // Members and schemas through a versioned URL (other services).
    let members = c
        .get(&format!("/v2.5/images/{id}/members"))
        .expect_json(200);
    assert_eq!(members["members"], json!([]));
    assert_eq!(
        c.get("/v2.3/schemas/image").expect_json(200)["name"],
        "image"
    );
    // Versions the document does not list here: the version choices.
    for v in ["v2.12", "v2.18", "v2.19", "v3"] {
        let r = c.get(&format!("/{v}/images"));
        assert_eq!(r.status, 300, "{v}: {}", r.text());
        assert!(version_ids(&r.json()).contains(&"v2.17".to_string()));
    }
    assert_eq!(c.get("/v2.1/nothing").status, 404);

    // Accept-header versioning: the path carries no version.
    let vnd = |v: &str| format!("application/vnd.openstack.images-{v}");
    let accept = vnd("v2.1");
    let r = c.send(
        "GET",
        &format!("/images/{id}"),
        &[("Accept", accept.as_str())],
        Payload::Bytes(b""),
    );
    assert_eq!(r.json()["id"], id.as_str(), "{}", r.text());
    let accept = vnd("v2.12");
    let r = c.send(
        "GET",
        "/images",
        &[("Accept", accept.as_str())],
        Payload::Bytes(b""),
    );
    assert_eq!(r.status, 300, "{}", r.text());
}

#[test]
fn healthcheck_answers_ok() {
    let svc = shared();
    let c = svc.client();
    let r = c.get("/healthcheck");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=UTF-8"));
    let head = c.send("HEAD", "/healthcheck", &[], Payload::Bytes(b""));
    assert_eq!(head.status, 204);
}

#[test]
fn several_stores_list_the_multistore_versions_and_serve_them() {
    let svc = Service::builder()
        .env("SPIN_VARIABLE_STORES", "kv,http")
        .start();
    let c = svc.project(&new_project(), "member");
    let ids = version_ids(&c.get("/versions").expect_json(200));
    for v in ["v2.8", "v2.10", "v2.11", "v2.12", "v2.13", "v2.17"] {
        assert!(ids.contains(&v.to_string()), "{v} not in {ids:?}");
    }
    assert_eq!(ids.iter().filter(|i| i.as_str() == "v2.12").count(), 1);
    let root = c.get("/");
    assert_eq!(root.status, 300);
    assert!(version_ids(&root.json()).contains(&"v2.12".to_string()));
    let id = c.create_image(&json!({"name": "m"}))["id"]
        .as_str()
        .expect("id")
        .to_string();
    let tasks = c.get(&format!("/v2.12/images/{id}/tasks")).expect_json(200);
    assert_eq!(tasks, json!({"tasks": []}));
}

#[test]
fn hashing_algorithm_names_the_upload_hash() {
    let svc = Service::builder()
        .env("SPIN_VARIABLE_HASHING_ALGORITHM", "sha256")
        .start();
    let c = svc.project(&new_project(), "member");
    let id = c
        .create_image(&json!({"name": "h", "disk_format": "raw", "container_format": "bare"}))
        ["id"]
        .as_str()
        .expect("id")
        .to_string();
    let data = b"hash me with sha256".repeat(50);
    let r = c.send(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[("Content-Type", "application/octet-stream")],
        Payload::Bytes(&data),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let img = c.get(&format!("/v2/images/{id}")).expect_json(200);
    assert_eq!(img["os_hash_algo"], "sha256");
    let want = {
        use sha2::Digest;
        sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(img["os_hash_value"], want.as_str());
}

#[test]
fn unknown_v2_paths_need_a_token_first_under_keystone() {
    let ks = Keystone::start();
    let svc = Service::builder().keystone(&ks).start();
    let anon = svc.client();
    let token = ks.token("alpha-member", "secret", "alpha");
    let authed = svc.client().with_header("X-Auth-Token", &token);
    for path in ["/v2/nothing", "/v2", "/v2.1/nothing", "/v2/images/x/y/z"] {
        let r = anon.get(path);
        assert_eq!(r.status, 401, "{path}: {}", r.text());
        assert!(r.header("www-authenticate").is_some(), "{path}");
        assert_eq!(authed.get(path).status, 404, "{path}");
    }
    // Discovery and the health check need none.
    assert_eq!(anon.get("/versions").status, 200);
    assert_eq!(anon.get("/").status, 300);
    assert_eq!(anon.get("/v2.12/images").status, 300);
    assert_eq!(anon.get("/healthcheck").status, 200);
}

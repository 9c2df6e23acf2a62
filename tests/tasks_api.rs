//! End-to-end: the legacy tasks API (`/v2/tasks`) as Glance 33 serves it —
//! an admin's `import` task creates an image and fetches its data from
//! `import_from` the way web-download does; a failed one deletes its image;
//! lists filter, sort and page with `first`/`next` links; expired tasks are
//! gone; members get 403; `DELETE` is 405; bad input is a JSON 400.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::http::{serve_bytes, Payload};
use test_support::{new_project, Client, Service};

/// A service that may download from loopback.
fn svc() -> &'static Service {
    static SVC: OnceLock<Service> = OnceLock::new();
    SVC.get_or_init(|| {
        Service::builder()
            .env("SPIN_VARIABLE_DOWNLOAD_HOSTS", "http://127.0.0.1:*")
            .start()
    })
}

fn import_task(from: &str, props: Value) -> Value {
    json!({"type": "import", "input": {
        "import_from": from, "import_from_format": "raw", "image_properties": props}})
}

/// The task once it has left pending/processing.
fn finished(c: &Client, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = c.get(&format!("/v2/tasks/{id}")).expect_json(200);
        if t["status"] == "success" || t["status"] == "failure" {
            return t;
        }
        assert!(Instant::now() < deadline, "task did not finish: {t}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_admin_imports_an_image_with_a_task() {
    let project = new_project();
    let admin = svc().project(&project, "admin");
    let data = b"the bytes of a small raw image".repeat(100);
    let url = serve_bytes(data.clone(), "disk.raw");
    let body = import_task(
        &url,
        json!({"name": "from-task", "disk_format": "raw", "container_format": "bare",
               "hw_disk_bus": "scsi"}),
    );
    let resp = admin.post_json("/v2/tasks", &body);
    let created = resp.expect_json(201);
    let id = created["id"].as_str().expect("task id").to_string();
    assert!(
        resp.header("location")
            .is_some_and(|l| l.starts_with("http") && l.ends_with(&format!("/v2/tasks/{id}"))),
        "{:?}",
        resp.header("location")
    );
    assert_eq!(created["status"], "pending", "{created}");
    assert_eq!(created["type"], "import");
    assert_eq!(created["owner"], project.as_str());
    assert_eq!(created["input"], body["input"]);
    assert_eq!(created["self"], format!("/v2/tasks/{id}").as_str());
    assert_eq!(created["schema"], "/v2/schemas/task");
    assert_eq!(created["result"], Value::Null);
    assert!(
        created["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{created}"
    );

    let done = finished(&admin, &id);
    assert_eq!(done["status"], "success", "{done}");
    assert!(done["expires_at"].is_string(), "{done}");
    assert_eq!(
        done["request_id"],
        resp.header("x-openstack-request-id").unwrap_or_default()
    );
    let image_id = done["result"]["image_id"]
        .as_str()
        .expect("result image id");
    let img = admin
        .get(&format!("/v2/images/{image_id}"))
        .expect_json(200);
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(img["name"], "from-task");
    assert_eq!(img["hw_disk_bus"], "scsi");
    assert_eq!(img["size"], data.len() as u64);
    let (md5, sha512) = test_support::data::hashes(&data);
    assert_eq!(img["checksum"], md5.as_str());
    assert_eq!(img["os_hash_value"], sha512.as_str());
    let got = admin.get(&format!("/v2/images/{image_id}/file"));
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data);

    // The list shows stubs: no input, result or message.
    let list = admin.get("/v2/tasks?status=success").expect_json(200);
    let stub = list["tasks"]
        .as_array()
        .and_then(|a| a.iter().find(|t| t["id"] == id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("task not listed: {list}"));
    for hidden in ["input", "result", "message"] {
        assert!(stub.get(hidden).is_none(), "{hidden} in {stub}");
    }
    assert_eq!(stub["self"], format!("/v2/tasks/{id}").as_str());
    assert_eq!(list["schema"], "/v2/schemas/tasks");
    assert_eq!(list["first"], "/v2/tasks?status=success");
    let pending = admin.get("/v2/tasks?status=pending").expect_json(200);
    assert!(
        !pending["tasks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["id"] == id.as_str())),
        "{pending}"
    );
}

#[test]
fn a_failed_import_fails_the_task_and_deletes_its_image() {
    let closed = test_support::free_port();
    let project = new_project();
    let admin = svc().project(&project, "admin");
    let body = import_task(
        &format!("http://127.0.0.1:{closed}/gone.raw"),
        json!({"name": "doomed", "disk_format": "raw", "container_format": "bare"}),
    );
    let id = admin.post_json("/v2/tasks", &body).expect_json(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let done = finished(&admin, &id);
    assert_eq!(done["status"], "failure", "{done}");
    assert!(
        done["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{done}"
    );
    assert_eq!(done["result"], Value::Null);
    let images = admin
        .get(&format!("/v2/images?owner={project}"))
        .expect_json(200);
    assert_eq!(images["images"], json!([]), "the task's image is deleted");

    // Input that cannot make an image fails the task with Glance's message.
    let partial = json!({"type": "import", "input": {"import_from": "http://127.0.0.1:1/x"}});
    let id = admin.post_json("/v2/tasks", &partial).expect_json(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let done = finished(&admin, &id);
    assert_eq!(done["status"], "failure");
    assert_eq!(
        done["message"],
        "Input does not contain 'import_from_format' field"
    );
    let bad_props = import_task("http://127.0.0.1:1/x", json!({"disk_format": "floppy"}));
    let id = admin.post_json("/v2/tasks", &bad_props).expect_json(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    let done = finished(&admin, &id);
    assert_eq!(done["status"], "failure");
    assert!(
        done["message"]
            .as_str()
            .is_some_and(|m| m.contains("floppy")),
        "{done}"
    );
}

#[test]
fn only_admins_use_the_tasks_api_and_tasks_are_not_deleted() {
    let project = new_project();
    let admin = svc().project(&project, "admin");
    let member = svc().project(&project, "member");
    let body = import_task("http://127.0.0.1:1/x", json!({}));
    let id = admin.post_json("/v2/tasks", &body).expect_json(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    member.post_json("/v2/tasks", &body).expect_error(403);
    member.get("/v2/tasks").expect_error(403);
    member.get(&format!("/v2/tasks/{id}")).expect_error(403);
    member.delete(&format!("/v2/tasks/{id}")).expect_error(403);

    let del = admin.delete(&format!("/v2/tasks/{id}"));
    assert_eq!(del.header("allow"), Some("GET"));
    assert!(del.expect_error(405).contains("not permitted"));
    let put = admin.send("PUT", &format!("/v2/tasks/{id}"), &[], Payload::Bytes(b""));
    assert_eq!(put.status, 405);
    assert_eq!(put.header("allow"), Some("GET, DELETE"));
    admin.get(&format!("/v2/tasks/{id}")).expect_json(200);
    admin
        .get("/v2/tasks/8a1f36e5-27a8-4a1f-a6e4-6d2a7c9e0b11")
        .expect_error(404);
}

#[test]
fn lists_sort_filter_and_page_with_links() {
    let project = new_project();
    let admin = svc().project(&project, "admin");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let body = json!({"type": "import", "input": {"import_from": "http://127.0.0.1:1/x"}});
        let t = admin.post_json("/v2/tasks", &body).expect_json(201);
        ids.push(t["id"].as_str().expect("id").to_string());
    }
    // Only this project's tasks: filter on owner (any task column filters).
    let q = format!("owner={project}&sort_key=id&sort_dir=asc&limit=2");
    let page = admin.get(&format!("/v2/tasks?{q}")).expect_json(200);
    let mut sorted = ids.clone();
    sorted.sort();
    let got: Vec<&str> = page["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(got, [sorted[0].as_str(), sorted[1].as_str()]);
    assert_eq!(page["first"], format!("/v2/tasks?{q}").as_str());
    let next = page["next"].as_str().expect("a full page has next");
    assert_eq!(next, format!("/v2/tasks?{q}&marker={}", sorted[1]));
    let rest = admin.get(next).expect_json(200);
    let got: Vec<&str> = rest["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(got, [sorted[2].as_str()]);
    assert!(rest.get("next").is_none(), "{rest}");
    // Newest first by default.
    let all = admin
        .get(&format!("/v2/tasks?owner={project}&type=import"))
        .expect_json(200);
    let newest: Vec<&str> = all["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["created_at"].as_str())
        .collect();
    let mut desc = newest.clone();
    desc.sort_by(|a, b| b.cmp(a));
    assert_eq!(newest, desc);
    assert_eq!(newest.len(), 3);
}

#[test]
fn bad_input_is_a_json_400() {
    let admin = svc().project(&new_project(), "admin");
    for body in [
        "[]",
        "{}",
        r#"{"type": "import"}"#,
        r#"{"input": {}}"#,
        r#"{"type": "export", "input": {}}"#,
        r#"{"type": 1, "input": {}}"#,
        r#"{"type": "import", "input": 5}"#,
        r#"{"type": "import", "input": {}, "extra": 1}"#,
        r#"{"type": "import", "input": {}}"#,
        r#"{"type": "import", "input": null}"#,
        r#"{"type": "import", "input": {"import_from": 7}}"#,
        r#"{"type": "import", "input": {"import_from": "file:///etc/passwd"}}"#,
        r#"{"type": "import", "input": {"import_from": "ftp://127.0.0.1/x"}}"#,
        r#"{"type": "import", "input": {"import_from": "http://169.254.169.254/x"}}"#,
        r#"{"type": "api_image_import", "input": {}}"#,
        "{not json",
    ] {
        let r = admin.send(
            "POST",
            "/v2/tasks",
            &[("Content-Type", "application/json")],
            Payload::Bytes(body.as_bytes()),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], 400, "{body}");
    }
    for q in [
        "limit=x",
        "limit=-1",
        "marker=nope",
        "marker=8a1f36e5-27a8-4a1f-a6e4-6d2a7c9e0b11",
        "sort_dir=up",
        "sort_key=input",
        "status=done",
        "type=api_image_import",
    ] {
        let r = admin.get(&format!("/v2/tasks?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], 400, "{q}");
    }
}

#[test]
fn expired_tasks_are_gone() {
    let svc = Service::builder()
        .env("SPIN_VARIABLE_TASK_TIME_TO_LIVE", "0")
        .start();
    let admin = svc.project(&new_project(), "admin");
    let body = json!({"type": "import", "input": {"import_from": "https://example.invalid/x"}});
    let id = admin.post_json("/v2/tasks", &body).expect_json(201)["id"]
        .as_str()
        .expect("id")
        .to_string();
    // With no time to live a finished task is gone within a second.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = admin.get(&format!("/v2/tasks/{id}"));
        if r.status == 404 {
            break;
        }
        assert_eq!(r.status, 200);
        assert!(
            Instant::now() < deadline,
            "task never expired: {}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = admin.get("/v2/tasks").expect_json(200);
    assert!(
        !list["tasks"]
            .as_array()
            .is_some_and(|a| a.iter().any(|t| t["id"] == id.as_str())),
        "{list}"
    );
}

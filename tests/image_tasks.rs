//! End-to-end: every import is recorded as a task that `GET
//! /v2/images/{id}/tasks` shows (API v2.12), with the import request's id and
//! body, as Tempest's glance-direct import test checks; and Glance's rules
//! for who sees which tasks.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use test_support::http::Payload;
use test_support::{new_project, shared, Client, Service};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");

/// The image's tasks once the first of them has left pending/processing.
fn finished_tasks(c: &Client, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tasks = c.get(&format!("/v2/images/{id}/tasks")).expect_json(200)["tasks"]
            .as_array()
            .cloned()
            .expect("tasks array");
        if tasks
            .first()
            .is_some_and(|t| t["status"] == "success" || t["status"] == "failure")
        {
            return tasks;
        }
        assert!(Instant::now() < deadline, "task did not finish: {tasks:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn raw_image(c: &Client, visibility: &str) -> String {
    c.create_image(
        &json!({"name": "t", "disk_format": "raw", "container_format": "bare",
                           "visibility": visibility}),
    )["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn glance_direct_import_is_a_task_with_the_request_id() {
    let svc = shared();
    let project = new_project();
    let c = svc.project(&project, "member");
    let id = raw_image(&c, "community");
    // No tasks before an import.
    let none = c.get(&format!("/v2/images/{id}/tasks")).expect_json(200);
    assert_eq!(none, json!({"tasks": []}));
    let staged = c.send(
        "PUT",
        &format!("/v2/images/{id}/stage"),
        &[OCTET],
        Payload::Bytes(b"some image data"),
    );
    assert_eq!(staged.status, 204, "{}", staged.text());

    let body = json!({"method": {"name": "glance-direct"}});
    let resp = c.post_json(&format!("/v2/images/{id}/import"), &body);
    assert_eq!(resp.status, 202, "{}", resp.text());
    let request_id = resp
        .header("x-openstack-request-id")
        .expect("request id")
        .to_string();

    let tasks = finished_tasks(&c, &id);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let t = &tasks[0];
    assert_eq!(t["status"], "success", "{t}");
    assert_eq!(t["type"], "api_image_import");
    assert_eq!(t["request_id"], request_id.as_str());
    assert_eq!(t["image_id"], id.as_str());
    assert_eq!(t["owner"], project.as_str());
    assert_eq!(t["user_id"], format!("user-of-{project}").as_str());
    assert_eq!(t["input"]["import_req"], body);
    assert_eq!(t["input"]["image_id"], id.as_str());
    assert_eq!(t["input"]["backend"], json!(["kv"]));
    assert_eq!(t["result"], json!({"image_id": id}));
    assert_eq!(t["message"], "");
    assert_eq!(t["deleted"], false);
    for field in ["created_at", "updated_at", "expires_at"] {
        let v = t[field].as_str().unwrap_or_else(|| panic!("{field}: {t}"));
        // Glance shows raw datetimes here, not the images' `...Z` form.
        assert!(v.len() == 26 && v.ends_with(".000000"), "{field}: {v}");
    }
    assert_eq!(
        c.get(&format!("/v2/images/{id}")).json()["status"],
        "active"
    );

    // Another project sees the community image but not the owner's tasks; an
    // admin sees them.
    let other = svc.project(&new_project(), "member");
    assert_eq!(
        other
            .get(&format!("/v2/images/{id}/tasks"))
            .expect_json(200),
        json!({"tasks": []})
    );
    let admin = svc.project(&new_project(), "admin");
    let seen = admin
        .get(&format!("/v2/images/{id}/tasks"))
        .expect_json(200);
    assert_eq!(seen["tasks"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_client_request_id_is_kept_and_failures_are_recorded() {
    // web-download from a host download_hosts allows but where nothing
    // listens: the import is accepted, and fails at once.
    let closed = test_support::free_port();
    let svc = Service::builder()
        .env(
            "SPIN_VARIABLE_DOWNLOAD_HOSTS",
            &format!("http://127.0.0.1:{closed}"),
        )
        .start();
    let c = svc.project(&new_project(), "member");
    let id = raw_image(&c, "private");
    let resp = c.send(
        "POST",
        &format!("/v2/images/{id}/import"),
        &[
            ("Content-Type", "application/json"),
            ("X-Openstack-Request-Id", "req-tempest-given"),
        ],
        Payload::Bytes(
            json!({"method": {"name": "web-download", "uri": format!("http://127.0.0.1:{closed}/x.img")}})
                .to_string()
                .as_bytes(),
        ),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    assert_eq!(
        resp.header("x-openstack-request-id"),
        Some("req-tempest-given")
    );
    let tasks = finished_tasks(&c, &id);
    let t = &tasks[0];
    assert_eq!(t["status"], "failure", "{t}");
    assert_eq!(t["request_id"], "req-tempest-given");
    assert_eq!(t["input"]["import_req"]["method"]["name"], "web-download");
    assert_eq!(t["result"], Value::Null);
    assert!(t["message"].as_str().is_some_and(|m| !m.is_empty()), "{t}");
    assert_eq!(
        c.get(&format!("/v2/images/{id}")).json()["status"],
        "queued"
    );

    // The image's tasks are as private as the image: 404 for others.
    let other = svc.project(&new_project(), "member");
    assert_eq!(other.get(&format!("/v2/images/{id}/tasks")).status, 404);
    // Only GET; no body.
    assert_eq!(
        c.send(
            "DELETE",
            &format!("/v2/images/{id}/tasks"),
            &[],
            Payload::None
        )
        .status,
        405
    );
    assert_eq!(
        c.get("/v2/images/00000000-0000-4000-8000-000000000000/tasks")
            .status,
        404
    );
}

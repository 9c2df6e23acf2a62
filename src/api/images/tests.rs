//! The images service driven natively through the harness: every handler
//! without sockets, wasm or a host.

use serde_json::{json, Value};

use crate::api::harness::{as_project, Harness};
use crate::api::images::handle;
use crate::data::stores::DATA_LABEL;

const OCTET: (&str, &str) = ("content-type", "application/octet-stream");

fn create(h: &Harness, doc: Value) -> String {
    let img = h.json(handle, "POST", "/v2/images", &[], &doc).expect(201);
    img["id"].as_str().expect("id").to_string()
}

fn raw_image(h: &Harness) -> String {
    create(
        h,
        json!({"name": "r", "disk_format": "raw", "container_format": "bare"}),
    )
}

#[test]
fn create_show_list_patch_delete() {
    let h = Harness::new();
    let id = create(
        &h,
        json!({"name": "a", "tags": ["t"], "os_distro": "debian"}),
    );
    let shown = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(shown["status"], "queued");
    assert_eq!(shown["os_distro"], "debian");
    let list = h
        .call(handle, "GET", "/v2/images?tag=t", &[], b"")
        .expect(200);
    assert_eq!(list["images"].as_array().map(Vec::len), Some(1));
    let patched = h.call(
        handle,
        "PATCH",
        &format!("/v2/images/{id}"),
        &[(
            "content-type",
            "application/openstack-images-v2.1-json-patch",
        )],
        json!([{"op": "replace", "path": "/name", "value": "b"}])
            .to_string()
            .as_bytes(),
    );
    assert_eq!(patched.expect(200)["name"], "b");
    h.call(handle, "DELETE", &format!("/v2/images/{id}"), &[], b"")
        .expect(204);
    h.call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .error(404);
}

#[test]
fn one_table_gives_dispatch_and_allow() {
    let h = Harness::new();
    let r = h.call(handle, "PUT", "/v2/images", &[], b"");
    r.error(405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = h.call(handle, "POST", "/v2/images/x/tags/y", &[], b"");
    assert_eq!(r.header("allow"), Some("PUT, DELETE"));
    h.call(handle, "GET", "/v2/images/x/nothing", &[], b"")
        .error(404);
}

#[test]
fn every_request_is_logged_with_route_status_and_id() {
    let h = Harness::new();
    let r = h.call(
        handle,
        "GET",
        "/v2/images/3d8b3ef6-5a2b-4d4c-9a0c-000000000000",
        &[("x-openstack-request-id", "req-mine")],
        b"",
    );
    r.error(404);
    let lines = h.log.lines.borrow();
    let line = lines.last().expect("a log line");
    assert!(
        line.starts_with("INFO req-mine GET /v2/images/{image_id} 404 "),
        "{line}"
    );
    assert!(line.ends_with("ms"), "{line}");
}

#[test]
fn upload_download_and_ranges() {
    let h = Harness::new();
    h.set("kv_chunk_size", "1000");
    let id = raw_image(&h);
    let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
    let path = format!("/v2/images/{id}/file");
    h.call(handle, "PUT", &path, &[OCTET], &data).expect(204);
    assert_eq!(h.kv.store(DATA_LABEL).map.borrow().len(), 3, "three chunks");
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(
        (img["status"].as_str(), img["size"].as_u64()),
        (Some("active"), Some(2500))
    );
    let got = h.call(handle, "GET", &path, &[], b"");
    assert_eq!((got.status, got.body == data), (200, true));
    let part = h.call(handle, "GET", &path, &[("range", "bytes=999-1000")], b"");
    assert_eq!(
        (part.status, part.body.as_slice()),
        (206, &data[999..=1000])
    );
    h.call(handle, "PUT", &path, &[OCTET], &data).error(409);
}

#[test]
fn a_failed_upload_returns_the_image_to_queued_and_keeps_nothing() {
    let h = Harness::new();
    h.set("kv_chunk_size", "1000");
    let id = raw_image(&h);
    *h.kv.store(DATA_LABEL).fail_sets_after.borrow_mut() = Some(1);
    let r = h.call(
        handle,
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        &[7u8; 5000],
    );
    let msg = r.error(503);
    assert!(
        !msg.contains("store full"),
        "backend text stays out of the body: {msg}"
    );
    assert!(
        h.log
            .lines
            .borrow()
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("store full")),
        "the log has the cause"
    );
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(img["status"], "queued");
    assert!(h.kv.store(DATA_LABEL).map.borrow().is_empty());
}

#[test]
fn stage_then_glance_direct_import_activates() {
    let h = Harness::new();
    let id = raw_image(&h);
    let data = vec![5u8; 3000];
    h.call(
        handle,
        "PUT",
        &format!("/v2/images/{id}/stage"),
        &[OCTET],
        &data,
    )
    .expect(204);
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(img["status"], "uploading");
    h.json(
        handle,
        "POST",
        &format!("/v2/images/{id}/import"),
        &[],
        &json!({"method": {"name": "glance-direct"}}),
    )
    .expect(202);
    // The harness ran the deferred import already.
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(img["status"], "active", "{img}");
    assert_eq!(img["size"], 3000);
    let tasks = h
        .call(handle, "GET", &format!("/v2/images/{id}/tasks"), &[], b"")
        .expect(200);
    assert_eq!(tasks["tasks"][0]["status"], "success");
    assert_eq!(
        h.call(handle, "GET", &format!("/v2/images/{id}/file"), &[], b"")
            .body,
        data
    );
}

#[test]
fn web_download_that_cannot_fetch_fails_its_import_and_task() {
    let h = Harness::new();
    let id = raw_image(&h);
    h.json(
        handle,
        "POST",
        &format!("/v2/images/{id}/import"),
        &[],
        &json!({"method": {"name": "web-download", "uri": "https://example.com/x.img"}}),
    )
    .expect(202);
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(img["status"], "queued");
    assert_eq!(img["os_glance_failed_import"], "kv");
    let tasks = h
        .call(handle, "GET", &format!("/v2/images/{id}/tasks"), &[], b"")
        .expect(200);
    assert_eq!(tasks["tasks"][0]["status"], "failure");
}

#[test]
fn tags_actions_and_visibility() {
    let h = Harness::new();
    let id = raw_image(&h);
    h.call(handle, "PUT", &format!("/v2/images/{id}/tags/x"), &[], b"")
        .expect(204);
    h.call(
        handle,
        "DELETE",
        &format!("/v2/images/{id}/tags/x"),
        &[],
        b"",
    )
    .expect(204);
    h.call(
        handle,
        "DELETE",
        &format!("/v2/images/{id}/tags/x"),
        &[],
        b"",
    )
    .error(404);
    let msg = h
        .call(
            handle,
            "POST",
            &format!("/v2/images/{id}/actions/deactivate"),
            &[],
            b"",
        )
        .error(403);
    assert_eq!(msg, "Not allowed to deactivate image in status 'queued'");
    h.call(
        handle,
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        b"abc",
    )
    .expect(204);
    h.call(
        handle,
        "POST",
        &format!("/v2/images/{id}/actions/deactivate"),
        &[],
        b"",
    )
    .expect(204);
    let other = as_project("someone-else", "member");
    h.call(handle, "GET", &format!("/v2/images/{id}"), &other, b"")
        .error(404);
    h.call(
        handle,
        "POST",
        &format!("/v2/images/{id}/actions/reactivate"),
        &[],
        b"",
    )
    .expect(204);
}

/// Chunks in the data store, by image.
fn chunks_of(h: &Harness, id: &str) -> usize {
    h.kv.store(DATA_LABEL)
        .map
        .borrow()
        .keys()
        .filter(|k| k.starts_with(id) || k.starts_with(&format!("staging/{id}")))
        .count()
}

/// Starts an upload the way the handler does and "crashes" midway: the
/// lease, the claim and some chunks exist; nobody finishes or cleans up.
fn crash_midway(h: &Harness, id: &str, status: crate::image::Status) {
    use crate::data::blob::kv::KvStore;
    use crate::data::blob::BlobWriter;
    use crate::db::images::ImageRepo;
    use crate::db::leases::LeaseKind;
    use crate::timestamp::Timestamp;
    let kv = KvStore::new(DATA_LABEL, h.kv.store(DATA_LABEL), 1000);
    let kind = if status == crate::image::Status::Saving {
        LeaseKind::Upload
    } else {
        LeaseKind::Stage
    };
    let (_lease, mut w) = crate::data::lease::start(&h.db, &kv, id, kind, &[], 600).unwrap();
    ImageRepo::open(&h.db)
        .unwrap()
        .modify(id, Timestamp::now(), |img| {
            img.start_upload(status).unwrap();
            Ok::<_, crate::ports::StoreError>(true)
        })
        .unwrap();
    w.write(&[9u8; 3500]).unwrap();
    std::mem::forget(w);
    // The lease's time runs out without a renewal.
    crate::ports::Database::execute(&h.db, "UPDATE leases SET expires_at = 0", &[]).unwrap();
}

#[test]
fn an_abandoned_upload_reads_as_queued_takes_data_and_its_chunks_are_reclaimed() {
    let h = Harness::new();
    h.set("kv_chunk_size", "1000");
    let id = raw_image(&h);
    crash_midway(&h, &id, crate::image::Status::Saving);
    assert_eq!(chunks_of(&h, &id), 3);
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(img["status"], "queued", "abandoned work reads as healed");
    // A new upload is accepted; the write request's reclamation slice
    // removes the abandoned chunks and keeps the new ones.
    h.call(
        handle,
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        &[1u8; 1500],
    )
    .expect(204);
    assert_eq!(chunks_of(&h, &id), 2, "only the new upload's two chunks");
    let got = h.call(handle, "GET", &format!("/v2/images/{id}/file"), &[], b"");
    assert_eq!(got.body, vec![1u8; 1500]);
}

#[test]
fn an_abandoned_stage_heals_too() {
    let h = Harness::new();
    let id = raw_image(&h);
    crash_midway(&h, &id, crate::image::Status::Uploading);
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(img["status"], "queued");
    h.call(handle, "DELETE", &format!("/v2/images/{id}"), &[], b"")
        .expect(204);
    assert_eq!(
        chunks_of(&h, &id),
        0,
        "the slice after the delete reclaimed it"
    );
}

#[test]
fn deleting_an_image_hands_its_data_over_with_the_record() {
    let h = Harness::new();
    h.set("kv_chunk_size", "1000");
    let id = raw_image(&h);
    h.call(
        handle,
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        &[3u8; 4500],
    )
    .expect(204);
    assert_eq!(chunks_of(&h, &id), 5);
    // A store that cannot delete now: the record goes, the data waits as garbage.
    let kv = h.kv.store(DATA_LABEL);
    let saved = kv.map.borrow().clone();
    h.call(handle, "DELETE", &format!("/v2/images/{id}"), &[], b"")
        .expect(204);
    assert_eq!(chunks_of(&h, &id), 0);
    *kv.map.borrow_mut() = saved;
    assert_eq!(chunks_of(&h, &id), 5, "as if the deletes had been lost");
    // Put back the garbage row the deletion consumed and let a slice run.
    crate::ports::Database::execute(
        &h.db,
        "INSERT INTO garbage (image_id, locations) SELECT id, locations FROM images WHERE id = ?",
        &[id.as_str().into()],
    )
    .unwrap();
    crate::data::reclaim::slice(&crate::ports::Ports {
        db: &h.db,
        vars: &h.vars,
        kv: &h.kv,
        http: h.http.clone(),
        log: &h.log,
        pubsub: &h.pubsub,
    });
    assert_eq!(chunks_of(&h, &id), 0);
}

#[test]
fn concurrent_patches_do_not_undo_each_other() {
    use crate::db::images::ImageRepo;
    use crate::timestamp::Timestamp;
    let h = Harness::new();
    let id = raw_image(&h);
    // A writer that saves between another's read and save: modify re-reads
    // and re-applies, so both changes survive.
    let repo = ImageRepo::open(&h.db).unwrap();
    let mut first = true;
    repo.modify(&id, Timestamp::now(), |img| {
        if std::mem::take(&mut first) {
            h.call(
                handle,
                "PATCH",
                &format!("/v2/images/{id}"),
                &[(
                    "content-type",
                    "application/openstack-images-v2.1-json-patch",
                )],
                json!([{"op": "add", "path": "/a", "value": "1"}])
                    .to_string()
                    .as_bytes(),
            )
            .expect(200);
        }
        img.properties.insert("b".into(), "2".into());
        Ok::<_, crate::ports::StoreError>(true)
    })
    .unwrap();
    let img = h
        .call(handle, "GET", &format!("/v2/images/{id}"), &[], b"")
        .expect(200);
    assert_eq!(
        (img["a"].as_str(), img["b"].as_str()),
        (Some("1"), Some("2"))
    );
}

#[test]
fn notifications_follow_an_image_through_its_life() {
    let h = Harness::new();
    h.set("notification_driver", "redis");
    let owner = as_project("p1", "member");
    let img = h
        .json(
            handle,
            "POST",
            "/v2/images",
            &owner,
            &json!({"name": "n", "disk_format": "raw", "container_format": "bare"}),
        )
        .expect(201);
    let id = img["id"].as_str().expect("id").to_string();
    let mut headers = owner.to_vec();
    headers.push(OCTET);
    h.call(
        handle,
        "PUT",
        &format!("/v2/images/{id}/file"),
        &headers,
        b"data",
    )
    .expect(204);
    h.json(
        crate::api::members::handle,
        "POST",
        &format!("/v2/images/{id}/members"),
        &owner,
        &json!({"member": "p2"}),
    )
    .expect(200);
    h.call(handle, "DELETE", &format!("/v2/images/{id}"), &owner, b"")
        .expect(204);
    let sent = h.pubsub.messages.borrow();
    let kinds: Vec<String> = sent
        .iter()
        .map(|(address, channel, body)| {
            assert_eq!(
                (address.as_str(), channel.as_str()),
                ("redis://127.0.0.1:6379", "notifications.info")
            );
            let doc: serde_json::Value = serde_json::from_slice(body).expect("json");
            assert_eq!(
                doc["payload"]["id"]
                    .as_str()
                    .or(doc["payload"]["image_id"].as_str()),
                Some(id.as_str())
            );
            doc["event_type"].as_str().expect("event_type").to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "image.create",
            "image.prepare",
            "image.upload",
            "image.activate",
            "image.member.create",
            "image.delete"
        ]
    );
}

#[test]
fn versioned_urls_and_accept_headers_reach_every_service() {
    let h = Harness::new();
    let id = raw_image(&h);
    for path in ["/v2.1/images", "/v2.17/images", "/v2.0/images"] {
        let list = h.call(handle, "GET", path, &[], b"").expect(200);
        assert_eq!(list["images"][0]["id"], id.as_str(), "{path}");
    }
    // v2.12 only with several stores, as the version document.
    h.call(handle, "GET", "/v2.12/images", &[], b"").expect(300);
    let vnd = ("accept", "application/vnd.openstack.images-v2.1");
    h.call(handle, "GET", &format!("/images/{id}"), &[vnd], b"")
        .expect(200);
    let v3 = ("accept", "application/vnd.openstack.images-v3");
    h.call(handle, "GET", "/images", &[v3], b"").expect(300);
    // The members and discovery services, from the catch-all route.
    let members = h
        .call(
            handle,
            "GET",
            &format!("/v2.5/images/{id}/members"),
            &[],
            b"",
        )
        .expect(200);
    assert!(members["members"].is_array(), "{members}");
    let schema = h
        .call(handle, "GET", "/v2.3/schemas/tasks", &[], b"")
        .expect(200);
    assert_eq!(schema["name"], "tasks");
    h.call(handle, "GET", "/", &[], b"").expect(300);
    h.call(handle, "GET", "/v2.1/nothing", &[], b"").error(404);
    assert_eq!(h.call(handle, "GET", "/healthcheck", &[], b"").body, b"OK");
    h.set("stores", "kv,s3");
    h.call(handle, "GET", "/v2.12/images", &[], b"").expect(200);
    let versions = h.call(handle, "GET", "/versions", &[], b"").expect(200);
    let ids: Vec<&str> = versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .filter_map(|v| v["id"].as_str())
        .collect();
    for v in ["v2.8", "v2.10", "v2.11", "v2.12", "v2.13"] {
        assert!(ids.contains(&v), "{v} in {ids:?}");
    }
}

#[test]
fn legacy_tasks_need_an_admin_and_check_their_input() {
    let h = Harness::new();
    let member = as_project("p1", "member");
    let body = json!({"type": "import", "input": {"import_from": "https://example.com/x"}});
    h.json(handle, "POST", "/v2/tasks", &member, &body)
        .error(403);
    h.call(handle, "GET", "/v2/tasks", &member, b"").error(403);
    let admin = as_project("p1", "admin");
    let task = h
        .json(handle, "POST", "/v2/tasks", &admin, &body)
        .expect(201);
    let id = task["id"].as_str().expect("id");
    // The harness ran the deferred work: the input lacks fields, so it failed.
    let done = h
        .call(handle, "GET", &format!("/v2/tasks/{id}"), &admin, b"")
        .expect(200);
    assert_eq!(done["status"], "failure");
    assert_eq!(
        done["message"],
        "Input does not contain 'import_from_format' field"
    );
    // Another project's task: 403, as Glance; a member cannot even ask.
    let other = as_project("p2", "admin,member,reader");
    let seen = h.call(handle, "GET", &format!("/v2/tasks/{id}"), &other, b"");
    assert_eq!(seen.status, 200, "an admin sees every task");
    h.set("policy_overrides", r#"{"tasks_api_access": "role:member"}"#);
    let p2_member = as_project("p2", "member");
    h.call(handle, "GET", &format!("/v2/tasks/{id}"), &p2_member, b"")
        .error(403);
    let list = h
        .call(handle, "GET", "/v2/tasks", &p2_member, b"")
        .expect(200);
    assert_eq!(list["tasks"], json!([]));
    let bad = json!({"type": "import", "input": {"import_from": "http://10.0.0.1/x"}});
    h.json(handle, "POST", "/v2/tasks", &admin, &bad).error(400);
}

//! End-to-end: image sharing through the members component (noauth identities).

use serde_json::{json, Value};
use test_support::http::Payload;
use test_support::{new_project, shared, Client};

fn ids(list: &Value) -> Vec<String> {
    list["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

struct Cast {
    owner: Client,
    owner_reader: Client,
    consumer_project: String,
    consumer: Client,
    stranger: Client,
    image: String,
}

fn cast() -> Cast {
    let svc = shared();
    let op = new_project();
    let cp = new_project();
    let owner = svc.project(&op, "member");
    let image = owner.create_image(&json!({"name": "to-share"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    Cast {
        owner_reader: svc.project(&op, "reader"),
        owner,
        consumer: svc.project(&cp, "member"),
        consumer_project: cp,
        stranger: svc.project(&new_project(), "member"),
        image,
    }
}

#[test]
fn share_accept_reject_remove() {
    let c = cast();
    let members = format!("/v2/images/{}/members", c.image);
    let me = format!("{members}/{}", c.consumer_project);
    // Not shared yet: invisible to the consumer.
    c.consumer
        .get(&format!("/v2/images/{}", c.image))
        .expect_error(404);

    let m = c
        .owner
        .post_json(&members, &json!({"member": c.consumer_project}))
        .expect_json(200);
    assert_eq!(m["status"], "pending");
    assert_eq!(m["image_id"], c.image.as_str());
    assert_eq!(m["member_id"], c.consumer_project.as_str());
    assert_eq!(m["schema"], "/v2/schemas/member");
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));
    c.owner
        .post_json(&members, &json!({"member": c.consumer_project}))
        .expect_error(409);

    // Pending: visible by id, not in the default list, in member_status=pending.
    c.consumer
        .get(&format!("/v2/images/{}", c.image))
        .expect_json(200);
    assert!(!ids(&c.consumer.get("/v2/images").json()).contains(&c.image));
    let pending = c
        .consumer
        .get("/v2/images?visibility=shared&member_status=pending")
        .expect_json(200);
    assert_eq!(ids(&pending), vec![c.image.clone()]);

    // The owner cannot accept on the member's behalf; the member can.
    c.owner
        .send(
            "PUT",
            &me,
            &[("Content-Type", "application/json")],
            Payload::Bytes(br#"{"status": "accepted"}"#),
        )
        .expect_error(403);
    let put = |status: &str| {
        c.consumer.send(
            "PUT",
            &me,
            &[("Content-Type", "application/json")],
            Payload::Bytes(json!({"status": status}).to_string().as_bytes()),
        )
    };
    put("maybe").expect_error(400);
    assert_eq!(put("accepted").expect_json(200)["status"], "accepted");
    assert!(ids(&c.consumer.get("/v2/images").json()).contains(&c.image));

    // Listing: the owner sees all members, a member only itself, a stranger nothing.
    let other = new_project();
    c.owner
        .post_json(&members, &json!({"member": other}))
        .expect_json(200);
    assert_eq!(
        c.owner.get(&members).expect_json(200)["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        c.owner_reader.get(&members).expect_json(200)["members"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let mine = c.consumer.get(&members).expect_json(200);
    assert_eq!(mine["schema"], "/v2/schemas/members");
    assert_eq!(mine["members"].as_array().unwrap().len(), 1);
    c.consumer
        .get(&format!("{members}/{other}"))
        .expect_error(404);
    c.stranger.get(&members).expect_error(404);
    assert_eq!(c.consumer.get(&me).expect_json(200)["status"], "accepted");

    // Rejected: readable by id, gone from the default list.
    assert_eq!(put("rejected").expect_json(200)["status"], "rejected");
    assert!(!ids(&c.consumer.get("/v2/images").json()).contains(&c.image));
    c.consumer
        .get(&format!("/v2/images/{}", c.image))
        .expect_json(200);

    // Only the owner removes members; afterwards access is gone.
    c.consumer.delete(&me).expect_error(403);
    c.owner_reader.delete(&me).expect_error(403);
    assert_eq!(c.owner.delete(&me).status, 204);
    c.owner.delete(&me).expect_error(404);
    c.consumer
        .get(&format!("/v2/images/{}", c.image))
        .expect_error(404);
}

#[test]
fn member_rules_and_bad_input() {
    let c = cast();
    let members = format!("/v2/images/{}/members", c.image);
    c.owner.post_json(&members, &json!({})).expect_error(400);
    c.owner
        .post_json(&members, &json!({"member": ""}))
        .expect_error(400);
    c.owner
        .post_json(&members, &json!({"member": 5}))
        .expect_error(400);
    c.owner.post_json(&members, &json!(["x"])).expect_error(400);
    c.owner_reader
        .post_json(&members, &json!({"member": "x"}))
        .expect_error(403);
    c.stranger
        .post_json(&members, &json!({"member": "x"}))
        .expect_error(404);
    c.owner
        .post_json(
            &format!("/v2/images/{}/members", test_support::uuid_like()),
            &json!({"member": "x"}),
        )
        .expect_error(404);
    // Only shared images have members.
    let private = c.owner.create_image(&json!({"visibility": "private"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let msg = c
        .owner
        .post_json(
            &format!("/v2/images/{private}/members"),
            &json!({"member": "x"}),
        )
        .expect_error(403);
    assert_eq!(msg, "Only shared images have members.");
    c.owner
        .get(&format!("/v2/images/{private}/members"))
        .expect_error(403);
    let r = c.owner.send("PATCH", &members, &[], Payload::None);
    r.expect_error(405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
}

#[test]
fn member_quota() {
    let svc = test_support::Service::builder()
        .env("SPIN_VARIABLE_IMAGE_MEMBER_QUOTA", "2")
        .start();
    let owner = svc.project(&new_project(), "member");
    let id = owner.create_image(&json!({}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let members = format!("/v2/images/{id}/members");
    owner
        .post_json(&members, &json!({"member": "a"}))
        .expect_json(200);
    owner
        .post_json(&members, &json!({"member": "b"}))
        .expect_json(200);
    owner
        .post_json(&members, &json!({"member": "c"}))
        .expect_error(413);
}

//! End-to-end with a real Keystone: token scope. Glance's rules are for
//! project-scoped tokens (`scope_types=['project']`, scope enforced), so a
//! system-scoped token — even the cloud admin's — may not create or list
//! images (403) and sees none (404), as glance-tempest-plugin's RBAC suites
//! check; the same user scoped to a project is an admin.

use serde_json::json;
use test_support::keystone::{Keystone, PASSWORD};
use test_support::Service;

#[test]
fn system_scoped_tokens_pass_no_rule() {
    let ks = Keystone::start();
    let svc = Service::builder().keystone(&ks).start();
    let member = svc
        .client()
        .with_header("X-Auth-Token", &ks.token("alpha-member", PASSWORD, "alpha"));
    let id = member.create_image(&json!({"name": "scoped", "visibility": "community"}))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let image = format!("/v2/images/{id}");

    let system = svc
        .client()
        .with_header("X-Auth-Token", &ks.system_admin_token());
    assert_eq!(
        system
            .post_json("/v2/images", &json!({"name": "by-system"}))
            .status,
        403
    );
    assert_eq!(system.get("/v2/images").status, 403);
    assert_eq!(system.get(&image).status, 404);
    assert_eq!(
        system
            .patch(
                &image,
                &json!([{"op": "replace", "path": "/name", "value": "x"}])
            )
            .status,
        404
    );
    assert_eq!(system.get(&format!("{image}/members")).status, 404);
    assert_eq!(system.delete(&image).status, 404);

    // The same user with a project-scoped token is an admin.
    let admin = svc.client().with_header("X-Auth-Token", &ks.admin_token());
    assert_eq!(admin.get(&image).expect_json(200)["name"], "scoped");
    assert_eq!(admin.get("/v2/images").status, 200);
}

//! Real clients sharing images with Keystone authentication: glanceclient's
//! member commands and openstacksdk's add_member/update_member/members.

use test_support::keystone::Keystone;
use test_support::python::{glance_as, prop, sdk_script, table};
use test_support::Service;

fn login(ks: &Keystone, user: &str, project: &str) -> Vec<String> {
    [
        "--os-auth-url",
        &format!("{}/v3", ks.url),
        "--os-username",
        user,
        "--os-password",
        "secret",
        "--os-project-name",
        project,
        "--os-user-domain-id",
        "default",
        "--os-project-domain-id",
        "default",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn glanceclient_member_commands_with_keystone() {
    let ks = Keystone::start();
    let svc = Service::builder().keystone(&ks).start();
    let owner = login(&ks, "alpha-member", "alpha");
    let consumer = login(&ks, "beta-member", "beta");
    let beta = ks.project_id("beta");

    let out = glance_as(
        &svc,
        &refs(&owner),
        &["image-create", "--name", "gc-shared"],
    );
    let id = prop(out.expect_ok(), "id").expect("id");

    // member-create, then the consumer sees the offer only with --member-status pending.
    let out = glance_as(&svc, &refs(&owner), &["member-create", &id, &beta]);
    assert!(out.expect_ok().contains("pending"), "{}", out.stdout);
    let listed = |status: Option<&str>| -> bool {
        let mut args = vec!["image-list"];
        if let Some(s) = status {
            args.extend(["--member-status", s, "--visibility", "shared"]);
        }
        let out = glance_as(&svc, &refs(&consumer), &args);
        table(out.expect_ok())
            .iter()
            .any(|row| row.first() == Some(&id))
    };
    assert!(listed(Some("pending")));
    assert!(!listed(None));

    // member-update accepted / rejected by the consumer.
    let out = glance_as(
        &svc,
        &refs(&consumer),
        &["member-update", &id, &beta, "accepted"],
    );
    assert!(out.expect_ok().contains("accepted"), "{}", out.stdout);
    assert!(listed(None));
    assert!(listed(Some("accepted")));
    let out = glance_as(
        &svc,
        &refs(&consumer),
        &["member-update", &id, &beta, "rejected"],
    );
    assert!(out.expect_ok().contains("rejected"), "{}", out.stdout);
    assert!(!listed(None));
    assert!(listed(Some("rejected")));

    // The owner may not accept on the consumer's behalf.
    let out = glance_as(
        &svc,
        &refs(&owner),
        &["member-update", &id, &beta, "accepted"],
    );
    assert!(
        !out.ok,
        "owner must not change a member's status: {}",
        out.stdout
    );

    // member-list shows the member and its status.
    let out = glance_as(&svc, &refs(&owner), &["member-list", "--image-id", &id]);
    let rows = table(out.expect_ok());
    assert!(
        rows.iter()
            .any(|r| r.contains(&beta) && r.contains(&"rejected".to_string())),
        "{rows:?}"
    );

    // member-delete: access is gone.
    glance_as(&svc, &refs(&owner), &["member-delete", &id, &beta]).expect_ok();
    let out = glance_as(&svc, &refs(&owner), &["member-list", "--image-id", &id]);
    assert!(!out.expect_ok().contains(&beta));
    let out = glance_as(&svc, &refs(&consumer), &["image-show", &id]);
    assert!(!out.ok, "the consumer must lose access");
}

#[test]
fn openstacksdk_members_with_keystone() {
    let ks = Keystone::start();
    let svc = Service::builder().keystone(&ks).start();
    let owner_token = ks.token("alpha-member", "secret", "alpha");
    let img = svc
        .client()
        .with_header("X-Auth-Token", &owner_token)
        .create_image(&serde_json::json!({"name": "sdk-shared"}));
    let id = img["id"].as_str().unwrap();
    let beta = ks.project_id("beta");
    let facts = sdk_script("sdk_members.py", &[&svc.base, &ks.url, id, &beta]);
    assert_eq!(facts["added"], "pending");
    assert_eq!(facts["before"], serde_json::json!(["pending"]));
    assert_eq!(facts["updated"], "accepted");
    assert_eq!(facts["after"], serde_json::json!([[beta, "accepted"]]));
    assert_eq!(facts["member_lists_image"], true);
}

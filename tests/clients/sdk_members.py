"""openstacksdk with Keystone password auth: share an image and accept it.

argv: glance_endpoint keystone_url image_id consumer_project_id
Prints JSON facts for the Rust test to assert."""
import json
import sys

import openstack

endpoint, auth_url, image_id, consumer = sys.argv[1:5]


def connect(user, project):
    return openstack.connection.Connection(
        auth={"auth_url": auth_url + "/v3", "username": user, "password": "secret",
              "project_name": project, "user_domain_id": "default",
              "project_domain_id": "default"},
        image_endpoint_override=endpoint, image_api_version="2",
    )


owner = connect("alpha-member", "alpha")
member = connect("beta-member", "beta")
added = owner.image.add_member(image_id, member_id=consumer)
before = [m.status for m in owner.image.members(image_id)]
updated = member.image.update_member(consumer, image_id, status="accepted")
after = [(m.member_id, m.status) for m in owner.image.members(image_id)]
seen = [i.id for i in member.image.images()]
print(json.dumps({"added": added.status, "before": before, "updated": updated.status,
                  "after": after, "member_lists_image": image_id in seen}))

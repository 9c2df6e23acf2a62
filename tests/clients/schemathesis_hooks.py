"""Schemathesis hooks: teach it Glance's JSON-patch media type (a JSON array body)."""
import json

import schemathesis


@schemathesis.serializer("application/openstack-images-v2.1-json-patch")
def json_patch(ctx, value):
    return json.dumps(value).encode()

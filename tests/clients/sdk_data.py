"""openstacksdk against the service without Keystone (auth_type none):
create_image(filename=...) then download_image; prints JSON facts."""
import json
import sys

import openstack

endpoint, source, target = sys.argv[1:4]
conn = openstack.connection.Connection(
    auth_type="none", auth={"endpoint": endpoint}, image_api_version="2"
)
img = conn.create_image(
    "sdk-image", filename=source, disk_format="raw", container_format="bare", wait=True
)
conn.image.download_image(img, output=target)
again = conn.image.get_image(img.id)
print(json.dumps({"id": img.id, "status": again.status, "checksum": again.checksum,
                  "size": again.size}))

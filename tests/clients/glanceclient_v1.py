"""python-glanceclient's v1 Python API, as its README (the seeds) wrote it, in
Python 3 spelling; then images.list() with the admin manual's filters, both
sort directions and paging. Prints JSON facts for the Rust test to assert.

argv: endpoint workdir tag

The README's steps, verbatim but for print() and the refresh: a v1 Image
object does not update itself on image.update() in the current client (and
its image.get() fails there), so glance.images.get() reads the image again
before its status is read.
"""
import hashlib
import io
import json
import os
import sys

from glanceclient import Client
from glanceclient import exc

endpoint, work, tag = sys.argv[1:4]
facts = {}

# --- The README ---------------------------------------------------------
glance = Client('1', endpoint=endpoint, token='noauth-token')
image = glance.images.create(name="My Test Image " + tag)
facts["created_status"] = image.status

myimage = os.path.join(work, "myimage.iso")
payload = os.urandom(300_000)
with open(myimage, "wb") as f:
    f.write(payload)
image.update(data=open(myimage, 'rb'))
image = glance.images.get(image.id)
facts["updated_status"] = image.status
facts["size"] = image.size
facts["checksum"] = image.checksum
facts["md5"] = hashlib.md5(payload).hexdigest()
facts["len"] = len(payload)

image.update(properties=dict(my_custom_property='value'))
image = glance.images.get(image.id)
facts["properties"] = image.properties

copy = os.path.join(work, "copyimage.iso")
with open(copy, 'wb') as f:
    for chunk in image.data():
        f.write(chunk)
with open(copy, "rb") as f:
    facts["copy_equal"] = f.read() == payload

image_id = image.id
facts["name"] = glance.images.get(image_id).name
image.delete()
try:
    glance.images.get(image_id)
    facts["after_delete"] = 200
except exc.HTTPNotFound as e:
    facts["after_delete"] = e.code

# --- The admin manual's list: filters, sort, paging -----------------------
made = {}
for name, disk, container, size in [
    ("alpha", "raw", "bare", 10),
    ("bravo", "qcow2", "ovf", 20),
    ("charlie", "raw", "bare", 30),
]:
    img = glance.images.create(
        name=f"{tag}-{name}", disk_format=disk, container_format=container,
        properties={"v1tag": tag}, data=io.BytesIO(b"x" * size),
    )
    made[img.id] = name


def names(**kwargs):
    filters = kwargs.pop("filters", {})
    filters.setdefault("properties", {})["v1tag"] = tag
    return [made.get(i.id, i.name) for i in glance.images.list(filters=filters, **kwargs)]


facts["list"] = {
    "asc": names(sort_key="name", sort_dir="asc"),
    "desc": names(sort_key="name", sort_dir="desc"),
    "paged_asc": names(sort_key="name", sort_dir="asc", page_size=1),
    "paged_desc": names(sort_key="size", sort_dir="desc", page_size=2),
    "limit": names(sort_key="name", sort_dir="asc", page_size=1, limit=2),
    "name": names(filters={"name": f"{tag}-bravo"}),
    "disk_format": names(filters={"disk_format": "raw"}, sort_key="name", sort_dir="asc"),
    "container_format": names(filters={"container_format": "ovf"}),
    "status": names(filters={"status": "active"}, sort_key="name", sort_dir="asc"),
    "queued": names(filters={"status": "queued"}),
    "size_range": names(filters={"size_min": 15, "size_max": 25}),
    "size_min": names(filters={"size_min": 15}, sort_key="size", sort_dir="asc"),
}
default = list(glance.images.list(filters={"properties": {"v1tag": tag}}))
facts["default_order_is_created_at_desc"] = [i.id for i in default] == [
    i.id for i in sorted(default, key=lambda i: (i.created_at, i.id), reverse=True)
]
for img_id in made:
    glance.images.delete(img_id)

print(json.dumps(facts))

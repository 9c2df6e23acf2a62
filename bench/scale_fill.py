#!/usr/bin/env python3
"""Bulk-fills an image catalogue for bench/scale.sh, and writes the list queries
to time on it.

    scale_fill.py --kind glance    --db sqlite_db.db --n N [--seed 1] --queries-out DIR
    scale_fill.py --kind reference --db glance.sqlite --n N [--seed 1] --queries-out DIR
    scale_fill.py --caller          # prints "MEMBER_PROJECT ADMIN_PROJECT"

The bulk path. The database must already hold the service's own schema (the
target started once on a fresh state dir and answered one request, so its
migrations ran; for the reference, `glance-manage db_sync`). This script only
INSERTs, with Python's stdlib sqlite3, executemany in one transaction:
  glance     rows of `images` (tags a JSON array, properties a JSON object of
             strings, locations as the kv store writes them) and `image_members`;
             whatever the schema derives from `images` (triggers filling side
             tables, indexes) is the schema's business. No ANALYZE: the service
             must be fast without statistics.
  reference  Glance 33's tables: images, image_properties, image_tags,
             image_members, image_locations (file:// locations), datetimes as
             SQLAlchemy writes them ('YYYY-MM-DD HH:MM:SS.ffffff') but in whole
             seconds, as the service stores them, so that ties sort alike.
Both kinds get the same catalogue for the same --n and --seed (same ids, names,
owners, ...), so the same queries (markers included) apply to both.

The catalogue: N live images plus N/20 deleted tombstones, spread as a real
cloud's would be (deterministic for a seed):
  owners      60 projects: "cloud" (the operator's project) owns 75% of the public
              images; everything else is spread over the other 59 with Zipf-like
              weights (a few big projects, a long tail).
  visibility  70% public, 20% private, 7% shared, 3% community. A shared image has
              1-3 members among the projects (75% accepted, 20% pending, 5%
              rejected); the calling project ("partner", see --caller) is one of
              them on a quarter of the shared images it does not own (a project
              many share with, so that member queries find something at 1k).
  status      95% active, 2.5% queued (no data), 1.5% deactivated, 1% importing;
              1% os_hidden, 3% protected; tombstones: deleted=1, status 'deleted',
              deleted_at set, no members.
  names       distro builds "<distro>-<version>-<variant>[-<yyyymmdd>]" (many
              repeats), snapshots "snapshot-<project>-<n>", appliances
              "<app>-<version>" (the cloud project: builds and appliances only);
              2% without a name.
  formats     disk qcow2 55%, raw 30%, iso 7%, vmdk 5%, vhdx 3%; container bare.
  sizes       log-uniform 10 MB-20 GB (ISOs 300 MB-5 GB); virtual_size >= size for
              qcow2/vmdk/vhdx, = size otherwise; queued images have none.
  properties  os_distro (10 values, ubuntu most common), os_version, architecture
              (90% x86_64), hw_disk_bus on 30%, hw_firmware_type=uefi on 8%, a
              unique-ish build_id on every image; snapshots add image_type,
              instance_uuid, base_image_ref, user_id.
  tags        0-3 (40/30/20/10%) from a 40-word vocabulary with Zipf weights (the
              last words very rare).
  times       created_at uniform over the 3 years before 2026-11-30, updated_at
              >= created_at (mostly within days), deleted_at after that.
"""

import argparse
import bisect
import hashlib
import itertools
import json
import math
import os
import random
import sqlite3
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from urllib.parse import quote

END = int(datetime(2026, 11, 30, tzinfo=timezone.utc).timestamp())
SPAN = 3 * 365 * 86400
DAY = 86400


def project_id(name):
    """A Keystone-like 32-hex project id for a readable name."""
    return hashlib.md5(name.encode()).hexdigest()


PROJECT_NAMES = ["cloud"] + [f"project-{i:02d}" for i in range(1, 60)]
PROJECTS = [project_id(n) for n in PROJECT_NAMES]
CLOUD = PROJECTS[0]
# The caller of the member queries: a mid-sized project (rank 5 of the tail)
# that owns public and private images and that others share with.
CALLER_NAME = "project-05"
CALLER = project_id(CALLER_NAME)
ADMIN = project_id("admin")
TAIL = PROJECTS[1:]
TAIL_CUM = list(itertools.accumulate(1 / (k ** 0.8) for k in range(1, len(TAIL) + 1)))

DISTROS = [  # (os_distro, weight, versions, variants)
    ("ubuntu", 30, ["20.04", "22.04", "24.04", "24.10"], ["server", "minimal", "cloudimg"]),
    ("debian", 14, ["11", "12", "13"], ["generic", "genericcloud"]),
    ("centos", 8, ["7", "stream-9"], ["generic"]),
    ("rhel", 8, ["8.10", "9.4", "9.5"], ["kvm", "guest"]),
    ("rocky", 8, ["8", "9"], ["generic-base", "ec2"]),
    ("fedora", 5, ["39", "40", "41"], ["cloud-base"]),
    ("windows", 10, ["2019", "2022", "2025"], ["server-std", "server-dc"]),
    ("alpine", 5, ["3.19", "3.20"], ["virt"]),
    ("opensuse", 4, ["15.5", "15.6"], ["jeos"]),
    ("cirros", 8, ["0.5.2", "0.6.2"], ["x86_64-disk"]),
]
DISTRO_CUM = list(itertools.accumulate(d[1] for d in DISTROS))
APPS = ["gitlab-runner", "k8s-node", "k8s-control-plane", "jenkins-agent", "postgres",
        "nginx-lb", "vpn-gateway", "openwrt", "pfsense", "minio", "elastic", "kafka-broker"]
# Zipf-weighted; the last few are very rare.
TAG_WORDS = [
    "production", "staging", "dev", "ci", "golden", "approved", "cis-hardened", "gpu",
    "windows", "linux", "nightly", "release", "lts", "legacy", "baremetal", "sriov",
    "dpdk", "fips", "uefi", "secureboot", "arm64", "x86", "minimal", "desktop", "db",
    "web", "cache", "analytics", "ml", "k8s", "edge", "hpc", "backup", "dr", "test",
    "qa", "temporary", "do-not-delete", "deprecated", "legal-hold",
]
TAG_CUM = list(itertools.accumulate(1 / k for k in range(1, len(TAG_WORDS) + 1)))
DISK_FORMATS = [("qcow2", 55), ("raw", 30), ("iso", 7), ("vmdk", 5), ("vhdx", 3)]
DISK_CUM = list(itertools.accumulate(w for _, w in DISK_FORMATS))


def pick(rng, items, cum):
    return items[bisect.bisect(cum, rng.random() * cum[-1])]


def iso(t):
    """The service's timestamp format (src/timestamp.rs): YYYY-MM-DDTHH:MM:SSZ."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def sqla(t):
    """A datetime as SQLAlchemy stores it in SQLite (whole seconds)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + ".000000"


def images(n, seed):
    """Yields n live images and n/20 tombstones as dicts, in a random order."""
    rng = random.Random(seed)
    snap_counter = Counter()
    total = n + n // 20
    tombstones = set(rng.sample(range(total), n // 20))
    for i in range(total):
        deleted = i in tombstones
        img_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        r = rng.random()
        vis = "public" if r < 0.70 else "private" if r < 0.90 else "shared" if r < 0.97 else "community"
        if vis == "public" and rng.random() < 0.75:
            owner = CLOUD
        else:
            owner = pick(rng, TAIL, TAIL_CUM)
        created = END - SPAN + rng.randrange(SPAN)
        updated = min(END, created + int(rng.expovariate(1 / (3 * DAY)))) if rng.random() < 0.6 else created
        distro, _, versions, variants = pick(rng, DISTROS, DISTRO_CUM)
        version = rng.choice(versions)
        kind = rng.random()
        if owner == CLOUD:  # the operator publishes distro builds and appliances, no snapshots
            kind = 0.0 if kind < 0.8 else 0.9
        props = {"os_distro": distro, "os_version": version,
                 "architecture": "x86_64" if rng.random() < 0.9 else "aarch64"}
        if kind < 0.50:
            name = f"{distro}-{version}-{rng.choice(variants)}"
            if rng.random() < 0.7:
                name += "-" + time.strftime("%Y%m%d", time.gmtime(created))
        elif kind < 0.85:
            project = PROJECT_NAMES[PROJECTS.index(owner)]
            snap_counter[owner] += 1
            name = f"snapshot-{project}-{rng.randrange(1, snap_counter[owner] + 1)}"
            props.update({
                "image_type": "snapshot",
                "instance_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "base_image_ref": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "user_id": f"{rng.getrandbits(128):032x}",
            })
        else:
            name = f"{rng.choice(APPS)}-{rng.randrange(1, 8)}.{rng.randrange(0, 20)}"
        if rng.random() < 0.02:
            name = None
        if rng.random() < 0.30:
            props["hw_disk_bus"] = "virtio" if rng.random() < 0.8 else "scsi"
        if rng.random() < 0.08:
            props["hw_firmware_type"] = "uefi"
        props["build_id"] = f"{rng.getrandbits(48):012x}"
        disk = pick(rng, DISK_FORMATS, DISK_CUM)[0]
        if disk == "iso":
            size = int(math.exp(rng.uniform(math.log(300e6), math.log(5e9))))
        else:
            size = int(math.exp(rng.uniform(math.log(10e6), math.log(20e9))))
        vsize = size if disk in ("raw", "iso") else int(size * rng.uniform(1.2, 8))
        r = rng.random()
        status = "active" if r < 0.95 else "queued" if r < 0.975 else "deactivated" if r < 0.99 else "importing"
        ntags = bisect.bisect([0.4, 0.7, 0.9], rng.random())
        tags = []
        for _ in range(ntags):
            t = pick(rng, TAG_WORDS, TAG_CUM)
            if t not in tags:
                tags.append(t)
        members = []
        if vis == "shared" and not deleted:
            others = [p for p in rng.sample(TAIL, 4) if p != owner and p != CALLER][: rng.randint(1, 3)]
            if owner != CALLER and rng.random() < 0.25:
                others[-1:] = [CALLER]
            for m in others:
                r = rng.random()
                mstatus = "accepted" if r < 0.75 else "pending" if r < 0.95 else "rejected"
                mt = created + rng.randrange(max(1, END - created))
                members.append((m, mstatus, mt))
        has_data = status not in ("queued", "importing")
        img = {
            "id": img_id, "name": name, "status": status, "visibility": vis,
            "protected": int(rng.random() < 0.03 and not deleted),
            "os_hidden": int(rng.random() < 0.01),
            "checksum": f"{rng.getrandbits(128):032x}" if has_data else None,
            "os_hash_algo": "sha512" if has_data else None,
            "os_hash_value": f"{rng.getrandbits(512):0128x}" if has_data else None,
            "owner": owner, "size": size if has_data else None,
            "virtual_size": vsize if has_data else None,
            "min_disk": max(1, math.ceil(vsize / 2**30)) if has_data and rng.random() < 0.5 else 0,
            "min_ram": rng.choice([0, 0, 512, 1024, 2048]),
            "disk_format": disk, "container_format": "bare",
            "created": created, "updated": updated, "deleted": int(deleted),
            "deleted_at": None, "tags": tags, "props": props, "members": members,
            "has_data": has_data,
            "unused": rng.randrange(1000000),  # drawn: keeps the catalogue of earlier runs
            "upload": f"{rng.getrandbits(128):032x}",
        }
        if deleted:
            gone = min(END, updated + 1 + rng.randrange(30 * DAY))
            img.update(status="deleted", deleted_at=gone, updated=gone)
        yield img


GLANCE_IMAGES = ("INSERT INTO images (id, name, status, visibility, protected, os_hidden, checksum, "
                 "os_hash_algo, os_hash_value, owner, size, virtual_size, min_disk, min_ram, "
                 "disk_format, container_format, created_at, updated_at, deleted, deleted_at, tags, "
                 "properties, locations, staging, revision) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,0)")
GLANCE_MEMBERS = ("INSERT INTO image_members (image_id, member, status, created_at, updated_at, "
                  "can_share) VALUES (?,?,?,?,?,0)")


def glance_rows(img):
    locations = "[]"
    if img["has_data"] and not img["deleted"]:
        locations = json.dumps([{"store": "kv", "url": f"kv://image_data/{img['id']}/{img['upload']}",
                                 "size": img["size"], "chunk_size": 1000000}], separators=(",", ":"))
    row = (img["id"], img["name"], img["status"], img["visibility"], img["protected"],
           img["os_hidden"], img["checksum"], img["os_hash_algo"], img["os_hash_value"],
           img["owner"], img["size"], img["virtual_size"], img["min_disk"], img["min_ram"],
           img["disk_format"], img["container_format"], iso(img["created"]), iso(img["updated"]),
           img["deleted"], iso(img["deleted_at"]) if img["deleted_at"] else None,
           json.dumps(img["tags"], separators=(",", ":")),
           json.dumps(img["props"], separators=(",", ":")), locations)
    members = [(img["id"], m, s, iso(t), iso(t)) for m, s, t in img["members"]]
    return row, members


def fill_glance(db, imgs):
    rows, members = [], []
    for img in imgs:
        r, m = glance_rows(img)
        rows.append(r)
        members.extend(m)
        if len(rows) >= 50000:
            db.executemany(GLANCE_IMAGES, rows)
            rows.clear()
    db.executemany(GLANCE_IMAGES, rows)
    db.executemany(GLANCE_MEMBERS, members)


def fill_reference(db, imgs, data_dir):
    ins_img = ("INSERT INTO images (id, name, size, status, created_at, updated_at, deleted_at, "
               "deleted, disk_format, container_format, checksum, owner, min_disk, min_ram, "
               "protected, virtual_size, visibility, os_hidden, os_hash_algo, os_hash_value) "
               "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    ins_prop = ("INSERT INTO image_properties (image_id, name, value, created_at, updated_at, "
                "deleted_at, deleted) VALUES (?,?,?,?,?,?,?)")
    ins_tag = ("INSERT INTO image_tags (image_id, value, created_at, updated_at, deleted_at, "
               "deleted) VALUES (?,?,?,?,?,?)")
    ins_member = ("INSERT INTO image_members (image_id, member, can_share, created_at, "
                  "updated_at, deleted_at, deleted, status) VALUES (?,?,0,?,?,NULL,0,?)")
    ins_loc = ("INSERT INTO image_locations (image_id, value, created_at, updated_at, "
               "deleted_at, deleted, meta_data, status) VALUES (?,?,?,?,?,?,'{}',?)")
    batch = {k: [] for k in (ins_img, ins_prop, ins_tag, ins_member, ins_loc)}

    def flush():
        for sql, rows in batch.items():
            db.executemany(sql, rows)
            rows.clear()

    for img in imgs:
        c = sqla(img["created"])
        u = sqla(img["updated"])
        d = sqla(img["deleted_at"]) if img["deleted_at"] else None
        dl = img["deleted"]
        batch[ins_img].append((
            img["id"], img["name"], img["size"], img["status"], c, u, d, dl,
            img["disk_format"], img["container_format"], img["checksum"], img["owner"],
            img["min_disk"], img["min_ram"], img["protected"], img["virtual_size"],
            img["visibility"], img["os_hidden"], img["os_hash_algo"], img["os_hash_value"]))
        for k, v in img["props"].items():
            batch[ins_prop].append((img["id"], k, v, c, c, d, dl))
        for t in img["tags"]:
            batch[ins_tag].append((img["id"], t, c, c, d, dl))
        for m, s, t in img["members"]:
            batch[ins_member].append((img["id"], m, sqla(t), sqla(t), s))
        if img["has_data"]:
            batch[ins_loc].append((img["id"], f"file://{data_dir}/{img['id']}", u, u, d, dl,
                                   "deleted" if dl else "active"))
        if len(batch[ins_img]) >= 50000:
            flush()
    flush()


class Catalogue:
    """What the queries need to know, gathered while filling: the images the
    member caller may list (as the service's listing rules say), by name and
    by the default order, and frequencies."""

    def __init__(self):
        self.visible = []  # (name or '', created, id) of each visible image
        self.names = Counter()
        self.tags = Counter()
        self.pending = 0
        self.counts = Counter()

    def add(self, img):
        if img["deleted"] or img["os_hidden"] or img["status"] == "killed":
            return
        vis, owner = img["visibility"], img["owner"]
        mine = owner == CALLER
        member = {m: s for m, s, _ in img["members"]}.get(CALLER)
        if vis == "shared" and member == "pending":
            self.pending += 1
        listed = (vis in ("public", "community") or mine or (vis == "shared" and member == "accepted"))
        if not listed or (vis == "community" and not mine):
            if vis == "community":
                self.counts["community"] += 1
            return
        self.visible.append((img["name"] or "", img["created"], img["id"], img["props"]["build_id"]))
        if img["name"]:
            self.names[img["name"]] += 1
        self.tags.update(img["tags"])
        self.counts[vis + (" own" if mine else "")] += 1
        self.counts["status " + img["status"]] += 1
        self.counts["disk " + img["disk_format"]] += 1
        if owner == CLOUD:
            self.counts["cloud"] += 1

    def queries(self):
        """(label, path) of every shape; values taken from this catalogue so
        that each shape finds at least one image."""
        v = self.visible
        by_name = sorted(v, key=lambda x: (x[0], x[1], x[2]))
        by_default = sorted(v, key=lambda x: (x[1], x[2]), reverse=True)
        mid_name = by_name[len(by_name) // 2]
        mid_default = by_default[len(by_default) // 2]
        common = [n for n, _ in self.names.most_common(2)]
        tag_common = self.tags.most_common(1)[0][0]
        tag_rare = min(self.tags.items(), key=lambda kv: (kv[1], kv[0]))[0]
        rare_build = by_default[len(by_default) // 3][3]
        gte = iso(END - 90 * DAY)
        q = lambda s: quote(s, safe="")
        base = "/v2/images?limit=25"
        return [
            ("plain", base),
            ("sort-name", f"{base}&sort_key=name&sort_dir=asc"),
            ("sort-name,size", f"{base}&sort=name:asc,size:desc"),
            ("sort-status", f"{base}&sort_key=status"),
            ("sort-size", f"{base}&sort_key=size"),
            ("sort-disk_format", f"{base}&sort_key=disk_format"),
            ("sort-container", f"{base}&sort_key=container_format"),
            ("sort-id", f"{base}&sort_key=id"),
            ("sort-created-asc", f"{base}&sort_key=created_at&sort_dir=asc"),
            ("sort-updated", f"{base}&sort_key=updated_at"),
            ("prop-common", f"{base}&os_distro=ubuntu&sort_key=name"),
            ("prop-rare", f"{base}&build_id={rare_build}&sort_key=name"),
            ("name-in", f"{base}&name=in:{q(common[0])},{q(common[1])}"),
            ("name-eq", f"{base}&name={q(mid_name[0])}"),
            ("deep-name", f"{base}&sort_key=name&sort_dir=asc&marker={mid_name[2]}"),
            ("deep-default", f"{base}&marker={mid_default[2]}"),
            ("tag-common", f"{base}&tag={q(tag_common)}"),
            ("tag-rare", f"{base}&tag={q(tag_rare)}"),
            ("status-queued", f"{base}&status=queued"),
            ("disk-iso", f"{base}&disk_format=iso"),
            ("size-range", f"{base}&size_min={2**30}&size_max={2**31}"),
            ("created-gte", f"{base}&created_at=gte:{gte}"),
            ("vis-private", f"{base}&visibility=private"),
            ("vis-shared", f"{base}&visibility=shared"),
            ("vis-community", f"{base}&visibility=community"),
            ("shared-pending", f"{base}&member_status=pending&visibility=shared"),
            ("owner-cloud", f"{base}&owner={CLOUD}"),
        ], [
            ("admin-plain", base),
            ("admin-vis-all", f"{base}&visibility=all"),
        ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kind", choices=["glance", "reference"])
    ap.add_argument("--db")
    ap.add_argument("--n", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--queries-out", help="a directory for member.tsv and admin.tsv")
    ap.add_argument("--data-dir", default="/nonexistent", help="reference: its file store")
    ap.add_argument("--caller", action="store_true", help="print the member and admin project ids")
    a = ap.parse_args()
    if a.caller:
        print(CALLER, ADMIN)
        return
    if not (a.kind and a.db and a.n):
        ap.error("--kind, --db and --n are required")
    if not os.path.exists(a.db):
        ap.error(f"{a.db}: no such database (the target creates its schema first)")
    t0 = time.time()
    db = sqlite3.connect(a.db, isolation_level=None)
    # One big transaction through the WAL the service left on would go through
    # a WAL as large as the database; without a journal it goes straight in
    # (the service turns WAL back on when it opens the file).
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    cat = Catalogue()

    def tracked():
        for img in images(a.n, a.seed):
            cat.add(img)
            yield img

    db.execute("BEGIN")
    if a.kind == "glance":
        fill_glance(db, tracked())
    else:
        fill_reference(db, tracked(), a.data_dir)
    db.execute("COMMIT")
    db.close()
    print(f"filled {a.db} ({a.kind}): {a.n} images + {a.n // 20} tombstones in "
          f"{time.time() - t0:.1f} s; the member caller lists {len(cat.visible)} "
          f"({dict(sorted(cat.counts.items()))}, pending shares {cat.pending})", file=sys.stderr)
    if a.queries_out:
        os.makedirs(a.queries_out, exist_ok=True)
        member, admin = cat.queries()
        for fname, rows in (("member.tsv", member), ("admin.tsv", admin)):
            with open(os.path.join(a.queries_out, fname), "w") as f:
                f.writelines(f"{label}\t{path}\n" for label, path in rows)


if __name__ == "__main__":
    main()

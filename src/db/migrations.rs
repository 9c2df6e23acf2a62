//! Versioned schema migrations, applied automatically on first use.
//!
//! Each migration is a list of idempotent statements (`IF NOT EXISTS`; an
//! `ADD COLUMN` that finds the column there counts as done), so two component
//! instances racing on a fresh database both succeed; the version row is
//! recorded afterwards. No manual `db_sync`.
//!
//! Versions are explicit numbers, increasing down the list but not always
//! consecutive: branches developed side by side reserve theirs, and a version
//! may land after a higher one did (4, the v1 API's `can_share`, landed after
//! the image cache's 5). So every listed version not yet recorded is applied,
//! in list order, not only those above the highest recorded one.

use crate::ports::{Database, StoreError};

/// (version, statements), in order.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS images (
            id TEXT PRIMARY KEY NOT NULL,
            name TEXT,
            status TEXT NOT NULL,
            visibility TEXT NOT NULL,
            protected INTEGER NOT NULL DEFAULT 0,
            os_hidden INTEGER NOT NULL DEFAULT 0,
            checksum TEXT,
            os_hash_algo TEXT,
            os_hash_value TEXT,
            owner TEXT,
            size INTEGER,
            virtual_size INTEGER,
            min_disk INTEGER NOT NULL DEFAULT 0,
            min_ram INTEGER NOT NULL DEFAULT 0,
            disk_format TEXT,
            container_format TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            deleted_at TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            properties TEXT NOT NULL DEFAULT '{}',
            locations TEXT NOT NULL DEFAULT '[]',
            staging TEXT,
            revision INTEGER NOT NULL DEFAULT 0
        )",
            "CREATE INDEX IF NOT EXISTS images_owner ON images (owner, deleted)",
            "CREATE INDEX IF NOT EXISTS images_visibility ON images (visibility, deleted)",
            "CREATE INDEX IF NOT EXISTS images_created ON images (created_at, id)",
            "CREATE INDEX IF NOT EXISTS images_owner_created ON images (owner, created_at, id)",
            "CREATE TABLE IF NOT EXISTS image_members (
            image_id TEXT NOT NULL,
            member TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (image_id, member)
        )",
            "CREATE INDEX IF NOT EXISTS image_members_member ON image_members (member, status)",
        ],
    ),
    (
        2,
        // Tasks (src/task_repo.rs): the record of each import, for GET /v2/images/{id}/tasks.
        &[
            "CREATE TABLE IF NOT EXISTS tasks (
            id TEXT PRIMARY KEY NOT NULL,
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            owner TEXT,
            image_id TEXT,
            request_id TEXT,
            user_id TEXT,
            input TEXT NOT NULL DEFAULT '{}',
            result TEXT,
            message TEXT NOT NULL DEFAULT '',
            expires_at TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            deleted INTEGER NOT NULL DEFAULT 0,
            deleted_at TEXT
        )",
            "CREATE INDEX IF NOT EXISTS tasks_image ON tasks (image_id, created_at)",
        ],
    ),
    (
        3,
        // Crash safety (src/db/leases.rs, src/data/reclaim.rs): a lease names
        // data before its first byte is written and keeps work alive while it
        // is renewed; garbage holds references an image row dropped, written
        // by a trigger in the same statement that drops them.
        &[
            "CREATE TABLE IF NOT EXISTS leases (
            id TEXT PRIMARY KEY NOT NULL,
            image_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            state TEXT NOT NULL,
            location TEXT,
            reserved INTEGER NOT NULL DEFAULT 0,
            task_id TEXT,
            expires_at INTEGER NOT NULL,
            created_at TEXT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS leases_image ON leases (image_id, state)",
            "CREATE INDEX IF NOT EXISTS leases_expiry ON leases (state, expires_at)",
            "CREATE TABLE IF NOT EXISTS garbage (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            image_id TEXT NOT NULL,
            locations TEXT NOT NULL DEFAULT '[]',
            staging TEXT
        )",
            "CREATE INDEX IF NOT EXISTS garbage_image ON garbage (image_id)",
            "CREATE TRIGGER IF NOT EXISTS images_drop_data AFTER UPDATE ON images
            FOR EACH ROW
            WHEN (OLD.locations != '[]' OR OLD.staging IS NOT NULL)
              AND (OLD.locations IS NOT NEW.locations OR OLD.staging IS NOT NEW.staging
                   OR (NEW.deleted = 1 AND OLD.deleted = 0))
            BEGIN
              INSERT INTO garbage (image_id, locations, staging)
              VALUES (OLD.id, OLD.locations, OLD.staging);
            END",
        ],
    ),
    (
        4,
        // The v1 API's `can_share`: a member that may share the image onward.
        &["ALTER TABLE image_members ADD COLUMN can_share INTEGER NOT NULL DEFAULT 0"],
    ),
    (
        5,
        // The image cache (src/db/cache.rs): one entry per cached image, a
        // fill claiming it under a lease ('filling') until its data is whole
        // ('ready'); dropping a ready entry records its data as garbage in
        // the same statement, for the reclaimer. The prefetch queue. Edge
        // site mode's views of upstream images, per caller.
        &[
            "CREATE TABLE IF NOT EXISTS cache_entries (
            image_id TEXT PRIMARY KEY NOT NULL,
            state TEXT NOT NULL,
            url TEXT NOT NULL,
            location TEXT NOT NULL,
            lease_id TEXT,
            size INTEGER NOT NULL,
            checksum TEXT,
            hits INTEGER NOT NULL DEFAULT 0,
            last_accessed REAL NOT NULL,
            last_modified REAL NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS cache_entries_lru ON cache_entries (state, last_accessed)",
            "CREATE TABLE IF NOT EXISTS cache_queue (
            image_id TEXT PRIMARY KEY NOT NULL,
            queued_at REAL NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS upstream_views (
            caller TEXT NOT NULL,
            image_id TEXT NOT NULL,
            record TEXT NOT NULL,
            fetched_at INTEGER NOT NULL,
            PRIMARY KEY (caller, image_id)
        )",
            "CREATE INDEX IF NOT EXISTS upstream_views_age ON upstream_views (fetched_at)",
            "CREATE TRIGGER IF NOT EXISTS cache_entries_drop_data AFTER DELETE ON cache_entries
            FOR EACH ROW WHEN OLD.state = 'ready'
            BEGIN
              INSERT INTO garbage (image_id, locations) VALUES (OLD.image_id, json_array(json(OLD.location)));
            END",
        ],
    ),
    (
        6,
        // Lists that stay fast at any size (src/db/image_list/): for every
        // sort key, an index per visibility partition (`images_v_*`) and per
        // owner and partition (`images_o_*`), in that key's order and over
        // live rows only, so a page is a bounded walk merged across the
        // partitions a caller sees; an index per filterable column
        // (`images_f_*`) for filters that select few rows; tags and custom
        // properties in side tables kept by triggers in the same statement
        // as the image row (and filled from existing rows); `images_changes`
        // for the v1 API's `changes-since`, which lists deleted rows too.
        &[
            // Sort values as columns (NULL sorts as the type's default, as in
            // Glance): an index on them seeks to a marker with a row-value
            // comparison, which SQLite does for columns, not expressions.
            "ALTER TABLE images ADD COLUMN sort_name TEXT GENERATED ALWAYS AS (COALESCE(name, '')) VIRTUAL",
            "ALTER TABLE images ADD COLUMN sort_container_format TEXT \
             GENERATED ALWAYS AS (COALESCE(container_format, '')) VIRTUAL",
            "ALTER TABLE images ADD COLUMN sort_disk_format TEXT \
             GENERATED ALWAYS AS (COALESCE(disk_format, '')) VIRTUAL",
            "ALTER TABLE images ADD COLUMN sort_size INTEGER GENERATED ALWAYS AS (COALESCE(size, 0)) VIRTUAL",
            "CREATE INDEX IF NOT EXISTS images_v_name ON images (os_hidden, visibility, sort_name, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_v_status ON images (os_hidden, visibility, status, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_v_container_format ON images (os_hidden, visibility, sort_container_format, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_v_disk_format ON images (os_hidden, visibility, sort_disk_format, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_v_size ON images (os_hidden, visibility, sort_size, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_v_id ON images (os_hidden, visibility, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_v_created_at ON images (os_hidden, visibility, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_v_updated_at ON images (os_hidden, visibility, updated_at, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_name ON images (owner, visibility, os_hidden, sort_name, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_status ON images (owner, visibility, os_hidden, status, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_container_format ON images (owner, visibility, os_hidden, sort_container_format, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_disk_format ON images (owner, visibility, os_hidden, sort_disk_format, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_size ON images (owner, visibility, os_hidden, sort_size, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_id ON images (owner, visibility, os_hidden, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_created_at ON images (owner, visibility, os_hidden, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_o_updated_at ON images (owner, visibility, os_hidden, updated_at, created_at, id) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_name ON images (name, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_status ON images (status, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_container_format ON images (container_format, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_disk_format ON images (disk_format, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_checksum ON images (checksum, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_os_hash_value ON images (os_hash_value, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_os_hash_algo ON images (os_hash_algo, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_min_ram ON images (min_ram, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_min_disk ON images (min_disk, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_size ON images (size, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_virtual_size ON images (virtual_size, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_protected ON images (protected, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_created_at ON images (created_at, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_f_updated_at ON images (updated_at, os_hidden) \
             WHERE deleted = 0 AND status != 'killed'",
            "CREATE INDEX IF NOT EXISTS images_changes ON images (os_hidden, updated_at)",
            "DROP INDEX IF EXISTS images_visibility",
            "DROP INDEX IF EXISTS images_owner_created",
            "DROP INDEX IF EXISTS images_created",
            "CREATE TABLE IF NOT EXISTS image_tags (
            tag TEXT NOT NULL,
            image_id TEXT NOT NULL,
            PRIMARY KEY (tag, image_id)
        ) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS image_tags_image ON image_tags (image_id)",
            "CREATE TABLE IF NOT EXISTS image_properties (
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            image_id TEXT NOT NULL,
            PRIMARY KEY (key, value, image_id)
        ) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS image_properties_image ON image_properties (image_id)",
            "CREATE TRIGGER IF NOT EXISTS images_side_insert AFTER INSERT ON images
            FOR EACH ROW
            BEGIN
              INSERT OR IGNORE INTO image_tags (tag, image_id)
                SELECT value, NEW.id FROM json_each(NEW.tags) WHERE value IS NOT NULL;
              INSERT OR IGNORE INTO image_properties (key, value, image_id)
                SELECT key, value, NEW.id FROM json_each(NEW.properties) WHERE value IS NOT NULL;
            END",
            "CREATE TRIGGER IF NOT EXISTS images_side_tags AFTER UPDATE OF tags ON images
            FOR EACH ROW WHEN OLD.tags IS NOT NEW.tags
            BEGIN
              DELETE FROM image_tags WHERE image_id = OLD.id;
              INSERT OR IGNORE INTO image_tags (tag, image_id)
                SELECT value, NEW.id FROM json_each(NEW.tags) WHERE value IS NOT NULL;
            END",
            "CREATE TRIGGER IF NOT EXISTS images_side_properties AFTER UPDATE OF properties ON images
            FOR EACH ROW WHEN OLD.properties IS NOT NEW.properties
            BEGIN
              DELETE FROM image_properties WHERE image_id = OLD.id;
              INSERT OR IGNORE INTO image_properties (key, value, image_id)
                SELECT key, value, NEW.id FROM json_each(NEW.properties) WHERE value IS NOT NULL;
            END",
            // Rows written before the triggers existed; a row written since
            // is there already (OR IGNORE).
            "INSERT OR IGNORE INTO image_tags (tag, image_id)
            SELECT j.value, images.id FROM images, json_each(images.tags) j WHERE j.value IS NOT NULL",
            "INSERT OR IGNORE INTO image_properties (key, value, image_id)
            SELECT j.key, j.value, images.id FROM images, json_each(images.properties) j
            WHERE j.value IS NOT NULL",
        ],
    ),
    (
        7,
        // The metadata definitions catalog (src/db/metadefs.rs): namespaces
        // and what they hold (objects, properties, tags, each unique by name
        // within its namespace; tags case-insensitively), resource types and
        // their associations with namespaces. An object or property keeps
        // its definition as a JSON document (Glance's `json_schema`; an
        // object's also holds its description and required names).
        &[
            "CREATE TABLE IF NOT EXISTS metadef_namespaces (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace TEXT NOT NULL UNIQUE,
            display_name TEXT,
            description TEXT,
            visibility TEXT NOT NULL DEFAULT 'private',
            protected INTEGER NOT NULL DEFAULT 0,
            owner TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS metadef_objects (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            json_schema TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (namespace_id, name)
        )",
            "CREATE TABLE IF NOT EXISTS metadef_properties (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace_id INTEGER NOT NULL,
            name TEXT NOT NULL,
            json_schema TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (namespace_id, name)
        )",
            "CREATE TABLE IF NOT EXISTS metadef_tags (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            namespace_id INTEGER NOT NULL,
            name TEXT NOT NULL COLLATE NOCASE,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (namespace_id, name)
        )",
            "CREATE TABLE IF NOT EXISTS metadef_resource_types (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            protected INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS metadef_namespace_resource_types (
            resource_type_id INTEGER NOT NULL,
            namespace_id INTEGER NOT NULL,
            properties_target TEXT,
            prefix TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (resource_type_id, namespace_id)
        )",
            "CREATE INDEX IF NOT EXISTS metadef_ns_rt_namespace \
             ON metadef_namespace_resource_types (namespace_id)",
        ],
    ),
    (
        8,
        // Filters that keep many rows, walked in sort order (`Lead` in
        // src/db/image_list/plan.rs): the index of an equality filter on a
        // core column continues with the visibility partition and the
        // default order, and tags and custom properties carry the listing
        // columns of their image (kept by triggers) with an index in the
        // default order and one by name. A page of `status=queued` or
        // `os_distro=ubuntu&sort_key=name` then reads about as many entries
        // as it shows, however the filter and the order correlate. The
        // owner trails each so that an owner's partition is checked in
        // the index. The name indexes carry every other sort value: a
        // second sort key orders the ties of a name (images without one
        // are a large tie) within the index. A member's index holds the
        // image ids it finds.
        &[
            "DROP INDEX IF EXISTS image_members_member",
            "CREATE INDEX IF NOT EXISTS image_members_member ON image_members (member, status, image_id)",
            "DROP INDEX IF EXISTS images_v_name",
            "CREATE INDEX IF NOT EXISTS images_v_name ON images (os_hidden, visibility, sort_name, created_at, id, \
             status, sort_container_format, sort_disk_format, sort_size, updated_at) \
             WHERE deleted = 0 AND status != 'killed'",
            "DROP INDEX IF EXISTS images_o_name",
            "CREATE INDEX IF NOT EXISTS images_o_name ON images (owner, visibility, os_hidden, sort_name, created_at, id, \
             status, sort_container_format, sort_disk_format, sort_size, updated_at) \
             WHERE deleted = 0 AND status != 'killed'",
            "DROP INDEX IF EXISTS images_f_name",
            "CREATE INDEX IF NOT EXISTS images_f_name ON images (name, os_hidden, visibility, created_at, id, owner) \
             WHERE deleted = 0 AND status != 'killed'",
            "DROP INDEX IF EXISTS images_f_status",
            "CREATE INDEX IF NOT EXISTS images_f_status ON images (status, os_hidden, visibility, created_at, id, owner) \
             WHERE deleted = 0 AND status != 'killed'",
            "DROP INDEX IF EXISTS images_f_container_format",
            "CREATE INDEX IF NOT EXISTS images_f_container_format ON images (container_format, os_hidden, visibility, created_at, id, owner) \
             WHERE deleted = 0 AND status != 'killed'",
            "DROP INDEX IF EXISTS images_f_disk_format",
            "CREATE INDEX IF NOT EXISTS images_f_disk_format ON images (disk_format, os_hidden, visibility, created_at, id, owner) \
             WHERE deleted = 0 AND status != 'killed'",
            "ALTER TABLE image_tags ADD COLUMN os_hidden INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE image_tags ADD COLUMN visibility TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_tags ADD COLUMN owner TEXT",
            "ALTER TABLE image_tags ADD COLUMN created_at TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_tags ADD COLUMN sort_name TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_tags ADD COLUMN live INTEGER NOT NULL DEFAULT 0",
            "UPDATE image_tags SET os_hidden = i.os_hidden, visibility = i.visibility, owner = i.owner, \
             created_at = i.created_at, sort_name = COALESCE(i.name, ''), \
             live = (i.deleted = 0 AND i.status != 'killed') FROM images i WHERE i.id = image_tags.image_id",
            "ALTER TABLE image_properties ADD COLUMN os_hidden INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE image_properties ADD COLUMN visibility TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_properties ADD COLUMN owner TEXT",
            "ALTER TABLE image_properties ADD COLUMN created_at TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_properties ADD COLUMN sort_name TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_properties ADD COLUMN live INTEGER NOT NULL DEFAULT 0",
            "UPDATE image_properties SET os_hidden = i.os_hidden, visibility = i.visibility, owner = i.owner, \
             created_at = i.created_at, sort_name = COALESCE(i.name, ''), \
             live = (i.deleted = 0 AND i.status != 'killed') FROM images i WHERE i.id = image_properties.image_id",
            "CREATE INDEX IF NOT EXISTS image_tags_l_created_at ON image_tags (tag, os_hidden, visibility, created_at, image_id, owner) \
             WHERE live = 1",
            "CREATE INDEX IF NOT EXISTS image_tags_l_name ON image_tags (tag, os_hidden, visibility, sort_name, created_at, image_id, owner) \
             WHERE live = 1",
            "CREATE INDEX IF NOT EXISTS image_properties_l_created_at ON image_properties (key, value, os_hidden, visibility, created_at, image_id, owner) \
             WHERE live = 1",
            "CREATE INDEX IF NOT EXISTS image_properties_l_name ON image_properties (key, value, os_hidden, visibility, sort_name, created_at, image_id, owner) \
             WHERE live = 1",
            "DROP TRIGGER IF EXISTS images_side_insert",
            "DROP TRIGGER IF EXISTS images_side_tags",
            "DROP TRIGGER IF EXISTS images_side_properties",
            "CREATE TRIGGER IF NOT EXISTS images_side_insert AFTER INSERT ON images
            FOR EACH ROW
            BEGIN
              INSERT OR IGNORE INTO image_tags (tag, image_id, os_hidden, visibility, owner, created_at, sort_name, live)
                SELECT value, NEW.id, NEW.os_hidden, NEW.visibility, NEW.owner, NEW.created_at, COALESCE(NEW.name, ''), NEW.deleted = 0 AND NEW.status != 'killed' FROM json_each(NEW.tags) WHERE value IS NOT NULL;
              INSERT OR IGNORE INTO image_properties (key, value, image_id, os_hidden, visibility, owner, created_at, sort_name, live)
                SELECT key, value, NEW.id, NEW.os_hidden, NEW.visibility, NEW.owner, NEW.created_at, COALESCE(NEW.name, ''), NEW.deleted = 0 AND NEW.status != 'killed' FROM json_each(NEW.properties) WHERE value IS NOT NULL;
            END",
            "CREATE TRIGGER IF NOT EXISTS images_side_tags AFTER UPDATE OF tags ON images
            FOR EACH ROW WHEN OLD.tags IS NOT NEW.tags
            BEGIN
              DELETE FROM image_tags WHERE image_id = OLD.id;
              INSERT OR IGNORE INTO image_tags (tag, image_id, os_hidden, visibility, owner, created_at, sort_name, live)
                SELECT value, NEW.id, NEW.os_hidden, NEW.visibility, NEW.owner, NEW.created_at, COALESCE(NEW.name, ''), NEW.deleted = 0 AND NEW.status != 'killed' FROM json_each(NEW.tags) WHERE value IS NOT NULL;
            END",
            "CREATE TRIGGER IF NOT EXISTS images_side_properties AFTER UPDATE OF properties ON images
            FOR EACH ROW WHEN OLD.properties IS NOT NEW.properties
            BEGIN
              DELETE FROM image_properties WHERE image_id = OLD.id;
              INSERT OR IGNORE INTO image_properties (key, value, image_id, os_hidden, visibility, owner, created_at, sort_name, live)
                SELECT key, value, NEW.id, NEW.os_hidden, NEW.visibility, NEW.owner, NEW.created_at, COALESCE(NEW.name, ''), NEW.deleted = 0 AND NEW.status != 'killed' FROM json_each(NEW.properties) WHERE value IS NOT NULL;
            END",
            "CREATE TRIGGER IF NOT EXISTS images_side_list
            AFTER UPDATE OF os_hidden, visibility, owner, created_at, name, deleted, status ON images
            FOR EACH ROW WHEN OLD.os_hidden IS NOT NEW.os_hidden OR OLD.visibility IS NOT NEW.visibility
              OR OLD.owner IS NOT NEW.owner OR OLD.created_at IS NOT NEW.created_at
              OR OLD.name IS NOT NEW.name
              OR (OLD.deleted = 0 AND OLD.status != 'killed') IS NOT (NEW.deleted = 0 AND NEW.status != 'killed')
            BEGIN
              UPDATE image_tags SET os_hidden = NEW.os_hidden, visibility = NEW.visibility, owner = NEW.owner, created_at = NEW.created_at, sort_name = COALESCE(NEW.name, ''), live = (NEW.deleted = 0 AND NEW.status != 'killed') WHERE image_id = NEW.id;
              UPDATE image_properties SET os_hidden = NEW.os_hidden, visibility = NEW.visibility, owner = NEW.owner, created_at = NEW.created_at, sort_name = COALESCE(NEW.name, ''), live = (NEW.deleted = 0 AND NEW.status != 'killed') WHERE image_id = NEW.id;
            END",
        ],
    ),
    (
        9,
        // Memberships carry their image's listing columns too (as tags and
        // properties do since 8), with an index in the default order and
        // one by name: the images shared with a caller are walked in sort
        // order from the caller's memberships, so a page of them reads what
        // it shows however many the caller has and however few of the
        // shared partition are theirs. The membership's own `created_at`
        // is taken: the image's is `image_created_at`. The default order's
        // partition indexes hold the size, so that a walk under a size
        // range checks it in the index instead of reading each row.
        &[
            "DROP INDEX IF EXISTS images_v_created_at",
            "CREATE INDEX IF NOT EXISTS images_v_created_at ON images (os_hidden, visibility, created_at, id, size) \
             WHERE deleted = 0 AND status != 'killed'",
            "DROP INDEX IF EXISTS images_o_created_at",
            "CREATE INDEX IF NOT EXISTS images_o_created_at ON images (owner, visibility, os_hidden, created_at, id, size) \
             WHERE deleted = 0 AND status != 'killed'",
            "ALTER TABLE image_members ADD COLUMN os_hidden INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE image_members ADD COLUMN visibility TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_members ADD COLUMN owner TEXT",
            "ALTER TABLE image_members ADD COLUMN image_created_at TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_members ADD COLUMN sort_name TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE image_members ADD COLUMN live INTEGER NOT NULL DEFAULT 0",
            "UPDATE image_members SET os_hidden = i.os_hidden, visibility = i.visibility, owner = i.owner, \
             image_created_at = i.created_at, sort_name = COALESCE(i.name, ''), \
             live = (i.deleted = 0 AND i.status != 'killed') FROM images i WHERE i.id = image_members.image_id",
            "CREATE INDEX IF NOT EXISTS image_members_l_created_at ON image_members \
             (member, status, os_hidden, visibility, image_created_at, image_id, owner) WHERE live = 1",
            "CREATE INDEX IF NOT EXISTS image_members_l_name ON image_members \
             (member, status, os_hidden, visibility, sort_name, image_created_at, image_id, owner) WHERE live = 1",
            "CREATE TRIGGER IF NOT EXISTS image_members_side AFTER INSERT ON image_members
            FOR EACH ROW
            BEGIN
              UPDATE image_members SET os_hidden = i.os_hidden, visibility = i.visibility, owner = i.owner, image_created_at = i.created_at, sort_name = COALESCE(i.name, ''), live = (i.deleted = 0 AND i.status != 'killed') FROM images i WHERE i.id = NEW.image_id AND image_members.image_id = NEW.image_id AND image_members.member = NEW.member;
            END",
            "DROP TRIGGER IF EXISTS images_side_list",
            "CREATE TRIGGER IF NOT EXISTS images_side_list
            AFTER UPDATE OF os_hidden, visibility, owner, created_at, name, deleted, status ON images
            FOR EACH ROW WHEN OLD.os_hidden IS NOT NEW.os_hidden OR OLD.visibility IS NOT NEW.visibility
              OR OLD.owner IS NOT NEW.owner OR OLD.created_at IS NOT NEW.created_at
              OR OLD.name IS NOT NEW.name
              OR (OLD.deleted = 0 AND OLD.status != 'killed') IS NOT (NEW.deleted = 0 AND NEW.status != 'killed')
            BEGIN
              UPDATE image_tags SET os_hidden = NEW.os_hidden, visibility = NEW.visibility, owner = NEW.owner, created_at = NEW.created_at, sort_name = COALESCE(NEW.name, ''), live = (NEW.deleted = 0 AND NEW.status != 'killed') WHERE image_id = NEW.id;
              UPDATE image_properties SET os_hidden = NEW.os_hidden, visibility = NEW.visibility, owner = NEW.owner, created_at = NEW.created_at, sort_name = COALESCE(NEW.name, ''), live = (NEW.deleted = 0 AND NEW.status != 'killed') WHERE image_id = NEW.id;
              UPDATE image_members SET os_hidden = NEW.os_hidden, visibility = NEW.visibility, owner = NEW.owner, image_created_at = NEW.created_at, sort_name = COALESCE(NEW.name, ''), live = (NEW.deleted = 0 AND NEW.status != 'killed') WHERE image_id = NEW.id;
            END",
        ],
    ),
];

/// Runs one migration statement; adding a column that exists (another
/// instance got there first) is success.
fn run(db: &dyn Database, sql: &str) -> Result<(), StoreError> {
    match db.execute(sql, &[]) {
        Ok(_) => Ok(()),
        Err(e) if sql.contains(" ADD COLUMN ") && e.0.contains("duplicate column name") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Brings the database schema up to date. Costs one query when it already is.
pub fn ensure(db: &dyn Database) -> Result<(), StoreError> {
    apply(db, MIGRATIONS)
}

/// Applies the `migrations` whose versions are not recorded yet.
fn apply(db: &dyn Database, migrations: &[(i64, &[&str])]) -> Result<(), StoreError> {
    let recorded: Vec<i64> = db
        .execute("SELECT version FROM schema_migrations", &[])
        .map(|rows| {
            rows.rows
                .iter()
                .filter_map(|r| r.first().and_then(|v| v.as_i64()))
                .collect()
        })
        .unwrap_or_default();
    let missing = || migrations.iter().filter(|(v, _)| !recorded.contains(v));
    if missing().next().is_none() {
        return Ok(());
    }
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY NOT NULL)",
        &[],
    )?;
    for (version, statements) in missing() {
        for sql in *statements {
            run(db, sql)?;
        }
        db.execute(
            "INSERT OR IGNORE INTO schema_migrations (version) VALUES (?)",
            &[(*version).into()],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryDb;
    use crate::ports::SqlValue;

    #[test]
    fn versions_are_increasing_and_the_cache_comes_after_4() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        let cache = MIGRATIONS
            .iter()
            .find(|(_, sql)| sql.iter().any(|s| s.contains("cache_entries (")))
            .map(|(v, _)| *v);
        assert_eq!(cache, Some(5));
    }

    #[test]
    fn a_version_below_the_highest_recorded_is_still_applied() {
        // A database that got 5 before 4 existed (the cache landed first).
        let db = MemoryDb::new();
        let without_4: Vec<(i64, &[&str])> = MIGRATIONS
            .iter()
            .copied()
            .filter(|(v, _)| *v != 4)
            .collect();
        apply(&db, &without_4).unwrap();
        let four: &[&str] = &["CREATE TABLE IF NOT EXISTS later_four (x INTEGER)"];
        let mut with_4 = without_4.clone();
        with_4.push((4, four));
        with_4.sort_by_key(|(v, _)| *v);
        apply(&db, &with_4).unwrap();
        db.execute("SELECT x FROM later_four", &[]).unwrap();
        let rows = db
            .execute(
                "SELECT version FROM schema_migrations WHERE version = 4",
                &[],
            )
            .unwrap();
        assert_eq!(rows.rows.len(), 1);
        // And nothing more to do after that.
        apply(&db, &with_4).unwrap();
    }

    #[test]
    fn an_existing_catalogue_gains_its_side_tables_and_sort_columns() {
        let db = MemoryDb::new();
        let before_6: Vec<(i64, &[&str])> =
            MIGRATIONS.iter().copied().filter(|(v, _)| *v < 6).collect();
        apply(&db, &before_6).unwrap();
        db.execute(
            "INSERT INTO images (id, name, status, visibility, created_at, updated_at, tags, \
             properties) VALUES ('old', NULL, 'active', 'public', 't', 't', '[\"a\",\"b\"]', \
             '{\"os_distro\":\"debian\"}')",
            &[],
        )
        .unwrap();
        db.execute(
            "INSERT INTO image_members (image_id, member, status, created_at, updated_at) \
             VALUES ('old', 'p1', 'accepted', 'm', 'm')",
            &[],
        )
        .unwrap();
        ensure(&db).unwrap();
        let rows = db
            .execute(
                "SELECT (SELECT group_concat(tag) FROM image_tags WHERE image_id = 'old'), \
                 (SELECT value FROM image_properties WHERE image_id = 'old' AND key = 'os_distro'), \
                 sort_name, sort_size FROM images",
                &[],
            )
            .unwrap();
        let row: Vec<Option<String>> = rows.rows[0]
            .iter()
            .map(|v| match v {
                SqlValue::Integer(n) => Some(n.to_string()),
                v => v.as_str().map(str::to_string),
            })
            .collect();
        assert_eq!(
            row,
            [Some("a,b"), Some("debian"), Some(""), Some("0")].map(|v| v.map(String::from))
        );
        // Side rows and memberships written before migrations 8 and 9 carry
        // their image's listing columns, as the rows written since do.
        let listing = "SELECT group_concat(visibility || '/' || live || '/' || created_at) \
                       FROM (SELECT visibility, live, created_at FROM image_tags \
                       UNION ALL SELECT visibility, live, created_at FROM image_properties \
                       UNION ALL SELECT visibility, live, image_created_at FROM image_members)";
        let rows = db.execute(listing, &[]).unwrap();
        assert_eq!(
            rows.rows[0][0].as_str(),
            Some("public/1/t,public/1/t,public/1/t,public/1/t")
        );
        db.execute(
            "INSERT INTO image_members (image_id, member, status, created_at, updated_at) \
             VALUES ('old', 'p2', 'pending', 'm', 'm')",
            &[],
        )
        .unwrap();
        let rows = db.execute(listing, &[]).unwrap();
        assert_eq!(
            rows.rows[0][0].as_str(),
            Some("public/1/t,public/1/t,public/1/t,public/1/t,public/1/t"),
            "a membership added later takes its image's columns on insert"
        );
        db.execute(
            "UPDATE images SET visibility = 'private', deleted = 1 WHERE id = 'old'",
            &[],
        )
        .unwrap();
        let rows = db.execute(listing, &[]).unwrap();
        assert_eq!(
            rows.rows[0][0].as_str(),
            Some("private/0/t,private/0/t,private/0/t,private/0/t,private/0/t")
        );
        // The triggers keep them as the row changes.
        db.execute(
            "UPDATE images SET tags = '[\"c\"]', properties = '{}' WHERE id = 'old'",
            &[],
        )
        .unwrap();
        let rows = db
            .execute(
                "SELECT (SELECT group_concat(tag) FROM image_tags), \
                 (SELECT count(*) FROM image_properties)",
                &[],
            )
            .unwrap();
        assert_eq!(rows.rows[0][0].as_str(), Some("c"));
        assert_eq!(rows.rows[0][1].as_i64(), Some(0));
    }

    #[test]
    fn a_column_another_instance_added_is_no_error() {
        let db = MemoryDb::new();
        ensure(&db).unwrap();
        // As if a racing instance had applied version 4 but not recorded it.
        db.execute("DELETE FROM schema_migrations WHERE version = 4", &[])
            .unwrap();
        ensure(&db).unwrap();
        db.execute("SELECT can_share FROM image_members", &[])
            .unwrap();
    }

    #[test]
    fn applies_once_and_is_idempotent() {
        let db = MemoryDb::new();
        ensure(&db).unwrap();
        ensure(&db).unwrap();
        let rows = db
            .execute("SELECT version FROM schema_migrations", &[])
            .unwrap();
        assert_eq!(rows.rows.len(), MIGRATIONS.len());
        db.execute("SELECT id, tags, properties FROM images", &[])
            .unwrap();
        db.execute("SELECT image_id, can_share FROM image_members", &[])
            .unwrap();
        db.execute("SELECT id, request_id, input FROM tasks", &[])
            .unwrap();
        db.execute("SELECT id, kind, reserved FROM leases", &[])
            .unwrap();
        db.execute("SELECT id, locations, staging FROM garbage", &[])
            .unwrap();
        db.execute("SELECT image_id, state, url, hits FROM cache_entries", &[])
            .unwrap();
        db.execute("SELECT caller, record FROM upstream_views", &[])
            .unwrap();
        db.execute(
            "SELECT n.namespace, o.name, p.name, t.name, r.name, a.prefix \
             FROM metadef_namespaces n, metadef_objects o, metadef_properties p, \
             metadef_tags t, metadef_resource_types r, metadef_namespace_resource_types a",
            &[],
        )
        .unwrap();
    }
}

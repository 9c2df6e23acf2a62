//! Versioned schema migrations, applied automatically on first use.
//!
//! Each migration is a list of idempotent statements (`IF NOT EXISTS`; an
//! `ADD COLUMN` that finds the column there counts as done), so two component
//! instances racing on a fresh database both succeed; the version row is
//! recorded afterwards. No manual `db_sync`.

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

/// The newest schema version.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Brings the database schema up to date. Costs one query when it already is.
pub fn ensure(db: &dyn Database) -> Result<(), StoreError> {
    let current = db
        .execute("SELECT MAX(version) FROM schema_migrations", &[])
        .ok()
        .and_then(|rows| {
            rows.rows
                .first()
                .and_then(|r| r.first())
                .and_then(|v| v.as_i64())
        })
        .unwrap_or(0);
    if current >= latest_version() {
        return Ok(());
    }
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY NOT NULL)",
        &[],
    )?;
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
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
    }
}

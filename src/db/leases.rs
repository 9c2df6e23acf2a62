//! Leases: the record of work in progress on an image's data.
//!
//! Before an upload, stage, import or copy writes its first byte, it takes a
//! lease naming the image, what the work is, and (for a write) the location
//! it writes to. The worker renews the lease while it streams; a lease that
//! is not renewed before `expires_at` is abandoned work: the reclaimer
//! removes what it wrote (unless a live image references it) and returns the
//! image to a usable state. A finished job drops its lease.
//!
//! `reserved` bounds what a write may have stored: a writer extends it
//! before writing past it, so reclaiming `reserved` bytes removes
//! everything, even of a writer that died between two renewals.

use crate::data::blob::Location;
use crate::ports::{Database, SqlValue, StoreError};
use crate::timestamp::Timestamp;
use crate::wire_enum::wire_enum;

wire_enum! {
    /// What a lease covers.
    pub enum LeaseKind {
        /// `PUT /file`: the image is `saving`.
        Upload = "upload",
        /// `PUT /stage`: the image is `uploading`, nothing staged yet.
        Stage = "stage",
        /// An import of new data: the image is `importing`.
        Import = "import",
        /// copy-image: the image stays `active` while stores are added.
        Copy = "copy",
        /// One write of an import or copy, into one store.
        Data = "data",
        /// A cache fill: the image's data copied into the image cache.
        Cache = "cache",
    }
}

/// One lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// Lease id (a UUID).
    pub id: String,
    /// The image worked on.
    pub image_id: String,
    /// What the work is.
    pub kind: LeaseKind,
    /// Where the work writes, if it writes.
    pub location: Option<Location>,
    /// Most bytes the write may have stored so far.
    pub reserved: u64,
    /// The task recording the work (imports).
    pub task_id: Option<String>,
    /// Unix seconds after which the work counts as abandoned.
    pub expires_at: i64,
}

impl Lease {
    /// A new lease on `image_id` for `seconds`.
    pub fn new(image_id: &str, kind: LeaseKind, seconds: i64) -> Lease {
        Lease {
            id: uuid::Uuid::new_v4().to_string(),
            image_id: image_id.to_string(),
            kind,
            location: None,
            reserved: 0,
            task_id: None,
            expires_at: Timestamp::now().0 + seconds,
        }
    }
}

const HELD: &str = "held";
const ABANDONED: &str = "abandoned";
const COLUMNS: &str = "id, image_id, kind, location, reserved, task_id, expires_at";

/// Leases over a [`Database`] (the table comes with the image schema's migrations).
pub struct LeaseRepo<'a> {
    db: &'a dyn Database,
}

impl<'a> LeaseRepo<'a> {
    /// Lease records in `db` (migrated by [`crate::db::images::ImageRepo::open`]).
    pub fn new(db: &'a dyn Database) -> Self {
        LeaseRepo { db }
    }

    /// Records a new held lease.
    pub fn take(&self, lease: &Lease) -> Result<(), StoreError> {
        let location = lease
            .location
            .as_ref()
            .and_then(|l| serde_json::to_string(l).ok());
        self.db.execute(
            &format!(
                "INSERT INTO leases ({COLUMNS}, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            &[
                lease.id.as_str().into(),
                lease.image_id.as_str().into(),
                lease.kind.as_str().into(),
                location.into(),
                (lease.reserved as i64).into(),
                lease.task_id.clone().into(),
                lease.expires_at.into(),
                HELD.into(),
                Timestamp::now().to_string().into(),
            ],
        )?;
        Ok(())
    }

    /// Extends held leases `ids` to `expires_at`, and `id`'s reservation to
    /// `reserved` bytes; false when one of them is no longer held (the work
    /// was declared abandoned: the caller must stop and clean up).
    pub fn renew(
        &self,
        ids: &[&str],
        expires_at: i64,
        reserved: Option<(&str, u64)>,
    ) -> Result<bool, StoreError> {
        let (grow, bytes) = reserved.map_or(("", 0), |(id, b)| (id, b as i64));
        let marks = vec!["?"; ids.len()].join(", ");
        let mut params: Vec<SqlValue> = vec![expires_at.into(), grow.into(), bytes.into()];
        params.extend(ids.iter().map(|id| SqlValue::from(*id)));
        params.push(HELD.into());
        let rows = self.db.execute(
            &format!(
                "UPDATE leases SET expires_at = ?, \
                 reserved = CASE WHEN id = ? THEN MAX(reserved, ?) ELSE reserved END \
                 WHERE id IN ({marks}) AND state = ? RETURNING id"
            ),
            &params,
        )?;
        Ok(rows.rows.len() == ids.len())
    }

    /// Ends a lease's time now: the work failed, and the next reclamation
    /// slice removes whatever it may have left (its own clean-up may not
    /// have finished).
    pub fn expire(&self, id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE leases SET expires_at = 0 WHERE id = ? AND state = ?",
            &[id.into(), HELD.into()],
        )?;
        Ok(())
    }

    /// Drops a lease: its work finished (or was cleaned up).
    pub fn drop_lease(&self, id: &str) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM leases WHERE id = ?", &[id.into()])?;
        Ok(())
    }

    /// Whether image `image_id` has held leases that have not expired.
    pub fn live_for_image(&self, image_id: &str, now: i64) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "SELECT 1 FROM leases WHERE image_id = ? AND state = ? AND expires_at >= ? LIMIT 1",
            &[image_id.into(), HELD.into(), now.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Held leases of `kind` that expire before `before` (at most `limit`).
    pub fn held_due(
        &self,
        kind: LeaseKind,
        before: i64,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let rows = self.db.execute(
            &format!(
                "SELECT {COLUMNS} FROM leases WHERE state = ? AND kind = ? AND expires_at < ? LIMIT ?"
            ),
            &[
                HELD.into(),
                kind.as_str().into(),
                before.into(),
                (limit as i64).into(),
            ],
        )?;
        rows.rows.iter().map(|r| lease_from_row(r)).collect()
    }

    /// Declares the expired held leases of `image_id` (all images when None)
    /// abandoned, at most `limit`, and returns every abandoned lease of it
    /// (including ones abandoned earlier and not yet cleaned up). A lease
    /// renewed meanwhile stays held: renewal and abandonment exclude each other.
    pub fn abandon_expired(
        &self,
        image_id: Option<&str>,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let (filter, mut params): (&str, Vec<SqlValue>) = match image_id {
            Some(id) => ("AND image_id = ?", vec![id.into()]),
            None => ("", Vec::new()),
        };
        let mut update_params = vec![ABANDONED.into(), HELD.into(), now.into()];
        update_params.extend(params.iter().cloned());
        update_params.push((limit as i64).into());
        self.db.execute(
            &format!(
                "UPDATE leases SET state = ? WHERE id IN (SELECT id FROM leases \
                 WHERE state = ? AND expires_at < ? {filter} LIMIT ?)"
            ),
            &update_params,
        )?;
        let mut select = vec![SqlValue::from(ABANDONED)];
        select.append(&mut params);
        select.push((limit as i64).into());
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM leases WHERE state = ? {filter} LIMIT ?"),
            &select,
        )?;
        rows.rows.iter().map(|r| lease_from_row(r)).collect()
    }
}

fn lease_from_row(r: &[SqlValue]) -> Result<Lease, StoreError> {
    let corrupt = || StoreError("corrupt lease row".into());
    let text = |i: usize| r.get(i).and_then(SqlValue::as_str).map(str::to_string);
    let int = |i: usize| r.get(i).and_then(SqlValue::as_i64);
    Ok(Lease {
        id: text(0).ok_or_else(corrupt)?,
        image_id: text(1).ok_or_else(corrupt)?,
        kind: text(2)
            .and_then(|k| LeaseKind::parse(&k))
            .ok_or_else(corrupt)?,
        location: text(3).and_then(|l| serde_json::from_str(&l).ok()),
        reserved: int(4).unwrap_or(0).max(0) as u64,
        task_id: text(5),
        expires_at: int(6).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::images::ImageRepo;
    use crate::ports::memory::MemoryDb;

    #[test]
    fn renewal_and_abandonment_exclude_each_other() {
        let db = MemoryDb::new();
        ImageRepo::open(&db).unwrap();
        let repo = LeaseRepo::new(&db);
        let mut a = Lease::new("img", LeaseKind::Upload, 10);
        a.expires_at = 100;
        repo.take(&a).unwrap();
        assert!(repo.live_for_image("img", 50).unwrap());
        assert!(repo.renew(&[&a.id], 200, Some((&a.id, 4096))).unwrap());
        assert!(repo.abandon_expired(None, 150, 10).unwrap().is_empty());
        let gone = repo.abandon_expired(Some("img"), 250, 10).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].reserved, gone[0].expires_at), (4096, 200));
        assert!(!repo.live_for_image("img", 150).unwrap());
        assert!(
            !repo.renew(&[&a.id], 300, None).unwrap(),
            "abandoned stays abandoned"
        );
        repo.drop_lease(&a.id).unwrap();
        assert!(repo.abandon_expired(None, 250, 10).unwrap().is_empty());
    }
}

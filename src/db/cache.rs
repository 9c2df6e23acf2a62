//! Image cache records in SQL: the entries, the prefetch queue, and edge
//! site mode's views of upstream images.
//!
//! An entry is claimed before its first byte: the first miss inserts it as
//! `filling`, naming the fill's lease and the cache location (every other
//! instance sees the claim and waits for, or streams from, that one fill),
//! and the fill turns it `ready` in one statement that also checks its lease
//! is still held — so a fill the reclaimer declared abandoned can never
//! publish an entry whose bytes it is removing. Dropping a `ready` entry
//! writes a garbage row in the same statement (a trigger), so evicted data
//! is reclaimed like any other dropped reference.

use crate::data::blob::Location;
use crate::ports::{Database, SqlValue, StoreError};

/// An entry is being filled.
pub const FILLING: &str = "filling";
/// An entry's data is whole.
pub const READY: &str = "ready";

/// One cache entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The image cached.
    pub image_id: String,
    /// `filling` or `ready`.
    pub state: String,
    /// Where its data is in the cache store.
    pub location: Location,
    /// The fill's lease while filling.
    pub lease_id: Option<String>,
    /// Bytes.
    pub size: u64,
    /// MD5 of the data, if known.
    pub checksum: Option<String>,
    /// Downloads served from it.
    pub hits: i64,
    /// Unix time (fractional) of its last use.
    pub last_accessed: f64,
    /// Unix time (fractional) it became ready.
    pub last_modified: f64,
}

impl Entry {
    /// Whether its data is whole.
    pub fn ready(&self) -> bool {
        self.state == READY
    }
}

const COLUMNS: &str =
    "image_id, state, location, lease_id, size, checksum, hits, last_accessed, last_modified";

/// Fractional unix time now (Glance's cache reports `time.time()`).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Cache records over a [`Database`] (migrated with the image schema).
pub struct CacheRepo<'a> {
    db: &'a dyn Database,
}

impl<'a> CacheRepo<'a> {
    /// Cache records in `db` (migrated by [`crate::db::images::ImageRepo::open`]).
    pub fn new(db: &'a dyn Database) -> Self {
        CacheRepo { db }
    }

    /// Claims the entry of `image_id` for a fill under `lease_id` writing
    /// `location`; false when someone else holds an entry of it.
    pub fn claim(
        &self,
        image_id: &str,
        location: &Location,
        lease_id: &str,
        size: u64,
        checksum: Option<&str>,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        let rows = self.db.execute(
            "INSERT OR IGNORE INTO cache_entries (image_id, state, url, location, lease_id, size, \
             checksum, hits, last_accessed, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) \
             RETURNING image_id",
            &[
                image_id.into(),
                FILLING.into(),
                location.url.as_str().into(),
                location_json(location).into(),
                lease_id.into(),
                (size as i64).into(),
                checksum.map(str::to_string).into(),
                SqlValue::Real(now),
                SqlValue::Real(now),
            ],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Publishes a fill: the entry of `image_id` claimed under `lease_id`
    /// becomes ready at `location`, if that lease is still held; false
    /// otherwise (the entry was dropped, or the fill was declared abandoned).
    pub fn publish(
        &self,
        image_id: &str,
        lease_id: &str,
        location: &Location,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        let rows = self.db.execute(
            "UPDATE cache_entries SET state = ?, location = ?, size = ?, lease_id = NULL, \
             last_accessed = ?, last_modified = ? \
             WHERE image_id = ? AND state = ? AND lease_id = ? \
             AND EXISTS (SELECT 1 FROM leases WHERE id = ? AND state = 'held') RETURNING image_id",
            &[
                READY.into(),
                location_json(location).into(),
                (location.size as i64).into(),
                SqlValue::Real(now),
                SqlValue::Real(now),
                image_id.into(),
                FILLING.into(),
                lease_id.into(),
                lease_id.into(),
            ],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Drops the unfinished entry a fill under `lease_id` claimed (it failed).
    pub fn drop_fill(&self, lease_id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM cache_entries WHERE lease_id = ? AND state = ?",
            &[lease_id.into(), FILLING.into()],
        )?;
        Ok(())
    }

    /// The entry of `image_id`.
    pub fn get(&self, image_id: &str) -> Result<Option<Entry>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM cache_entries WHERE image_id = ?"),
            &[image_id.into()],
        )?;
        Ok(rows.rows.iter().find_map(|r| entry_from_row(r)))
    }

    /// Whether a ready entry's data is at `url` (the reclaimer must keep it).
    pub fn references(&self, url: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "SELECT 1 FROM cache_entries WHERE url = ? AND state = ? LIMIT 1",
            &[url.into(), READY.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Counts a download served from the entry of `image_id`.
    pub fn touch(&self, image_id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE cache_entries SET hits = hits + 1, last_accessed = ? WHERE image_id = ?",
            &[SqlValue::Real(unix_now()), image_id.into()],
        )?;
        Ok(())
    }

    /// Every entry in `state`, by image id.
    pub fn all(&self, state: &str) -> Result<Vec<Entry>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM cache_entries WHERE state = ? ORDER BY image_id"),
            &[state.into()],
        )?;
        Ok(rows.rows.iter().filter_map(|r| entry_from_row(r)).collect())
    }

    /// Bytes held by ready entries and claimed by fills.
    pub fn total_size(&self) -> Result<u64, StoreError> {
        let rows = self
            .db
            .execute("SELECT COALESCE(SUM(size), 0) FROM cache_entries", &[])?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .unwrap_or(0)
            .max(0) as u64)
    }

    /// The least recently used ready entry.
    pub fn least_recent(&self) -> Result<Option<Entry>, StoreError> {
        let rows = self.db.execute(
            &format!(
                "SELECT {COLUMNS} FROM cache_entries WHERE state = ? \
                 ORDER BY last_accessed, image_id LIMIT 1"
            ),
            &[READY.into()],
        )?;
        Ok(rows.rows.iter().find_map(|r| entry_from_row(r)))
    }

    /// Drops the ready entry of `image_id` (its data becomes garbage in the
    /// same statement); false if there was none.
    pub fn remove_ready(&self, image_id: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "DELETE FROM cache_entries WHERE image_id = ? AND state = ? RETURNING image_id",
            &[image_id.into(), READY.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Drops every ready entry; returns how many.
    pub fn remove_all_ready(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.db.execute(
            "DELETE FROM cache_entries WHERE state = ? RETURNING image_id",
            &[READY.into()],
        )?;
        Ok(texts(&rows))
    }

    /// Queues `image_id` for prefetching.
    pub fn enqueue(&self, image_id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT OR IGNORE INTO cache_queue (image_id, queued_at) VALUES (?, ?)",
            &[image_id.into(), SqlValue::Real(unix_now())],
        )?;
        Ok(())
    }

    /// The queued image ids, oldest first.
    pub fn queued(&self) -> Result<Vec<String>, StoreError> {
        let rows = self.db.execute(
            "SELECT image_id FROM cache_queue ORDER BY queued_at, image_id",
            &[],
        )?;
        Ok(texts(&rows))
    }

    /// Takes `image_id` off the queue; false if it was not queued.
    pub fn dequeue(&self, image_id: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "DELETE FROM cache_queue WHERE image_id = ? RETURNING image_id",
            &[image_id.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Empties the queue; returns how many were queued.
    pub fn clear_queue(&self) -> Result<usize, StoreError> {
        let rows = self
            .db
            .execute("DELETE FROM cache_queue RETURNING image_id", &[])?;
        Ok(rows.rows.len())
    }

    /// The stored upstream view of `image_id` for `caller`: (record JSON, fetched at).
    pub fn view(&self, caller: &str, image_id: &str) -> Result<Option<(String, i64)>, StoreError> {
        let rows = self.db.execute(
            "SELECT record, fetched_at FROM upstream_views WHERE caller = ? AND image_id = ?",
            &[caller.into(), image_id.into()],
        )?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| Some((r.first()?.as_str()?.to_string(), r.get(1)?.as_i64()?))))
    }

    /// Records what the upstream showed `caller` of `image_id` at `now`.
    pub fn save_view(
        &self,
        caller: &str,
        image_id: &str,
        record: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO upstream_views (caller, image_id, record, fetched_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (caller, image_id) DO UPDATE SET record = excluded.record, \
             fetched_at = excluded.fetched_at",
            &[caller.into(), image_id.into(), record.into(), now.into()],
        )?;
        Ok(())
    }

    /// Forgets `caller`'s view of `image_id` (the upstream no longer shows it).
    pub fn forget_view(&self, caller: &str, image_id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM upstream_views WHERE caller = ? AND image_id = ?",
            &[caller.into(), image_id.into()],
        )?;
        Ok(())
    }

    /// Forgets views fetched before `before` (at most `limit` of them).
    pub fn forget_old_views(&self, before: i64, limit: usize) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM upstream_views WHERE rowid IN \
             (SELECT rowid FROM upstream_views WHERE fetched_at < ? LIMIT ?)",
            &[before.into(), (limit as i64).into()],
        )?;
        Ok(())
    }
}

fn location_json(location: &Location) -> String {
    serde_json::to_string(location).unwrap_or_default()
}

fn texts(rows: &crate::ports::Rows) -> Vec<String> {
    rows.rows
        .iter()
        .filter_map(|r| r.first().and_then(SqlValue::as_str).map(str::to_string))
        .collect()
}

fn entry_from_row(r: &[SqlValue]) -> Option<Entry> {
    let text = |i: usize| r.get(i).and_then(SqlValue::as_str).map(str::to_string);
    let real = |i: usize| match r.get(i) {
        Some(SqlValue::Real(f)) => *f,
        Some(SqlValue::Integer(n)) => *n as f64,
        _ => 0.0,
    };
    Some(Entry {
        image_id: text(0)?,
        state: text(1)?,
        location: serde_json::from_str(&text(2)?).ok()?,
        lease_id: text(3),
        size: r.get(4).and_then(SqlValue::as_i64).unwrap_or(0).max(0) as u64,
        checksum: text(5),
        hits: r.get(6).and_then(SqlValue::as_i64).unwrap_or(0),
        last_accessed: real(7),
        last_modified: real(8),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::blob::StoreId;
    use crate::db::garbage::GarbageRepo;
    use crate::db::images::ImageRepo;
    use crate::db::leases::{Lease, LeaseKind, LeaseRepo};
    use crate::ports::memory::MemoryDb;

    fn loc(url: &str, size: u64) -> Location {
        Location {
            store: StoreId::Kv,
            url: url.into(),
            size,
            chunk_size: 10,
        }
    }

    #[test]
    fn one_claim_wins_and_publishing_needs_a_held_lease() {
        let db = MemoryDb::new();
        ImageRepo::open(&db).unwrap();
        let cache = CacheRepo::new(&db);
        let leases = LeaseRepo::new(&db);
        let a = Lease::new("img", LeaseKind::Cache, 60);
        leases.take(&a).unwrap();
        let at = loc("kv://image_cache/img/1", 0);
        assert!(cache.claim("img", &at, &a.id, 30, None).unwrap());
        assert!(!cache.claim("img", &at, "other", 30, None).unwrap());
        assert!(!cache.get("img").unwrap().unwrap().ready());
        // Declared abandoned: the fill may not publish.
        leases.abandon_expired(None, i64::MAX, 10).unwrap();
        assert!(!cache.publish("img", &a.id, &loc(&at.url, 30)).unwrap());
        cache.drop_fill(&a.id).unwrap();
        assert!(cache.get("img").unwrap().is_none());

        let b = Lease::new("img", LeaseKind::Cache, 60);
        leases.take(&b).unwrap();
        assert!(cache.claim("img", &at, &b.id, 30, None).unwrap());
        assert!(cache.publish("img", &b.id, &loc(&at.url, 30)).unwrap());
        let e = cache.get("img").unwrap().unwrap();
        assert!(e.ready() && e.size == 30 && e.lease_id.is_none());
        assert!(cache.references(&at.url).unwrap());
        cache.touch("img").unwrap();
        assert_eq!(cache.get("img").unwrap().unwrap().hits, 1);
        assert_eq!(cache.total_size().unwrap(), 30);

        // Dropping a ready entry records its data as garbage in the same statement.
        assert!(cache.remove_ready("img").unwrap());
        let g = GarbageRepo::new(&db).oldest(10).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].locations, vec![loc(&at.url, 30)]);
        assert!(!cache.references(&at.url).unwrap());
    }

    #[test]
    fn queue_and_views() {
        let db = MemoryDb::new();
        ImageRepo::open(&db).unwrap();
        let cache = CacheRepo::new(&db);
        cache.enqueue("a").unwrap();
        cache.enqueue("a").unwrap();
        cache.enqueue("b").unwrap();
        assert_eq!(cache.queued().unwrap(), vec!["a", "b"]);
        assert!(cache.dequeue("a").unwrap());
        assert!(!cache.dequeue("a").unwrap());
        assert_eq!(cache.clear_queue().unwrap(), 1);
        cache.save_view("c1", "i", "{}", 5).unwrap();
        cache.save_view("c1", "i", "{\"x\":1}", 6).unwrap();
        assert_eq!(
            cache.view("c1", "i").unwrap(),
            Some(("{\"x\":1}".into(), 6))
        );
        assert_eq!(cache.view("c2", "i").unwrap(), None);
        cache.forget_old_views(7, 10).unwrap();
        assert_eq!(cache.view("c1", "i").unwrap(), None);
    }
}

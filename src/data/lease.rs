//! Writing under a lease: the lease names the location before the first
//! byte, and is renewed while the data streams — when half its time has
//! gone, and before the write goes past the bytes it reserved. A renewal
//! that finds the lease abandoned stops the write and removes what it wrote.

use crate::data::blob::{BlobError, BlobStore, BlobWriter, Location};
use crate::db::leases::{Lease, LeaseKind, LeaseRepo};
use crate::ports::{Database, Ports};
use crate::timestamp::Timestamp;

/// Bytes reserved per renewal: a renewal per 16 MiB at most.
const RESERVE_STEP: u64 = 16 << 20;

/// Renews a set of leases while their work goes on.
pub(crate) struct Keeper<'a> {
    leases: LeaseRepo<'a>,
    /// Every lease to renew (the job's and its write's).
    ids: Vec<String>,
    /// The lease whose reservation grows with the write.
    data: String,
    /// Lease length, seconds (`stale_upload_seconds`).
    seconds: i64,
    expires_at: i64,
    reserved: u64,
}

impl<'a> Keeper<'a> {
    /// Keeps `lease` (a write) and `also` (its job's lease) alive.
    pub fn new(db: &'a dyn Database, lease: &Lease, also: &[&str], seconds: i64) -> Self {
        let mut ids: Vec<String> = also.iter().map(|s| s.to_string()).collect();
        ids.push(lease.id.clone());
        Keeper {
            leases: LeaseRepo::new(db),
            ids,
            data: lease.id.clone(),
            seconds,
            expires_at: lease.expires_at,
            reserved: lease.reserved,
        }
    }

    /// Makes sure the leases cover `total` bytes written and enough time;
    /// Err when they were abandoned meanwhile.
    fn cover(&mut self, total: u64) -> Result<(), BlobError> {
        let now = Timestamp::now().0;
        let due = now >= self.expires_at - self.seconds / 2;
        if total <= self.reserved && !due {
            return Ok(());
        }
        let reserved = self.reserved.max(total.saturating_add(RESERVE_STEP));
        let expires_at = now + self.seconds;
        let ids: Vec<&str> = self.ids.iter().map(String::as_str).collect();
        let held = self
            .leases
            .renew(&ids, expires_at, Some((&self.data, reserved)))
            .map_err(BlobError::from)?;
        if !held {
            return Err(BlobError::Store(
                "the work was declared abandoned (its lease expired)".into(),
            ));
        }
        self.expires_at = expires_at;
        self.reserved = reserved;
        Ok(())
    }
}

/// A writer whose every byte is covered by its lease.
pub(crate) struct LeasedWriter<'a> {
    inner: Box<dyn BlobWriter + 'a>,
    keeper: Keeper<'a>,
    written: u64,
}

impl BlobWriter for LeasedWriter<'_> {
    fn write(&mut self, data: &[u8]) -> Result<(), BlobError> {
        let total = self.written + data.len() as u64;
        self.keeper.cover(total)?;
        self.inner.write(data)?;
        self.written = total;
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Location, BlobError> {
        self.inner.finish()
    }

    fn abort(self: Box<Self>) {
        self.inner.abort()
    }
}

/// Takes a lease of `kind` on a new object of `image_id` in `store` (its
/// location recorded before anything is written) and opens a writer under
/// it; `also` are leases of the job to renew with it.
pub(crate) fn start<'a>(
    db: &'a dyn Database,
    store: &dyn BlobStore,
    image_id: &str,
    kind: LeaseKind,
    also: &[&str],
    seconds: i64,
) -> Result<(Lease, LeasedWriter<'a>), BlobError> {
    let mut lease = Lease::new(image_id, kind, seconds);
    let at = store.plan(image_id)?;
    lease.location = Some(at.clone());
    lease.reserved = RESERVE_STEP;
    let writer = store.writer(&at)?;
    LeaseRepo::new(db).take(&lease)?;
    let keeper = Keeper::new(db, &lease, also, seconds);
    Ok((
        lease,
        LeasedWriter {
            inner: writer,
            keeper,
            written: 0,
        },
    ))
}

/// Drops the lease of work that finished. A failure is harmless — the
/// reclaimer drops an expired lease whose data an image references — so it
/// is only logged.
pub(crate) fn release(ports: &Ports, lease: &Lease) {
    if let Err(e) = LeaseRepo::new(ports.db).drop_lease(&lease.id) {
        ports.log_error(&format!("dropping lease {}", lease.id), e);
    }
}

/// Ends the lease of work that failed, so the next reclamation slice
/// removes whatever its clean-up may have missed.
pub(crate) fn expire(ports: &Ports, lease: &Lease) {
    if let Err(e) = LeaseRepo::new(ports.db).expire(&lease.id) {
        ports.log_error(&format!("expiring lease {}", lease.id), e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::blob::kv::KvStore;
    use crate::db::images::ImageRepo;
    use crate::ports::memory::{MemoryDb, MemoryKv};
    use std::rc::Rc;

    #[test]
    fn a_write_stops_when_its_lease_was_abandoned() {
        let db = MemoryDb::new();
        ImageRepo::open(&db).unwrap();
        let kv = Rc::new(MemoryKv::default());
        let store = KvStore::new("image_data", kv.clone(), 1000);
        let (lease, mut w) = start(&db, &store, "img", LeaseKind::Upload, &[], 600).unwrap();
        w.write(&[1u8; 2500]).unwrap();
        let now = Timestamp::now().0;
        let renewed = LeaseRepo::new(&db)
            .abandon_expired(None, now + 10_000, 10)
            .unwrap();
        assert_eq!(renewed.len(), 1, "abandoned (as if it had expired)");
        assert!(
            renewed[0].reserved >= 2500,
            "the reservation covers what was written"
        );
        // Nothing forces a renewal yet: the write goes on until it needs one.
        let big = vec![2u8; (RESERVE_STEP + 1) as usize];
        let err = w.write(&big).unwrap_err();
        assert!(err.to_string().contains("abandoned"), "{err}");
        Box::new(w).abort();
        assert!(kv.map.borrow().is_empty());
        LeaseRepo::new(&db).drop_lease(&lease.id).unwrap();
    }
}

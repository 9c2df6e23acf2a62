//! Healing abandoned work: an image that shows work in progress (`saving`,
//! `uploading` with nothing staged, `importing`, stores still importing)
//! while no lease on it is alive was left by a worker that died. It is
//! returned to a usable state at once — by whoever reads it first, or by the
//! reclaimer — and its unfinished tasks fail. What the work wrote is
//! reclaimed separately, from its leases.

use crate::db::images::{ImageRepo, Modified};
use crate::db::leases::LeaseRepo;
use crate::db::tasks::{TaskRepo, ABANDONED};
use crate::image::Image;
use crate::ports::StoreError;
use crate::timestamp::Timestamp;

impl ImageRepo<'_> {
    /// `img` as it is once abandoned work on it is healed (unchanged when it
    /// shows none, or when a live lease says the work goes on).
    pub fn heal(&self, img: Image, now: Timestamp) -> Result<Image, StoreError> {
        if !img.shows_work() || LeaseRepo::new(self.db).live_for_image(&img.id, now.0)? {
            return Ok(img);
        }
        let healed = self.modify(&img.id, now, |i| {
            Ok::<_, StoreError>(i.shows_work() && i.abandon_work())
        })?;
        TaskRepo::new(self.db).fail_unfinished(&img.id, ABANDONED)?;
        Ok(match healed {
            Modified::Done(i) => i,
            // Deleted meanwhile, or too busy to heal now: the next reader heals.
            Modified::Gone | Modified::Busy => img,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::leases::{Lease, LeaseKind};
    use crate::image::Status;
    use crate::ports::memory::MemoryDb;

    #[test]
    fn work_without_a_live_lease_heals_and_with_one_does_not() {
        let db = MemoryDb::new();
        let repo = ImageRepo::open(&db).unwrap();
        let mut img = Image::new("a".into(), None, Timestamp(1));
        img.start_upload(Status::Saving).unwrap();
        repo.insert(&img).unwrap();
        let mut lease = Lease::new("a", LeaseKind::Upload, 0);
        lease.expires_at = 100;
        LeaseRepo::new(&db).take(&lease).unwrap();
        let img = repo.get("a").unwrap().unwrap();
        let kept = repo.heal(img.clone(), Timestamp(50)).unwrap();
        assert_eq!(kept.status, Status::Saving, "the upload is alive");
        let healed = repo.heal(img, Timestamp(101)).unwrap();
        assert_eq!(healed.status, Status::Queued);
        assert_eq!(repo.get("a").unwrap().unwrap().status, Status::Queued);
    }
}

//! The image's status machine: Glance's statuses, which moves between them
//! are allowed, and the transitions as methods on [`Image`] — the only code
//! that changes an image's status, so the rules live in one place.

use std::fmt;

use crate::data::blob::Location;
use crate::image::{Image, Staged};
use crate::wire_enum::wire_enum;

wire_enum! {
    /// Lifecycle state of an image (Glance's status machine), in schema order.
    pub enum Status {
        /// Record only, no data yet.
        Queued = "queued",
        /// Data upload in progress.
        Saving = "saving",
        /// Data present and usable.
        Active = "active",
        /// Legacy failure state.
        Killed = "killed",
        /// Gone.
        Deleted = "deleted",
        /// Data staged for import.
        Uploading = "uploading",
        /// Import in progress.
        Importing = "importing",
        /// Deleted, data still present (delayed delete).
        PendingDelete = "pending_delete",
        /// Data blocked for non-admins.
        Deactivated = "deactivated",
    }
}

impl Status {
    /// Whether Glance's state machine allows moving from `self` to `to`.
    pub fn can_become(self, to: Status) -> bool {
        use Status::*;
        let targets: &[Status] = match self {
            Queued => &[Saving, Uploading, Importing, Active, Deleted],
            Saving => &[Active, Killed, Deleted, Queued],
            Uploading => &[Importing, Queued, Deleted],
            Importing => &[Active, Deleted, Queued],
            Active => &[PendingDelete, Deleted, Deactivated],
            Deactivated => &[Active, Deleted],
            Killed => &[Deleted],
            PendingDelete => &[Deleted, Active],
            Deleted => &[],
        };
        targets.contains(&to)
    }
}

/// A move the status machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Where the image is.
    pub from: Status,
    /// Where it was asked to go.
    pub to: Status,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Image status transition from {} to {} is not allowed",
            self.from, self.to
        )
    }
}

/// What receiving the data established about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFacts {
    /// Bytes.
    pub size: u64,
    /// md5, hex.
    pub checksum: String,
    /// Secure hash, hex, of algorithm `os_hash_algo`.
    pub os_hash_value: String,
    /// Its algorithm.
    pub os_hash_algo: &'static str,
    /// Virtual size, when the format records it.
    pub virtual_size: Option<u64>,
}

impl Image {
    /// Moves to `to` if the status machine allows it.
    fn become_(&mut self, to: Status) -> Result<(), Transition> {
        if !self.status.can_become(to) {
            return Err(Transition {
                from: self.status,
                to,
            });
        }
        self.status = to;
        Ok(())
    }

    /// A queued image starts receiving data: `saving` (upload) or
    /// `uploading` (staging for import).
    pub fn start_upload(&mut self, to: Status) -> Result<(), Transition> {
        if self.status != Status::Queued || !matches!(to, Status::Saving | Status::Uploading) {
            return Err(Transition {
                from: self.status,
                to,
            });
        }
        self.become_(to)
    }

    /// Staging finished: the data waits for a `glance-direct` import.
    pub fn record_staged(&mut self, staged: Staged) -> Result<(), Transition> {
        if self.status != Status::Uploading {
            return Err(Transition {
                from: self.status,
                to: Status::Uploading,
            });
        }
        self.size = Some(staged.location.size as i64);
        self.staged = Some(staged);
        Ok(())
    }

    /// An import of new data begins (`web-download` from queued,
    /// `glance-direct` from uploading).
    pub fn start_import(&mut self) -> Result<(), Transition> {
        self.become_(Status::Importing)
    }

    /// The data is in place: record what it is and where, and go `active`.
    pub fn activate(
        &mut self,
        facts: &DataFacts,
        locations: Vec<Location>,
    ) -> Result<(), Transition> {
        self.become_(Status::Active)?;
        self.size = Some(facts.size as i64);
        self.virtual_size = facts.virtual_size.map(|v| v as i64);
        self.checksum = Some(facts.checksum.clone());
        self.os_hash_algo = Some(facts.os_hash_algo.to_string());
        self.os_hash_value = Some(facts.os_hash_value.clone());
        self.locations = locations;
        self.staged = None;
        Ok(())
    }

    /// An upload, stage or import failed or was abandoned: back to `queued`,
    /// forgetting what the attempt recorded, so the image takes data again.
    pub fn reset_to_queued(&mut self) -> Result<(), Transition> {
        if !matches!(
            self.status,
            Status::Saving | Status::Uploading | Status::Importing
        ) {
            return Err(Transition {
                from: self.status,
                to: Status::Queued,
            });
        }
        self.become_(Status::Queued)?;
        self.size = None;
        self.virtual_size = None;
        self.staged = None;
        Ok(())
    }

    /// An admin or owner blocks downloads of an active image.
    pub fn deactivate(&mut self) -> Result<(), Transition> {
        self.become_(Status::Deactivated)
    }

    /// Downloads of a deactivated image are allowed again.
    pub fn reactivate(&mut self) -> Result<(), Transition> {
        if self.status != Status::Deactivated {
            return Err(Transition {
                from: self.status,
                to: Status::Active,
            });
        }
        self.become_(Status::Active)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;

    #[test]
    fn state_machine_matches_glance() {
        assert!(Status::Queued.can_become(Status::Saving));
        assert!(Status::Saving.can_become(Status::Queued));
        assert!(!Status::Active.can_become(Status::Queued));
        assert!(!Status::Deleted.can_become(Status::Active));
        assert!(Status::Deactivated.can_become(Status::Active));
    }

    fn facts() -> DataFacts {
        DataFacts {
            size: 10,
            checksum: "c".into(),
            os_hash_value: "h".into(),
            os_hash_algo: "sha512",
            virtual_size: Some(10),
        }
    }

    #[test]
    fn upload_lifecycle() {
        let mut img = Image::new("i".into(), None, Timestamp(0));
        assert!(img.start_upload(Status::Active).is_err());
        img.start_upload(Status::Saving).unwrap();
        let again = img.start_upload(Status::Saving).unwrap_err();
        assert_eq!(
            again.to_string(),
            "Image status transition from saving to saving is not allowed"
        );
        img.reset_to_queued().unwrap();
        assert_eq!(img.size, None);
        img.start_upload(Status::Saving).unwrap();
        img.activate(&facts(), Vec::new()).unwrap();
        assert_eq!((img.status, img.size), (Status::Active, Some(10)));
        assert!(
            img.reset_to_queued().is_err(),
            "an active image keeps its data"
        );
        img.deactivate().unwrap();
        assert!(img.deactivate().is_err());
        img.reactivate().unwrap();
        assert!(img.reactivate().is_err());
    }

    #[test]
    fn staging_then_import() {
        let mut img = Image::new("i".into(), None, Timestamp(0));
        img.start_upload(Status::Uploading).unwrap();
        img.start_import().unwrap();
        img.activate(&facts(), Vec::new()).unwrap();
        assert_eq!(img.status, Status::Active);
    }
}

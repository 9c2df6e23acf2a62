//! An import's progress as Glance shows it on the image: the stores still
//! being written in `os_glance_importing_to_stores`, the ones that failed in
//! `os_glance_failed_import` — and what abandoned work leaves behind.

use crate::data::blob::StoreId;
use crate::image::{Image, Status};

/// Stores an import is still writing to.
pub(crate) const IMPORTING: &str = "os_glance_importing_to_stores";
/// Stores an import failed to write to.
pub(crate) const FAILED: &str = "os_glance_failed_import";

impl Image {
    /// An import into `stores` (comma separated) begins.
    pub fn begin_import_progress(&mut self, stores: &str) {
        self.properties.insert(IMPORTING.into(), stores.to_string());
        self.properties.insert(FAILED.into(), String::new());
    }

    /// Moves `store` from the importing list to done, or to failed.
    pub fn record_import(&mut self, store: StoreId, failed: bool) {
        self.record_import_named(store.as_str(), failed);
    }

    fn record_import_named(&mut self, store: &str, failed: bool) {
        let mut importing = self.store_list(IMPORTING);
        importing.retain(|s| s != store);
        self.properties
            .insert(IMPORTING.into(), importing.join(","));
        if failed {
            let mut f = self.store_list(FAILED);
            f.push(store.to_string());
            self.properties.insert(FAILED.into(), f.join(","));
        }
    }

    /// The store ids of a comma-separated image property.
    fn store_list(&self, property: &str) -> Vec<String> {
        self.properties.get(property).map_or_else(Vec::new, |v| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
    }

    /// Whether the image shows work in progress: a transient status (not
    /// `uploading` with data staged, which waits for an import) or stores
    /// still being imported.
    pub fn shows_work(&self) -> bool {
        match self.status {
            Status::Saving | Status::Importing => true,
            Status::Uploading => self.staged.is_none(),
            _ => !self.store_list(IMPORTING).is_empty(),
        }
    }

    /// The work on the image stopped without finishing (its worker died):
    /// stores still importing are recorded as failed, and an upload, stage
    /// or import returns the image to `queued`, so it takes data again.
    /// Returns whether anything changed.
    pub fn abandon_work(&mut self) -> bool {
        if !self.shows_work() {
            return false;
        }
        for store in self.store_list(IMPORTING) {
            self.record_import_named(&store, true);
        }
        if matches!(
            self.status,
            Status::Saving | Status::Uploading | Status::Importing
        ) {
            // An import from staged data loses it too (Glance's stage is
            // single use); the garbage trigger hands it to reclamation.
            // Cannot fail: these statuses all become queued.
            self.reset_to_queued().ok();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::Timestamp;

    #[test]
    fn abandoned_imports_record_their_stores_as_failed_and_requeue() {
        let mut img = Image::new("i".into(), None, Timestamp(0));
        assert!(!img.abandon_work(), "a queued image shows no work");
        img.start_import().unwrap();
        img.begin_import_progress("kv,s3");
        img.record_import(StoreId::Kv, false);
        assert!(img.abandon_work());
        assert_eq!(img.status, Status::Queued);
        assert_eq!(img.properties[IMPORTING], "");
        assert_eq!(img.properties[FAILED], "s3");
        assert!(!img.abandon_work());
    }
}

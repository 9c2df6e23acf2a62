//! Garbage: data references an image row dropped (a deleted image's
//! locations, a removed copy, staged data that was imported or discarded).
//! A trigger on `images` writes a row in the same statement that drops the
//! reference, so no reference is ever lost; the reclaimer removes the data
//! of each one that no live image references any more, then the row.

use crate::data::blob::Location;
use crate::image::Staged;
use crate::ports::{Database, SqlValue, StoreError};

/// References one update of an image row dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Garbage {
    /// Row id.
    pub id: i64,
    /// The image whose row dropped them.
    pub image_id: String,
    /// Its locations before the update.
    pub locations: Vec<Location>,
    /// Its staged data before the update.
    pub staged: Option<Location>,
}

/// Garbage rows over a [`Database`].
pub struct GarbageRepo<'a> {
    db: &'a dyn Database,
}

impl<'a> GarbageRepo<'a> {
    /// Garbage in `db` (migrated by [`crate::db::images::ImageRepo::open`]).
    pub fn new(db: &'a dyn Database) -> Self {
        GarbageRepo { db }
    }

    /// The oldest `limit` rows.
    pub fn oldest(&self, limit: usize) -> Result<Vec<Garbage>, StoreError> {
        let rows = self.db.execute(
            "SELECT id, image_id, locations, staging FROM garbage ORDER BY id LIMIT ?",
            &[(limit as i64).into()],
        )?;
        Ok(rows_to_garbage(&rows))
    }

    /// Every row of image `image_id` (a handful: one per dropped reference).
    pub fn of_image(&self, image_id: &str) -> Result<Vec<Garbage>, StoreError> {
        let rows = self.db.execute(
            "SELECT id, image_id, locations, staging FROM garbage WHERE image_id = ? ORDER BY id",
            &[image_id.into()],
        )?;
        Ok(rows_to_garbage(&rows))
    }

    /// Keeps only `locations` of row `id` (the rest was removed).
    pub fn narrow(&self, id: i64, locations: &[Location]) -> Result<(), StoreError> {
        let json = serde_json::to_string(locations).unwrap_or_else(|_| "[]".into());
        self.db.execute(
            "UPDATE garbage SET locations = ?, staging = NULL WHERE id = ?",
            &[json.into(), id.into()],
        )?;
        Ok(())
    }

    /// Removes row `id`: its data is gone or still referenced.
    pub fn remove(&self, id: i64) -> Result<(), StoreError> {
        self.db
            .execute("DELETE FROM garbage WHERE id = ?", &[id.into()])?;
        Ok(())
    }
}

/// Garbage from its rows (a row that cannot be read names no data).
fn rows_to_garbage(rows: &crate::ports::Rows) -> Vec<Garbage> {
    rows.rows
        .iter()
        .map(|r| {
            let text = |i: usize| r.get(i).and_then(SqlValue::as_str);
            Garbage {
                id: r.first().and_then(SqlValue::as_i64).unwrap_or(0),
                image_id: text(1).unwrap_or_default().to_string(),
                locations: text(2)
                    .and_then(|l| serde_json::from_str(l).ok())
                    .unwrap_or_default(),
                staged: text(3)
                    .and_then(|s| serde_json::from_str::<Staged>(s).ok())
                    .map(|s| s.location),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::blob::StoreId;
    use crate::db::images::ImageRepo;
    use crate::image::Image;
    use crate::ports::memory::MemoryDb;
    use crate::timestamp::Timestamp;

    fn loc(url: &str) -> Location {
        Location {
            store: StoreId::Kv,
            url: url.into(),
            size: 10,
            chunk_size: 10,
        }
    }

    #[test]
    fn dropping_references_writes_garbage_in_the_same_statement() {
        let db = MemoryDb::new();
        let images = ImageRepo::open(&db).unwrap();
        let garbage = GarbageRepo::new(&db);
        let mut img = Image::new("a".into(), None, Timestamp(1));
        images.insert(&img).unwrap();
        img.locations = vec![loc("kv://d/a/1")];
        images.save(&mut img).unwrap();
        assert!(
            garbage.oldest(10).unwrap().is_empty(),
            "adding drops nothing"
        );
        img.name = Some("renamed".into());
        images.save(&mut img).unwrap();
        assert!(garbage.oldest(10).unwrap().is_empty(), "unchanged data");
        images.delete("a", Timestamp(2)).unwrap();
        let rows = garbage.oldest(10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].locations, vec![loc("kv://d/a/1")]);
        garbage.narrow(rows[0].id, &[]).unwrap();
        assert!(garbage.oldest(10).unwrap()[0].locations.is_empty());
        garbage.remove(rows[0].id).unwrap();
        assert!(garbage.oldest(10).unwrap().is_empty());
    }
}

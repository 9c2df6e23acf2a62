//! Image records in SQL: insert, fetch, optimistic save, `modify` (the one
//! load-change-save loop), delete. List queries are in `image_list`.
//!
//! One row per image, tags and custom properties as JSON columns, so every write
//! is a single atomic statement (no multi-statement transactions: a host may
//! share one connection between concurrent instances). Concurrent writers are
//! detected with a `revision` counter.

use std::collections::BTreeMap;

use crate::db::migrations;
use crate::image::{ContainerFormat, DiskFormat, Image, Status, Visibility};
use crate::ports::{Database, Rows, SqlValue, StoreError};
use crate::timestamp::Timestamp;

pub(super) const COLUMNS: &str = "id, name, status, visibility, protected, os_hidden, checksum, \
    os_hash_algo, os_hash_value, owner, size, virtual_size, min_disk, min_ram, disk_format, \
    container_format, created_at, updated_at, tags, properties, locations, staging, revision";

/// Outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// The row was written.
    Done,
    /// Someone else got there first (duplicate id, or the row changed meanwhile).
    Conflict,
}

/// Attempts of [`ImageRepo::modify`] before it gives up on an image that
/// other writers keep changing (each attempt re-reads the row).
const MODIFY_ATTEMPTS: usize = 64;

/// How [`ImageRepo::modify`] ended.
#[derive(Debug)]
// Done is the common end and is unwrapped at once; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Modified {
    /// The change was saved (or there was nothing to save): the image as it is now.
    Done(Image),
    /// No live image has that id.
    Gone,
    /// Other writers changed it on every attempt.
    Busy,
}

/// Image persistence over a [`Database`].
pub struct ImageRepo<'a> {
    pub(super) db: &'a dyn Database,
}

impl<'a> ImageRepo<'a> {
    /// Opens the repository, migrating the schema on first use.
    pub fn open(db: &'a dyn Database) -> Result<Self, StoreError> {
        migrations::ensure(db)?;
        Ok(ImageRepo { db })
    }

    /// Inserts a new image; [`Write::Conflict`] if the id was ever used.
    pub fn insert(&self, img: &Image) -> Result<Write, StoreError> {
        let rows = self.db.execute(
            &format!(
                "INSERT INTO images ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
                 ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            &row_values(img),
        )?;
        Ok(if rows.rows.is_empty() {
            Write::Conflict
        } else {
            Write::Done
        })
    }

    /// The live (not deleted) image with this id.
    pub fn get(&self, id: &str) -> Result<Option<Image>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM images WHERE id = ? AND deleted = 0"),
            &[id.into()],
        )?;
        rows.rows.first().map(|r| image_from_row(r)).transpose()
    }

    /// The image with this id, deleted or not (a deleted one has status
    /// `deleted`; its row is a tombstone).
    pub fn get_with_deleted(&self, id: &str) -> Result<Option<Image>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM images WHERE id = ?"),
            &[id.into()],
        )?;
        rows.rows.first().map(|r| image_from_row(r)).transpose()
    }

    /// Saves `img` if nobody changed it since it was read (its `revision`).
    /// On success `img.revision` is advanced. (Writers go through
    /// [`Self::modify`]; tests save rows they made up.)
    #[cfg(test)]
    pub(crate) fn save(&self, img: &mut Image) -> Result<Write, StoreError> {
        self.save_columns(img, None)
    }

    /// Writes the columns of `img` (only those that differ from `before`, the
    /// row as read, when given: an index whose columns are not written is
    /// not touched) if the row's revision is still `img.revision`.
    fn save_columns(&self, img: &mut Image, before: Option<&Image>) -> Result<Write, StoreError> {
        let new = row_values(img);
        let old = before.map(row_values);
        let names: Vec<&str> = COLUMNS.split(", ").collect();
        let mut set = Vec::new();
        let mut params = Vec::new();
        // id (first) and revision (last) are the WHERE's.
        for i in 1..new.len().saturating_sub(1) {
            if old.as_ref().is_some_and(|o| o.get(i) == new.get(i)) {
                continue;
            }
            set.push(format!("{} = ?", names[i]));
            params.push(new[i].clone());
        }
        set.push("revision = revision + 1".to_string());
        params.push(img.id.as_str().into());
        params.push(img.revision.into());
        let rows = self.db.execute(
            &format!(
                "UPDATE images SET {} WHERE id = ? AND revision = ? AND deleted = 0 \
                 RETURNING revision",
                set.join(", ")
            ),
            &params,
        )?;
        match rows
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
        {
            Some(rev) => {
                img.revision = rev;
                Ok(Write::Done)
            }
            None => Ok(Write::Conflict),
        }
    }

    /// Loads image `id`, lets `change` edit it and saves it unless another
    /// writer changed it meanwhile, in which case it starts over from the new
    /// row. `change` returns false when there is nothing to save, and may fail.
    /// Every save sets `updated_at` to `now`.
    pub fn modify<E: From<StoreError>>(
        &self,
        id: &str,
        now: Timestamp,
        mut change: impl FnMut(&mut Image) -> Result<bool, E>,
    ) -> Result<Modified, E> {
        for _ in 0..MODIFY_ATTEMPTS {
            let Some(mut img) = self.get(id)? else {
                return Ok(Modified::Gone);
            };
            let before = img.clone();
            if !change(&mut img)? {
                return Ok(Modified::Done(img));
            }
            img.updated_at = now;
            if self.save_columns(&mut img, Some(&before))? == Write::Done {
                return Ok(Modified::Done(img));
            }
        }
        Ok(Modified::Busy)
    }

    /// Marks the image deleted. The row stays as a tombstone so its id is never reused.
    pub fn delete(&self, id: &str, now: Timestamp) -> Result<Write, StoreError> {
        let rows = self.db.execute(
            "UPDATE images SET deleted = 1, status = 'deleted', deleted_at = ?, updated_at = ?, \
             revision = revision + 1 WHERE id = ? AND deleted = 0 RETURNING id",
            &[now.to_string().into(), now.to_string().into(), id.into()],
        )?;
        Ok(if rows.rows.is_empty() {
            Write::Conflict
        } else {
            Write::Done
        })
    }

    /// The membership status of `project` on image `image_id`, if it is a member.
    pub fn member_status(
        &self,
        image_id: &str,
        project: &str,
    ) -> Result<Option<String>, StoreError> {
        let rows = self.db.execute(
            "SELECT status FROM image_members WHERE image_id = ? AND member = ?",
            &[image_id.into(), project.into()],
        )?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(|v| v.as_str().map(str::to_string)))
    }

    /// Whether image `image_id` has any member.
    pub fn has_members(&self, image_id: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "SELECT 1 FROM image_members WHERE image_id = ? LIMIT 1",
            &[image_id.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }

    /// Bytes of image data `owner` stores, not counting image `except`
    /// (for `user_storage_quota`).
    pub fn stored_bytes(&self, owner: Option<&str>, except: &str) -> Result<u64, StoreError> {
        let rows = self.db.execute(
            "SELECT COALESCE(SUM(size), 0) FROM images WHERE owner IS ? AND deleted = 0 \
             AND id != ? AND status IN ('active', 'deactivated', 'saving', 'uploading', 'importing')",
            &[owner.into(), except.into()],
        )?;
        Ok(rows
            .rows
            .first()
            .and_then(|r| r.first())
            .and_then(SqlValue::as_i64)
            .unwrap_or(0)
            .max(0) as u64)
    }
}

fn row_values(img: &Image) -> Vec<SqlValue> {
    vec![
        img.id.clone().into(),
        img.name.clone().into(),
        img.status.as_str().into(),
        img.visibility.as_str().into(),
        img.protected.into(),
        img.os_hidden.into(),
        img.checksum.clone().into(),
        img.os_hash_algo.clone().into(),
        img.os_hash_value.clone().into(),
        img.owner.clone().into(),
        img.size.into(),
        img.virtual_size.into(),
        img.min_disk.into(),
        img.min_ram.into(),
        img.disk_format.map(DiskFormat::as_str).into(),
        img.container_format.map(ContainerFormat::as_str).into(),
        img.created_at.to_string().into(),
        img.updated_at.to_string().into(),
        serde_json::to_string(&img.tags)
            .unwrap_or_else(|_| "[]".into())
            .into(),
        serde_json::to_string(&img.properties)
            .unwrap_or_else(|_| "{}".into())
            .into(),
        serde_json::to_string(&img.locations)
            .unwrap_or_else(|_| "[]".into())
            .into(),
        img.staged
            .as_ref()
            .and_then(|s| serde_json::to_string(s).ok())
            .into(),
        img.revision.into(),
    ]
}

pub(super) fn images_from_rows(rows: Rows) -> Result<Vec<Image>, StoreError> {
    rows.rows.iter().map(|r| image_from_row(r)).collect()
}

fn image_from_row(r: &[SqlValue]) -> Result<Image, StoreError> {
    let bad = |what: &str| StoreError(format!("corrupt image row: {what}"));
    let text = |i: usize| r.get(i).and_then(SqlValue::as_str).map(str::to_string);
    let int = |i: usize| r.get(i).and_then(SqlValue::as_i64);
    let ts = |i: usize| {
        text(i)
            .and_then(|s| Timestamp::parse(&s))
            .ok_or_else(|| bad("timestamp"))
    };
    Ok(Image {
        id: text(0).ok_or_else(|| bad("id"))?,
        name: text(1),
        status: text(2)
            .and_then(|s| Status::parse(&s))
            .ok_or_else(|| bad("status"))?,
        visibility: text(3)
            .and_then(|s| Visibility::parse(&s))
            .ok_or_else(|| bad("visibility"))?,
        protected: int(4).unwrap_or(0) != 0,
        os_hidden: int(5).unwrap_or(0) != 0,
        checksum: text(6),
        os_hash_algo: text(7),
        os_hash_value: text(8),
        owner: text(9),
        size: int(10),
        virtual_size: int(11),
        min_disk: int(12).unwrap_or(0),
        min_ram: int(13).unwrap_or(0),
        disk_format: text(14).and_then(|s| DiskFormat::parse(&s)),
        container_format: text(15).and_then(|s| ContainerFormat::parse(&s)),
        created_at: ts(16)?,
        updated_at: ts(17)?,
        tags: text(18)
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| bad("tags"))?,
        properties: text(19)
            .and_then(|s| serde_json::from_str::<BTreeMap<String, String>>(&s).ok())
            .ok_or_else(|| bad("properties"))?,
        locations: text(20)
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| bad("locations"))?,
        staged: text(21).and_then(|s| serde_json::from_str(&s).ok()),
        revision: int(22).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryDb;

    fn img(id: &str, owner: &str, t: i64) -> Image {
        let mut i = Image::new(id.to_string(), Some(owner.to_string()), Timestamp(t));
        i.name = Some(format!("name-{id}"));
        i
    }

    #[test]
    fn insert_get_save_delete() {
        let db = MemoryDb::new();
        let repo = ImageRepo::open(&db).unwrap();
        let mut a = img("a", "p1", 10);
        a.tags = vec!["t1".into()];
        a.properties.insert("k".into(), "v".into());
        assert_eq!(repo.insert(&a).unwrap(), Write::Done);
        assert_eq!(repo.insert(&a).unwrap(), Write::Conflict);
        let mut got = repo.get("a").unwrap().unwrap();
        assert_eq!(got, a);
        got.name = Some("renamed".into());
        assert_eq!(repo.save(&mut got).unwrap(), Write::Done);
        assert_eq!(got.revision, 1);
        let mut stale = a.clone();
        assert_eq!(repo.save(&mut stale).unwrap(), Write::Conflict);
        assert_eq!(repo.delete("a", Timestamp(20)).unwrap(), Write::Done);
        assert!(repo.get("a").unwrap().is_none());
        let tomb = repo.get_with_deleted("a").unwrap().unwrap();
        assert_eq!(
            (tomb.status, tomb.updated_at),
            (Status::Deleted, Timestamp(20))
        );
        // ids of deleted images are never reused
        assert_eq!(repo.insert(&a).unwrap(), Write::Conflict);
    }

    #[test]
    fn modify_retries_until_the_change_lands() {
        let db = MemoryDb::new();
        let repo = ImageRepo::open(&db).unwrap();
        repo.insert(&img("a", "p1", 10)).unwrap();
        let mut interfered = false;
        let out = repo
            .modify("a", Timestamp(20), |i| {
                if !interfered {
                    // Another writer saves between this read and the save.
                    interfered = true;
                    let mut other = repo.get("a")?.expect("row");
                    other.tags.push("theirs".into());
                    repo.save(&mut other)?;
                }
                i.properties.insert("mine".into(), "1".into());
                Ok::<_, StoreError>(true)
            })
            .unwrap();
        let Modified::Done(saved) = out else {
            panic!("{out:?}")
        };
        assert_eq!(
            saved.tags,
            vec!["theirs"],
            "the other writer's change is kept"
        );
        assert_eq!(saved.properties["mine"], "1");
        assert_eq!(saved.updated_at, Timestamp(20));
        assert!(matches!(
            repo.modify("nope", Timestamp(1), |_| Ok::<_, StoreError>(true)),
            Ok(Modified::Gone)
        ));
    }
}

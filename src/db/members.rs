//! Image memberships (sharing an image with another project) in SQL.

use crate::image::member::{Member, MemberStatus};
use crate::ports::{Database, SqlValue, StoreError};
use crate::timestamp::Timestamp;

/// Memberships over a [`Database`] (the schema comes with the image tables).
pub struct MemberRepo<'a> {
    db: &'a dyn Database,
}

fn member_from_row(r: &[SqlValue]) -> Result<Member, StoreError> {
    let text = |i: usize| r.get(i).and_then(SqlValue::as_str).map(str::to_string);
    let ts = |i: usize| {
        text(i)
            .and_then(|s| Timestamp::parse(&s))
            .ok_or_else(|| StoreError("corrupt member row".into()))
    };
    Ok(Member {
        image_id: text(0).ok_or_else(|| StoreError("corrupt member row".into()))?,
        member_id: text(1).ok_or_else(|| StoreError("corrupt member row".into()))?,
        status: text(2)
            .and_then(|s| MemberStatus::parse(&s))
            .ok_or_else(|| StoreError("corrupt member row".into()))?,
        created_at: ts(3)?,
        updated_at: ts(4)?,
        can_share: r.get(5).and_then(SqlValue::as_i64).unwrap_or(0) != 0,
    })
}

const COLUMNS: &str = "image_id, member, status, created_at, updated_at, can_share";

impl<'a> MemberRepo<'a> {
    /// Member records in `db` (migrated by [`crate::db::images::ImageRepo::open`]).
    pub fn new(db: &'a dyn Database) -> Self {
        MemberRepo { db }
    }

    /// All members of an image, oldest first.
    pub fn list(&self, image_id: &str) -> Result<Vec<Member>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM image_members WHERE image_id = ? ORDER BY created_at, member"),
            &[image_id.into()],
        )?;
        rows.rows.iter().map(|r| member_from_row(r)).collect()
    }

    /// One membership.
    pub fn get(&self, image_id: &str, member_id: &str) -> Result<Option<Member>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM image_members WHERE image_id = ? AND member = ?"),
            &[image_id.into(), member_id.into()],
        )?;
        rows.rows.first().map(|r| member_from_row(r)).transpose()
    }

    /// Adds a pending membership unless the image already has `quota`
    /// members (negative: unlimited). Ok(None) when the member exists.
    pub fn add(&self, m: &Member, quota: i64) -> Result<AddOutcome, StoreError> {
        // One statement: the quota check and the insert cannot interleave
        // with another request's.
        let rows = self.db.execute(
            &format!(
                "INSERT INTO image_members ({COLUMNS}) SELECT ?, ?, ?, ?, ?, ? \
                 WHERE ? < 0 OR (SELECT COUNT(*) FROM image_members WHERE image_id = ?) < ? \
                 ON CONFLICT (image_id, member) DO NOTHING RETURNING member"
            ),
            &[
                m.image_id.clone().into(),
                m.member_id.clone().into(),
                m.status.as_str().into(),
                m.created_at.to_string().into(),
                m.updated_at.to_string().into(),
                m.can_share.into(),
                quota.into(),
                m.image_id.clone().into(),
                quota.into(),
            ],
        )?;
        if !rows.rows.is_empty() {
            return Ok(AddOutcome::Added);
        }
        Ok(if self.get(&m.image_id, &m.member_id)?.is_some() {
            AddOutcome::Duplicate
        } else {
            AddOutcome::OverQuota
        })
    }

    /// Sets a membership's status; None if there is no such member.
    pub fn set_status(
        &self,
        image_id: &str,
        member_id: &str,
        status: MemberStatus,
        now: Timestamp,
    ) -> Result<Option<Member>, StoreError> {
        let rows = self.db.execute(
            &format!(
                "UPDATE image_members SET status = ?, updated_at = ? WHERE image_id = ? AND member = ? \
                 RETURNING {COLUMNS}"
            ),
            &[status.as_str().into(), now.to_string().into(), image_id.into(), member_id.into()],
        )?;
        rows.rows.first().map(|r| member_from_row(r)).transpose()
    }

    /// Sets whether a member may share the image onward; None if there is
    /// no such member.
    pub fn set_can_share(
        &self,
        image_id: &str,
        member_id: &str,
        can_share: bool,
    ) -> Result<Option<Member>, StoreError> {
        let rows = self.db.execute(
            &format!(
                "UPDATE image_members SET can_share = ? WHERE image_id = ? AND member = ? \
                 RETURNING {COLUMNS}"
            ),
            &[can_share.into(), image_id.into(), member_id.into()],
        )?;
        rows.rows.first().map(|r| member_from_row(r)).transpose()
    }

    /// Removes every member of `image_id` not in `keep`; returns those that went.
    pub fn remove_others(&self, image_id: &str, keep: &[&str]) -> Result<Vec<Member>, StoreError> {
        let mut params: Vec<SqlValue> = vec![image_id.into()];
        params.extend(keep.iter().map(|k| SqlValue::from(*k)));
        let marks = vec!["?"; keep.len()].join(", ");
        let rows = self.db.execute(
            &format!(
                "DELETE FROM image_members WHERE image_id = ? AND member NOT IN ({marks}) \
                 RETURNING {COLUMNS}"
            ),
            &params,
        )?;
        rows.rows.iter().map(|r| member_from_row(r)).collect()
    }

    /// The memberships of project `member_id` on live images, oldest first.
    pub fn of_member(&self, member_id: &str) -> Result<Vec<Member>, StoreError> {
        let cols: Vec<String> = COLUMNS.split(", ").map(|c| format!("m.{c}")).collect();
        let rows = self.db.execute(
            &format!(
                "SELECT {} FROM image_members m JOIN images i ON i.id = m.image_id \
                 WHERE m.member = ? AND i.deleted = 0 ORDER BY m.created_at, m.image_id",
                cols.join(", ")
            ),
            &[member_id.into()],
        )?;
        rows.rows.iter().map(|r| member_from_row(r)).collect()
    }

    /// Removes a membership; false if there was none.
    pub fn remove(&self, image_id: &str, member_id: &str) -> Result<bool, StoreError> {
        let rows = self.db.execute(
            "DELETE FROM image_members WHERE image_id = ? AND member = ? RETURNING member",
            &[image_id.into(), member_id.into()],
        )?;
        Ok(!rows.rows.is_empty())
    }
}

/// Result of [`MemberRepo::add`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// The membership was created.
    Added,
    /// The project already is a member.
    Duplicate,
    /// The image has as many members as allowed.
    OverQuota,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::images::ImageRepo;
    use crate::ports::memory::MemoryDb;

    fn member(img: &str, m: &str) -> Member {
        Member {
            image_id: img.into(),
            member_id: m.into(),
            status: MemberStatus::Pending,
            can_share: false,
            created_at: Timestamp(1),
            updated_at: Timestamp(1),
        }
    }

    #[test]
    fn add_list_update_remove_with_quota() {
        let db = MemoryDb::new();
        ImageRepo::open(&db).unwrap();
        let repo = MemberRepo::new(&db);
        assert_eq!(repo.add(&member("i", "a"), 2).unwrap(), AddOutcome::Added);
        assert_eq!(
            repo.add(&member("i", "a"), 2).unwrap(),
            AddOutcome::Duplicate
        );
        assert_eq!(repo.add(&member("i", "b"), 2).unwrap(), AddOutcome::Added);
        assert_eq!(
            repo.add(&member("i", "c"), 2).unwrap(),
            AddOutcome::OverQuota
        );
        assert_eq!(repo.add(&member("j", "c"), -1).unwrap(), AddOutcome::Added);
        assert_eq!(repo.list("i").unwrap().len(), 2);
        let m = repo
            .set_status("i", "a", MemberStatus::Accepted, Timestamp(5))
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.status, m.updated_at),
            (MemberStatus::Accepted, Timestamp(5))
        );
        assert!(repo
            .set_status("i", "zz", MemberStatus::Accepted, Timestamp(5))
            .unwrap()
            .is_none());
        assert!(
            repo.set_can_share("i", "a", true)
                .unwrap()
                .unwrap()
                .can_share
        );
        assert!(repo.set_can_share("i", "zz", true).unwrap().is_none());
        assert!(repo.remove("i", "a").unwrap());
        assert!(!repo.remove("i", "a").unwrap());
        assert_eq!(repo.get("i", "b").unwrap().unwrap().member_id, "b");
        repo.add(&member("i", "c"), 5).unwrap();
        let gone = repo.remove_others("i", &["c"]).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].member_id, "b");
        assert_eq!(repo.list("i").unwrap().len(), 1);
        assert_eq!(repo.remove_others("i", &[]).unwrap().len(), 1);
    }

    #[test]
    fn memberships_of_a_project_on_live_images() {
        use crate::image::Image;
        let db = MemoryDb::new();
        let images = ImageRepo::open(&db).unwrap();
        for id in ["i", "j"] {
            images
                .insert(&Image::new(id.into(), Some("o".into()), Timestamp(1)))
                .unwrap();
        }
        let repo = MemberRepo::new(&db);
        repo.add(&member("i", "p"), -1).unwrap();
        repo.add(&member("j", "p"), -1).unwrap();
        repo.add(&member("j", "q"), -1).unwrap();
        images.delete("j", Timestamp(2)).unwrap();
        let of_p: Vec<String> = repo
            .of_member("p")
            .unwrap()
            .into_iter()
            .map(|m| m.image_id)
            .collect();
        assert_eq!(of_p, vec!["i"]);
    }
}

//! Image records in SQL: insert, fetch, optimistic save, delete, and list
//! queries built from a [`ListQuery`].
//!
//! One row per image, tags and custom properties as JSON columns, so every write
//! is a single atomic statement (no multi-statement transactions: a host may
//! share one connection between concurrent instances). Concurrent writers are
//! detected with a `revision` counter.

use std::collections::BTreeMap;

use crate::auth::caller::Caller;
use crate::db::migrations;
use crate::image::list_query::{Filter, ListQuery, MemberStatusFilter, SortDir, VisibilityFilter};
use crate::image::{Image, Status, Visibility};
use crate::ports::{Database, Rows, SqlValue, StoreError};
use crate::timestamp::Timestamp;

const COLUMNS: &str = "id, name, status, visibility, protected, os_hidden, checksum, \
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

/// Image persistence over a [`Database`].
pub struct ImageRepo<'a> {
    db: &'a dyn Database,
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

    /// Saves `img` if nobody changed it since it was read (its `revision`).
    /// On success `img.revision` is advanced.
    pub fn save(&self, img: &mut Image) -> Result<Write, StoreError> {
        let mut params = row_values(img);
        // SET skips id (first) and revision (last); WHERE takes them.
        let revision = params.pop().unwrap_or(SqlValue::Null);
        let id = params.remove(0);
        params.push(id);
        params.push(revision);
        let rows = self.db.execute(
            "UPDATE images SET name = ?, status = ?, visibility = ?, protected = ?, \
             os_hidden = ?, checksum = ?, os_hash_algo = ?, os_hash_value = ?, owner = ?, \
             size = ?, virtual_size = ?, min_disk = ?, min_ram = ?, disk_format = ?, \
             container_format = ?, created_at = ?, updated_at = ?, tags = ?, properties = ?, \
             locations = ?, staging = ?, revision = revision + 1 \
             WHERE id = ? AND revision = ? AND deleted = 0 RETURNING revision",
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

    /// One page of the images `caller` may list, after `marker` (already
    /// resolved to a visible image), plus whether more follow.
    pub fn list(
        &self,
        q: &ListQuery,
        caller: &Caller,
        marker: Option<&Image>,
    ) -> Result<(Vec<Image>, bool), StoreError> {
        let mut sql = SqlBuilder::default();
        sql.push(
            "deleted = 0 AND status != 'killed' AND os_hidden = ?",
            [q.os_hidden.into()],
        );
        visibility_clause(&mut sql, q, caller);
        for f in &q.filters {
            filter_clause(&mut sql, f);
        }
        if let Some(m) = marker {
            marker_clause(&mut sql, q, m);
        }
        let order: Vec<String> = q
            .sort
            .iter()
            .map(|(k, d)| format!("{} {}", sort_expr(k), dir_sql(*d)))
            .collect();
        let limit = i64::from(q.limit);
        sql.params.push((limit + 1).into());
        let rows = self.db.execute(
            &format!(
                "SELECT {COLUMNS} FROM images WHERE {} ORDER BY {} LIMIT ?",
                sql.conditions.join(" AND "),
                order.join(", ")
            ),
            &sql.params,
        )?;
        let mut images = images_from_rows(rows)?;
        let more = images.len() as i64 > limit;
        images.truncate(q.limit as usize);
        Ok((images, more))
    }
}

/// Conditions and their parameters, joined with AND.
#[derive(Default)]
struct SqlBuilder {
    conditions: Vec<String>,
    params: Vec<SqlValue>,
}

impl SqlBuilder {
    fn push<I: IntoIterator<Item = SqlValue>>(&mut self, cond: impl Into<String>, params: I) {
        self.conditions.push(cond.into());
        self.params.extend(params);
    }
}

fn member_exists(status: MemberStatusFilter) -> &'static str {
    match status {
        MemberStatusFilter::All => {
            "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id AND m.member = ?)"
        }
        MemberStatusFilter::Only(_) => {
            "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id AND m.member = ? \
             AND m.status = ?)"
        }
    }
}

/// Glance's listing rules: what the caller may see, then the `visibility` filter.
fn visibility_clause(sql: &mut SqlBuilder, q: &ListQuery, caller: &Caller) {
    let project = caller.project_id.clone();
    if !caller.is_admin() {
        match &project {
            Some(p) => {
                let mut params = vec![p.clone().into(), p.clone().into()];
                if let MemberStatusFilter::Only(s) = q.member_status {
                    params.push(s.into());
                }
                sql.push(
                    format!(
                        "(visibility IN ('public', 'community') OR owner = ? OR \
                         (visibility = 'shared' AND {}))",
                        member_exists(q.member_status)
                    ),
                    params,
                );
            }
            None => sql.push("visibility IN ('public', 'community')", []),
        }
    }
    match (q.visibility, project) {
        (Some(VisibilityFilter::All), _) => {}
        (Some(v), _) => {
            let name = match v {
                VisibilityFilter::Public => "public",
                VisibilityFilter::Private => "private",
                VisibilityFilter::Shared => "shared",
                VisibilityFilter::Community => "community",
                VisibilityFilter::All => unreachable!("handled above"),
            };
            sql.push("visibility = ?", [name.into()]);
        }
        (None, Some(p)) => sql.push("(owner = ? OR visibility != 'community')", [p.into()]),
        (None, None) => sql.push("visibility != 'community'", []),
    }
}

fn filter_clause(sql: &mut SqlBuilder, f: &Filter) {
    match f {
        Filter::Equals(col, v) => sql.push(format!("{col} = ?"), [v.clone().into()]),
        Filter::In(col, values) => {
            let marks = vec!["?"; values.len()].join(", ");
            sql.push(
                format!("{col} IN ({marks})"),
                values.iter().map(|v| SqlValue::from(v.clone())),
            );
        }
        Filter::Range(col, op, n) => sql.push(format!("{col} {} ?", op.sql()), [(*n).into()]),
        Filter::Time(col, op, ts) => {
            sql.push(format!("{col} {} ?", op.sql()), [ts.to_string().into()])
        }
        Filter::Tag(t) => sql.push(
            "EXISTS (SELECT 1 FROM json_each(images.tags) WHERE value = ?)",
            [t.clone().into()],
        ),
        Filter::Property(k, v) => sql.push(
            "EXISTS (SELECT 1 FROM json_each(images.properties) WHERE key = ? AND value = ?)",
            [k.clone().into(), v.clone().into()],
        ),
    }
}

/// Sort expression: NULL compares as the column's default, as Glance's
/// paging does. Columns that are never NULL stay bare, so SQLite can walk an
/// index in order and stop after one page.
fn sort_expr(key: &str) -> String {
    match key {
        "size" => "COALESCE(size, 0)".to_string(),
        "id" | "status" | "created_at" | "updated_at" => key.to_string(),
        k => format!("COALESCE({k}, '')"),
    }
}

fn dir_sql(d: SortDir) -> &'static str {
    match d {
        SortDir::Asc => "ASC",
        SortDir::Desc => "DESC",
    }
}

fn sort_value(img: &Image, key: &str) -> SqlValue {
    let text = |v: &Option<String>| SqlValue::Text(v.clone().unwrap_or_default());
    match key {
        "name" => text(&img.name),
        "status" => img.status.as_str().into(),
        "container_format" => text(&img.container_format),
        "disk_format" => text(&img.disk_format),
        "size" => SqlValue::Integer(img.size.unwrap_or(0)),
        "id" => img.id.clone().into(),
        "created_at" => img.created_at.to_string().into(),
        _ => img.updated_at.to_string().into(),
    }
}

/// Rows strictly after the marker in sort order:
/// (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...
fn marker_clause(sql: &mut SqlBuilder, q: &ListQuery, marker: &Image) {
    let mut alternatives = Vec::new();
    let mut params = Vec::new();
    for (i, (key, dir)) in q.sort.iter().enumerate() {
        let mut parts = Vec::new();
        for (prev, _) in &q.sort[..i] {
            parts.push(format!("{} = ?", sort_expr(prev)));
            params.push(sort_value(marker, prev));
        }
        let op = if *dir == SortDir::Asc { ">" } else { "<" };
        parts.push(format!("{} {op} ?", sort_expr(key)));
        params.push(sort_value(marker, key));
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    sql.push(format!("({})", alternatives.join(" OR ")), params);
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
        img.disk_format.clone().into(),
        img.container_format.clone().into(),
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

fn images_from_rows(rows: Rows) -> Result<Vec<Image>, StoreError> {
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
        disk_format: text(14),
        container_format: text(15),
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
    use crate::settings::ImageLimits;

    fn img(id: &str, owner: &str, t: i64) -> Image {
        let mut i = Image::new(id.to_string(), Some(owner.to_string()), Timestamp(t));
        i.name = Some(format!("name-{id}"));
        i
    }

    fn member(p: &str) -> Caller {
        Caller::new(Some(p.to_string()), None, &["member"])
    }

    fn ids(v: &[Image]) -> Vec<&str> {
        v.iter().map(|i| i.id.as_str()).collect()
    }

    fn list(repo: &ImageRepo, q: &str, c: &Caller) -> Vec<String> {
        let q = ListQuery::parse(q, &ImageLimits::default()).unwrap();
        let (v, _) = repo.list(&q, c, None).unwrap();
        v.into_iter().map(|i| i.id).collect()
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
        // ids of deleted images are never reused
        assert_eq!(repo.insert(&a).unwrap(), Write::Conflict);
    }

    #[test]
    fn listing_follows_glance_visibility_rules() {
        let db = MemoryDb::new();
        let repo = ImageRepo::open(&db).unwrap();
        let mut pubi = img("pub", "p2", 1);
        pubi.visibility = Visibility::Public;
        let mut comm = img("comm", "p2", 2);
        comm.visibility = Visibility::Community;
        let mut priv2 = img("priv2", "p2", 3);
        priv2.visibility = Visibility::Private;
        let shared2 = img("shared2", "p2", 4);
        let own = img("own", "p1", 5);
        for i in [&pubi, &comm, &priv2, &shared2, &own] {
            repo.insert(i).unwrap();
        }
        let p1 = member("p1");
        assert_eq!(list(&repo, "", &p1), vec!["own", "pub"]);
        assert_eq!(list(&repo, "visibility=community", &p1), vec!["comm"]);
        assert_eq!(
            list(&repo, "visibility=all", &p1),
            vec!["own", "comm", "pub"]
        );
        db.execute(
            "INSERT INTO image_members VALUES ('shared2', 'p1', 'pending', 'x', 'x')",
            &[],
        )
        .unwrap();
        assert_eq!(list(&repo, "", &p1), vec!["own", "pub"]);
        assert_eq!(
            list(&repo, "visibility=shared&member_status=pending", &p1),
            vec!["own", "shared2"]
        );
        let admin = Caller::new(Some("p9".into()), None, &["admin"]);
        assert_eq!(
            list(&repo, "", &admin),
            vec!["own", "shared2", "priv2", "pub"]
        );
    }

    #[test]
    fn filters_sorting_and_paging() {
        let db = MemoryDb::new();
        let repo = ImageRepo::open(&db).unwrap();
        for (n, id) in ["c", "a", "d", "b"].iter().enumerate() {
            let mut i = img(id, "p1", n as i64);
            i.size = Some(n as i64 * 10);
            i.tags = vec!["all".into(), format!("t{id}")];
            i.properties.insert(
                "os_distro".into(),
                if n % 2 == 0 { "debian" } else { "fedora" }.into(),
            );
            repo.insert(&i).unwrap();
        }
        let p1 = member("p1");
        assert_eq!(
            list(&repo, "sort_key=name&sort_dir=asc", &p1),
            vec!["a", "b", "c", "d"]
        );
        assert_eq!(list(&repo, "sort=size:desc", &p1), vec!["b", "d", "a", "c"]);
        assert_eq!(
            list(&repo, "os_distro=debian&sort=name:asc", &p1),
            vec!["c", "d"]
        );
        assert_eq!(list(&repo, "tag=all&tag=ta", &p1), vec!["a"]);
        assert_eq!(
            list(&repo, "size_min=10&size_max=20&sort=name:asc", &p1),
            vec!["a", "d"]
        );
        assert_eq!(
            list(&repo, "name=in:name-a,name-b&sort=name:asc", &p1),
            vec!["a", "b"]
        );
        assert_eq!(
            list(&repo, "created_at=gte:1970-01-01T00:00:02Z", &p1),
            vec!["b", "d"]
        );

        let q = ListQuery::parse(
            "sort_key=name&sort_dir=asc&limit=3",
            &ImageLimits::default(),
        )
        .unwrap();
        let (page1, more) = repo.list(&q, &p1, None).unwrap();
        assert_eq!((ids(&page1), more), (vec!["a", "b", "c"], true));
        let (page2, more) = repo.list(&q, &p1, Some(&page1[2])).unwrap();
        assert_eq!((ids(&page2), more), (vec!["d"], false));
    }
}

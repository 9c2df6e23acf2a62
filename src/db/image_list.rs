//! List queries in SQL: a [`ListQuery`] and the caller's visibility rules
//! become one `SELECT` with keyset paging after the marker.

use std::collections::HashMap;

use crate::auth::caller::Caller;
use crate::db::images::{images_from_rows, ImageRepo, COLUMNS};
use crate::image::list_query::{Filter, ListQuery, MemberStatusFilter, SortDir, VisibilityFilter};
use crate::image::Image;
use crate::ports::{SqlValue, StoreError};

impl ImageRepo<'_> {
    /// One page of the images `caller` may list, after `marker` (already
    /// resolved to a visible image), plus whether more follow.
    pub fn list(
        &self,
        q: &ListQuery,
        caller: &Caller,
        marker: Option<&Image>,
    ) -> Result<(Vec<Image>, bool), StoreError> {
        let mut sql = SqlBuilder::default();
        if q.include_deleted {
            sql.push("os_hidden = ?", [q.os_hidden.into()]);
        } else {
            sql.push(
                "deleted = 0 AND status != 'killed' AND os_hidden = ?",
                [q.os_hidden.into()],
            );
        }
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
        // First the ids and sizes of the page, then the rows that fit in
        // PAGE_BYTES: a page of huge records stays bounded in memory (and
        // `next` points past the last one shown).
        let sizes = self.db.execute(
            &format!(
                "SELECT id, length(properties) + length(tags) + length(locations) \
                 + IFNULL(length(name), 0) FROM images WHERE {} ORDER BY {} LIMIT ?",
                sql.conditions.join(" AND "),
                order.join(", ")
            ),
            &sql.params,
        )?;
        let mut ids: Vec<String> = Vec::new();
        let mut bytes = 0i64;
        let mut more = sizes.rows.len() as i64 > limit;
        for row in sizes.rows.iter().take(q.limit as usize) {
            let size = row.get(1).and_then(SqlValue::as_i64).unwrap_or(0);
            if !ids.is_empty() && bytes + size > PAGE_BYTES {
                more = true;
                break;
            }
            bytes += size;
            if let Some(id) = row.first().and_then(SqlValue::as_str) {
                ids.push(id.to_string());
            }
        }
        if ids.is_empty() {
            return Ok((Vec::new(), false));
        }
        let marks = vec!["?"; ids.len()].join(", ");
        let params: Vec<SqlValue> = ids.iter().map(|i| i.as_str().into()).collect();
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM images WHERE id IN ({marks})"),
            &params,
        )?;
        let mut by_id: HashMap<String, Image> = images_from_rows(rows)?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let images = ids.iter().filter_map(|id| by_id.remove(id)).collect();
        Ok((images, more))
    }
}

/// The most record bytes (properties, tags, locations, name) one page holds;
/// a page always holds at least one image.
pub(crate) const PAGE_BYTES: i64 = 4 << 20;

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
    if !caller.is_admin() || q.admin_as_user {
        match &project {
            Some(p) => {
                let mut params = vec![p.clone().into(), p.clone().into()];
                if let MemberStatusFilter::Only(s) = q.member_status {
                    params.push(s.as_str().into());
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
    let name = match q.visibility {
        Some(VisibilityFilter::All) => return,
        None => None,
        Some(VisibilityFilter::NotPublic) => {
            sql.push("visibility != 'public'", []);
            None
        }
        Some(VisibilityFilter::Public) => Some("public"),
        Some(VisibilityFilter::Private) => Some("private"),
        Some(VisibilityFilter::Shared) => Some("shared"),
        Some(VisibilityFilter::Community) => Some("community"),
    };
    match (name, project) {
        (Some(name), _) => sql.push("visibility = ?", [name.into()]),
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
        "container_format" => text(&img.container_format.map(|f| f.as_str().to_string())),
        "disk_format" => text(&img.disk_format.map(|f| f.as_str().to_string())),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::images::ImageRepo;
    use crate::image::Visibility;
    use crate::ports::memory::MemoryDb;
    use crate::ports::Database;
    use crate::settings::ImageLimits;
    use crate::timestamp::Timestamp;

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
            "INSERT INTO image_members (image_id, member, status, created_at, updated_at) \
             VALUES ('shared2', 'p1', 'pending', 'x', 'x')",
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

    #[test]
    fn a_page_of_huge_records_is_cut_by_bytes() {
        let db = MemoryDb::new();
        let repo = ImageRepo::open(&db).unwrap();
        let big = "x".repeat((PAGE_BYTES / 3) as usize);
        for (n, id) in ["a", "b", "c", "d"].iter().enumerate() {
            let mut i = img(id, "p1", n as i64);
            i.properties.insert("blob".into(), big.clone());
            repo.insert(&i).unwrap();
        }
        let q = ListQuery::parse("sort_key=name&sort_dir=asc", &ImageLimits::default()).unwrap();
        let (page, more) = repo.list(&q, &member("p1"), None).unwrap();
        assert_eq!((ids(&page), more), (vec!["a", "b"], true));
        let (rest, more) = repo.list(&q, &member("p1"), Some(&page[1])).unwrap();
        assert_eq!((ids(&rest), more), (vec!["c", "d"], false));
    }
}

//! The SQL of a list page: conditions, sort expressions, keyset paging after
//! the marker, and the statement each [`Driver`] runs.

use crate::auth::caller::Caller;
use crate::image::list_query::{
    CmpOp, Filter, ListQuery, MemberStatusFilter, SortDir, VisibilityFilter,
};
use crate::image::Image;
use crate::ports::SqlValue;

use super::plan::{driver_index, side_index, Arm, Driver, Lead, LIVE};
use crate::image::member::MemberStatus;

/// A row an arm walks in its own index order, joined to its image: its
/// alias and the column holding its image's `created_at` (it also carries
/// `image_id` and `sort_name`).
#[derive(Clone, Copy)]
struct Side {
    alias: &'static str,
    created_at: &'static str,
}

/// A tag's or a custom property's row (migration 8).
const TAG_OR_PROPERTY: Side = Side {
    alias: "l",
    created_at: "created_at",
};

/// A membership (migration 9; its own `created_at` is the membership's).
const MEMBERSHIP: Side = Side {
    alias: "m",
    created_at: "image_created_at",
};

/// Conditions and their parameters, joined with AND.
#[derive(Default)]
pub(super) struct SqlBuilder {
    pub(super) conditions: Vec<String>,
    pub(super) params: Vec<SqlValue>,
}

impl SqlBuilder {
    pub(super) fn push<I: IntoIterator<Item = SqlValue>>(
        &mut self,
        cond: impl Into<String>,
        params: I,
    ) {
        self.conditions.push(cond.into());
        self.params.extend(params);
    }
}

/// The statement of one page: rows of (id, record bytes), in sort order,
/// `limit + 1` of them.
pub(super) fn page_statement(
    driver: &Driver,
    q: &ListQuery,
    caller: &Caller,
    marker: Option<&Image>,
) -> (String, Vec<SqlValue>) {
    let mut params = Vec::new();
    let sql = match driver {
        Driver::Walk(arms, lead) => {
            let selects: Vec<String> = arms
                .iter()
                .flat_map(|arm| arm_selects(arm, lead.as_ref(), q, marker, &mut params))
                .collect();
            // No partition visible: a statement that selects nothing.
            if selects.is_empty() {
                return ("SELECT NULL, 0 WHERE 0".to_string(), Vec::new());
            }
            selects.join(" UNION ALL ")
        }
        Driver::Filter(f) => {
            let from = match (f, driver_index(f)) {
                (Filter::Tag(t), _) => {
                    params.push(t.clone().into());
                    "image_tags d CROSS JOIN images INDEXED BY sqlite_autoindex_images_1 WHERE d.tag = ? AND images.id = d.image_id \
                     AND "
                        .to_string()
                }
                (Filter::Property(k, v), _) => {
                    params.push(k.clone().into());
                    params.push(v.clone().into());
                    "image_properties d CROSS JOIN images INDEXED BY sqlite_autoindex_images_1 WHERE d.key = ? AND d.value = ? \
                     AND images.id = d.image_id AND "
                        .to_string()
                }
                (_, Some(index)) => format!("images INDEXED BY {index} WHERE "),
                (_, None) => "images WHERE ".to_string(),
            };
            one_select(&from, true, q, caller, marker, &mut params)
        }
        Driver::Changes => one_select(
            "images INDEXED BY images_changes WHERE ",
            false,
            q,
            caller,
            marker,
            &mut params,
        ),
    };
    let order: Vec<String> = q
        .sort
        .iter()
        .enumerate()
        .map(|(i, (_, d))| format!("{} {}", i + 2, dir_sql(*d)))
        .collect();
    let outer: Vec<String> = q
        .sort
        .iter()
        .enumerate()
        .map(|(i, (_, d))| format!("w.s{i} {}", dir_sql(*d)))
        .collect();
    params.push((i64::from(q.limit) + 1).into());
    // The walk reads narrow rows; the record bytes are counted for the
    // page's rows only (counting them reads every byte of a row's JSON).
    let sql = format!(
        "SELECT w.k, length(images.properties) + length(images.tags) + length(images.locations) \
         + IFNULL(length(images.name), 0) FROM ({sql} ORDER BY {} LIMIT ?) w \
         CROSS JOIN images INDEXED BY sqlite_autoindex_images_1 ON images.id = w.k ORDER BY {}",
        order.join(", "),
        outer.join(", ")
    );
    (sql, params)
}

/// The one statement of a driver that is not a walk: `from` (ending in
/// `WHERE ` or `AND `), live rows only when `live`, then what every driver
/// checks and Glance's visibility rules as one condition.
fn one_select(
    from: &str,
    live: bool,
    q: &ListQuery,
    caller: &Caller,
    marker: Option<&Image>,
    params: &mut Vec<SqlValue>,
) -> String {
    let mut b = SqlBuilder::default();
    if live {
        b.push(LIVE, []);
    }
    common(&mut b, q, marker);
    visibility_clause(&mut b, q, caller);
    params.extend(b.params);
    format!(
        "SELECT {} FROM {from}{}",
        select_list(q, None),
        b.conditions.join(" AND ")
    )
}

/// The id (`k`), then the sort values (`s0`, `s1`, ...; from the `side`
/// row when there is one, as its index orders them).
fn select_list(q: &ListQuery, side: Option<Side>) -> String {
    let mut cols = vec!["images.id AS k".to_string()];
    cols.extend(
        q.sort
            .iter()
            .enumerate()
            .map(|(i, (k, _))| format!("{} AS s{i}", sort_expr(k, side))),
    );
    cols.join(", ")
}

/// `os_hidden`, the filters and the marker: what every arm and driver checks
/// (the marker on the `side` row's columns when there is one).
fn common(b: &mut SqlBuilder, q: &ListQuery, marker: Option<&Image>) {
    common_on(b, q, marker, None)
}

fn common_on(b: &mut SqlBuilder, q: &ListQuery, marker: Option<&Image>, side: Option<Side>) {
    b.push("images.os_hidden = ?", [q.os_hidden.into()]);
    for f in &q.filters {
        match f {
            // A date bound on the first sort key on the marker's side: the
            // marker is where the walk starts (SQLite seeks to one of them),
            // so the bound is only checked (`+` keeps it off the index).
            Filter::Time(col, op, ts) if marker.is_some() && marker_side(q, col, *op) => b.push(
                format!("+images.{col} {} ?", op.sql()),
                [ts.to_string().into()],
            ),
            _ => filter_clause(b, f),
        }
    }
    if let Some(m) = marker {
        marker_clause(b, q, m, side);
    }
}

/// Whether `col op value` bounds the walk on the side a marker does: the
/// first sort key, from below when ascending, from above when descending.
fn marker_side(q: &ListQuery, col: &str, op: CmpOp) -> bool {
    match q.sort.first() {
        Some((key, dir)) if *key == col => match dir {
            SortDir::Asc => matches!(op, CmpOp::Gt | CmpOp::Gte),
            SortDir::Desc => matches!(op, CmpOp::Lt | CmpOp::Lte),
        },
        _ => false,
    }
}

/// One partition's rows in sort order, walked through the index on the
/// first sort key (the members arm sorts its few rows), or through the
/// lead's index from its value: one select, or one per value of the lead.
fn arm_selects(
    arm: &Arm,
    lead: Option<&Lead>,
    q: &ListQuery,
    marker: Option<&Image>,
    params: &mut Vec<SqlValue>,
) -> Vec<String> {
    let first = q.sort.first().map_or("created_at", |(k, _)| *k);
    // The partition: its visibility, owner and membership conditions.
    let (visibility, owner, member) = match arm {
        Arm::Visibility(v) => (*v, None, None),
        Arm::Owned(v, owner) => (*v, Some(owner), None),
        Arm::SharedWith { project, status } => {
            let status = status.map(|s| s.as_str());
            return vec![members_select(project, status, q, marker, params)];
        }
        Arm::SharedInOrder {
            project,
            statuses,
            owner,
        } => {
            return statuses
                .iter()
                .map(|s| memberships_in_order(project, *s, owner.as_deref(), q, marker, params))
                .collect()
        }
        Arm::SharedWalk {
            project,
            status,
            owner,
        } => ("shared", owner.as_ref(), Some((project, status))),
    };
    let partition = |b: &mut SqlBuilder, on: &str| {
        b.push(format!("{on}.visibility = '{visibility}'"), []);
        if let Some(o) = owner {
            b.push(format!("{on}.owner = ?"), [o.clone().into()]);
        }
        if let Some((project, status)) = member {
            b.push("images.owner IS NOT ?", [project.clone().into()]);
            let mut ps = vec![project.clone().into()];
            if let Some(s) = status {
                ps.push(s.as_str().into());
            }
            let status_cond = if status.is_some() {
                " AND m.status = ?"
            } else {
                ""
            };
            b.push(
                format!(
                    "EXISTS (SELECT 1 FROM image_members m WHERE m.image_id = images.id \
                     AND m.member = ?{status_cond})"
                ),
                ps,
            );
        }
    };
    let side_index = side_index(q).unwrap_or("created_at");
    match lead {
        None => {
            let mut b = SqlBuilder::default();
            b.push(LIVE, []);
            partition(&mut b, "images");
            common(&mut b, q, marker);
            let family = if owner.is_some() { "o" } else { "v" };
            vec![arm_statement(
                &format!("images INDEXED BY images_{family}_{first}"),
                b,
                q,
                None,
                params,
            )]
        }
        Some(Lead::Column(col, values)) => values
            .iter()
            .map(|v| {
                let mut b = SqlBuilder::default();
                b.push(format!("images.{col} = ?"), [(*v).into()]);
                b.push(LIVE, []);
                partition(&mut b, "images");
                common(&mut b, q, marker);
                arm_statement(
                    &format!("images INDEXED BY images_f_{col}"),
                    b,
                    q,
                    None,
                    params,
                )
            })
            .collect(),
        Some(Lead::Tag(t)) => {
            let key = ("l.tag = ?", vec![(*t).into()]);
            vec![side_select(
                "image_tags",
                key,
                side_index,
                partition,
                q,
                marker,
                params,
            )]
        }
        Some(Lead::Property(k, v)) => {
            let key = ("l.key = ? AND l.value = ?", vec![(*k).into(), (*v).into()]);
            vec![side_select(
                "image_properties",
                key,
                side_index,
                partition,
                q,
                marker,
                params,
            )]
        }
    }
}

/// An arm led from a side table's row `l` (tags or properties, `key` its
/// condition): walked in `l`'s index order, the image joined by id.
fn side_select(
    table: &str,
    key: (&str, Vec<SqlValue>),
    index: &str,
    partition: impl Fn(&mut SqlBuilder, &str),
    q: &ListQuery,
    marker: Option<&Image>,
    params: &mut Vec<SqlValue>,
) -> String {
    let mut b = SqlBuilder::default();
    b.push(key.0, key.1);
    b.push("l.os_hidden = ?", [q.os_hidden.into()]);
    b.push("l.live = 1", []);
    partition(&mut b, "l");
    b.push("images.id = l.image_id", []);
    b.push(LIVE, []);
    common_on(&mut b, q, marker, Some(TAG_OR_PROPERTY));
    let from = format!(
        "{table} l INDEXED BY {table}_l_{index} CROSS JOIN images INDEXED BY sqlite_autoindex_images_1"
    );
    arm_statement(&from, b, q, Some(TAG_OR_PROPERTY), params)
}

/// The images shared with `project` through memberships in `status`
/// (another owner's; only `owner`'s when given), walked in the order of the
/// memberships' own index, each image joined by id.
fn memberships_in_order(
    project: &str,
    status: MemberStatus,
    owner: Option<&str>,
    q: &ListQuery,
    marker: Option<&Image>,
    params: &mut Vec<SqlValue>,
) -> String {
    let mut b = SqlBuilder::default();
    b.push("m.member = ?", [project.into()]);
    b.push("m.status = ?", [status.as_str().into()]);
    b.push("m.os_hidden = ?", [q.os_hidden.into()]);
    b.push("m.visibility = 'shared'", []);
    b.push("m.live = 1", []);
    b.push("m.owner IS NOT ?", [project.into()]);
    if let Some(o) = owner {
        b.push("m.owner = ?", [o.into()]);
    }
    b.push("images.id = m.image_id", []);
    b.push(LIVE, []);
    common_on(&mut b, q, marker, Some(MEMBERSHIP));
    let index = side_index(q).unwrap_or("created_at");
    let from = format!(
        "image_members m INDEXED BY image_members_l_{index} \
         CROSS JOIN images INDEXED BY sqlite_autoindex_images_1"
    );
    arm_statement(&from, b, q, Some(MEMBERSHIP), params)
}

/// The members arm: the few images shared with the caller, by id, sorted.
fn members_select(
    project: &str,
    status: Option<&str>,
    q: &ListQuery,
    marker: Option<&Image>,
    params: &mut Vec<SqlValue>,
) -> String {
    let mut b = SqlBuilder::default();
    b.push("m.member = ?", [project.into()]);
    if let Some(s) = status {
        b.push("m.status = ?", [s.into()]);
    }
    b.push("images.id = m.image_id", []);
    b.push(LIVE, []);
    b.push("images.visibility = 'shared'", []);
    b.push("images.owner IS NOT ?", [project.into()]);
    common(&mut b, q, marker);
    arm_statement(
        "image_members m CROSS JOIN images INDEXED BY sqlite_autoindex_images_1",
        b,
        q,
        None,
        params,
    )
}

/// One arm's `SELECT` from `from` under `b`'s conditions, its parameters
/// appended to `params`.
fn arm_statement(
    from: &str,
    b: SqlBuilder,
    q: &ListQuery,
    side: Option<Side>,
    params: &mut Vec<SqlValue>,
) -> String {
    params.extend(b.params);
    format!(
        "SELECT {} FROM {from} WHERE {}",
        select_list(q, side),
        b.conditions.join(" AND ")
    )
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

/// Glance's listing rules as one condition, for drivers that start from a
/// filter's rows: what the caller may see, then the `visibility` filter.
/// The same rules as [`super::plan::arms`].
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
                        "(images.visibility IN ('public', 'community') OR images.owner = ? OR \
                         (images.visibility = 'shared' AND {}))",
                        member_exists(q.member_status)
                    ),
                    params,
                );
            }
            None => sql.push("images.visibility IN ('public', 'community')", []),
        }
    }
    let name = match q.visibility {
        Some(VisibilityFilter::All) => return,
        None => None,
        Some(VisibilityFilter::NotPublic) => {
            sql.push("images.visibility != 'public'", []);
            None
        }
        Some(VisibilityFilter::Public) => Some("public"),
        Some(VisibilityFilter::Private) => Some("private"),
        Some(VisibilityFilter::Shared) => Some("shared"),
        Some(VisibilityFilter::Community) => Some("community"),
    };
    match (name, project) {
        (Some(name), _) => sql.push("images.visibility = ?", [name.into()]),
        (None, Some(p)) => sql.push(
            "(images.owner = ? OR images.visibility != 'community')",
            [p.into()],
        ),
        (None, None) => sql.push("images.visibility != 'community'", []),
    }
}

/// One filter as a condition on `images`.
pub(super) fn filter_clause(sql: &mut SqlBuilder, f: &Filter) {
    match f {
        Filter::Equals(col, v) => sql.push(format!("images.{col} = ?"), [v.clone().into()]),
        Filter::In(col, values) => {
            let marks = vec!["?"; values.len()].join(", ");
            sql.push(
                format!("images.{col} IN ({marks})"),
                values.iter().map(|v| SqlValue::from(v.clone())),
            );
        }
        Filter::Range(col, op, n) => {
            sql.push(format!("images.{col} {} ?", op.sql()), [(*n).into()])
        }
        Filter::Time(col, op, ts) => sql.push(
            format!("images.{col} {} ?", op.sql()),
            [ts.to_string().into()],
        ),
        Filter::Tag(t) => sql.push(
            "EXISTS (SELECT 1 FROM image_tags t WHERE t.tag = ? AND t.image_id = images.id)",
            [t.clone().into()],
        ),
        Filter::Property(k, v) => sql.push(
            "EXISTS (SELECT 1 FROM image_properties p WHERE p.key = ? AND p.value = ? \
             AND p.image_id = images.id)",
            [k.clone().into(), v.clone().into()],
        ),
    }
}

/// The column a key sorts by: NULL compares as the type's default, as in
/// Glance's paging (the `sort_*` columns of migration 6, which its indexes hold).
/// On a side row (for the keys its indexes hold), its own copies:
/// `sort_name`, its image's `created_at` and `image_id`.
fn sort_expr(key: &str, side: Option<Side>) -> String {
    match (key, side) {
        ("id", Some(l)) => format!("{}.image_id", l.alias),
        ("name", Some(l)) => format!("{}.sort_name", l.alias),
        ("created_at", Some(l)) => format!("{}.{}", l.alias, l.created_at),
        ("id" | "status" | "created_at" | "updated_at", _) => format!("images.{key}"),
        (k, _) => format!("images.sort_{k}"),
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

/// Rows strictly after the marker in sort order. One direction throughout:
/// a row-value comparison, which an index seeks to. Mixed directions: the
/// first key bounds the seek, and (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...
/// picks the rows after the marker among its ties.
fn marker_clause(sql: &mut SqlBuilder, q: &ListQuery, marker: &Image, side: Option<Side>) {
    let sort_expr = |k: &str| sort_expr(k, side);
    let Some((first, first_dir)) = q.sort.first() else {
        return;
    };
    let cmp = |d: SortDir| if d == SortDir::Asc { ">" } else { "<" };
    if q.sort.iter().all(|(_, d)| d == first_dir) {
        let exprs: Vec<String> = q.sort.iter().map(|(k, _)| sort_expr(k)).collect();
        let marks = vec!["?"; exprs.len()].join(", ");
        sql.push(
            format!("({}) {} ({marks})", exprs.join(", "), cmp(*first_dir)),
            q.sort.iter().map(|(k, _)| sort_value(marker, k)),
        );
        return;
    }
    sql.push(
        format!("{} {}= ?", sort_expr(first), cmp(*first_dir)),
        [sort_value(marker, first)],
    );
    let mut alternatives = Vec::new();
    let mut params = Vec::new();
    for (i, (key, dir)) in q.sort.iter().enumerate() {
        let mut parts = Vec::new();
        for (prev, _) in &q.sort[..i] {
            parts.push(format!("{} = ?", sort_expr(prev)));
            params.push(sort_value(marker, prev));
        }
        parts.push(format!("{} {} ?", sort_expr(key), cmp(*dir)));
        params.push(sort_value(marker, key));
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    sql.push(format!("({})", alternatives.join(" OR ")), params);
}

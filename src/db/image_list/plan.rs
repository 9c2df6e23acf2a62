//! Which rows a list page starts from.
//!
//! Two ways, chosen per request so that no page reads a share of the
//! catalogue:
//! - [`Driver::Walk`]: each visibility partition the caller sees ([`Arm`]) is
//!   walked in sort order through its index and the partitions are merged, so
//!   a page reads about as many index entries as it shows — when the filters
//!   keep most rows.
//! - [`Driver::Filter`]: the rows of the most selective filter, found through
//!   its index and then sorted — when that filter keeps fewer than the probe's
//!   cap (one counting query, `LIMIT cap`, over all indexed filters at once).
//!
//! A walk with an equality filter that keeps many rows starts each arm from
//! that filter's index ([`Lead`]), which continues in the partition's sort
//! order: the arm then reads what it shows, not the rows the filter drops.
//!
//! Either way the work is bounded by the cap or the page, not the catalogue.

use crate::auth::caller::Caller;
use crate::image::list_query::{Filter, ListQuery, MemberStatusFilter, VisibilityFilter};
use crate::image::member::MemberStatus;
use crate::ports::{Database, SqlValue, StoreError};

use super::sql::{filter_clause, SqlBuilder};

/// Rows a filter may select and still drive a page (they are sorted whole).
pub(crate) const PROBE_CAP: i64 = 2000;

/// The condition a partial index of live rows carries (written as in the
/// migration, so SQLite sees that a query implies it).
pub(super) const LIVE: &str = "images.deleted = 0 AND images.status != 'killed'";

/// One visibility partition a caller sees, walked in sort order.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Arm {
    /// Every live image of this visibility (`images_v_*`).
    Visibility(&'static str),
    /// This owner's images of this visibility (`images_o_*`).
    Owned(&'static str, String),
    /// Shared images another project owns and made `project` a member of
    /// (memberships in `status`, or any), through the members index and
    /// sorted: when the project has few memberships.
    SharedWith {
        /// The member.
        project: String,
        /// Only memberships in this state.
        status: Option<MemberStatus>,
    },
    /// The same images, walked in sort order through the shared partition
    /// (that owner's, with an `owner=` filter) with a membership check on
    /// the way: when the project has many.
    SharedWalk {
        /// The member.
        project: String,
        /// Only memberships in this state.
        status: Option<MemberStatus>,
        /// Only this owner's images.
        owner: Option<String>,
    },
    /// The same images, walked in sort order through the project's
    /// memberships, which carry their image's listing columns (migration 9):
    /// one sub-arm per status. When no other lead starts the walk and the
    /// order is one the memberships' indexes hold ([`side_index`]).
    SharedInOrder {
        /// The member.
        project: String,
        /// Memberships in these states.
        statuses: Vec<MemberStatus>,
        /// Only this owner's images.
        owner: Option<String>,
    },
}

/// Rows a filter may select and still be sorted whole rather than led
/// from (a few row reads cost less than one seek per arm).
const FEW: i64 = 64;

/// An equality filter whose index continues with the visibility partition
/// and the sort order (migration 8): a walked arm starts from its value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Lead<'q> {
    /// `images.<col>` equal to one of these values (one sub-arm each),
    /// through `images_f_<col>`; the default order only.
    Column(&'static str, Vec<&'q str>),
    /// A tag, through `image_tags_l_*` (default order or by name).
    Tag(&'q str),
    /// A custom property, through `image_properties_l_*` (same orders).
    Property(&'q str, &'q str),
}

/// Columns whose `images_f_*` index a walk can lead from.
const LEAD_COLUMNS: [&str; 4] = ["name", "status", "container_format", "disk_format"];

/// Most values of an `in:` filter a lead walks (one sub-arm per value).
const LEAD_VALUES: usize = 8;

/// How the rows of a page are found.
#[derive(Debug)]
pub(super) enum Driver<'q> {
    /// Walk the caller's partitions in sort order, merged, each from the
    /// lead's value when there is one.
    Walk(Vec<Arm>, Option<Lead<'q>>),
    /// Start from the few rows this filter selects, then sort them.
    Filter(&'q Filter),
    /// The v1 API's `changes-since`: deleted rows too, from `images_changes`.
    Changes,
}

/// Picks the driver for `q`; `cap` is [`PROBE_CAP`] and `leads` true except
/// in tests (cap 0 always walks, `i64::MAX` always starts from a filter when
/// one has an index; without `leads` a walk reads whole partitions).
pub(super) fn choose<'q>(
    db: &dyn Database,
    q: &'q ListQuery,
    caller: &Caller,
    cap: i64,
    leads: bool,
) -> Result<Driver<'q>, StoreError> {
    if q.include_deleted {
        return Ok(Driver::Changes);
    }
    let (selects, params, counted, mut counts) = probes(q, cap);
    if (selects.is_empty() && counts.is_empty()) || cap <= 0 {
        let lead = if leads { lead(q, &counts) } else { None };
        return walk(db, q, caller, cap, leads, lead);
    }
    if !selects.is_empty() {
        let rows = db.execute(&probe_sql(&selects), &params)?;
        let row = rows.rows.into_iter().next().unwrap_or_default();
        for (group, v) in counted.into_iter().zip(row) {
            let n = v.as_i64().unwrap_or(i64::MAX);
            counts.extend(group.into_iter().map(|f| (f, n)));
        }
    }
    let fewest = counts.iter().copied().min_by_key(|(_, n)| *n);
    let lead = if leads { lead(q, &counts) } else { None };
    match (fewest, lead) {
        (Some((f, n)), _) if n < FEW.min(cap) => Ok(Driver::Filter(f)),
        (_, Some(lead)) => walk(db, q, caller, cap, leads, Some(lead)),
        (Some((f, n)), None) if n < cap => Ok(Driver::Filter(f)),
        _ => walk(db, q, caller, cap, leads, None),
    }
}

/// The lead of a walk of `q`: the equality filter with the fewest rows
/// (`counts`, where probed) whose index serves `q`'s order.
fn lead<'q>(q: &'q ListQuery, counts: &[(&'q Filter, i64)]) -> Option<Lead<'q>> {
    let side = side_index(q);
    let default_order = side == Some("created_at");
    let count = |f: &Filter| {
        counts
            .iter()
            .find(|(c, _)| std::ptr::eq(*c, f))
            .map_or(i64::MAX, |(_, n)| *n)
    };
    q.filters
        .iter()
        .filter_map(|f| {
            let lead = match f {
                Filter::Equals(col, v) if default_order && LEAD_COLUMNS.contains(col) => {
                    Lead::Column(col, vec![v.as_str()])
                }
                Filter::In(col, vs)
                    if default_order && LEAD_COLUMNS.contains(col) && vs.len() <= LEAD_VALUES =>
                {
                    // One sub-arm per distinct value: `in:a,a` lists each image once.
                    let mut values: Vec<&str> = vs.iter().map(String::as_str).collect();
                    values.sort_unstable();
                    values.dedup();
                    Lead::Column(col, values)
                }
                Filter::Tag(t) if side.is_some() => Lead::Tag(t),
                Filter::Property(k, v) if side.is_some() => Lead::Property(k, v),
                _ => return None,
            };
            Some((count(f), lead))
        })
        .min_by_key(|(n, _)| *n)
        .map(|(_, lead)| lead)
}

/// The order of `q` as a side row's index holds it (tags, properties and
/// memberships carry `created_at` and the name of their image): the suffix
/// of `_l_*` indexes, for the default order and by name, one direction.
pub(super) fn side_index(q: &ListQuery) -> Option<&'static str> {
    if q.sort.iter().any(|(_, d)| *d != q.sort[0].1) {
        return None;
    }
    let keys: Vec<&str> = q.sort.iter().map(|(k, _)| *k).collect();
    match keys.as_slice() {
        ["created_at", "id"] => Some("created_at"),
        ["name", "created_at", "id"] => Some("name"),
        _ => None,
    }
}

/// The walk of the caller's partitions. Its memberships: walked in order
/// when `leads` allows, there is no other lead and the order is one their
/// index holds; else sorted whole when fewer than a quarter of `cap` (one
/// counting query), else found on a walk of the shared partition.
fn walk<'q>(
    db: &dyn Database,
    q: &'q ListQuery,
    caller: &Caller,
    cap: i64,
    leads: bool,
    lead: Option<Lead<'q>>,
) -> Result<Driver<'q>, StoreError> {
    let mut arms = arms(q, caller);
    let few = cap / 4;
    let in_order = leads && lead.is_none() && side_index(q).is_some();
    for arm in &mut arms {
        let Arm::SharedWith { project, status } = arm else {
            continue;
        };
        if in_order {
            *arm = Arm::SharedInOrder {
                project: std::mem::take(project),
                statuses: status.map_or_else(|| MemberStatus::ALL.to_vec(), |s| vec![s]),
                owner: owner_filter(q).cloned(),
            };
            continue;
        }
        let mut params: Vec<SqlValue> = vec![project.as_str().into()];
        let mut sql =
            "SELECT count(*) FROM (SELECT 1 FROM image_members WHERE member = ?".to_string();
        if let Some(s) = status {
            sql.push_str(" AND status = ?");
            params.push(s.as_str().into());
        }
        sql.push_str(" LIMIT ?)");
        params.push(few.max(0).into());
        let n = if few > 0 {
            let rows = db.execute(&sql, &params)?;
            rows.rows
                .first()
                .and_then(|r| r.first())
                .and_then(SqlValue::as_i64)
                .unwrap_or(i64::MAX)
        } else {
            0
        };
        if few <= 0 || n >= few {
            *arm = Arm::SharedWalk {
                project: std::mem::take(project),
                status: *status,
                owner: owner_filter(q).cloned(),
            };
        }
    }
    Ok(Driver::Walk(arms, lead))
}

/// Counting subqueries, their parameters, the filters each counts, and the
/// filters whose counts are known without one.
type Probes<'q> = (
    Vec<String>,
    Vec<SqlValue>,
    Vec<Vec<&'q Filter>>,
    Vec<(&'q Filter, i64)>,
);

fn probes(q: &ListQuery, cap: i64) -> Probes<'_> {
    let mut out: Probes = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, f) in q.filters.iter().enumerate() {
        // The bounds of one column are counted together, by the first: the
        // rows between them are what starting from that column reads (one
        // seek of its index), and one count reads them once.
        let col = bound_column(f);
        if col.is_some() && q.filters[..i].iter().any(|g| bound_column(g) == col) {
            continue;
        }
        let group: Vec<&Filter> = match col {
            Some(_) => q
                .filters
                .iter()
                .filter(|g| bound_column(g) == col)
                .collect(),
            None => vec![f],
        };
        match probe(&group, q.os_hidden, cap) {
            Some(Probe::Count(n)) => out.3.push((f, n)),
            Some(Probe::Sql(sql, ps)) => {
                out.0.push(format!("({sql})"));
                out.1.extend(ps);
                out.2.push(group);
            }
            None => {}
        }
    }
    out
}

/// The column a filter bounds from one side (a size range, a date
/// comparison other than `neq`).
fn bound_column(f: &Filter) -> Option<&str> {
    match f {
        Filter::Range(col, _, _) => Some(col),
        Filter::Time(col, op, _) if *op != crate::image::list_query::CmpOp::Neq => Some(col),
        _ => None,
    }
}

fn probe_sql(selects: &[String]) -> String {
    format!("SELECT {}", selects.join(", "))
}

/// The counting statement [`choose`] runs for `q`, if any (for the plan tests).
#[cfg(test)]
pub(super) fn probe_statement(q: &ListQuery, cap: i64) -> Option<(String, Vec<SqlValue>)> {
    let (selects, params, _, _) = probes(q, cap);
    (!selects.is_empty()).then(|| (probe_sql(&selects), params))
}

/// How many rows a filter selects, at most the cap: known, or a counting
/// subquery with its parameters.
enum Probe {
    Count(i64),
    Sql(String, Vec<SqlValue>),
}

/// The index a filter can drive a page from; `None` for filters without one
/// (`!=` on a date).
pub(super) fn driver_index(f: &Filter) -> Option<&'static str> {
    Some(match f {
        Filter::Equals(col, _) | Filter::In(col, _) => column_index(col)?,
        Filter::Range(col, _, _) => column_index(col)?,
        Filter::Time(_, crate::image::list_query::CmpOp::Neq, _) => return None,
        Filter::Time(col, _, _) => column_index(col)?,
        Filter::Tag(_) => "image_tags",
        Filter::Property(_, _) => "image_properties",
    })
}

/// The index whose leading column is `col` (the owner's leads its partitions).
fn column_index(col: &str) -> Option<&'static str> {
    Some(match col {
        "id" => "sqlite_autoindex_images_1",
        "owner" => "images_o_created_at",
        "name" => "images_f_name",
        "status" => "images_f_status",
        "container_format" => "images_f_container_format",
        "disk_format" => "images_f_disk_format",
        "checksum" => "images_f_checksum",
        "os_hash_value" => "images_f_os_hash_value",
        "os_hash_algo" => "images_f_os_hash_algo",
        "min_ram" => "images_f_min_ram",
        "min_disk" => "images_f_min_disk",
        "size" => "images_f_size",
        "virtual_size" => "images_f_virtual_size",
        "protected" => "images_f_protected",
        "created_at" => "images_f_created_at",
        "updated_at" => "images_f_updated_at",
        _ => return None,
    })
}

/// The probe of `group`: one filter, or a column's bounds (the first
/// names the index).
fn probe(group: &[&Filter], os_hidden: bool, cap: i64) -> Option<Probe> {
    let f = *group.first()?;
    let index = driver_index(f)?;
    Some(match f {
        Filter::Equals("id", _) => Probe::Count(1),
        Filter::In("id", ids) => Probe::Count(ids.len() as i64),
        // Side rows of deleted and hidden images count too: an overestimate
        // only walks where starting from the filter would have done.
        Filter::Tag(t) => Probe::Sql(
            "SELECT count(*) FROM (SELECT 1 FROM image_tags WHERE tag = ? LIMIT ?)".into(),
            vec![t.clone().into(), cap.into()],
        ),
        Filter::Property(k, v) => Probe::Sql(
            "SELECT count(*) FROM (SELECT 1 FROM image_properties WHERE key = ? AND value = ? \
             LIMIT ?)"
                .into(),
            vec![k.clone().into(), v.clone().into(), cap.into()],
        ),
        _ => {
            let mut sql = SqlBuilder::default();
            for g in group {
                filter_clause(&mut sql, g);
            }
            sql.push("images.os_hidden = ?", [os_hidden.into()]);
            sql.push(LIVE, []);
            sql.params.push(cap.into());
            Probe::Sql(
                format!(
                    "SELECT count(*) FROM (SELECT 1 FROM images INDEXED BY {index} WHERE {} \
                     LIMIT ?)",
                    sql.conditions.join(" AND ")
                ),
                sql.params,
            )
        }
    })
}

/// The partitions `caller` sees under `q`'s visibility filter — Glance's
/// listing rules, as disjoint arms.
pub(super) fn arms(q: &ListQuery, caller: &Caller) -> Vec<Arm> {
    use Arm::{Owned, Visibility as V};
    let project = caller.project_id.clone();
    let arms = if caller.is_admin() && !q.admin_as_user {
        let own_community = project.map(|p| Owned("community", p));
        match q.visibility {
            None => [V("public"), V("private"), V("shared")]
                .into_iter()
                .chain(own_community)
                .collect(),
            Some(VisibilityFilter::NotPublic) => [V("private"), V("shared")]
                .into_iter()
                .chain(own_community)
                .collect(),
            Some(VisibilityFilter::All) => {
                vec![V("public"), V("private"), V("shared"), V("community")]
            }
            Some(VisibilityFilter::Public) => vec![V("public")],
            Some(VisibilityFilter::Private) => vec![V("private")],
            Some(VisibilityFilter::Shared) => vec![V("shared")],
            Some(VisibilityFilter::Community) => vec![V("community")],
        }
    } else {
        match project {
            None => match q.visibility {
                None | Some(VisibilityFilter::Public) => vec![V("public")],
                Some(VisibilityFilter::Community) => vec![V("community")],
                Some(VisibilityFilter::All) => vec![V("public"), V("community")],
                Some(_) => Vec::new(),
            },
            Some(p) => {
                let with = Arm::SharedWith {
                    project: p.clone(),
                    status: match q.member_status {
                        MemberStatusFilter::Only(s) => Some(s),
                        MemberStatusFilter::All => None,
                    },
                };
                let own = |v| Owned(v, p.clone());
                match q.visibility {
                    None => vec![
                        V("public"),
                        own("private"),
                        own("shared"),
                        own("community"),
                        with,
                    ],
                    Some(VisibilityFilter::Public) => vec![V("public")],
                    Some(VisibilityFilter::Private) => vec![own("private")],
                    Some(VisibilityFilter::Shared) => vec![own("shared"), with],
                    Some(VisibilityFilter::Community) => vec![V("community")],
                    Some(VisibilityFilter::All) => vec![
                        V("public"),
                        V("community"),
                        own("private"),
                        own("shared"),
                        with,
                    ],
                    Some(VisibilityFilter::NotPublic) => {
                        vec![own("private"), own("shared"), own("community"), with]
                    }
                }
            }
        }
    };
    narrow_to_owner(arms, q)
}

/// An `owner=` filter walks that owner's partitions: a partition of any owner
/// becomes that owner's, another owner's is dropped.
fn narrow_to_owner(arms: Vec<Arm>, q: &ListQuery) -> Vec<Arm> {
    let Some(owner) = owner_filter(q) else {
        return arms;
    };
    arms.into_iter()
        .filter_map(|a| match a {
            Arm::Visibility(v) => Some(Arm::Owned(v, owner.clone())),
            Arm::Owned(v, p) => (p == *owner).then_some(Arm::Owned(v, p)),
            // The caller's own images are never shared with it.
            Arm::SharedWith { project, .. } if project == *owner => None,
            with @ Arm::SharedWith { .. } => Some(with),
            Arm::SharedWalk { project, .. } if project == *owner => None,
            Arm::SharedWalk {
                project, status, ..
            } => Some(Arm::SharedWalk {
                project,
                status,
                owner: Some(owner.clone()),
            }),
            // Made by `walk` from a narrowed `SharedWith`, with the owner.
            in_order @ Arm::SharedInOrder { .. } => Some(in_order),
        })
        .collect()
}

/// The value of the first `owner=` filter.
fn owner_filter(q: &ListQuery) -> Option<&String> {
    q.filters.iter().find_map(|f| match f {
        Filter::Equals("owner", o) => Some(o),
        _ => None,
    })
}

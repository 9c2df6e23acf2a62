//! `GET /v2/images` query parameters: filters, sorting, paging, and the
//! `first`/`next` links that carry them.
//!
//! Parsing validates everything Glance validates (bad limit, marker shape, sort
//! key or direction, filter operators and dates → 400) and produces a
//! storage-agnostic [`ListQuery`]; `db::image_list` turns it into SQL.

mod values;

use values::{op_filter, range_param, sort_key, time_filter};

use crate::error::{ApiError, ApiResult};
use crate::image::member::MemberStatus;
use crate::settings::ImageLimits;
use crate::timestamp::Timestamp;

/// Columns a list may be sorted by.
pub const SORT_KEYS: [&str; 8] = [
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
];

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl SortDir {
    fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "asc" => Ok(SortDir::Asc),
            "desc" => Ok(SortDir::Desc),
            other => Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}"
            ))),
        }
    }
}

/// A comparison operator of `created_at`/`updated_at` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Neq,
    /// `>`
    Gt,
    /// `>=`
    Gte,
    /// `<`
    Lt,
    /// `<=`
    Lte,
}

impl CmpOp {
    /// The SQL operator.
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Neq => "!=",
            CmpOp::Gt => ">",
            CmpOp::Gte => ">=",
            CmpOp::Lt => "<",
            CmpOp::Lte => "<=",
        }
    }
}

/// Which images a `visibility=` parameter selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisibilityFilter {
    /// `public`
    Public,
    /// `private`
    Private,
    /// `shared`
    Shared,
    /// `community`
    Community,
    /// `all`: everything the caller may see, community images included.
    All,
    /// Anything but public (the v1 API's `is_public=false`); community
    /// images only the caller's own, as without a filter.
    NotPublic,
}

/// `member_status=`: which shared-with-me images appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatusFilter {
    /// Only memberships in this state.
    Only(MemberStatus),
    /// Any membership state.
    All,
}

/// One filter condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// A column equals a value (`name=x`, `size=5`, `protected=true` → "1").
    Equals(&'static str, String),
    /// A column is one of several values (`name=in:a,b`).
    In(&'static str, Vec<String>),
    /// A numeric column is at least / at most (`size_min`, `size_max`).
    Range(&'static str, CmpOp, i64),
    /// A timestamp column compared with a time.
    Time(&'static str, CmpOp, Timestamp),
    /// The image carries this tag.
    Tag(String),
    /// A custom property equals a value.
    Property(String, String),
}

/// A validated image list request.
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    /// Page size, already capped by `api_limit_max`.
    pub limit: u32,
    /// Id of the last image of the previous page.
    pub marker: Option<String>,
    /// Sort keys with directions, `created_at` and `id` appended as tie-breakers.
    pub sort: Vec<(&'static str, SortDir)>,
    /// Conditions, all of which must hold.
    pub filters: Vec<Filter>,
    /// `visibility=`, if given.
    pub visibility: Option<VisibilityFilter>,
    /// `member_status=` (default accepted).
    pub member_status: MemberStatusFilter,
    /// `os_hidden=true` lists only hidden images; default lists only visible ones.
    pub os_hidden: bool,
    /// Deleted images too (the v1 API's `changes-since`).
    pub include_deleted: bool,
    /// An admin lists what a user of its project would (the v1 API's default).
    pub admin_as_user: bool,
    /// The parameters as received, in order, for the `first`/`next` links.
    params: Vec<(String, String)>,
}

/// Columns that take exact / `in:` / `eq:` filters.
const OP_COLUMNS: [&str; 5] = ["name", "id", "status", "container_format", "disk_format"];
/// Other image columns that take plain equality.
const EQ_COLUMNS: [&str; 6] = [
    "owner",
    "checksum",
    "os_hash_value",
    "os_hash_algo",
    "min_ram",
    "min_disk",
];
/// Filter values and sort keys one list may carry: well above any real
/// query, and well below what makes SQLite refuse the statement.
pub const MAX_TERMS: usize = 100;

/// Numeric columns with `_min`/`_max` range filters (and plain equality).
const RANGE_COLUMNS: [&str; 2] = ["size", "virtual_size"];

fn static_name(list: &[&'static str], name: &str) -> Option<&'static str> {
    list.iter().copied().find(|c| *c == name)
}

impl ListQuery {
    /// A query without filters, sorted by `sort` (then `created_at` and `id`
    /// in the first key's direction), for callers that read their own
    /// parameters (the v1 API).
    pub fn new(limit: u32, sort: Vec<(&'static str, SortDir)>) -> Self {
        let mut q = ListQuery {
            limit,
            marker: None,
            sort,
            filters: Vec::new(),
            visibility: None,
            member_status: MemberStatusFilter::Only(MemberStatus::Accepted),
            os_hidden: false,
            include_deleted: false,
            admin_as_user: false,
            params: Vec::new(),
        };
        let default_dir = q.sort.first().map_or(SortDir::Desc, |(_, d)| *d);
        if q.sort.is_empty() {
            q.sort.push(("created_at", default_dir));
        }
        for tie in ["created_at", "id"] {
            if !q.sort.iter().any(|(k, _)| *k == tie) {
                q.sort.push((tie, default_dir));
            }
        }
        q
    }

    /// Parses a raw query string (without `?`).
    pub fn parse(query: &str, limits: &ImageLimits) -> ApiResult<Self> {
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut q = ListQuery {
            limit: limits.limit_param_default,
            marker: None,
            sort: Vec::new(),
            filters: Vec::new(),
            visibility: None,
            member_status: MemberStatusFilter::Only(MemberStatus::Accepted),
            os_hidden: false,
            include_deleted: false,
            admin_as_user: false,
            params: params.clone(),
        };
        let mut sort_keys: Vec<&'static str> = Vec::new();
        let mut sort_dirs: Vec<SortDir> = Vec::new();
        let mut new_sort: Option<&str> = None;
        let mut classic_sort = false;

        for (k, v) in &params {
            match k.as_str() {
                "limit" => {
                    let n: i64 = v
                        .trim()
                        .parse()
                        .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
                    if n < 0 {
                        return Err(ApiError::bad_request("limit param must be positive"));
                    }
                    q.limit = n.min(limits.api_limit_max as i64) as u32;
                }
                "marker" => q.marker = Some(v.clone()),
                "sort_key" => {
                    classic_sort = true;
                    sort_keys.push(sort_key(v.trim())?);
                }
                "sort_dir" => {
                    classic_sort = true;
                    sort_dirs.push(SortDir::parse(v.trim())?);
                }
                "sort" => new_sort = Some(v),
                "member_status" => {
                    q.member_status = match (v.as_str(), MemberStatus::parse(v)) {
                        (_, Some(status)) => MemberStatusFilter::Only(status),
                        ("all", None) => MemberStatusFilter::All,
                        (other, None) => {
                            return Err(ApiError::bad_request(format!("Invalid status: {other}")))
                        }
                    }
                }
                "visibility" => {
                    q.visibility = Some(match v.as_str() {
                        "public" => VisibilityFilter::Public,
                        "private" => VisibilityFilter::Private,
                        "shared" => VisibilityFilter::Shared,
                        "community" => VisibilityFilter::Community,
                        "all" => VisibilityFilter::All,
                        other => {
                            return Err(ApiError::bad_request(format!(
                                "Invalid visibility value: {other}"
                            )))
                        }
                    })
                }
                "os_hidden" => {
                    q.os_hidden = match v.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "Invalid value '{v}' for 'os_hidden' filter. Valid values are \
                                 'true' or 'false'."
                            )))
                        }
                    }
                }
                "protected" => {
                    let b = match v.as_str() {
                        "true" => "1",
                        "false" => "0",
                        _ => {
                            return Err(ApiError::bad_request(format!(
                                "Invalid value '{v}' for 'protected' filter. Valid values are \
                                 'true' or 'false'."
                            )))
                        }
                    };
                    q.filters.push(Filter::Equals("protected", b.into()));
                }
                "tag" => q.filters.push(Filter::Tag(v.trim().to_string())),
                "changes-since" => {
                    return Err(ApiError::bad_request(
                        "The \"changes-since\" filter is no longer available on v2.",
                    ))
                }
                "created_at" | "updated_at" => {
                    let col = if k == "created_at" {
                        "created_at"
                    } else {
                        "updated_at"
                    };
                    q.filters.push(time_filter(col, v)?);
                }
                name => {
                    if let Some(col) = static_name(&OP_COLUMNS, name) {
                        q.filters.push(op_filter(col, v)?);
                    } else if let Some(col) =
                        static_name(&EQ_COLUMNS, name).or_else(|| static_name(&RANGE_COLUMNS, name))
                    {
                        q.filters.push(Filter::Equals(col, v.clone()));
                    } else if let Some((col, op)) = range_param(name) {
                        let n: i64 = v.trim().parse().map_err(|_| {
                            ApiError::bad_request(
                                "Unable to filter on a range with a non-numeric value.",
                            )
                        })?;
                        q.filters.push(Filter::Range(col, op, n));
                    } else {
                        q.filters
                            .push(Filter::Property(name.to_string(), v.clone()));
                    }
                }
            }
        }

        if let Some(spec) = new_sort {
            if classic_sort {
                return Err(ApiError::bad_request(
                    "Old and new sorting syntax cannot be combined",
                ));
            }
            for part in spec.trim().split(',') {
                let (key, dir) = part.split_once(':').unwrap_or((part, ""));
                sort_keys.push(sort_key(key.trim())?);
                let dir = dir.trim();
                sort_dirs.push(if dir.is_empty() {
                    SortDir::Desc
                } else {
                    SortDir::parse(dir)?
                });
            }
        } else if sort_dirs.len() > 1 && sort_dirs.len() != sort_keys.len() {
            return Err(ApiError::bad_request(
                "Number of sort dirs does not match the number of sort keys",
            ));
        }
        if sort_keys.is_empty() {
            sort_keys.push("created_at");
        }
        let default_dir = sort_dirs.first().copied().unwrap_or(SortDir::Desc);
        q.sort = sort_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let dir = if sort_dirs.len() > 1 {
                    sort_dirs[i]
                } else {
                    default_dir
                };
                (*k, dir)
            })
            .collect();
        for tie in ["created_at", "id"] {
            if !q.sort.iter().any(|(k, _)| *k == tie) {
                q.sort.push((tie, default_dir));
            }
        }
        let terms: usize = q
            .filters
            .iter()
            .map(|f| match f {
                Filter::In(_, values) => values.len(),
                _ => 1,
            })
            .sum::<usize>()
            + q.sort.len();
        if terms > MAX_TERMS {
            return Err(ApiError::bad_request(format!(
                "Too many filters and sort keys: {terms} given, at most {MAX_TERMS} are accepted."
            )));
        }
        Ok(q)
    }

    /// Root-relative link to the first page: the same query without `marker`.
    pub fn first_link(&self) -> String {
        self.link(None)
    }

    /// Root-relative link to the page after the image `last_id`.
    pub fn next_link(&self, last_id: &str) -> String {
        self.link(Some(last_id))
    }

    fn link(&self, marker: Option<&str>) -> String {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        let mut any = false;
        for (k, v) in self.params.iter().filter(|(k, _)| k != "marker") {
            ser.append_pair(k, v);
            any = true;
        }
        if let Some(m) = marker {
            ser.append_pair("marker", m);
            any = true;
        }
        if any {
            format!("/v2/images?{}", ser.finish())
        } else {
            "/v2/images".to_string()
        }
    }
}

#[cfg(test)]
mod tests;

//! `GET /v1/images[/detail]` parameters, read the way Glance 15 read them
//! (`glance/api/v1/images.py` and the registry's `_get_query_params`), into
//! the [`ListQuery`] that `db::image_list` runs for v2 too.
//!
//! Filters: `name`, `status`, `container_format`, `disk_format`, `min_ram`,
//! `min_disk`, `size_min`, `size_max`, `protected`, `is_public`,
//! `changes-since` and `property-<key>`; paging `limit`/`marker`; one
//! `sort_key` and `sort_dir` (default `created_at` `desc`). Unknown
//! parameters are ignored, as Glance ignored them. Shared images are listed
//! whatever the membership's status (v1 has none).

use crate::auth::caller::Caller;
use crate::error::{ApiError, ApiResult};
use crate::image::list_query::{
    CmpOp, Filter, ListQuery, MemberStatusFilter, SortDir, VisibilityFilter, MAX_TERMS, SORT_KEYS,
};
use crate::image::schema;
use crate::settings::ImageLimits;
use crate::timestamp::Timestamp;

/// Parses a v1 list query string for `caller`.
///
/// `is_public` follows Glance for admins: absent, an admin lists what a user
/// of its project would; `none` lists every project's images, `false` every
/// project's non-public ones. Unlike Glance (which ignored it for everyone
/// but admins, and read `true` from an admin as "list as a user"), `true`
/// and `false` select public and non-public images for every caller.
pub(crate) fn parse(query: &str, limits: &ImageLimits, caller: &Caller) -> ApiResult<ListQuery> {
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let limit = match get("limit") {
        None => limits.limit_param_default,
        Some(v) => {
            let n: i64 = v
                .trim()
                .parse()
                .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
            if n < 0 {
                return Err(ApiError::bad_request("limit param must be positive"));
            }
            n.min(i64::from(limits.api_limit_max)) as u32
        }
    };
    let key = match get("sort_key") {
        None => "created_at",
        Some(k) => SORT_KEYS.iter().copied().find(|s| *s == k).ok_or_else(|| {
            ApiError::bad_request(format!(
                "Unsupported sort_key. Acceptable values: {}",
                SORT_KEYS.join(", ")
            ))
        })?,
    };
    let dir = match get("sort_dir") {
        None | Some("desc") => SortDir::Desc,
        Some("asc") => SortDir::Asc,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Unsupported sort_dir. Acceptable values: asc, desc",
            ))
        }
    };
    let mut q = ListQuery::new(limit, vec![(key, dir)]);
    q.member_status = MemberStatusFilter::All;
    q.admin_as_user = true;
    if let Some(m) = get("marker") {
        if !schema::is_uuid(m) {
            return Err(ApiError::bad_request("Invalid marker format"));
        }
        q.marker = Some(m.to_string());
    }

    let bad = |name: &str, value: &str| {
        ApiError::bad_request(format!("Bad value passed to filter {name} got {value}"))
    };
    let count = |name: &str, value: &str| -> ApiResult<i64> {
        value
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| bad(name, value))
    };
    for (name, value) in &params {
        match name.as_str() {
            "name" => q.filters.push(Filter::Equals("name", value.clone())),
            "status" => q.filters.push(Filter::Equals("status", value.clone())),
            "container_format" => q
                .filters
                .push(Filter::Equals("container_format", value.clone())),
            "disk_format" => q.filters.push(Filter::Equals("disk_format", value.clone())),
            "min_ram" => q
                .filters
                .push(Filter::Equals("min_ram", count(name, value)?.to_string())),
            "min_disk" => q
                .filters
                .push(Filter::Equals("min_disk", count(name, value)?.to_string())),
            "size_min" => q
                .filters
                .push(Filter::Range("size", CmpOp::Gte, count(name, value)?)),
            "size_max" => q
                .filters
                .push(Filter::Range("size", CmpOp::Lte, count(name, value)?)),
            "protected" => {
                let b = super::headers::boolean(value).ok_or_else(|| bad(name, value))?;
                q.filters.push(Filter::Equals(
                    "protected",
                    if b { "1" } else { "0" }.into(),
                ));
            }
            "is_public" => {
                if !value.trim().eq_ignore_ascii_case("none") {
                    let b = super::headers::boolean(value).ok_or_else(|| bad(name, value))?;
                    q.visibility = Some(if b {
                        VisibilityFilter::Public
                    } else {
                        VisibilityFilter::NotPublic
                    });
                }
                q.admin_as_user = false;
            }
            "changes-since" => {
                let since = Timestamp::parse(value)
                    .ok_or_else(|| ApiError::bad_request("Unrecognized changes-since value"))?;
                q.filters.push(Filter::Time("updated_at", CmpOp::Gt, since));
                q.include_deleted = true;
            }
            other => {
                if let Some(key) = other.strip_prefix("property-") {
                    q.filters
                        .push(Filter::Property(key.to_string(), value.clone()));
                }
            }
        }
    }
    if !caller.is_admin() {
        q.admin_as_user = false;
    }
    if q.filters.len() + q.sort.len() > MAX_TERMS {
        return Err(ApiError::bad_request(format!(
            "Too many filters: {} given, at most {MAX_TERMS} are accepted.",
            q.filters.len()
        )));
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Caller {
        Caller::new(Some("a".into()), None, &["admin"])
    }

    fn query(s: &str) -> ApiResult<ListQuery> {
        parse(s, &ImageLimits::default(), &admin())
    }

    #[test]
    fn defaults_are_created_at_desc_as_a_user() {
        let q = query("").unwrap();
        assert_eq!(
            q.sort,
            vec![("created_at", SortDir::Desc), ("id", SortDir::Desc)]
        );
        assert!(q.admin_as_user && !q.include_deleted);
        assert_eq!(q.member_status, MemberStatusFilter::All);
        let member = Caller::new(Some("p".into()), None, &["member"]);
        assert!(
            !parse("", &ImageLimits::default(), &member)
                .unwrap()
                .admin_as_user
        );
    }

    #[test]
    fn filters_sort_and_paging() {
        let q = query("name=x&size_min=1&size_max=9&property-os_distro=debian&sort_key=name&sort_dir=asc&limit=5000&is_public=false&changes-since=2020-01-01T00:00:00").unwrap();
        assert_eq!(q.limit, ImageLimits::default().api_limit_max);
        assert_eq!(q.sort[0], ("name", SortDir::Asc));
        assert!(q
            .filters
            .contains(&Filter::Property("os_distro".into(), "debian".into())));
        assert!(q.filters.contains(&Filter::Range("size", CmpOp::Gte, 1)));
        assert_eq!(q.visibility, Some(VisibilityFilter::NotPublic));
        assert!(
            !q.admin_as_user,
            "an admin's is_public=false spans projects"
        );
        assert!(q.include_deleted);
        assert!(!query("is_public=None").unwrap().admin_as_user);
    }

    #[test]
    fn bad_values_are_400s() {
        for (q, says) in [
            ("limit=x", "limit param must be an integer"),
            ("limit=-1", "limit param must be positive"),
            ("sort_key=owner", "Unsupported sort_key"),
            ("sort_dir=up", "Unsupported sort_dir"),
            ("marker=abc", "Invalid marker format"),
            (
                "size_min=abc",
                "Bad value passed to filter size_min got abc",
            ),
            ("min_ram=-2", "Bad value passed to filter min_ram"),
            ("is_public=maybe", "Bad value passed to filter is_public"),
            ("protected=perhaps", "Bad value passed to filter protected"),
            ("changes-since=soon", "Unrecognized changes-since value"),
        ] {
            let err = query(q).unwrap_err();
            assert_eq!(err.status.as_u16(), 400, "{q}");
            assert!(err.message.contains(says), "{q}: {}", err.message);
        }
    }
}

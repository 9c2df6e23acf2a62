//! The metadata definitions catalog: `/v2/metadefs/...`, as Glance 33
//! serves it (namespaces; their objects, properties, tags and resource type
//! associations; the resource types). Served by the images component, which
//! hands every path below `/v2/metadefs` to [`handle`].
//!
//! Reads follow Glance's default policy (`get_metadef_*`: an admin, or a
//! reader of the owning project or of a public namespace); every write is
//! admin-only by default (`rule:metadef_admin`). A namespace the caller may
//! not see is a 404 for every verb.

mod items;
mod namespaces;
mod resource_types;
#[cfg(test)]
mod tests;

use serde_json::Value;

use crate::api::routes::{self, Params, Route};
use crate::api::{serve, ApiRequest, ApiResponse};
use crate::auth;
use crate::auth::caller::Caller;
use crate::auth::policy::Policy;
use crate::db::metadefs::{Dir, MetadefRepo};
use crate::error::{ApiError, ApiResult};
use crate::metadefs::access::MetadefAccess;
use crate::metadefs::schema::{self, Doc};
use crate::ports::Ports;
use crate::settings::ImageLimits;

/// A handler of the catalog.
type Handler = fn(&Ctx<'_>, &mut ApiRequest<'_>, &Params) -> ApiResult<ApiResponse>;

/// Every route below `/v2/metadefs`.
static ROUTES: &[Route<Handler>] = &[
    Route {
        path: "/v2/metadefs/namespaces",
        methods: &[("GET", namespaces::list), ("POST", namespaces::create)],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}",
        methods: &[
            ("GET", namespaces::show),
            ("PUT", namespaces::update),
            ("DELETE", namespaces::delete),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/objects",
        methods: &[
            ("GET", items::list_objects),
            ("POST", items::create_object),
            ("DELETE", items::delete_objects),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/objects/{name}",
        methods: &[
            ("GET", items::show_object),
            ("PUT", items::update_object),
            ("DELETE", items::delete_object),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/properties",
        methods: &[
            ("GET", items::list_properties),
            ("POST", items::create_property),
            ("DELETE", items::delete_properties),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/properties/{name}",
        methods: &[
            ("GET", items::show_property),
            ("PUT", items::update_property),
            ("DELETE", items::delete_property),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/tags",
        methods: &[
            ("GET", items::list_tags),
            ("POST", items::create_tags),
            ("DELETE", items::delete_tags),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/tags/{name}",
        methods: &[
            ("GET", items::show_tag),
            ("POST", items::create_tag),
            ("PUT", items::update_tag),
            ("DELETE", items::delete_tag),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/resource_types",
        methods: &[
            ("GET", resource_types::list_associations),
            ("POST", resource_types::associate),
        ],
    },
    Route {
        path: "/v2/metadefs/namespaces/{ns}/resource_types/{name}",
        methods: &[("DELETE", resource_types::dissociate)],
    },
    Route {
        path: "/v2/metadefs/resource_types",
        methods: &[("GET", resource_types::list)],
    },
];

/// Whether `path` belongs to the catalog.
pub fn serves(path: &str) -> bool {
    path == "/v2/metadefs" || path.starts_with("/v2/metadefs/")
}

/// Handles one request to the catalog.
pub fn handle(ports: &Ports, req: ApiRequest) -> ApiResponse {
    serve(ports, req, |req| {
        let matched = match routes::find(ROUTES, req) {
            Ok(m) => m,
            Err(e) => return ("-", Err(e)),
        };
        let result =
            Ctx::new(ports, req).and_then(|ctx| (matched.handler)(&ctx, req, &matched.params));
        (matched.path, result)
    })
}

/// Everything a handler needs, built once per request.
pub(crate) struct Ctx<'a> {
    repo: MetadefRepo<'a>,
    caller: Caller,
    policy: Policy,
    limits: ImageLimits,
}

impl<'a> Ctx<'a> {
    fn new(ports: &'a Ports<'a>, req: &ApiRequest) -> ApiResult<Self> {
        let caller = auth::identify(ports, req)?;
        Ok(Ctx {
            repo: MetadefRepo::open(ports.db)?,
            caller,
            policy: Policy::load(ports.vars)?,
            limits: ImageLimits::load(ports.vars)?,
        })
    }

    fn access(&self) -> MetadefAccess<'_> {
        MetadefAccess {
            caller: &self.caller,
            policy: &self.policy,
        }
    }
}

/// The attributes a client may not send (Glance: 403 "is read-only").
const READ_ONLY: &[&str] = &["self", "schema", "created_at", "updated_at"];

/// Reads a JSON body, refuses read-only attributes and checks it against
/// the served schema `doc` (400 naming the mismatch).
fn body(req: &mut ApiRequest, doc: Doc) -> ApiResult<Value> {
    let body = req.json_body()?;
    if let Some(obj) = body.as_object() {
        if let Some(key) = READ_ONLY.iter().find(|k| obj.contains_key(**k)) {
            return Err(ApiError::forbidden(format!(
                "Attribute '{key}' is read-only."
            )));
        }
    }
    schema::validate(doc, &body).map_err(ApiError::bad_request)?;
    Ok(body)
}

/// The query parameters, decoded.
fn query(req: &ApiRequest) -> Vec<(String, String)> {
    form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect()
}

/// The last value of parameter `name`.
fn param<'p>(params: &'p [(String, String)], name: &str) -> Option<&'p str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Paging and sorting of a list, as Glance's deserializers read them.
struct Paging<'p> {
    limit: i64,
    marker: Option<&'p str>,
    sort_key: &'p str,
    sort_dir: Dir,
}

fn paging<'p>(
    params: &'p [(String, String)],
    limits: &ImageLimits,
    sort_keys: &[&str],
) -> ApiResult<Paging<'p>> {
    let limit = match param(params, "limit") {
        None => i64::from(limits.limit_param_default),
        Some(l) => {
            let n: i64 = l
                .trim()
                .parse()
                .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
            if n < 0 {
                return Err(ApiError::bad_request("limit param must be positive"));
            }
            n
        }
    }
    .min(i64::from(limits.api_limit_max));
    let sort_dir = match param(params, "sort_dir").unwrap_or("desc") {
        "asc" => Dir::Asc,
        "desc" => Dir::Desc,
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid sort direction: {other}"
            )))
        }
    };
    let sort_key = param(params, "sort_key").unwrap_or("created_at");
    if !sort_keys.contains(&sort_key) {
        return Err(ApiError::bad_request(format!(
            "Invalid sort key: {sort_key}. It must be one of the following: {}.",
            sort_keys.join(", ")
        )));
    }
    Ok(Paging {
        limit,
        marker: param(params, "marker"),
        sort_key,
        sort_dir,
    })
}

//! The images service: `/v2/images` and everything below it except members,
//! `/v2/info/*`, `/v2/stores/*`, `/v2/cache/*`, the legacy `/v2/tasks`, and the v1 API's `/v1/images` (handlers
//! in [`crate::api::v1`]) except its members; the metadefs catalog
//! (`/v2/metadefs/...`, [`crate::api::metadefs`]) is served here too.

mod actions;
mod cache;
mod edge;
pub(crate) mod files;
mod import;
mod info;
pub(crate) mod metadata;
mod tags;
mod tasks;
#[cfg(test)]
mod tests;

use std::cell::OnceCell;

use http::StatusCode;
use serde_json::Value;

use crate::api::routes::{self, Params, Route};
use crate::api::{negotiate, serve, v1, ApiRequest, ApiResponse};
use crate::auth;
use crate::auth::caller::Caller;
use crate::auth::policy::{Policy, Rule};
use crate::data::reclaim;
use crate::data::stores::Stores;
use crate::db::images::{ImageRepo, Modified};
use crate::error::{ApiError, ApiResult};
use crate::image::access::ImageAccess;
use crate::image::Image;
use crate::ports::Ports;
use crate::settings::{ImageLimits, StoreSettings};
use crate::timestamp::Timestamp;

/// A handler of this service.
type Handler = fn(&Ctx<'_>, &mut ApiRequest<'_>, &Params) -> ApiResult<ApiResponse>;

/// Every route of the images component.
static ROUTES: &[Route<Handler>] = &[
    Route {
        path: "/v2/images",
        methods: &[("GET", metadata::list), ("POST", metadata::create)],
    },
    Route {
        path: "/v2/images/{image_id}",
        methods: &[
            ("GET", metadata::show),
            ("PATCH", metadata::update),
            ("DELETE", metadata::delete),
        ],
    },
    Route {
        path: "/v2/images/{image_id}/file",
        methods: &[("GET", files::download), ("PUT", files::upload)],
    },
    Route {
        path: "/v2/images/{image_id}/stage",
        methods: &[("PUT", files::stage)],
    },
    Route {
        path: "/v2/images/{image_id}/import",
        methods: &[("POST", import::import)],
    },
    Route {
        path: "/v2/images/{image_id}/tasks",
        methods: &[("GET", tasks::list)],
    },
    Route {
        path: "/v2/images/{image_id}/tags/{tag}",
        methods: &[("PUT", tags::add), ("DELETE", tags::remove)],
    },
    Route {
        path: "/v2/images/{image_id}/actions/deactivate",
        methods: &[("POST", actions::deactivate)],
    },
    Route {
        path: "/v2/images/{image_id}/actions/reactivate",
        methods: &[("POST", actions::reactivate)],
    },
    Route {
        path: "/v2/tasks",
        methods: &[("GET", tasks::index), ("POST", tasks::create)],
    },
    Route {
        path: "/v2/tasks/{task_id}",
        methods: &[("GET", tasks::show), ("DELETE", tasks::delete)],
    },
    Route {
        path: "/v2/info/import",
        methods: &[("GET", info::import_methods)],
    },
    Route {
        path: "/v2/info/stores",
        methods: &[("GET", info::stores)],
    },
    Route {
        path: "/v2/info/stores/detail",
        methods: &[("GET", info::stores_detail)],
    },
    Route {
        path: "/v2/stores/{store_id}/{image_id}",
        methods: &[("DELETE", info::delete_from_store)],
    },
    Route {
        path: "/v2/cache",
        methods: &[("GET", cache::list), ("DELETE", cache::clear)],
    },
    // The two fixed paths come before `/v2/cache/{image_id}`, which would
    // also match them (the one overlap in this table).
    Route {
        path: "/v2/cache/clean",
        methods: &[("POST", cache::clean)],
    },
    Route {
        path: "/v2/cache/prune",
        methods: &[("POST", cache::prune)],
    },
    Route {
        path: "/v2/cache/{image_id}",
        methods: &[("PUT", cache::queue), ("DELETE", cache::delete_entry)],
    },
    Route {
        path: "/v1/images",
        methods: &[("GET", v1::images::index), ("POST", v1::images::create)],
    },
    Route {
        path: "/v1/images/detail",
        methods: &[
            ("GET", v1::images::detail),
            ("HEAD", v1::images::detail_head),
        ],
    },
    Route {
        path: "/v1/images/{image_id}",
        methods: &[
            ("GET", v1::images::show),
            ("HEAD", v1::images::meta),
            ("PUT", v1::images::update),
            ("DELETE", v1::images::delete),
        ],
    },
];

/// One read in this many also runs a reclamation slice after its response
/// (every write does): reclamation needs no schedule of its own.
const RECLAIM_EVERY_READS: u8 = 16;

/// Handles one request to the images component.
///
/// The images component also owns the catch-all route: a request whose
/// negotiated path (`/v2.N/...`, or an Accept-header version) another
/// service serves is handed to it (see [`crate::api::negotiate`]).
pub fn handle(ports: &Ports, mut req: ApiRequest) -> ApiResponse {
    if !crate::api::negotiated(ports, &mut req) {
        return crate::api::discovery::choices(ports, req);
    }
    match negotiate::owner(&req.path) {
        negotiate::Owner::Images => {}
        negotiate::Owner::Members => return crate::api::members::handle(ports, req),
        negotiate::Owner::Discovery => return crate::api::discovery::handle(ports, req),
    }
    if crate::api::metadefs::serves(&req.path) {
        return crate::api::metadefs::handle(ports, req);
    }
    let writes = !matches!(req.method, http::Method::GET | http::Method::HEAD);
    let mut resp = serve(ports, req, |req| {
        let matched = match routes::find(ROUTES, req) {
            Ok(m) => m,
            // As in Glance, where routing comes after the token check: no
            // token, 401; with one, the 404 or 405.
            Err(e) => return ("-", auth::identify(ports, req).and(Err(e))),
        };
        let result =
            Ctx::new(ports, req).and_then(|ctx| (matched.handler)(&ctx, req, &matched.params));
        (matched.path, result)
    });
    if writes || uuid::Uuid::new_v4().as_bytes()[0] < u8::MAX / RECLAIM_EVERY_READS {
        let first = resp.deferred.take();
        resp.deferred = Some(Box::new(move |ports: &Ports| {
            if let Some(work) = first {
                work(ports);
            }
            reclaim::slice(ports);
        }));
    }
    resp
}

/// Everything a handler needs, built once per request.
pub(crate) struct Ctx<'a> {
    pub ports: &'a Ports<'a>,
    pub repo: ImageRepo<'a>,
    pub caller: Caller,
    pub policy: Policy,
    pub limits: ImageLimits,
    pub settings: StoreSettings,
    stores: OnceCell<Stores>,
}

impl<'a> Ctx<'a> {
    /// Who is asking, and under which rules and settings.
    fn new(ports: &'a Ports<'a>, req: &ApiRequest) -> ApiResult<Self> {
        let caller = auth::identify(ports, req)?;
        Ok(Ctx {
            ports,
            repo: ImageRepo::open(ports.db)?,
            caller,
            policy: Policy::load(ports.vars)?,
            limits: ImageLimits::load(ports.vars)?,
            settings: StoreSettings::load(ports.vars)?,
            stores: OnceCell::new(),
        })
    }

    /// Image lookups for this caller under these rules.
    pub fn access(&self) -> ImageAccess<'_> {
        ImageAccess {
            repo: &self.repo,
            caller: &self.caller,
            policy: &self.policy,
        }
    }

    /// The data stores, opened on first use.
    pub fn stores(&self) -> ApiResult<&Stores> {
        if let Some(s) = self.stores.get() {
            return Ok(s);
        }
        let opened = Stores::open(
            self.settings.clone(),
            self.ports.kv,
            self.ports.http.clone(),
        )?;
        Ok(self.stores.get_or_init(|| opened))
    }

    /// The API view of an image.
    pub fn view(&self, img: &Image) -> Value {
        img.to_json(self.settings.multi_store())
    }

    /// A JSON response with the image.
    pub fn image_response(&self, status: StatusCode, img: &Image) -> ApiResponse {
        ApiResponse::json(status, &self.view(img))
    }

    /// Changes image `id` with [`ImageRepo::modify`]: `change` sees the image
    /// as it is now and returns false when there is nothing to save. With a
    /// `rule`, the caller must pass it for the image as it is at each
    /// attempt (404 if it may not see it); without, the service acts on its
    /// own behalf (e.g. finishing an upload it already authorized).
    pub fn modify(
        &self,
        id: &str,
        rule: Option<Rule>,
        mut change: impl FnMut(&mut Image) -> ApiResult<bool>,
    ) -> ApiResult<Image> {
        let access = self.access();
        let outcome = self.repo.modify(id, Timestamp::now(), |img| {
            if let Some(rule) = rule {
                access.enforce(rule, &access.check(img.clone())?)?;
            }
            change(img)
        })?;
        match outcome {
            Modified::Done(img) => Ok(img),
            Modified::Gone => Err(ApiError::image_not_found(id)),
            Modified::Busy => Err(ApiError::conflict(
                "The image was changed by another request; try again.",
            )),
        }
    }
}

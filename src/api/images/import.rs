//! Interoperable image import: `POST /v2/images/{image_id}/import` with the
//! `glance-direct`, `web-download` and `copy-image` methods.
//!
//! The request is checked and the image marked `importing`, the client gets
//! 202, and the data moves after the response has been sent (the host keeps
//! the instance until the work is done; see [`crate::data::import`]). Each
//! accepted import is also recorded as a task (`api_image_import`, see
//! [`crate::db::tasks`]) carrying the request's id and body, which
//! `GET /v2/images/{image_id}/tasks` lists.

use http::StatusCode;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Rule;
use crate::data::import::{self, Job, Method, Remote};
use crate::data::lease;
use crate::data::stores::StoreId;
use crate::data::upstream::Credentials;
use crate::db::leases::{Lease, LeaseKind, LeaseRepo};
use crate::db::tasks::{Task, TaskRepo, API_IMAGE_IMPORT};
use crate::error::{ApiError, ApiResult};
use crate::image::Status;
use crate::notify::Event;
use crate::ports::Ports;

fn flag(body: &serde_json::Map<String, Value>, name: &str, default: bool) -> ApiResult<bool> {
    match body.get(name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!(
            "'{name}' must be boolean value only"
        ))),
    }
}

/// The `method` object of an import request.
fn method_body(body: &serde_json::Map<String, Value>) -> Option<&serde_json::Map<String, Value>> {
    body.get("method").and_then(Value::as_object)
}

fn method_has(method: Option<&serde_json::Map<String, Value>>, key: &str) -> bool {
    method.is_some_and(|m| m.contains_key(key))
}

/// `POST /v2/images/{image_id}/import`.
pub(super) fn import(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    let body = req.json_body()?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("Request body must be a JSON object."));
    };
    let method = body
        .get("method")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'method' field."))?;
    let name = method
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'name' field."))?;
    if !ctx.settings.import_methods.iter().any(|m| m == name) {
        return Err(ApiError::bad_request(format!(
            "Unknown import method name '{name}'."
        )));
    }
    let all_must_succeed = flag(&body, "all_stores_must_succeed", true)?;
    let all_stores = flag(&body, "all_stores", false)?;
    let listed: Option<Vec<String>> = match body.get("stores") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| ApiError::bad_request("'stores' must be a list of store ids"))?,
        ),
        Some(_) => {
            return Err(ApiError::bad_request(
                "'stores' must be a list of store ids",
            ))
        }
    };
    let header_store = req.header("x-image-meta-store").map(str::to_string);
    if all_stores && (listed.is_some() || header_store.is_some()) {
        return Err(ApiError::bad_request(
            "All stores is set to true, so stores must not be given as well.",
        ));
    }
    if !all_must_succeed && !ctx.settings.multi_store() {
        return Err(ApiError::bad_request(
            "all_stores_must_succeed can only be false with multiple stores.",
        ));
    }
    let method = match name {
        "glance-direct" => Method::GlanceDirect,
        "copy-image" => Method::CopyImage,
        "web-download" => {
            let uri = method
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("web-download requires a 'uri'."))?;
            if ctx.settings.download_hosts.check(uri).is_err() {
                return Err(ApiError::bad_request(format!(
                    "URI for web-download does not pass filtering: {uri}"
                )));
            }
            Method::WebDownload(uri.to_string())
        }
        "glance-download" => {
            let text = |k: &str| method.get(k).and_then(Value::as_str).map(str::to_string);
            Method::GlanceDownload(Remote {
                image_id: text("glance_image_id").unwrap_or_default(),
                region: text("glance_region").unwrap_or_default(),
                interface: text("glance_service_interface").unwrap_or_else(|| "public".into()),
                creds: Credentials::of(req, &ctx.caller),
            })
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "Unknown import method name '{other}'."
            )))
        }
    };

    let access = ctx.access();
    let v = access.load(id)?;
    let img = &v.image;
    let (wanted, verb) = match &method {
        Method::GlanceDirect => (Status::Uploading, "'glance-direct'"),
        Method::WebDownload(_) => (Status::Queued, "'web-download'"),
        Method::GlanceDownload(_) => (Status::Queued, "'glance-download'"),
        Method::CopyImage => (Status::Active, "'copy-image'"),
    };
    if img.status != wanted || (method == Method::GlanceDirect && img.staged.is_none()) {
        return Err(ApiError::conflict(format!(
            "Image needs to be in '{}' state to use {verb} method",
            wanted.as_str()
        )));
    }
    if method != Method::CopyImage && (img.disk_format.is_none() || img.container_format.is_none())
    {
        return Err(ApiError::conflict(
            "'disk_format' and 'container_format' need to be set before import",
        ));
    }
    if let Method::GlanceDownload(remote) = &method {
        if !method_has(method_body(&body), "glance_region") {
            return Err(ApiError::bad_request(
                "'glance_region' needs to be set for glance-download import method",
            ));
        }
        if !method_has(method_body(&body), "glance_image_id") {
            return Err(ApiError::bad_request(
                "'glance_image_id' needs to be set for glance-download import method",
            ));
        }
        if uuid::Uuid::parse_str(&remote.image_id).is_err() {
            return Err(ApiError::bad_request(format!(
                "Remote image id does not look like a UUID: {}",
                remote.image_id
            )));
        }
    }
    access.enforce(
        if method == Method::CopyImage {
            Rule::CopyImage
        } else {
            Rule::ModifyImage
        },
        &v,
    )?;

    let holding: Vec<StoreId> = img.locations.iter().map(|l| l.store).collect();
    let names: Vec<String> = if all_stores {
        ctx.settings
            .enabled
            .iter()
            .filter(|s| !s.read_only && !holding.contains(&s.id))
            .map(|s| s.id.to_string())
            .collect()
    } else if let Some(list) = listed {
        list
    } else if let Some(h) = header_store {
        vec![h]
    } else {
        vec![ctx.settings.default.to_string()]
    };
    let mut stores = Vec::with_capacity(names.len());
    for name in &names {
        let id = StoreId::parse(name)
            .filter(|id| ctx.settings.writable(*id))
            .ok_or_else(|| ApiError::conflict(format!("Store {name} is not available")))?;
        if method == Method::CopyImage && holding.contains(&id) && !all_stores {
            return Err(ApiError::bad_request(format!(
                "Image is already present at store '{name}'"
            )));
        }
        stores.push(id);
    }
    if stores.is_empty() {
        // Nothing to copy: every store already holds the image.
        return Ok(ApiResponse::empty(StatusCode::ACCEPTED));
    }

    let progress = names.join(",");
    let copy = method == Method::CopyImage;
    // The task, as Glance records it once the import is accepted: who asked,
    // the request's id, and what was asked.
    let mut task = Task::new(
        API_IMAGE_IMPORT,
        json!({"image_id": id, "import_req": Value::Object(body.clone()), "backend": names}),
    );
    task.image_id = Some(id.to_string());
    task.owner = ctx.caller.project_id.clone();
    task.user_id = ctx.caller.user_id.clone();
    task.request_id = Some(req.request_id().to_string());
    // The lease keeps the import alive from before the image says it runs.
    let kind = if copy {
        LeaseKind::Copy
    } else {
        LeaseKind::Import
    };
    let mut held = Lease::new(id, kind, ctx.settings.stale_seconds);
    held.task_id = Some(task.id.clone());
    LeaseRepo::new(ctx.ports.db).take(&held)?;
    let started = ctx.modify(id, None, |img| {
        if img.status != wanted {
            return Err(ApiError::conflict(
                "The image changed; another import may be running.",
            ));
        }
        if !copy {
            img.start_import()
                .map_err(|t| ApiError::conflict(t.to_string()))?;
        }
        img.begin_import_progress(&progress);
        Ok(true)
    });
    if let Err(e) = started {
        lease::release(ctx.ports, &held);
        return Err(e);
    }
    // The image is already `importing`, so the import goes ahead even if
    // the record cannot be written.
    if let Err(e) = TaskRepo::new(ctx.ports.db).insert(&task) {
        ctx.ports
            .log_error(&format!("recording the import task of image {id}"), e);
    }
    let job = Job {
        image_id: id.to_string(),
        method,
        stores,
        all_must_succeed,
        task_id: task.id.clone(),
        lease: held,
        discard_on_failure: false,
    };
    let created = Event::task("task.create", &task);
    let mut resp = ApiResponse::empty(StatusCode::ACCEPTED);
    resp.deferred = Some(Box::new(move |ports: &Ports| import::run(ports, job)));
    let resp = resp.with_events(vec![created]);
    Ok(resp)
}

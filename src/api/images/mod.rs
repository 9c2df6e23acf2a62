//! The images service: `/v2/images` and everything below it except members.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use std::cell::OnceCell;

use crate::api::{finish, segments_after, ApiRequest, ApiResponse};
use crate::auth;
use crate::ports::Ports;

mod files;
mod import;
mod info;

use crate::auth::caller::Caller;
use crate::auth::policy::{Policy, Target};
use crate::data::stores::{StoreSettings, Stores};
use crate::db::images::{ImageRepo, Write};
use crate::db::tasks::{Task, TaskRepo};
use crate::error::{ApiError, ApiResult};
use crate::image::access::{ImageAccess, Visible};
use crate::image::list_query::ListQuery;
use crate::image::patch;
use crate::image::schema;
use crate::image::update::{self, UpdateContext};
use crate::image::{Image, Status, Visibility};
use crate::settings::ImageLimits;
use crate::timestamp::Timestamp;
use files as image_files;

/// How often an update is retried when another writer changed the image meanwhile.
const SAVE_ATTEMPTS: usize = 5;

/// Handles one request to the images component.
pub fn handle(ports: &Ports, mut req: ApiRequest) -> ApiResponse {
    let result = route(ports, &mut req);
    finish(&req, result)
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

impl Ctx<'_> {
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
        )
        .map_err(|e| ApiError::internal(e.to_string()))?;
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
}

fn route(ports: &Ports, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    let not_found = || ApiError::not_found("The resource could not be found.");
    let (area, segs) = if let Some(s) = segments_after(&req.path, "/v2/images") {
        ("images", s)
    } else if let Some(s) = segments_after(&req.path, "/v2/info") {
        ("info", s)
    } else if let Some(s) = segments_after(&req.path, "/v2/stores") {
        ("stores", s)
    } else {
        return Err(not_found());
    };
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    // Route shape and method first (405 needs no identity), then who is asking.
    let allowed: &[&str] = match (area, segs.as_slice()) {
        ("images", []) => &["GET", "POST"],
        ("images", [id]) if !id.is_empty() => &["GET", "PATCH", "DELETE"],
        ("images", [_, "file"]) => &["GET", "PUT"],
        ("images", [_, "stage"]) => &["PUT"],
        ("images", [_, "import"]) => &["POST"],
        ("images", [_, "tasks"]) => &["GET"],
        ("images", [_, "tags", tag]) if !tag.is_empty() => &["PUT", "DELETE"],
        ("images", [_, "actions", "deactivate" | "reactivate"]) => &["POST"],
        ("info", ["import" | "stores"]) | ("info", ["stores", "detail"]) => &["GET"],
        ("stores", [store, image]) if !store.is_empty() && !image.is_empty() => &["DELETE"],
        _ => return Err(not_found()),
    };
    if !allowed.contains(&req.method.as_str()) {
        return Err(ApiError::method_not_allowed(allowed));
    }
    let caller = auth::identify(ports, req)?;
    let policy = Policy::load(ports.vars)?;
    let ctx = Ctx {
        ports,
        repo: ImageRepo::open(ports.db)?,
        caller,
        policy,
        limits: ImageLimits::load(ports.vars),
        settings: StoreSettings::load(ports.vars)?,
        stores: OnceCell::new(),
    };
    let m = &req.method;
    match (area, segs.as_slice()) {
        ("images", []) if m == Method::GET => list(&ctx, req),
        ("images", []) => create(&ctx, req),
        ("images", [id]) if m == Method::GET => show(&ctx, req, id),
        ("images", [id]) if m == Method::PATCH => update(&ctx, req, id),
        ("images", [id]) => delete(&ctx, req, id),
        ("images", [id, "file"]) if m == Method::GET => image_files::download(&ctx, req, id),
        ("images", [id, "file"]) => image_files::upload(&ctx, req, id),
        ("images", [id, "stage"]) => image_files::stage(&ctx, req, id),
        ("images", [id, "import"]) => import::import(&ctx, req, id),
        ("images", [id, "tasks"]) => image_tasks(&ctx, req, id),
        ("images", [id, "tags", tag]) if m == Method::PUT => add_tag(&ctx, req, id, tag),
        ("images", [id, "tags", tag]) => delete_tag(&ctx, req, id, tag),
        ("images", [id, "actions", action]) => set_active(&ctx, req, id, *action == "reactivate"),
        ("info", ["import"]) => info::import_methods(&ctx, req),
        ("info", ["stores"]) => info::stores(&ctx, req),
        ("info", ["stores", "detail"]) => info::stores_detail(&ctx, req),
        ("stores", [store, image]) => info::delete_from_store(&ctx, req, store, image),
        _ => Err(not_found()),
    }
}

/// `GET /v2/images/{id}/tasks` (API v2.12): the image's import tasks, oldest
/// first, for any caller who may see the image (404 otherwise). Like Glance,
/// a caller sees the tasks its project started; an admin sees them all.
fn image_tasks(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    let tasks = TaskRepo::new(ctx.ports.db).list_for_image(
        &v.image.id,
        ctx.caller.project_id.as_deref(),
        ctx.caller.is_admin(),
    )?;
    let tasks: Vec<Value> = tasks.iter().map(Task::to_json).collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({ "tasks": tasks }),
    ))
}

fn list(ctx: &Ctx, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    let q = ListQuery::parse(&req.query, &ctx.limits)?;
    let own = Target {
        owner: ctx.caller.project_id.clone(),
        ..Target::default()
    };
    ctx.policy.enforce("get_images", &ctx.caller, &own)?;
    let access = ctx.access();
    let marker = match &q.marker {
        Some(m) => Some(
            access
                .load(m)
                .map_err(|_| ApiError::bad_request(format!("No image found with ID {m}")))?
                .image,
        ),
        None => None,
    };
    let (images, more) = ctx.repo.list(&q, &ctx.caller, marker.as_ref())?;
    let mut shown = Vec::with_capacity(images.len());
    for img in &images {
        let target = list_target(&ctx.caller, img);
        if ctx.policy.allows("get_image", &ctx.caller, &target) {
            shown.push(ctx.view(img));
        }
    }
    let mut body = Map::new();
    body.insert("first".into(), q.first_link().into());
    body.insert("schema".into(), "/v2/schemas/images".into());
    if more {
        if let Some(last) = images.last() {
            body.insert("next".into(), q.next_link(&last.id).into());
        }
    }
    body.insert("images".into(), Value::Array(shown));
    Ok(ApiResponse::json(StatusCode::OK, &Value::Object(body)))
}

/// The policy target of a listed image: the list query only returns others'
/// shared images when the caller is a member.
fn list_target(caller: &Caller, img: &Image) -> Target {
    let member_id = match (&caller.project_id, img.visibility) {
        (Some(p), Visibility::Shared) if !caller.owns(img.owner.as_deref()) => Some(p.clone()),
        _ => None,
    };
    Target {
        owner: img.owner.clone(),
        member_id,
        visibility: Some(img.visibility.as_str().to_string()),
    }
}

fn create(ctx: &Ctx, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    let body = req.json_body()?;
    let Value::Object(fields) = body else {
        return Err(ApiError::bad_request("Request body must be a JSON object."));
    };
    for key in fields.keys() {
        schema::check_create_disallowed(key)?;
    }
    for (key, value) in &fields {
        schema::validate_value(key, value)?;
    }
    for key in fields.keys() {
        schema::check_create_read_only(key)?;
    }
    for key in fields.keys().filter(|k| !schema::is_base(k)) {
        schema::check_custom_key(key)?;
        schema::check_create_reserved(key)?;
    }

    let id = match fields.get("id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let owner = match fields.get("owner") {
        Some(v) => v.as_str().map(str::to_string),
        None => ctx.caller.project_id.clone(),
    };
    let mut img = Image::new(id, owner, Timestamp::now());
    for (key, value) in &fields {
        match key.as_str() {
            "id" | "owner" => {}
            k if schema::is_base(k) => update::set_base(&mut img, k, value)?,
            k => {
                if let Some(s) = value.as_str() {
                    img.properties.insert(k.to_string(), s.to_string());
                }
            }
        }
    }

    let target = Target {
        owner: img.owner.clone(),
        member_id: None,
        visibility: Some(img.visibility.as_str().to_string()),
    };
    if !ctx.policy.allows("add_image", &ctx.caller, &target) {
        if img.owner != ctx.caller.project_id {
            return Err(ApiError::forbidden(format!(
                "You are not permitted to create images owned by '{}'",
                img.owner.as_deref().unwrap_or("None")
            )));
        }
        ctx.policy.enforce("add_image", &ctx.caller, &target)?;
    }
    enforce_visibility(ctx, img.visibility, &target)?;
    check_quotas(&img, &ctx.limits)?;

    if ctx.repo.insert(&img)? == Write::Conflict {
        return Err(ApiError::conflict(format!(
            "Image ID {} already exists!",
            img.id
        )));
    }
    let location = format!("{}{}", req.base_url, img.self_link());
    let mut resp = ctx
        .image_response(StatusCode::CREATED, &img)
        .with_header("location", location);
    if !ctx.settings.import_methods.is_empty() {
        resp = resp.with_header(
            "OpenStack-image-import-methods",
            ctx.settings.import_methods.join(","),
        );
    }
    if ctx.settings.multi_store() {
        let ids: Vec<&str> = ctx.settings.enabled.iter().map(|s| s.id.as_str()).collect();
        resp = resp.with_header("OpenStack-image-store-ids", ids.join(","));
    }
    Ok(resp)
}

fn enforce_visibility(ctx: &Ctx, visibility: Visibility, target: &Target) -> ApiResult<()> {
    match visibility {
        Visibility::Public => ctx.policy.enforce("publicize_image", &ctx.caller, target),
        Visibility::Community => ctx.policy.enforce("communitize_image", &ctx.caller, target),
        _ => Ok(()),
    }
}

/// 413 when an image carries more tags or custom properties than allowed.
fn check_quotas(img: &Image, limits: &ImageLimits) -> ApiResult<()> {
    let props = img
        .properties
        .keys()
        .filter(|k| !k.starts_with(schema::RESERVED_NAMESPACE))
        .count() as i64;
    if limits.property_quota >= 0 && props > limits.property_quota {
        return Err(ApiError::too_large(format!(
            "Attempted: {props}, Maximum: {}",
            limits.property_quota
        )));
    }
    let tags = img.tags.len() as i64;
    if limits.tag_quota >= 0 && tags > limits.tag_quota {
        return Err(ApiError::too_large(format!(
            "Attempted: {tags}, Maximum: {}",
            limits.tag_quota
        )));
    }
    Ok(())
}

fn show(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    Ok(ctx.image_response(StatusCode::OK, &v.image))
}

fn update(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let dialect = patch::dialect_for(req.header("content-type"))?;
    let ops = patch::parse(dialect, &req.json_body()?)?;
    let access = ctx.access();
    for _ in 0..SAVE_ATTEMPTS {
        let Visible { mut image, target } = access.load(id)?;
        if ops.is_empty() {
            return Ok(ctx.image_response(StatusCode::OK, &image));
        }
        let uctx = UpdateContext {
            caller: &ctx.caller,
            policy: &ctx.policy,
            target: &target,
            dialect,
        };
        update::apply(&mut image, &ops, &uctx)
            .map_err(|e| hide_if_invisible(ctx, &target, id, e))?;
        check_quotas(&image, &ctx.limits)?;
        image.updated_at = Timestamp::now();
        if ctx.repo.save(&mut image)? == Write::Done {
            return Ok(ctx.image_response(StatusCode::OK, &image));
        }
    }
    Err(ApiError::conflict(
        "The image was changed by another request; try again.",
    ))
}

/// A 403 about an image the rules do not let the caller see becomes 404.
fn hide_if_invisible(ctx: &Ctx, target: &Target, id: &str, err: ApiError) -> ApiError {
    if err.status == StatusCode::FORBIDDEN && !ctx.policy.allows("get_image", &ctx.caller, target) {
        ApiError::image_not_found(id)
    } else {
        err
    }
}

fn delete(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let access = ctx.access();
    let v = access.load(id)?;
    access.enforce("delete_image", &v)?;
    if v.image.protected {
        return Err(ApiError::forbidden(format!(
            "Image {id} is protected and cannot be deleted."
        )));
    }
    if ctx.repo.delete(id, Timestamp::now())? == Write::Conflict {
        return Err(ApiError::image_not_found(id));
    }
    remove_data(ctx, &v.image);
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// Removes every stored copy and any staged data of a deleted image. Best
/// effort: the record is already gone, so a store failure cannot undo that.
pub(crate) fn remove_data(ctx: &Ctx, img: &Image) {
    if img.locations.is_empty() && img.staged.is_none() {
        return;
    }
    let Ok(stores) = ctx.stores() else { return };
    let staged = img.staged.as_ref().map(|s| &s.location);
    for loc in img.locations.iter().chain(staged) {
        if let Some(store) = stores.for_location(loc) {
            let _ = store.delete(loc);
        }
    }
}

/// Loads, changes and saves an image, retrying when another writer got there
/// first. `change` returns false when there is nothing to save. With a
/// `rule`, the caller must pass it; without, the service acts on its own
/// behalf (e.g. finishing an upload it already authorized).
pub(crate) fn modify(
    ctx: &Ctx,
    id: &str,
    rule: Option<&str>,
    mut change: impl FnMut(&mut Image) -> ApiResult<bool>,
) -> ApiResult<Image> {
    let access = ctx.access();
    for _ in 0..SAVE_ATTEMPTS {
        let mut v = match rule {
            Some(rule) => {
                let v = access.load(id)?;
                access.enforce(rule, &v)?;
                v
            }
            None => {
                let image = ctx
                    .repo
                    .get(id)?
                    .ok_or_else(|| ApiError::image_not_found(id))?;
                Visible {
                    image,
                    target: Target::default(),
                }
            }
        };
        if !change(&mut v.image)? {
            return Ok(v.image);
        }
        v.image.updated_at = Timestamp::now();
        if ctx.repo.save(&mut v.image)? == Write::Done {
            return Ok(v.image);
        }
    }
    Err(ApiError::conflict(
        "The image was changed by another request; try again.",
    ))
}

fn add_tag(ctx: &Ctx, req: &mut ApiRequest, id: &str, tag: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    schema::validate_value("tags", &json!([tag]))?;
    modify(ctx, id, Some("modify_image"), |img| {
        if img.tags.iter().any(|t| t == tag) {
            return Ok(false);
        }
        img.add_tag(tag);
        check_quotas(img, &ctx.limits)?;
        Ok(true)
    })?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

fn delete_tag(ctx: &Ctx, req: &mut ApiRequest, id: &str, tag: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    modify(ctx, id, Some("modify_image"), |img| {
        let before = img.tags.len();
        img.tags.retain(|t| t != tag);
        if img.tags.len() == before {
            return Err(ApiError::not_found(format!("Tag {tag} not found.")));
        }
        Ok(true)
    })?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// Deactivate (`reactivate` false) or reactivate an image.
fn set_active(
    ctx: &Ctx,
    req: &mut ApiRequest,
    id: &str,
    reactivate: bool,
) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let (rule, from, to, verb) = if reactivate {
        (
            "reactivate",
            Status::Deactivated,
            Status::Active,
            "reactivate",
        )
    } else {
        (
            "deactivate",
            Status::Active,
            Status::Deactivated,
            "deactivate",
        )
    };
    modify(ctx, id, Some(rule), |img| {
        if img.status == to {
            Ok(false)
        } else if img.status == from {
            img.status = to;
            Ok(true)
        } else {
            Err(ApiError::forbidden(format!(
                "Not allowed to {verb} image in status '{}'",
                img.status.as_str()
            )))
        }
    })?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

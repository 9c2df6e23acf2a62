//! `/v1/images` in the images component: lists, metadata in headers, data
//! in bodies. Each handler reads v1's shape and then does what the v2
//! handler of the same act does, through the same pieces: `Ctx::access` for
//! 404-vs-403, `Ctx::modify` and the patch rules of `image::update` for
//! changes, `metadata::insert_new` and `delete_image`, and
//! `files::store_data` (lease, streaming receive, hashes, activation) for
//! data.

use http::StatusCode;
use serde_json::{json, Value};

use super::headers::{self, V1Meta};
use super::{list, view};
use crate::api::images::files::{self, Announced};
use crate::api::images::metadata::{check_quotas, delete_image, insert_new, list_target};
use crate::api::images::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse, Body};
use crate::auth::policy::{Rule, Target};
use crate::data::stores::StoreId;
use crate::error::{ApiError, ApiResult};
use crate::image::patch::{Dialect, OpKind, PatchOp};
use crate::image::update::{self, UpdateContext};
use crate::image::{schema, ContainerFormat, DiskFormat, Image, Status, Visibility};
use crate::notify::Event;
use crate::timestamp::Timestamp;

/// `GET /v1/images`: the brief list.
pub(crate) fn index(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let images = listed(ctx, req)?;
    let brief: Vec<Value> = images.iter().map(view::brief_json).collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({ "images": brief }),
    ))
}

/// `GET /v1/images/detail`: the detailed list.
pub(crate) fn detail(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let images = listed(ctx, req)?;
    let detail: Vec<Value> = images.iter().map(view::image_json).collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({ "images": detail }),
    ))
}

/// `HEAD /v1/images/detail`: 405, as Glance 15 answered it (its route took
/// HEAD to refuse it, so other methods there are told `GET, HEAD`).
pub(crate) fn detail_head(_: &Ctx, _: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let mut err = ApiError::method_not_allowed(&["GET"]);
    err.message = "This operation is currently not permitted on Glance images details.".into();
    Err(err)
}

/// One page of the images the caller may list, under v1's parameters and
/// v2's rules (`get_images`, then `get_image` for each).
fn listed(ctx: &Ctx, req: &ApiRequest) -> ApiResult<Vec<Image>> {
    let q = list::parse(&req.query, &ctx.limits, &ctx.caller)?;
    let own = Target {
        owner: ctx.caller.project_id.clone(),
        ..Target::default()
    };
    ctx.policy.enforce(Rule::GetImages, &ctx.caller, &own)?;
    let marker = match &q.marker {
        Some(m) => {
            let found = if q.include_deleted {
                ctx.repo.get_with_deleted(m)?
            } else {
                ctx.repo.get(m)?
            };
            let visible = found.and_then(|img| ctx.access().check(img).ok());
            Some(
                visible
                    .ok_or_else(|| {
                        ApiError::bad_request("Invalid marker. Image could not be found.")
                    })?
                    .image,
            )
        }
        None => None,
    };
    let (images, _) = ctx.repo.list(&q, &ctx.caller, marker.as_ref())?;
    Ok(images
        .into_iter()
        .filter(|img| {
            ctx.policy
                .allows(Rule::GetImage, &ctx.caller, &list_target(&ctx.caller, img))
        })
        .collect())
}

/// `HEAD /v1/images/{image_id}`: the metadata in headers.
pub(crate) fn meta(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let v = ctx.access().load(&p["image_id"])?;
    Ok(with_headers(ApiResponse::empty(StatusCode::OK), &v.image))
}

fn with_headers(mut resp: ApiResponse, img: &Image) -> ApiResponse {
    resp.headers.extend(headers::image_headers(img));
    resp
}

/// `GET /v1/images/{image_id}`: the data, with the metadata in headers.
pub(crate) fn show(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    req.reject_body()?;
    let access = ctx.access();
    let v = access.load(id)?;
    access.enforce(Rule::DownloadImage, &v)?;
    let img = v.image;
    match img.status {
        Status::Active => {}
        Status::Deactivated if ctx.caller.is_admin() => {}
        Status::Deactivated => {
            return Err(ApiError::forbidden(format!("Image {id} is deactivated")))
        }
        _ => return Err(ApiError::not_found(format!("Image {id} is not active"))),
    }
    let (body, length) = match files::stored(ctx, &img)? {
        Some((store, location)) => (Body::Stream(store.read(location, None)?), location.size),
        // Active without data: an image of no bytes.
        None => (Body::Empty, 0),
    };
    let resp = ApiResponse {
        status: StatusCode::OK,
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            ("content-length".into(), length.to_string()),
        ],
        body,
        deferred: None,
    };
    Ok(with_headers(resp, &img))
}

/// The JSON answer `{"image": {...}}` of create and update, with `ETag`.
fn image_answer(status: StatusCode, img: &Image) -> ApiResponse {
    let resp = ApiResponse::json(status, &json!({ "image": view::image_json(img) }));
    match &img.checksum {
        Some(c) => resp.with_header("etag", c.clone()),
        None => resp,
    }
}

/// 400 for what v1 headers may carry but this service does not take:
/// data that lives elsewhere (`x-image-meta-location`, `x-glance-api-copy-from`),
/// and stores that are not enabled for writing.
fn check_sources(ctx: &Ctx, meta: &V1Meta) -> ApiResult<()> {
    if let Some(src) = &meta.external {
        return Err(ApiError::bad_request(format!(
            "External sources are not supported: '{src}'"
        )));
    }
    if let Some(name) = &meta.store {
        if !StoreId::parse(name).is_some_and(|id| ctx.settings.writable(id)) {
            return Err(ApiError::bad_request(format!(
                "Required store {name} is invalid"
            )));
        }
    }
    Ok(())
}

/// Whether the request carries image data, and if so that it is declared
/// `application/octet-stream` (400 otherwise, as Glance 15).
fn has_data(req: &mut ApiRequest) -> ApiResult<bool> {
    if !req.has_body() {
        return Ok(false);
    }
    if !files::is_octet_stream(req) {
        return Err(ApiError::bad_request(
            "Content-Type must be application/octet-stream",
        ));
    }
    Ok(true)
}

/// v1's rule that an aki/ari/ami format names both formats (400 when the
/// two differ). Data may come without formats (see `files::store_data`).
fn formats(
    disk: Option<DiskFormat>,
    container: Option<ContainerFormat>,
) -> ApiResult<(Option<DiskFormat>, Option<ContainerFormat>)> {
    let amazon = |d: Option<&str>| matches!(d, Some("aki" | "ari" | "ami"));
    let (d, c) = (
        disk.map(DiskFormat::as_str),
        container.map(ContainerFormat::as_str),
    );
    if amazon(d) || amazon(c) {
        return match (disk, container) {
            (None, Some(c)) => Ok((DiskFormat::parse(c.as_str()), Some(c))),
            (Some(d), None) => Ok((Some(d), ContainerFormat::parse(d.as_str()))),
            _ if d == c => Ok((disk, container)),
            _ => Err(ApiError::bad_request(
                "Invalid mix of disk and container formats. When setting a disk or container \
                 format to one of 'aki', 'ari', or 'ami', the container and disk formats must \
                 match.",
            )),
        };
    }
    Ok((disk, container))
}

/// 403/400 for a custom property v2 would not take under that name or value.
fn check_properties(meta: &V1Meta) -> ApiResult<()> {
    for (key, value) in &meta.properties {
        schema::check_property_name(key)?;
        schema::validate_value(key, &Value::String(value.clone()))?;
    }
    Ok(())
}

/// `POST /v1/images`: a new image from headers, with its data if the body
/// has any (then `active`, else `queued`; formats not given are the data's,
/// as `files::store_data` says). A create whose data is refused leaves no
/// image behind. Publishes `image.create` (then the upload's events), as
/// v2's create and upload do.
pub(crate) fn create(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let meta = headers::parse(req)?;
    check_sources(ctx, &meta)?;
    check_properties(&meta)?;
    let data = has_data(req)? || meta.size == Some(0);
    let id = match &meta.id {
        Some(id) if !schema::is_uuid(id) => {
            return Err(ApiError::bad_request("Invalid image id format"))
        }
        Some(id) => id.clone(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let owner = match &meta.owner {
        Some(o) => o.clone(),
        None => ctx.caller.project_id.clone(),
    };
    let mut img = Image::new(id, owner, Timestamp::now());
    let (disk, container) = formats(meta.disk_format, meta.container_format)?;
    img.disk_format = disk;
    img.container_format = container;
    img.name = meta.name.clone().flatten();
    img.min_disk = meta.min_disk.unwrap_or(0);
    img.min_ram = meta.min_ram.unwrap_or(0);
    img.protected = meta.protected.unwrap_or(false);
    img.visibility = match meta.is_public {
        Some(true) => Visibility::Public,
        Some(false) => Visibility::Private,
        None => Visibility::Shared,
    };
    img.properties = meta.properties.clone();
    insert_new(ctx, &img).map_err(|e| {
        if e.status == StatusCode::CONFLICT {
            ApiError::conflict(format!(
                "An image with identifier {} already exists",
                img.id
            ))
        } else {
            e
        }
    })?;
    let mut events = vec![Event::image("image.create", &img)];
    if data {
        let uploaded = upload(ctx, req, &img, &meta).inspect_err(|_| {
            // All or nothing: the client never learnt this image's id.
            if let Err(e) = ctx.repo.delete(&img.id, Timestamp::now()) {
                ctx.ports
                    .log_error(&format!("removing the refused image {}", img.id), e);
            }
        })?;
        img = uploaded.image;
        events.extend(uploaded.events);
    }
    let location = format!("{}/v1/images/{}", req.base_url, img.id);
    Ok(image_answer(StatusCode::CREATED, &img)
        .with_header("location", location)
        .with_events(events))
}

/// Stores the body as the data of the queued image `img` (`upload_image`).
fn upload(
    ctx: &Ctx,
    req: &mut ApiRequest,
    img: &Image,
    meta: &V1Meta,
) -> ApiResult<files::Uploaded> {
    let access = ctx.access();
    let v = access.check(img.clone())?;
    access.enforce(Rule::UploadImage, &v)?;
    let announced = Announced {
        size: meta.size,
        checksum: meta.checksum.as_deref(),
    };
    files::store_data(ctx, req, img, &announced)
}

/// `PUT /v1/images/{image_id}`: new metadata from headers (properties not
/// named are purged unless `x-glance-registry-purge-props: false` or data
/// comes along), then the data if the image is queued and the body has any.
/// Publishes `image.update` when the metadata changed (then the upload's
/// events), as v2's update and upload do.
pub(crate) fn update(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    let meta = headers::parse(req)?;
    check_sources(ctx, &meta)?;
    check_properties(&meta)?;
    let access = ctx.access();
    let current = access.load(id)?;
    access.enforce(Rule::ModifyImage, &current)?;
    let data = has_data(req)?;
    let img = &current.image;
    if data {
        access.enforce(Rule::UploadImage, &current)?;
        if img.status != Status::Queued {
            return Err(ApiError::conflict("Cannot upload to an unqueued image"));
        }
    }
    if meta
        .status
        .as_deref()
        .is_some_and(|s| s != img.status.as_str())
    {
        return Err(ApiError::forbidden(
            "Forbidden to modify 'status' of image.",
        ));
    }
    if meta.id.as_deref().is_some_and(|m| m != img.id) {
        return Err(ApiError::forbidden("Forbidden to modify 'id' of image."));
    }
    if !ctx.caller.is_admin() && matches!(img.status, Status::Active | Status::Deactivated) {
        let size_differs = meta.size.is_some_and(|s| Some(s as i64) != img.size);
        let sum_differs = meta.checksum.is_some() && meta.checksum != img.checksum;
        if size_differs || sum_differs {
            let key = if size_differs { "size" } else { "checksum" };
            return Err(ApiError::forbidden(format!(
                "Forbidden to modify '{key}' of {} image.",
                img.status
            )));
        }
    }
    let purge = !data
        && req
            .header("x-glance-registry-purge-props")
            .is_none_or(|v| headers::boolean(v).unwrap_or(true));
    let (disk, container) = formats(
        meta.disk_format.or(img.disk_format),
        meta.container_format.or(img.container_format),
    )?;
    // An aki/ari/ami format named alone names the other one too.
    let named = meta.disk_format.is_some() || meta.container_format.is_some();
    let changes = V1Meta {
        disk_format: disk.filter(|_| named),
        container_format: container.filter(|_| named),
        ..meta.clone()
    };
    let mut changed = false;
    let mut updated = ctx.modify(id, None, |image| {
        let target = access.check(image.clone())?.target;
        let ops = patch_ops(&changes, image, purge, ctx.repo.has_members(&image.id)?);
        changed = !ops.is_empty();
        if !changed {
            return Ok(false);
        }
        let uctx = UpdateContext {
            caller: &ctx.caller,
            policy: &ctx.policy,
            target: &target,
            dialect: Dialect::V21,
        };
        update::apply(image, &ops, &uctx)?;
        check_quotas(image, &ctx.limits)?;
        Ok(true)
    })?;
    let mut events = Vec::new();
    if changed {
        events.push(Event::image("image.update", &updated));
    }
    if data {
        let uploaded = upload(ctx, req, &updated, &meta)?;
        updated = uploaded.image;
        events.extend(uploaded.events);
    }
    Ok(image_answer(StatusCode::OK, &updated).with_events(events))
}

fn op(op: OpKind, attr: &str, value: Option<Value>) -> PatchOp {
    PatchOp {
        op,
        path: vec![attr.to_string()],
        value,
    }
}

/// The v2 patch a v1 update amounts to for `img` as it is now: only what
/// changes, so the v2 rules (owner only by admins, formats only while
/// queued, publicizing) judge exactly the change. `is_public: false` makes
/// a public image `shared` when it has members and `private` when not.
fn patch_ops(meta: &V1Meta, img: &Image, purge: bool, has_members: bool) -> Vec<PatchOp> {
    let mut ops = Vec::new();
    let mut replace = |attr: &str, now: Value, new: Value| {
        if now != new {
            ops.push(op(OpKind::Replace, attr, Some(new)));
        }
    };
    let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
    if let Some(name) = &meta.name {
        replace("name", text(&img.name), text(name));
    }
    if let Some(f) = meta.disk_format {
        let now = img.disk_format.map(|f| f.as_str());
        replace("disk_format", json!(now), json!(f.as_str()));
    }
    if let Some(f) = meta.container_format {
        let now = img.container_format.map(|f| f.as_str());
        replace("container_format", json!(now), json!(f.as_str()));
    }
    if let Some(n) = meta.min_disk {
        replace("min_disk", json!(img.min_disk), json!(n));
    }
    if let Some(n) = meta.min_ram {
        replace("min_ram", json!(img.min_ram), json!(n));
    }
    if let Some(b) = meta.protected {
        replace("protected", json!(img.protected), json!(b));
    }
    if let Some(owner) = &meta.owner {
        replace("owner", text(&img.owner), text(owner));
    }
    let visibility = match meta.is_public {
        Some(true) => Some(Visibility::Public),
        Some(false) if img.visibility == Visibility::Public => Some(if has_members {
            Visibility::Shared
        } else {
            Visibility::Private
        }),
        _ => None,
    };
    if let Some(v) = visibility {
        replace(
            "visibility",
            json!(img.visibility.as_str()),
            json!(v.as_str()),
        );
    }
    for (key, value) in &meta.properties {
        if img.properties.get(key) != Some(value) {
            ops.push(op(OpKind::Add, key, Some(Value::String(value.clone()))));
        }
    }
    if purge {
        for key in img.visible_properties().map(|(k, _)| k) {
            if !meta.properties.contains_key(key) && !key.starts_with(schema::RESERVED_NAMESPACE) {
                ops.push(op(OpKind::Remove, key, None));
            }
        }
    }
    ops
}

/// `DELETE /v1/images/{image_id}`: 200 with an empty body, as Glance 15;
/// publishes `image.delete`.
pub(crate) fn delete(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let deleted = delete_image(ctx, &p["image_id"])?;
    Ok(ApiResponse::empty(StatusCode::OK).with_events(vec![deleted]))
}

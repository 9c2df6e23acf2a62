//! Image records: list, create, show, update (JSON patch), delete.

use http::StatusCode;
use serde_json::{Map, Value};

use super::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::caller::Caller;
use crate::auth::policy::{Rule, Target};
use crate::data::reclaim;
use crate::db::images::Write;
use crate::error::{ApiError, ApiResult};
use crate::image::list_query::ListQuery;
use crate::image::update::{self, UpdateContext};
use crate::image::{patch, schema, Image, Status, Visibility};
use crate::notify::Event;
use crate::settings::ImageLimits;
use crate::timestamp::Timestamp;

/// `GET /v2/images`.
pub(super) fn list(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let q = ListQuery::parse(&req.query, &ctx.limits)?;
    let own = Target {
        owner: ctx.caller.project_id.clone(),
        ..Target::default()
    };
    ctx.policy.enforce(Rule::GetImages, &ctx.caller, &own)?;
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
        if ctx.policy.allows(Rule::GetImage, &ctx.caller, &target) {
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
pub(crate) fn list_target(caller: &Caller, img: &Image) -> Target {
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

/// `POST /v2/images`.
pub(super) fn create(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let body = req.json_body()?;
    let Value::Object(fields) = body else {
        return Err(ApiError::bad_request("Request body must be a JSON object."));
    };
    let img = new_image(ctx, &fields)?;
    insert_new(ctx, &img)?;
    let location = format!("{}{}", req.base_url, img.self_link());
    let mut resp = ctx
        .image_response(StatusCode::CREATED, &img)
        .with_header("location", location)
        .with_events(vec![Event::image("image.create", &img)]);
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

/// A new image from the fields of a create request (`POST /v2/images`, or
/// a legacy import task's `image_properties`), checked as Glance checks
/// them; the caller's project owns it unless the fields name an owner.
pub(crate) fn new_image(ctx: &Ctx, fields: &Map<String, Value>) -> ApiResult<Image> {
    for key in fields.keys() {
        schema::check_create_disallowed(key)?;
    }
    for (key, value) in fields {
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
    for (key, value) in fields {
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
    Ok(img)
}

/// Records a new image after the rules allow it: `add_image` for its owner,
/// the right to its visibility, the quotas; 409 if its id was ever used.
pub(crate) fn insert_new(ctx: &Ctx, img: &Image) -> ApiResult<()> {
    let target = Target {
        owner: img.owner.clone(),
        member_id: None,
        visibility: Some(img.visibility.as_str().to_string()),
    };
    if !ctx.policy.allows(Rule::AddImage, &ctx.caller, &target) {
        if img.owner != ctx.caller.project_id {
            return Err(ApiError::forbidden(format!(
                "You are not permitted to create images owned by '{}'",
                img.owner.as_deref().unwrap_or("None")
            )));
        }
        ctx.policy.enforce(Rule::AddImage, &ctx.caller, &target)?;
    }
    enforce_visibility(ctx, img.visibility, &target)?;
    check_quotas(img, &ctx.limits)?;
    if ctx.repo.insert(img)? == Write::Conflict {
        return Err(ApiError::conflict(format!(
            "Image ID {} already exists!",
            img.id
        )));
    }
    Ok(())
}

fn enforce_visibility(ctx: &Ctx, visibility: Visibility, target: &Target) -> ApiResult<()> {
    match visibility {
        Visibility::Public => ctx
            .policy
            .enforce(Rule::PublicizeImage, &ctx.caller, target),
        Visibility::Community => ctx
            .policy
            .enforce(Rule::CommunitizeImage, &ctx.caller, target),
        _ => Ok(()),
    }
}

/// 413 when an image carries more tags or custom properties than allowed.
pub(crate) fn check_quotas(img: &Image, limits: &ImageLimits) -> ApiResult<()> {
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

/// `GET /v2/images/{image_id}`.
pub(super) fn show(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = match ctx.access().load(&p["image_id"]) {
        Err(e) if e.status == StatusCode::NOT_FOUND && super::edge::on(ctx) => {
            return super::edge::show(ctx, req, &p["image_id"]);
        }
        other => other?,
    };
    Ok(ctx.image_response(StatusCode::OK, &v.image))
}

/// `PATCH /v2/images/{image_id}`: the operations are applied to the image as
/// it is when saved, so concurrent writers do not undo each other.
pub(super) fn update(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    let dialect = patch::dialect_for(req.header("content-type"))?;
    let ops = patch::parse(dialect, &req.json_body()?)?;
    let access = ctx.access();
    let current = access.load(id)?;
    if ops.is_empty() {
        return Ok(ctx.image_response(StatusCode::OK, &current.image));
    }
    let img = ctx.modify(id, None, |image| {
        let target = access.check(image.clone())?.target;
        let uctx = UpdateContext {
            caller: &ctx.caller,
            policy: &ctx.policy,
            target: &target,
            dialect,
        };
        update::apply(image, &ops, &uctx).map_err(|e| hide_if_invisible(ctx, &target, id, e))?;
        check_quotas(image, &ctx.limits)?;
        Ok(true)
    })?;
    Ok(ctx
        .image_response(StatusCode::OK, &img)
        .with_events(vec![Event::image("image.update", &img)]))
}

/// A 403 about an image the rules do not let the caller see becomes 404.
fn hide_if_invisible(ctx: &Ctx, target: &Target, id: &str, err: ApiError) -> ApiError {
    if err.status == StatusCode::FORBIDDEN
        && !ctx.policy.allows(Rule::GetImage, &ctx.caller, target)
    {
        ApiError::image_not_found(id)
    } else {
        err
    }
}

/// `DELETE /v2/images/{image_id}`.
pub(super) fn delete(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let deleted = delete_image(ctx, &p["image_id"])?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT).with_events(vec![deleted]))
}

/// Deletes image `id` if the caller may (`delete_image`, not protected) and
/// reclaims its data; returns the `image.delete` event to publish.
pub(crate) fn delete_image(ctx: &Ctx, id: &str) -> ApiResult<Event> {
    let access = ctx.access();
    let v = access.load(id)?;
    access.enforce(Rule::DeleteImage, &v)?;
    if v.image.protected {
        return Err(ApiError::forbidden(format!(
            "Image {id} is protected and cannot be deleted."
        )));
    }
    // The row becomes a tombstone and, in the same statement, its data
    // references become garbage: an upload finishing meanwhile either lands
    // before (its data is in the garbage) or finds the image gone.
    if ctx.repo.delete(id, Timestamp::now())? == Write::Conflict {
        return Err(ApiError::image_not_found(id));
    }
    reclaim::image(ctx.ports, ctx.stores()?, id);
    let mut gone = v.image;
    gone.status = Status::Deleted;
    gone.updated_at = Timestamp::now();
    Ok(Event::image("image.delete", &gone))
}

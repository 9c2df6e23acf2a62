//! v1 members in the members component: `GET`/`PUT /v1/images/{id}/members`
//! (list, replace all), `PUT`/`DELETE /v1/images/{id}/members/{member}`
//! (add or change one, remove one) and `GET /v1/shared-images/{member}`.
//!
//! They are v2 memberships (a new one is `pending`, as Glance 15 made them)
//! with v1's `can_share`: a member allowed to share the image onward may add
//! and remove members as the owner may. v2's rules otherwise hold: the
//! owner's `add_member`/`delete_member`/`get_members`, a member sees only
//! its own entry, and only `shared` images have members — so sharing a
//! `private` image (v1's `is_public: false`) makes it `shared`, and a
//! public or community one is refused (403).

use http::StatusCode;
use serde_json::{json, Value};

use crate::api::members::{check_member_id, Ctx};
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Rule;
use crate::db::images::Modified;
use crate::db::members::AddOutcome;
use crate::error::{ApiError, ApiResult};
use crate::image::access::Visible;
use crate::image::member::{Member, MemberStatus};
use crate::image::Visibility;
use crate::notify::Event;
use crate::timestamp::Timestamp;

fn entry(m: &Member) -> Value {
    json!({"member_id": m.member_id, "can_share": m.can_share})
}

/// `GET /v1/images/{image_id}/members`: `{"members": [{member_id, can_share}]}`,
/// the entries the caller may see.
pub(crate) fn list(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    ctx.enforce(Rule::GetMembers, &v)?;
    let members: Vec<Value> = ctx
        .members
        .list(id)?
        .iter()
        .filter(|m| ctx.sees_member(&v, &m.member_id))
        .map(entry)
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({ "members": members }),
    ))
}

/// `GET /v1/shared-images/{member_id}`: the images shared with a project,
/// `{"shared_images": [{image_id, can_share}]}`, as far as the caller may
/// see them (its own memberships, and those on images it owns).
pub(crate) fn shared_images(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let member_id = &p["member_id"];
    req.reject_body()?;
    let access = ctx.access();
    let mut shared = Vec::new();
    for m in ctx.members.of_member(member_id)? {
        let Some(img) = ctx.images.get(&m.image_id)? else {
            continue;
        };
        let Ok(v) = access.check(img) else {
            continue;
        };
        if ctx.sees_member(&v, member_id)
            && ctx.policy.allows(Rule::GetMembers, &ctx.caller, &v.target)
        {
            shared.push(json!({"image_id": m.image_id, "can_share": m.can_share}));
        }
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({ "shared_images": shared }),
    ))
}

/// 403 unless the caller may change the members of the image: `rule` (the
/// owner's, by default), or it is a member with `can_share` and the member
/// role.
fn may_share(ctx: &Ctx, v: &Visible, rule: Rule) -> ApiResult<()> {
    if ctx.policy.allows(rule, &ctx.caller, &v.target) {
        return Ok(());
    }
    if let Some(project) = &ctx.caller.project_id {
        let onward = ctx
            .members
            .get(&v.image.id, project)?
            .is_some_and(|m| m.can_share);
        if onward && ctx.caller.has_role("member") {
            return Ok(());
        }
    }
    Err(ApiError::forbidden("No permission to share that image"))
}

/// Makes the image ready for members: `private` becomes `shared` (its
/// `image.update` event returned); `public` and `community` images have no
/// members (403).
fn open_for_members(ctx: &Ctx, v: &Visible) -> ApiResult<Option<Event>> {
    match v.image.visibility {
        Visibility::Shared => return Ok(None),
        Visibility::Private => {}
        Visibility::Public | Visibility::Community => {
            return Err(ApiError::forbidden("Only shared images have members."))
        }
    }
    let id = &v.image.id;
    let mut changed = false;
    let outcome = ctx.images.modify(id, Timestamp::now(), |img| {
        changed = match img.visibility {
            Visibility::Private => {
                img.visibility = Visibility::Shared;
                true
            }
            Visibility::Shared => false,
            _ => return Err(ApiError::forbidden("Only shared images have members.")),
        };
        Ok::<_, ApiError>(changed)
    })?;
    match outcome {
        Modified::Done(img) => Ok(changed.then(|| Event::image("image.update", &img))),
        Modified::Gone => Err(ApiError::image_not_found(id)),
        Modified::Busy => Err(ApiError::conflict(
            "The image was changed by another request; try again.",
        )),
    }
}

fn over_quota(attempted: usize, quota: i64) -> ApiError {
    ApiError::too_large(format!(
        "The limit has been exceeded on the number of allowed image members for this image. \
         Attempted: {attempted}, Maximum: {quota}"
    ))
}

fn invalid(why: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid membership association: {why}"))
}

/// `can_share` of a membership document, if given: a boolean.
fn can_share_of(doc: &serde_json::Map<String, Value>) -> ApiResult<Option<bool>> {
    match doc.get("can_share") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(invalid(&format!(
            "can_share must be true or false, not {other}"
        ))),
    }
}

/// Adds `member_id` with `can_share` (default false), or sets `can_share` of
/// an existing membership when given. A new membership's
/// `image.member.create` event is returned (Glance's member payload has no
/// `can_share`, so changing it alone makes none).
fn put_member(
    ctx: &Ctx,
    image_id: &str,
    member_id: &str,
    can_share: Option<bool>,
) -> ApiResult<Option<Event>> {
    if ctx.members.get(image_id, member_id)?.is_some() {
        if let Some(b) = can_share {
            ctx.members.set_can_share(image_id, member_id, b)?;
        }
        return Ok(None);
    }
    let now = Timestamp::now();
    let m = Member {
        image_id: image_id.to_string(),
        member_id: member_id.to_string(),
        status: MemberStatus::Pending,
        can_share: can_share.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    match ctx.members.add(&m, ctx.quota)? {
        AddOutcome::Added => Ok(Some(Event::member("image.member.create", &m))),
        AddOutcome::Duplicate => Ok(None),
        AddOutcome::OverQuota => {
            let count = ctx.members.list(image_id)?.len();
            Err(over_quota(count + 1, ctx.quota))
        }
    }
}

/// `PUT /v1/images/{image_id}/members/{member_id}`, optionally with
/// `{"member": {"can_share": bool}}`: 204. Publishes what changed
/// (`image.update` when the image became `shared`, `image.member.create`).
pub(crate) fn add(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let (id, member_id) = (&p["image_id"], &p["member_id"]);
    let can_share = if req.has_body() {
        match req.json_body()? {
            Value::Object(o) if o.is_empty() => None,
            Value::Object(o) => match o.get("member") {
                Some(Value::Object(m)) => can_share_of(m)?,
                _ => {
                    return Err(invalid(
                        "expected {\"member\": {\"can_share\": true|false}}",
                    ))
                }
            },
            _ => {
                return Err(invalid(
                    "expected {\"member\": {\"can_share\": true|false}}",
                ))
            }
        }
    } else {
        None
    };
    check_member_id(member_id)?;
    let v = ctx.access().load(id)?;
    may_share(ctx, &v, Rule::AddMember)?;
    let events: Vec<Event> = [
        open_for_members(ctx, &v)?,
        put_member(ctx, id, member_id, can_share)?,
    ]
    .into_iter()
    .flatten()
    .collect();
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT).with_events(events))
}

/// `PUT /v1/images/{image_id}/members` with `{"memberships": [{member_id,
/// can_share?}]}`: the image's members become exactly these; an existing
/// member keeps its `can_share` unless the entry gives one. 204. Publishes
/// what changed (`image.update` when the image became `shared`,
/// `image.member.delete` and `image.member.create`).
pub(crate) fn replace(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    let body = req.json_body()?;
    let entries = body
        .get("memberships")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("expected {\"memberships\": [{\"member_id\": ...}, ...]}"))?;
    let mut wanted: Vec<(String, Option<bool>)> = Vec::new();
    for e in entries {
        let Value::Object(o) = e else {
            return Err(invalid("each membership must be an object"));
        };
        let member_id = match o.get("member_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => return Err(invalid("each membership needs a member_id")),
        };
        check_member_id(&member_id)?;
        let can_share = can_share_of(o)?;
        match wanted.iter_mut().find(|(m, _)| *m == member_id) {
            Some(slot) => slot.1 = can_share.or(slot.1),
            None => wanted.push((member_id, can_share)),
        }
    }
    if ctx.quota >= 0 && wanted.len() as i64 > ctx.quota {
        return Err(over_quota(wanted.len(), ctx.quota));
    }
    let v = ctx.access().load(id)?;
    may_share(ctx, &v, Rule::AddMember)?;
    may_share(ctx, &v, Rule::DeleteMember)?;
    let mut events = Vec::new();
    if !wanted.is_empty() {
        events.extend(open_for_members(ctx, &v)?);
    }
    let keep: Vec<&str> = wanted.iter().map(|(m, _)| m.as_str()).collect();
    for gone in ctx.members.remove_others(id, &keep)? {
        events.push(Event::member("image.member.delete", &gone));
    }
    for (member_id, can_share) in &wanted {
        events.extend(put_member(ctx, id, member_id, *can_share)?);
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT).with_events(events))
}

/// `DELETE /v1/images/{image_id}/members/{member_id}`: 204, 404 if no such
/// member; publishes `image.member.delete`.
pub(crate) fn remove(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let (id, member_id) = (&p["image_id"], &p["member_id"]);
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    may_share(ctx, &v, Rule::DeleteMember)?;
    let not_found = || ApiError::not_found("Membership could not be found.");
    let m = ctx.members.get(id, member_id)?.ok_or_else(not_found)?;
    if !ctx.members.remove(id, member_id)? {
        return Err(not_found());
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT)
        .with_events(vec![Event::member("image.member.delete", &m)]))
}

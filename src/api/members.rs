//! The members service: `/v2/images/{id}/members[/{member_id}]` — sharing
//! an image with other projects, with Glance's rules: only `shared` images
//! have members, the owner adds and removes them, each member project sets
//! its own status, and a member sees only its own entry.

use http::StatusCode;
use serde_json::{json, Value};

use crate::api::{finish, segments_after, ApiRequest, ApiResponse};
use crate::auth;
use crate::auth::caller::Caller;
use crate::auth::policy::Policy;
use crate::db::images::ImageRepo;
use crate::db::members::{AddOutcome, Member, MemberRepo, STATUSES};
use crate::error::{ApiError, ApiResult};
use crate::image::access::{ImageAccess, Visible};
use crate::image::Visibility;
use crate::ports::Ports;
use crate::timestamp::Timestamp;

/// Handles one request to the members component.
pub fn handle(ports: &Ports, mut req: ApiRequest) -> ApiResponse {
    let result = route(ports, &mut req);
    finish(&req, result)
}

struct Ctx<'a> {
    images: ImageRepo<'a>,
    members: MemberRepo<'a>,
    caller: Caller,
    policy: Policy,
}

impl Ctx<'_> {
    fn access(&self) -> ImageAccess<'_> {
        ImageAccess {
            repo: &self.images,
            caller: &self.caller,
            policy: &self.policy,
        }
    }

    /// 403 unless the caller passes `rule` for the image (Glance's member
    /// rules answer 403, not 404, once the image itself is visible).
    fn enforce(&self, rule: &str, v: &Visible) -> ApiResult<()> {
        self.policy.enforce(rule, &self.caller, &v.target)
    }

    /// Whether the caller may see `member_id`'s entry: admins and the owner
    /// see every member, a member only itself.
    fn sees_member(&self, v: &Visible, member_id: &str) -> bool {
        self.caller.is_admin()
            || self.caller.owns(v.image.owner.as_deref())
            || self.caller.project_id.as_deref() == Some(member_id)
    }
}

fn only_shared(v: &Visible) -> ApiResult<()> {
    if v.image.visibility != Visibility::Shared {
        return Err(ApiError::forbidden("Only shared images have members."));
    }
    Ok(())
}

fn member_not_found(member_id: &str, image_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "{member_id} not found in the member list of the image {image_id}."
    ))
}

fn route(ports: &Ports, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    let segs = segments_after(&req.path, "/v2/images")
        .ok_or_else(|| ApiError::not_found("The resource could not be found."))?;
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (id, member) = match segs.as_slice() {
        [id, "members"] => (*id, None),
        [id, "members", m] if !m.is_empty() => (*id, Some(*m)),
        _ => return Err(ApiError::not_found("The resource could not be found.")),
    };
    let allowed: &[&str] = if member.is_some() {
        &["GET", "PUT", "DELETE"]
    } else {
        &["GET", "POST"]
    };
    if !allowed.contains(&req.method.as_str()) {
        return Err(ApiError::method_not_allowed(allowed));
    }
    let caller = auth::identify(ports, req)?;
    let ctx = Ctx {
        images: ImageRepo::open(ports.db)?,
        members: MemberRepo::new(ports.db),
        caller,
        policy: Policy::load(ports.vars)?,
    };
    let quota = ports
        .vars
        .get("image_member_quota")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or(128);
    match (member, req.method.as_str()) {
        (None, "GET") => list(&ctx, req, id),
        (None, _) => add(&ctx, req, id, quota),
        (Some(m), "GET") => show(&ctx, req, id, m),
        (Some(m), "PUT") => update(&ctx, req, id, m),
        (Some(m), _) => remove(&ctx, req, id, m),
    }
}

fn list(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    ctx.enforce("get_members", &v)?;
    let members: Vec<Value> = ctx
        .members
        .list(id)?
        .iter()
        .filter(|m| ctx.sees_member(&v, &m.member_id))
        .map(Member::to_json)
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"members": members, "schema": "/v2/schemas/members"}),
    ))
}

fn add(ctx: &Ctx, req: &mut ApiRequest, id: &str, quota: i64) -> ApiResult<ApiResponse> {
    let body = req.json_body()?;
    let member_id = match &body {
        Value::Object(o) => match o.get("member") {
            None => return Err(ApiError::bad_request("Member to be added not specified")),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(Value::String(_)) | Some(Value::Null) => {
                return Err(ApiError::bad_request("Member can't be empty"))
            }
            Some(_) => {
                return Err(ApiError::bad_request(
                    "Expected a member in the form: {\"member\": \"image_id\"}",
                ))
            }
        },
        _ => {
            return Err(ApiError::bad_request(
                "Expected a member in the form: {\"member\": \"image_id\"}",
            ))
        }
    };
    if member_id.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "Member id is longer than 255 characters.",
        ));
    }
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    ctx.enforce("add_member", &v)?;
    let now = Timestamp::now();
    let m = Member {
        image_id: id.to_string(),
        member_id: member_id.clone(),
        status: "pending".into(),
        created_at: now,
        updated_at: now,
    };
    match ctx.members.add(&m, quota)? {
        AddOutcome::Added => Ok(ApiResponse::json(StatusCode::OK, &m.to_json())),
        AddOutcome::Duplicate => Err(ApiError::conflict(format!(
            "Member {member_id} is duplicated for image {id}"
        ))),
        AddOutcome::OverQuota => Err(ApiError::too_large(format!(
            "Image member limit exceeded for image {id}: Maximum: {quota}"
        ))),
    }
}

/// The membership `member_id` as the caller may see it, or 404.
fn lookup(ctx: &Ctx, v: &Visible, member_id: &str) -> ApiResult<Member> {
    if !ctx.sees_member(v, member_id) {
        return Err(member_not_found(member_id, &v.image.id));
    }
    ctx.members
        .get(&v.image.id, member_id)?
        .ok_or_else(|| member_not_found(member_id, &v.image.id))
}

fn show(ctx: &Ctx, req: &mut ApiRequest, id: &str, member_id: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    // Glance answers 404 rather than 403 here, so membership does not leak.
    only_shared(&v).map_err(|e| ApiError::not_found(e.message))?;
    ctx.enforce("get_member", &v)
        .map_err(|e| ApiError::not_found(e.message))?;
    let m = lookup(ctx, &v, member_id)?;
    Ok(ApiResponse::json(StatusCode::OK, &m.to_json()))
}

fn update(ctx: &Ctx, req: &mut ApiRequest, id: &str, member_id: &str) -> ApiResult<ApiResponse> {
    let body = req.json_body()?;
    let status = match body.get("status") {
        None => return Err(ApiError::bad_request("Status not specified")),
        Some(Value::String(s)) if STATUSES.contains(&s.as_str()) => s.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid status: {}",
                other
                    .as_str()
                    .map_or_else(|| other.to_string(), str::to_string)
            )))
        }
    };
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    lookup(ctx, &v, member_id)?;
    // The owner sees the entry but is not the member: 403.
    ctx.enforce("modify_member", &v)?;
    let m = ctx
        .members
        .set_status(id, member_id, &status, Timestamp::now())?
        .ok_or_else(|| member_not_found(member_id, id))?;
    Ok(ApiResponse::json(StatusCode::OK, &m.to_json()))
}

fn remove(ctx: &Ctx, req: &mut ApiRequest, id: &str, member_id: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    lookup(ctx, &v, member_id)?;
    ctx.enforce("delete_member", &v)?;
    if !ctx.members.remove(id, member_id)? {
        return Err(member_not_found(member_id, id));
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

//! The members service: `/v2/images/{id}/members[/{member_id}]` — sharing
//! an image with other projects, with Glance's rules: only `shared` images
//! have members, the owner adds and removes them, each member project sets
//! its own status, and a member sees only its own entry. The v1 API's
//! members (`/v1/images/{id}/members[/{member}]`, `/v1/shared-images/{member}`)
//! are served here too, by [`crate::api::v1::members`].

use http::StatusCode;
use serde_json::{json, Value};

use crate::api::routes::{self, Params, Route};
use crate::api::{serve, v1, ApiRequest, ApiResponse};
use crate::auth;
use crate::auth::caller::Caller;
use crate::auth::policy::{Policy, Rule};
use crate::db::images::ImageRepo;
use crate::db::members::{AddOutcome, MemberRepo};
use crate::error::{ApiError, ApiResult};
use crate::image::access::{ImageAccess, Visible};
use crate::image::member::{Member, MemberStatus};
use crate::image::Visibility;
use crate::notify::Event;
use crate::ports::Ports;
use crate::settings::ImageLimits;
use crate::timestamp::Timestamp;

/// A handler of this service.
type Handler = fn(&Ctx<'_>, &mut ApiRequest<'_>, &Params) -> ApiResult<ApiResponse>;

/// Every route of the members component.
static ROUTES: &[Route<Handler>] = &[
    Route {
        path: "/v2/images/{image_id}/members",
        methods: &[("GET", list), ("POST", add)],
    },
    Route {
        path: "/v2/images/{image_id}/members/{member_id}",
        methods: &[("GET", show), ("PUT", update), ("DELETE", remove)],
    },
    Route {
        path: "/v1/images/{image_id}/members",
        methods: &[("GET", v1::members::list), ("PUT", v1::members::replace)],
    },
    Route {
        path: "/v1/images/{image_id}/members/{member_id}",
        methods: &[("PUT", v1::members::add), ("DELETE", v1::members::remove)],
    },
    Route {
        path: "/v1/shared-images/{member_id}",
        methods: &[("GET", v1::members::shared_images)],
    },
];

/// Handles one request to the members component.
pub fn handle(ports: &Ports, mut req: ApiRequest) -> ApiResponse {
    if !crate::api::negotiated(ports, &mut req) {
        return crate::api::discovery::choices(ports, req);
    }
    serve(ports, req, |req| {
        let matched = match routes::find(ROUTES, req) {
            Ok(m) => m,
            Err(e) => return ("-", auth::identify(ports, req).and(Err(e))),
        };
        let result =
            Ctx::new(ports, req).and_then(|ctx| (matched.handler)(&ctx, req, &matched.params));
        (matched.path, result)
    })
}

/// Everything a handler of this service needs, built once per request.
pub(crate) struct Ctx<'a> {
    pub images: ImageRepo<'a>,
    pub members: MemberRepo<'a>,
    pub caller: Caller,
    pub policy: Policy,
    /// Members per image.
    pub quota: i64,
}

impl<'a> Ctx<'a> {
    fn new(ports: &'a Ports<'a>, req: &ApiRequest) -> ApiResult<Self> {
        let caller = auth::identify(ports, req)?;
        Ok(Ctx {
            images: ImageRepo::open(ports.db)?,
            members: MemberRepo::new(ports.db),
            caller,
            policy: Policy::load(ports.vars)?,
            quota: ImageLimits::load(ports.vars)?.member_quota,
        })
    }

    /// Image lookups for this caller under these rules.
    pub fn access(&self) -> ImageAccess<'_> {
        ImageAccess {
            repo: &self.images,
            caller: &self.caller,
            policy: &self.policy,
        }
    }

    /// 403 unless the caller passes `rule` for the image (Glance's member
    /// rules answer 403, not 404, once the image itself is visible).
    pub fn enforce(&self, rule: Rule, v: &Visible) -> ApiResult<()> {
        self.policy.enforce(rule, &self.caller, &v.target)
    }

    /// Whether the caller may see `member_id`'s entry: admins and the owner
    /// see every member, a member only itself.
    pub fn sees_member(&self, v: &Visible, member_id: &str) -> bool {
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

/// 400 unless a member id fits Glance's column.
pub(crate) fn check_member_id(member_id: &str) -> ApiResult<()> {
    if member_id.chars().count() > 255 {
        return Err(ApiError::bad_request(
            "Member id is longer than 255 characters.",
        ));
    }
    Ok(())
}

fn member_not_found(member_id: &str, image_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "{member_id} not found in the member list of the image {image_id}."
    ))
}

fn list(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    ctx.enforce(Rule::GetMembers, &v)?;
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

fn add(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let (id, quota) = (&p["image_id"], ctx.quota);
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
    check_member_id(&member_id)?;
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    ctx.enforce(Rule::AddMember, &v)?;
    let now = Timestamp::now();
    let m = Member {
        image_id: id.to_string(),
        member_id: member_id.clone(),
        status: MemberStatus::Pending,
        can_share: false,
        created_at: now,
        updated_at: now,
    };
    match ctx.members.add(&m, quota)? {
        AddOutcome::Added => Ok(ApiResponse::json(StatusCode::OK, &m.to_json())
            .with_events(vec![Event::member("image.member.create", &m)])),
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

fn show(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let (id, member_id) = (&p["image_id"], &p["member_id"]);
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    // Glance answers 404 rather than 403 here, so membership does not leak.
    only_shared(&v).map_err(|e| ApiError::not_found(e.message))?;
    ctx.enforce(Rule::GetMember, &v)
        .map_err(|e| ApiError::not_found(e.message))?;
    let m = lookup(ctx, &v, member_id)?;
    Ok(ApiResponse::json(StatusCode::OK, &m.to_json()))
}

fn update(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let (id, member_id) = (&p["image_id"], &p["member_id"]);
    let body = req.json_body()?;
    let given = body
        .get("status")
        .ok_or_else(|| ApiError::bad_request("Status not specified"))?;
    let status = given
        .as_str()
        .and_then(MemberStatus::parse)
        .ok_or_else(|| {
            let shown = given
                .as_str()
                .map_or_else(|| given.to_string(), str::to_string);
            ApiError::bad_request(format!("Invalid status: {shown}"))
        })?;
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    lookup(ctx, &v, member_id)?;
    // The owner sees the entry but is not the member: 403.
    ctx.enforce(Rule::ModifyMember, &v)?;
    let m = ctx
        .members
        .set_status(id, member_id, status, Timestamp::now())?
        .ok_or_else(|| member_not_found(member_id, id))?;
    Ok(ApiResponse::json(StatusCode::OK, &m.to_json())
        .with_events(vec![Event::member("image.member.update", &m)]))
}

fn remove(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let (id, member_id) = (&p["image_id"], &p["member_id"]);
    req.reject_body()?;
    let v = ctx.access().load(id)?;
    only_shared(&v)?;
    let m = lookup(ctx, &v, member_id)?;
    ctx.enforce(Rule::DeleteMember, &v)?;
    if !ctx.members.remove(id, member_id)? {
        return Err(member_not_found(member_id, id));
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT)
        .with_events(vec![Event::member("image.member.delete", &m)]))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::handle;
    use crate::api::harness::{as_project, Harness};
    use crate::api::images;

    #[test]
    fn owner_shares_member_accepts_and_others_see_nothing() {
        let h = Harness::new();
        let owner = as_project("p1", "member");
        let img = h
            .json(
                images::handle,
                "POST",
                "/v2/images",
                &owner,
                &json!({"name": "s"}),
            )
            .expect(201);
        let id = img["id"].as_str().expect("id");
        let members = format!("/v2/images/{id}/members");
        let m = h
            .json(handle, "POST", &members, &owner, &json!({"member": "p2"}))
            .expect(200);
        assert_eq!(m["status"], "pending");
        h.json(handle, "POST", &members, &owner, &json!({"member": "p2"}))
            .error(409);
        let p2 = as_project("p2", "member");
        let accepted = h
            .json(
                handle,
                "PUT",
                &format!("{members}/p2"),
                &p2,
                &json!({"status": "accepted"}),
            )
            .expect(200);
        assert_eq!(accepted["status"], "accepted");
        let msg = h
            .json(
                handle,
                "PUT",
                &format!("{members}/p2"),
                &p2,
                &json!({"status": "maybe"}),
            )
            .error(400);
        assert_eq!(msg, "Invalid status: maybe");
        // The owner sees the entry but may not answer for the member.
        h.json(
            handle,
            "PUT",
            &format!("{members}/p2"),
            &owner,
            &json!({"status": "rejected"}),
        )
        .error(403);
        let listed = h.call(handle, "GET", &members, &p2, b"").expect(200);
        assert_eq!(listed["members"].as_array().map(Vec::len), Some(1));
        let p3 = as_project("p3", "member");
        h.call(handle, "GET", &members, &p3, b"").error(404);
        h.call(handle, "DELETE", &format!("{members}/p2"), &owner, b"")
            .expect(204);
        let r = h.call(handle, "PATCH", &members, &owner, b"");
        assert_eq!(r.header("allow"), Some("GET, POST"));
    }

    #[test]
    fn the_member_quota_is_a_413() {
        let h = Harness::new();
        h.set("image_member_quota", "1");
        let img = h
            .json(images::handle, "POST", "/v2/images", &[], &json!({}))
            .expect(201);
        let members = format!("/v2/images/{}/members", img["id"].as_str().expect("id"));
        h.json(handle, "POST", &members, &[], &json!({"member": "a"}))
            .expect(200);
        h.json(handle, "POST", &members, &[], &json!({"member": "b"}))
            .error(413);
    }
}

//! Edge site mode (`upstream_glance_url`): `GET /v2/images/{id}` and its
//! `/file` for an id unknown here answer what the upstream Glance shows the
//! caller (`data::upstream`), the data through the image cache. Every other
//! verb acts on local images only.

use http::StatusCode;
use serde_json::Value;

use super::files::{data_response, through_cache, wanted_range};
use super::Ctx;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::{Rule, Target};
use crate::data::cache::Wanted;
use crate::data::upstream::{self, Credentials, Upstream};
use crate::error::{ApiError, ApiResult};
use crate::image::schema;
use crate::settings::CacheSettings;

/// Whether this site is an edge of an upstream Glance.
pub(super) fn on(ctx: &Ctx) -> bool {
    CacheSettings::load(ctx.ports.vars).is_ok_and(|s| s.upstream.is_some())
}

/// The upstream's record of `id` for this caller; 404 when it shows none.
pub(super) fn record(
    ctx: &Ctx,
    req: &ApiRequest,
    id: &str,
) -> ApiResult<(Value, Credentials, String)> {
    if !schema::is_uuid(id) {
        return Err(ApiError::image_not_found(id));
    }
    let settings = CacheSettings::load(ctx.ports.vars)?;
    let Some(url) = settings.upstream.as_deref() else {
        return Err(ApiError::image_not_found(id));
    };
    let creds = Credentials::of(req, &ctx.caller);
    let up = Upstream::new(
        url,
        settings.upstream_ttl,
        ctx.ports.http.clone(),
        ctx.ports.db,
    );
    match up.image(&creds, id)? {
        Some(rec) => Ok((rec, creds, url.to_string())),
        None => Err(ApiError::image_not_found(id)),
    }
}

/// The policy target of an upstream record for this caller.
pub(super) fn target(ctx: &Ctx, rec: &Value) -> Target {
    let text = |k: &str| rec[k].as_str().map(str::to_string);
    let owner = text("owner");
    let visibility = text("visibility");
    let member_id = match (&ctx.caller.project_id, visibility.as_deref()) {
        // The upstream showed a shared image it does not own to the caller:
        // the caller's project is a member.
        (Some(p), Some("shared")) if owner.as_deref() != Some(p.as_str()) => Some(p.clone()),
        _ => None,
    };
    Target {
        owner,
        member_id,
        visibility,
    }
}

/// `GET /v2/images/{id}` of an upstream image.
pub(super) fn show(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let (rec, _, _) = record(ctx, req, id)?;
    Ok(ApiResponse::json(StatusCode::OK, &rec))
}

/// `GET /v2/images/{id}/file` of an upstream image: the rules are checked
/// here on what the upstream showed (a cache hit does not ask it again).
pub(super) fn download(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let (rec, creds, url) = record(ctx, req, id)?;
    let target = target(ctx, &rec);
    ctx.policy
        .enforce(Rule::DownloadImage, &ctx.caller, &target)?;
    let status = rec["status"].as_str().unwrap_or_default();
    if status == "deactivated" && !ctx.caller.is_admin() {
        return Err(ApiError::forbidden(
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    let Some(size) = rec["size"].as_u64().filter(|_| status == "active") else {
        return Ok(ApiResponse::empty(StatusCode::NO_CONTENT));
    };
    let (code, range) = wanted_range(req, size)?;
    let checksum = rec["checksum"].as_str();
    let http = ctx.ports.http.clone();
    let source = |r| upstream::data(http.as_ref(), &url, &creds, id, r);
    let wanted = Wanted {
        image_id: id,
        size,
        checksum,
        fill: true,
    };
    let served = through_cache(ctx, &wanted, range, &source)?;
    Ok(data_response(code, size, range, checksum, served))
}

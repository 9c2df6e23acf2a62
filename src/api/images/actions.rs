//! `POST /v2/images/{image_id}/actions/{deactivate,reactivate}`.

use http::StatusCode;

use super::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Rule;
use crate::error::{ApiError, ApiResult};
use crate::image::Status;

/// Blocks downloads of an active image (a deactivated one stays so).
pub(super) fn deactivate(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    act(ctx, req, p, Rule::Deactivate, Status::Deactivated)
}

/// Allows downloads of a deactivated image again (an active one stays so).
pub(super) fn reactivate(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    act(ctx, req, p, Rule::Reactivate, Status::Active)
}

fn act(
    ctx: &Ctx,
    req: &mut ApiRequest,
    p: &Params,
    rule: Rule,
    to: Status,
) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    ctx.modify(&p["image_id"], Some(rule), |img| {
        if img.status == to {
            return Ok(false);
        }
        let moved = match to {
            Status::Active => img.reactivate(),
            _ => img.deactivate(),
        };
        moved.map_err(|t| {
            ApiError::forbidden(format!(
                "Not allowed to {rule} image in status '{}'",
                t.from
            ))
        })?;
        Ok(true)
    })?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

//! Tags: `PUT` and `DELETE /v2/images/{image_id}/tags/{tag}`.

use http::StatusCode;
use serde_json::json;

use super::metadata::check_quotas;
use super::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Rule;
use crate::error::{ApiError, ApiResult};
use crate::image::schema;

/// `PUT /v2/images/{image_id}/tags/{tag}`: adds the tag (tags are a set).
pub(super) fn add(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let tag = &p["tag"];
    req.reject_body()?;
    schema::validate_value("tags", &json!([tag]))?;
    ctx.modify(&p["image_id"], Some(Rule::ModifyImage), |img| {
        if img.tags.iter().any(|t| t == tag) {
            return Ok(false);
        }
        img.add_tag(tag);
        check_quotas(img, &ctx.limits)?;
        Ok(true)
    })?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /v2/images/{image_id}/tags/{tag}`: 404 when the image lacks it.
pub(super) fn remove(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let tag = &p["tag"];
    req.reject_body()?;
    ctx.modify(&p["image_id"], Some(Rule::ModifyImage), |img| {
        let before = img.tags.len();
        img.tags.retain(|t| t != tag);
        if img.tags.len() == before {
            return Err(ApiError::not_found(format!("Tag {tag} not found.")));
        }
        Ok(true)
    })?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

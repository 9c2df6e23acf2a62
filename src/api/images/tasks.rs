//! `GET /v2/images/{image_id}/tasks` (API v2.12).

use http::StatusCode;
use serde_json::{json, Value};

use super::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::db::tasks::{Task, TaskRepo};
use crate::error::ApiResult;

/// The image's import tasks, oldest first, for any caller who may see the
/// image (404 otherwise). Like Glance, a caller sees the tasks its project
/// started; an admin sees them all.
pub(super) fn list(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = ctx.access().load(&p["image_id"])?;
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

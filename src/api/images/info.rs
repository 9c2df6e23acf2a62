//! Discovery of the data plane (`/v2/info/import`, `/v2/info/stores`,
//! `/v2/info/stores/detail`) and removing one stored copy
//! (`DELETE /v2/stores/{store}/{image}`).

use http::StatusCode;
use serde_json::{json, Map, Value};

use crate::api::images::{modify, Ctx};
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Target;
use crate::error::{ApiError, ApiResult};
use crate::image::Status;

/// `GET /v2/info/import`.
pub fn import_methods(ctx: &Ctx, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"import-methods": {
            "description": "Import methods available.",
            "type": "array",
            "value": ctx.settings.import_methods,
        }}),
    ))
}

fn single_store() -> ApiError {
    ApiError::not_found("The resource could not be found.")
}

fn store_entries(ctx: &Ctx, detail: bool) -> Vec<Value> {
    ctx.settings
        .enabled
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("id".into(), s.id.clone().into());
            m.insert("description".into(), s.description.clone().into());
            if s.id == ctx.settings.default {
                m.insert("default".into(), "true".into());
            }
            if s.read_only {
                m.insert("read-only".into(), "true".into());
            }
            if detail {
                m.insert("type".into(), s.id.clone().into());
                m.insert("weight".into(), 0.into());
                let props = match s.id.as_str() {
                    "kv" => json!({"chunk_size": ctx.settings.kv_chunk_size}),
                    "s3" => ctx.settings.s3.as_ref().map_or(json!({}), |s3| {
                        json!({"endpoint": s3.endpoint, "bucket": s3.bucket, "part_size": s3.part_size})
                    }),
                    _ => json!({}),
                };
                m.insert("properties".into(), props);
            }
            Value::Object(m)
        })
        .collect()
}

/// `GET /v2/info/stores`: 404 with a single store, as single-store Glance answers.
pub fn stores(ctx: &Ctx, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    if !ctx.settings.multi_store() {
        return Err(single_store());
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"stores": store_entries(ctx, false)}),
    ))
}

/// `GET /v2/info/stores/detail` (admin).
pub fn stores_detail(ctx: &Ctx, req: &mut ApiRequest) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    if !ctx.settings.multi_store() {
        return Err(single_store());
    }
    let own = Target {
        owner: ctx.caller.project_id.clone(),
        ..Target::default()
    };
    ctx.policy
        .enforce("stores_info_detail", &ctx.caller, &own)?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"stores": store_entries(ctx, true)}),
    ))
}

/// `DELETE /v2/stores/{store}/{image}`: removes the copy in one store.
pub fn delete_from_store(
    ctx: &Ctx,
    req: &mut ApiRequest,
    store: &str,
    id: &str,
) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    if !ctx.settings.multi_store() {
        return Err(single_store());
    }
    if !ctx.settings.has(store) {
        return Err(ApiError::conflict(format!("Store {store} is not enabled.")));
    }
    let access = ctx.access();
    let v = access.load(id)?;
    access.enforce("delete_image_location", &v)?;
    if v.image.status != Status::Active {
        return Err(ApiError::conflict(
            "It's not allowed to remove image data from store if image status is not 'active'",
        ));
    }
    let Some(location) = v.image.locations.iter().find(|l| l.store == store).cloned() else {
        return Err(ApiError::not_found(format!(
            "Image {id} is not present in store {store}"
        )));
    };
    if v.image.locations.len() == 1 {
        return Err(ApiError::forbidden(
            "Cannot delete image data from the only store containing it. Consider deleting the image instead.",
        ));
    }
    modify(ctx, id, None, |img| {
        let before = img.locations.len();
        img.locations.retain(|l| l.url != location.url);
        Ok(img.locations.len() != before)
    })?;
    if let Some(s) = ctx.stores()?.for_location(&location) {
        let _ = s.delete(&location);
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

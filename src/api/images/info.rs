//! Discovery of the data plane (`/v2/info/import`, `/v2/info/stores`,
//! `/v2/info/stores/detail`) and removing one stored copy
//! (`DELETE /v2/stores/{store}/{image}`).

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::{Rule, Target};
use crate::data::reclaim;
use crate::data::stores::StoreId;
use crate::error::{ApiError, ApiResult};
use crate::image::Status;

/// `GET /v2/info/import`.
pub(super) fn import_methods(
    ctx: &Ctx,
    req: &mut ApiRequest,
    _: &Params,
) -> ApiResult<ApiResponse> {
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
    ApiError::no_resource()
}

fn store_entries(ctx: &Ctx, detail: bool) -> Vec<Value> {
    ctx.settings
        .enabled
        .iter()
        .map(|s| {
            let mut m = Map::new();
            m.insert("id".into(), s.id.as_str().into());
            m.insert("description".into(), s.description.into());
            if s.id == ctx.settings.default {
                m.insert("default".into(), "true".into());
            }
            if s.read_only {
                m.insert("read-only".into(), "true".into());
            }
            if detail {
                m.insert("type".into(), s.id.as_str().into());
                m.insert("weight".into(), 0.into());
                let props = match s.id {
                    StoreId::Kv => json!({"chunk_size": ctx.settings.kv_chunk_size}),
                    StoreId::S3 => ctx.settings.s3.as_ref().map_or(json!({}), |s3| {
                        json!({"endpoint": s3.endpoint, "bucket": s3.bucket, "part_size": s3.part_size})
                    }),
                    StoreId::Http => json!({}),
                };
                m.insert("properties".into(), props);
            }
            Value::Object(m)
        })
        .collect()
}

/// `GET /v2/info/stores`: 404 with a single store, as single-store Glance answers.
pub(super) fn stores(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
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
pub(super) fn stores_detail(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    if !ctx.settings.multi_store() {
        return Err(single_store());
    }
    let own = Target {
        owner: ctx.caller.project_id.clone(),
        ..Target::default()
    };
    ctx.policy
        .enforce(Rule::StoresInfoDetail, &ctx.caller, &own)?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"stores": store_entries(ctx, true)}),
    ))
}

/// `DELETE /v2/stores/{store}/{image}`: removes the copy in one store.
pub(super) fn delete_from_store(
    ctx: &Ctx,
    req: &mut ApiRequest,
    p: &Params,
) -> ApiResult<ApiResponse> {
    let (name, id) = (&p["store_id"], &p["image_id"]);
    req.reject_body()?;
    if !ctx.settings.multi_store() {
        return Err(single_store());
    }
    let Some(store) = StoreId::parse(name).filter(|s| ctx.settings.has(*s)) else {
        return Err(ApiError::conflict(format!("Store {name} is not enabled.")));
    };
    let access = ctx.access();
    let v = access.load(id)?;
    access.enforce(Rule::DeleteImageLocation, &v)?;
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
    ctx.modify(id, None, |img| {
        let before = img.locations.len();
        img.locations.retain(|l| l.url != location.url);
        Ok(img.locations.len() != before)
    })?;
    reclaim::image(ctx.ports, ctx.stores()?, id);
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

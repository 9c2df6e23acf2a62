//! Resource types (`GET /v2/metadefs/resource_types`) and a namespace's
//! associations with them (`.../namespaces/{ns}/resource_types[/{name}]`).
//! Associating a namespace with a resource type nobody named before creates
//! it, as in Glance; removing the association leaves the type.

use http::StatusCode;
use serde_json::{json, Value};

use super::{body, Ctx};
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Rule;
use crate::db::metadefs::{Association, Write};
use crate::error::{ApiError, ApiResult};
use crate::metadefs::schema::Doc;
use crate::metadefs::view;
use crate::timestamp::Timestamp;

/// `GET /v2/metadefs/resource_types`.
pub(super) fn list(ctx: &Ctx, _: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    ctx.access().enforce(Rule::ListMetadefResourceTypes, None)?;
    let types: Vec<Value> = ctx
        .repo
        .resource_types()?
        .iter()
        .map(view::resource_type)
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"resource_types": types}),
    ))
}

/// `GET .../namespaces/{ns}/resource_types`.
pub(super) fn list_associations(
    ctx: &Ctx,
    _: &mut ApiRequest,
    p: &Params,
) -> ApiResult<ApiResponse> {
    let access = ctx.access();
    let ns = access.find(&ctx.repo, &p["ns"])?;
    access.enforce(Rule::GetMetadefResourceType, Some(&ns))?;
    let list: Vec<Value> = ctx
        .repo
        .associations(ns.id)?
        .iter()
        .map(view::association)
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"resource_type_associations": list}),
    ))
}

/// `POST .../namespaces/{ns}/resource_types` with `name`, `prefix`,
/// `properties_target`.
pub(super) fn associate(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let access = ctx.access();
    let ns = access.find(&ctx.repo, &p["ns"])?;
    access.enforce(Rule::AddMetadefResourceTypeAssociation, Some(&ns))?;
    let body = body(req, Doc::ResourceType)?;
    let now = Timestamp::now().to_string();
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let a = Association {
        name: text("name").unwrap_or_default(),
        prefix: text("prefix"),
        properties_target: text("properties_target"),
        created_at: now.clone(),
        updated_at: now,
    };
    match ctx.repo.associate(ns.id, &a)? {
        Write::Done(_) => Ok(ApiResponse::json(
            StatusCode::CREATED,
            &view::association(&a),
        )),
        _ => Err(ApiError::conflict(format!(
            "The metadata definition resource-type association of resource-type={} to \
             namespace={} already exists.",
            a.name, ns.namespace
        ))),
    }
}

/// `DELETE .../namespaces/{ns}/resource_types/{name}`: 403 while the
/// namespace is protected.
pub(super) fn dissociate(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let access = ctx.access();
    let ns = access.find(&ctx.repo, &p["ns"])?;
    access.enforce(Rule::RemoveMetadefResourceTypeAssociation, Some(&ns))?;
    let name = &p["name"];
    if !ctx.repo.resource_type_exists(name)? {
        return Err(ApiError::not_found(format!(
            "Failed to find resource type {name} to delete"
        )));
    }
    if ns.protected {
        return Err(ApiError::forbidden(format!(
            "Metadata definition resource-type-association {name} is protected and cannot be \
             deleted."
        )));
    }
    if !ctx.repo.dissociate(ns.id, name)? {
        return Err(ApiError::not_found(format!(
            "The metadata definition resource-type association of resource-type={name} to \
             namespace={}, was not found.",
            ns.namespace
        )));
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

//! Namespaces: `/v2/metadefs/namespaces[/{ns}]`. A create may carry the
//! whole namespace — resource type associations, properties, objects, tags —
//! which is how a catalog file (Glance's `etc/metadefs/*.json`) is loaded;
//! a show returns all of it again (the export).

use std::collections::HashSet;

use http::StatusCode;
use serde_json::{json, Value};

use super::{body, paging, param, query, Ctx};
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Rule;
use crate::db::metadefs::{
    Association, ItemQuery, Kind, Namespace, NamespaceQuery, Write, NAMESPACE_SORT_KEYS,
};
use crate::error::{ApiError, ApiResult};
use crate::metadefs::access::not_found;
use crate::metadefs::schema::Doc;
use crate::metadefs::view;
use crate::timestamp::Timestamp;

/// 409 for a namespace name in use.
fn duplicate(name: &str) -> ApiError {
    ApiError::conflict(format!(
        "The metadata definition namespace={name} already exists."
    ))
}

fn text(body: &Value, key: &str) -> Option<String> {
    body.get(key).and_then(Value::as_str).map(str::to_string)
}

/// `GET /v2/metadefs/namespaces`: `limit`, `marker` (a namespace name),
/// `sort_key`, `sort_dir`, `visibility`, `resource_types` (comma-separated).
pub(super) fn list(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let access = ctx.access();
    access.enforce(Rule::GetMetadefNamespaces, None)?;
    access.enforce(Rule::ListMetadefResourceTypes, None)?;
    let params = query(req);
    let page = paging(&params, &ctx.limits, NAMESPACE_SORT_KEYS)?;
    let visibility = param(&params, "visibility").filter(|v| !v.is_empty());
    if let Some(v) = visibility {
        if v != "public" && v != "private" {
            return Err(ApiError::bad_request(format!(
                "Invalid visibility value: {v}"
            )));
        }
    }
    let marker = match page.marker {
        Some(m) => Some(access.find(&ctx.repo, m)?),
        None => None,
    };
    let resource_types = param(&params, "resource_types").map(|t| {
        t.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    });
    let rows = ctx.repo.namespaces(&NamespaceQuery {
        scope: access.scope(),
        visibility,
        resource_types,
        sort_key: page.sort_key,
        sort_dir: page.sort_dir,
        marker: marker.as_ref(),
        limit: page.limit,
    })?;
    let full_page = !rows.is_empty() && rows.len() as i64 == page.limit;
    let last = rows.last().map(|n| n.namespace.clone());
    let mut out = Vec::new();
    for ns in rows
        .iter()
        .filter(|ns| access.allows(Rule::GetMetadefNamespace, Some(ns)))
    {
        let mut m = view::namespace(ns);
        let assoc = ctx.repo.associations(ns.id)?;
        if !assoc.is_empty() {
            m.insert(
                "resource_type_associations".into(),
                Value::Array(assoc.iter().map(view::association).collect()),
            );
        }
        out.push(Value::Object(m));
    }
    let others: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "marker").collect();
    let encode = |extra: Option<&str>| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &others {
            ser.append_pair(k, v);
        }
        if let Some(m) = extra {
            ser.append_pair("marker", m);
        }
        ser.finish()
    };
    let first = match encode(None) {
        q if q.is_empty() => "/v2/metadefs/namespaces".to_string(),
        q => format!("/v2/metadefs/namespaces?{q}"),
    };
    let mut doc = json!({
        "namespaces": out,
        "first": first,
        "schema": "/v2/schemas/metadefs/namespaces",
    });
    if let (true, Some(last)) = (full_page, last) {
        doc["next"] = json!(format!("/v2/metadefs/namespaces?{}", encode(Some(&last))));
    }
    Ok(ApiResponse::json(StatusCode::OK, &doc))
}

/// The namespace with everything it holds; with `resource_type`, the
/// property names of the namespace and its objects get that association's
/// prefix (`hw_`).
fn full_view(ctx: &Ctx, ns: &Namespace, resource_type: Option<&str>) -> ApiResult<Value> {
    let mut m = view::namespace(ns);
    let assoc = ctx.repo.associations(ns.id)?;
    let prefix = resource_type
        .and_then(|rt| assoc.iter().find(|a| a.name == rt))
        .and_then(|a| a.prefix.clone())
        .unwrap_or_default();
    if !assoc.is_empty() {
        m.insert(
            "resource_type_associations".into(),
            Value::Array(assoc.iter().map(view::association).collect()),
        );
    }
    let all = ItemQuery::default();
    let props = ctx.repo.items(Kind::Property, ns.id, &all)?;
    if !props.is_empty() {
        let map = props
            .iter()
            .map(|p| (format!("{prefix}{}", p.name), view::property_definition(p)))
            .collect();
        m.insert("properties".into(), Value::Object(map));
    }
    let objects = ctx.repo.items(Kind::Object, ns.id, &all)?;
    if !objects.is_empty() {
        m.insert(
            "objects".into(),
            Value::Array(
                objects
                    .iter()
                    .map(|o| view::object(&ns.namespace, o, &prefix))
                    .collect(),
            ),
        );
    }
    let tags = ctx.repo.items(Kind::Tag, ns.id, &all)?;
    if !tags.is_empty() {
        m.insert(
            "tags".into(),
            Value::Array(tags.iter().map(|t| json!({"name": t.name})).collect()),
        );
    }
    Ok(Value::Object(m))
}

/// `GET /v2/metadefs/namespaces/{ns}[?resource_type=...]`.
pub(super) fn show(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let access = ctx.access();
    let ns = access.find(&ctx.repo, &p["ns"])?;
    access.enforce(Rule::GetMetadefNamespace, Some(&ns))?;
    for rule in [
        Rule::ListMetadefResourceTypes,
        Rule::GetMetadefObjects,
        Rule::GetMetadefProperties,
        Rule::GetMetadefTags,
    ] {
        access.enforce(rule, Some(&ns))?;
    }
    let params = query(req);
    let doc = full_view(ctx, &ns, param(&params, "resource_type"))?;
    Ok(ApiResponse::json(StatusCode::OK, &doc))
}

/// Checks that names in a nested list are unique (`fold`: without case).
fn unique<'b>(
    names: impl Iterator<Item = &'b str>,
    fold: bool,
    conflict: impl Fn(&str) -> ApiError,
) -> ApiResult<()> {
    let mut seen = HashSet::new();
    for n in names {
        let key = if fold {
            n.to_lowercase()
        } else {
            n.to_string()
        };
        if !seen.insert(key) {
            return Err(conflict(n));
        }
    }
    Ok(())
}

fn names<'b>(body: &'b Value, key: &str) -> Vec<&'b str> {
    body.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("name").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

/// `POST /v2/metadefs/namespaces`: a namespace, optionally with its
/// `resource_type_associations`, `properties`, `objects` and `tags` — a whole
/// catalog file. Nothing is written when the body is refused.
pub(super) fn create(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    let body = body(req, Doc::Namespace)?;
    let name = text(&body, "namespace").unwrap_or_default();
    let access = ctx.access();
    access.enforce(Rule::AddMetadefNamespace, None)?;
    let has = |k: &str| match body.get(k) {
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        _ => false,
    };
    if has("resource_type_associations") {
        access.enforce(Rule::AddMetadefResourceTypeAssociation, None)?;
    }
    if has("objects") {
        access.enforce(Rule::AddMetadefObject, None)?;
    }
    if has("properties") {
        access.enforce(Rule::AddMetadefProperty, None)?;
    }
    if has("tags") {
        access.enforce(Rule::AddMetadefTag, None)?;
    }
    let assoc_names = names(&body, "resource_type_associations");
    if assoc_names.len()
        != body["resource_type_associations"]
            .as_array()
            .map_or(0, Vec::len)
    {
        return Err(ApiError::bad_request(
            "Couldn't create metadata namespace: a resource type association needs a name",
        ));
    }
    let object_names = names(&body, "objects");
    if object_names.len() != body["objects"].as_array().map_or(0, Vec::len) {
        return Err(ApiError::bad_request(
            "Couldn't create metadata namespace: an object needs a name",
        ));
    }
    let tag_names = names(&body, "tags");
    if tag_names.len() != body["tags"].as_array().map_or(0, Vec::len) {
        return Err(ApiError::bad_request(
            "Couldn't create metadata namespace: a tag needs a name",
        ));
    }
    unique(assoc_names.iter().copied(), false, |n| {
        ApiError::conflict(format!(
            "The metadata definition resource-type association of resource-type={n} to \
             namespace={name} already exists."
        ))
    })?;
    unique(object_names.iter().copied(), false, |n| {
        ApiError::conflict(format!(
            "A metadata definition object with name={n} already exists in namespace={name}."
        ))
    })?;
    unique(tag_names.iter().copied(), true, |n| {
        ApiError::conflict(format!(
            "A metadata tag with name={n} already exists in namespace={name}. (Please note \
             that metadata tag names are case insensitive)."
        ))
    })?;
    let now = Timestamp::now().to_string();
    let ns = Namespace {
        id: 0,
        namespace: name.clone(),
        display_name: text(&body, "display_name"),
        description: text(&body, "description"),
        visibility: text(&body, "visibility").unwrap_or_else(|| "private".into()),
        protected: body["protected"].as_bool().unwrap_or(false),
        owner: text(&body, "owner").or_else(|| ctx.caller.project_id.clone()),
        created_at: now.clone(),
        updated_at: now.clone(),
    };
    let id = match ctx.repo.insert_namespace(&ns)? {
        Write::Done(id) => id,
        _ => return Err(duplicate(&name)),
    };
    let ns = Namespace { id, ..ns };
    for a in body["resource_type_associations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        ctx.repo.associate(
            id,
            &Association {
                name: text(a, "name").unwrap_or_default(),
                prefix: text(a, "prefix"),
                properties_target: text(a, "properties_target"),
                created_at: now.clone(),
                updated_at: now.clone(),
            },
        )?;
    }
    if let Some(props) = body["properties"].as_object() {
        for (pname, def) in props {
            ctx.repo
                .insert_item(Kind::Property, id, pname, &view::property_doc(def), &now)?;
        }
    }
    for o in body["objects"].as_array().into_iter().flatten() {
        let oname = text(o, "name").unwrap_or_default();
        ctx.repo
            .insert_item(Kind::Object, id, &oname, &view::object_doc(o), &now)?;
    }
    for t in &tag_names {
        ctx.repo.insert_item(Kind::Tag, id, t, &Value::Null, &now)?;
    }
    let doc = full_view(ctx, &ns, None)?;
    Ok(ApiResponse::json(StatusCode::CREATED, &doc).with_header(
        "location",
        format!("{}{}", req.base_url, view::namespace_href(&ns.namespace)),
    ))
}

/// `PUT /v2/metadefs/namespaces/{ns}`: replaces the namespace's own
/// attributes (what it holds stays); omitted ones take their defaults
/// (`private`, not protected, the caller's project as owner), as in Glance.
pub(super) fn update(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let access = ctx.access();
    let ns = access.find(&ctx.repo, &p["ns"])?;
    let body = body(req, Doc::Namespace)?;
    access.enforce(Rule::ModifyMetadefNamespace, Some(&ns))?;
    let new_name = text(&body, "namespace").unwrap_or_else(|| ns.namespace.clone());
    let changed = Namespace {
        namespace: new_name.clone(),
        display_name: text(&body, "display_name"),
        description: text(&body, "description"),
        visibility: text(&body, "visibility").unwrap_or_else(|| "private".into()),
        protected: body["protected"].as_bool().unwrap_or(false),
        owner: text(&body, "owner").or_else(|| ctx.caller.project_id.clone()),
        updated_at: Timestamp::now().to_string(),
        ..ns.clone()
    };
    match ctx.repo.update_namespace(&changed)? {
        Write::Done(_) => {}
        Write::Duplicate => return Err(duplicate(&new_name)),
        Write::Gone => return Err(not_found(&ns.namespace)),
    }
    Ok(ApiResponse::json(
        StatusCode::OK,
        &Value::Object(view::namespace(&changed)),
    ))
}

/// `DELETE /v2/metadefs/namespaces/{ns}`: 403 while it is protected.
pub(super) fn delete(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let access = ctx.access();
    let ns = access.find(&ctx.repo, &p["ns"])?;
    access.enforce(Rule::DeleteMetadefNamespace, Some(&ns))?;
    check_unprotected(&ns)?;
    ctx.repo.delete_namespace(ns.id)?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// 403 if `ns` is protected (nothing of it may be deleted).
pub(super) fn check_unprotected(ns: &Namespace) -> ApiResult<()> {
    if ns.protected {
        return Err(ApiError::forbidden(format!(
            "Metadata definition namespace {} is protected and cannot be deleted.",
            ns.namespace
        )));
    }
    Ok(())
}

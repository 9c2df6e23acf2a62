//! What a namespace holds: objects (`.../objects[/{name}]`), properties
//! (`.../properties[/{name}]`) and tags (`.../tags[/{name}]`, with the
//! multiple-create `POST .../tags` that replaces all tags unless
//! `X-Openstack-Append: true`).

use http::StatusCode;
use serde_json::{json, Value};

use super::namespaces::check_unprotected;
use super::{body, paging, query, Ctx};
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::Rule;
use crate::db::metadefs::{Item, ItemQuery, Kind, Namespace, Write, ITEM_SORT_KEYS};
use crate::error::{ApiError, ApiResult};
use crate::metadefs::schema::{self, Doc};
use crate::metadefs::view;
use crate::timestamp::Timestamp;

/// The namespace of the request, visible to the caller, and `rule` passed.
fn namespace(ctx: &Ctx, p: &Params, rule: Rule) -> ApiResult<Namespace> {
    let access = ctx.access();
    let ns = access.find(&ctx.repo, &p["ns"])?;
    access.enforce(rule, Some(&ns))?;
    Ok(ns)
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Object => "object",
        Kind::Property => "property",
        Kind::Tag => "tag",
    }
}

fn not_found(kind: Kind, ns: &str, name: &str) -> ApiError {
    match kind {
        Kind::Tag => ApiError::not_found(format!(
            "The metadata definition tag with name={name} was not found in namespace={ns}."
        )),
        _ => ApiError::not_found(format!(
            "The metadata definition {} with name={name} was not found in namespace={ns}.",
            what(kind)
        )),
    }
}

fn duplicate(kind: Kind, ns: &str, name: &str) -> ApiError {
    match kind {
        Kind::Tag => ApiError::conflict(format!(
            "A metadata tag with name={name} already exists in namespace={ns}. (Please note \
             that metadata tag names are case insensitive)."
        )),
        _ => ApiError::conflict(format!(
            "A metadata definition {} with name={name} already exists in namespace={ns}.",
            what(kind)
        )),
    }
}

fn find(ctx: &Ctx, kind: Kind, ns: &Namespace, name: &str) -> ApiResult<Item> {
    ctx.repo
        .item(kind, ns.id, name)?
        .ok_or_else(|| not_found(kind, &ns.namespace, name))
}

fn inserted(ctx: &Ctx, kind: Kind, ns: &Namespace, name: &str, doc: &Value) -> ApiResult<Item> {
    let now = Timestamp::now().to_string();
    match ctx.repo.insert_item(kind, ns.id, name, doc, &now)? {
        Write::Done(_) => find(ctx, kind, ns, name),
        _ => Err(duplicate(kind, &ns.namespace, name)),
    }
}

fn updated(
    ctx: &Ctx,
    kind: Kind,
    ns: &Namespace,
    old: &Item,
    name: &str,
    doc: &Value,
) -> ApiResult<Item> {
    let now = Timestamp::now().to_string();
    match ctx.repo.update_item(kind, old.id, name, doc, &now)? {
        Write::Done(_) => find(ctx, kind, ns, name),
        Write::Duplicate => Err(duplicate(kind, &ns.namespace, name)),
        Write::Gone => Err(not_found(kind, &ns.namespace, &old.name)),
    }
}

fn removed(ctx: &Ctx, kind: Kind, ns: &Namespace, name: &str) -> ApiResult<ApiResponse> {
    let item = find(ctx, kind, ns, name)?;
    if ns.protected {
        return Err(ApiError::forbidden(format!(
            "Metadata definition {} {} is protected and cannot be deleted.",
            what(kind),
            item.name
        )));
    }
    if !ctx.repo.delete_item(kind, ns.id, &item.name)? {
        return Err(not_found(kind, &ns.namespace, name));
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

fn all_removed(ctx: &Ctx, kind: Kind, ns: &Namespace) -> ApiResult<ApiResponse> {
    check_unprotected(ns)?;
    ctx.repo.delete_items(kind, ns.id)?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// A page of `kind` items (`limit`, `marker` by name, `sort_key`, `sort_dir`).
fn page(ctx: &Ctx, req: &ApiRequest, kind: Kind, ns: &Namespace) -> ApiResult<Vec<Item>> {
    let params = query(req);
    let page = paging(&params, &ctx.limits, ITEM_SORT_KEYS)?;
    let marker = match page.marker {
        Some(m) => Some(find(ctx, kind, ns, m)?),
        None => None,
    };
    Ok(ctx.repo.items(
        kind,
        ns.id,
        &ItemQuery {
            sort_key: page.sort_key,
            sort_dir: page.sort_dir,
            marker: marker.as_ref(),
            limit: Some(page.limit),
        },
    )?)
}

fn name_of(body: &Value) -> String {
    body["name"].as_str().unwrap_or_default().to_string()
}

// ---- objects

/// `GET .../objects`.
pub(super) fn list_objects(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::GetMetadefObjects)?;
    let objects = page(ctx, req, Kind::Object, &ns)?;
    let list: Vec<Value> = objects
        .iter()
        .map(|o| view::object(&ns.namespace, o, ""))
        .collect();
    // Glance's link, without its leading slash.
    let doc = json!({"objects": list, "schema": "v2/schemas/metadefs/objects"});
    Ok(ApiResponse::json(StatusCode::OK, &doc))
}

/// `POST .../objects`.
pub(super) fn create_object(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::AddMetadefObject)?;
    let body = body(req, Doc::Object)?;
    let o = inserted(
        ctx,
        Kind::Object,
        &ns,
        &name_of(&body),
        &view::object_doc(&body),
    )?;
    Ok(ApiResponse::json(
        StatusCode::CREATED,
        &view::object(&ns.namespace, &o, ""),
    ))
}

/// `GET .../objects/{name}`.
pub(super) fn show_object(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::GetMetadefObject)?;
    let o = find(ctx, Kind::Object, &ns, &p["name"])?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view::object(&ns.namespace, &o, ""),
    ))
}

/// `PUT .../objects/{name}`: replaces the object (and may rename it).
pub(super) fn update_object(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::ModifyMetadefObject)?;
    let body = body(req, Doc::Object)?;
    let old = find(ctx, Kind::Object, &ns, &p["name"])?;
    let o = updated(
        ctx,
        Kind::Object,
        &ns,
        &old,
        &name_of(&body),
        &view::object_doc(&body),
    )?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view::object(&ns.namespace, &o, ""),
    ))
}

/// `DELETE .../objects/{name}`.
pub(super) fn delete_object(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::DeleteMetadefObject)?;
    removed(ctx, Kind::Object, &ns, &p["name"])
}

/// `DELETE .../objects`: every object of the namespace.
pub(super) fn delete_objects(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::DeleteMetadefNamespace)?;
    all_removed(ctx, Kind::Object, &ns)
}

// ---- properties

/// `GET .../properties`: a map of name to definition.
pub(super) fn list_properties(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::GetMetadefProperties)?;
    let props = ctx
        .repo
        .items(Kind::Property, ns.id, &ItemQuery::default())?;
    let map: serde_json::Map<String, Value> = props
        .iter()
        .map(|p| (p.name.clone(), view::property_definition(p)))
        .collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"properties": map}),
    ))
}

/// `POST .../properties`.
pub(super) fn create_property(
    ctx: &Ctx,
    req: &mut ApiRequest,
    p: &Params,
) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::AddMetadefProperty)?;
    let body = body(req, Doc::Property)?;
    let name = name_of(&body);
    let prop = inserted(ctx, Kind::Property, &ns, &name, &view::property_doc(&body))?;
    Ok(ApiResponse::json(
        StatusCode::CREATED,
        &view::property(&prop, &name),
    ))
}

/// `GET .../properties/{name}`.
pub(super) fn show_property(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::GetMetadefProperty)?;
    let prop = find(ctx, Kind::Property, &ns, &p["name"])?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view::property(&prop, &prop.name),
    ))
}

/// `PUT .../properties/{name}`: replaces the definition (and may rename it).
pub(super) fn update_property(
    ctx: &Ctx,
    req: &mut ApiRequest,
    p: &Params,
) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::ModifyMetadefProperty)?;
    let body = body(req, Doc::Property)?;
    let old = find(ctx, Kind::Property, &ns, &p["name"])?;
    let name = name_of(&body);
    let prop = updated(
        ctx,
        Kind::Property,
        &ns,
        &old,
        &name,
        &view::property_doc(&body),
    )?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &view::property(&prop, &name),
    ))
}

/// `DELETE .../properties/{name}`.
pub(super) fn delete_property(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::RemoveMetadefProperty)?;
    removed(ctx, Kind::Property, &ns, &p["name"])
}

/// `DELETE .../properties`: every property of the namespace.
pub(super) fn delete_properties(
    ctx: &Ctx,
    _: &mut ApiRequest,
    p: &Params,
) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::DeleteMetadefNamespace)?;
    all_removed(ctx, Kind::Property, &ns)
}

// ---- tags

/// `GET .../tags`: names, newest first by default.
pub(super) fn list_tags(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::GetMetadefTags)?;
    let tags = page(ctx, req, Kind::Tag, &ns)?;
    let list: Vec<Value> = tags.iter().map(|t| json!({"name": t.name})).collect();
    Ok(ApiResponse::json(StatusCode::OK, &json!({"tags": list})))
}

/// A tag name from the path, checked as the tag schema would.
fn tag_name(name: &str) -> ApiResult<()> {
    schema::validate(Doc::Tag, &json!({"name": name})).map_err(ApiError::bad_request)
}

/// `POST .../tags/{name}`: one tag (no body needed).
pub(super) fn create_tag(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::AddMetadefTag)?;
    tag_name(&p["name"])?;
    let t = inserted(ctx, Kind::Tag, &ns, &p["name"], &Value::Null)?;
    Ok(ApiResponse::json(StatusCode::CREATED, &view::tag(&t)))
}

/// `POST .../tags` with `{"tags": [{"name": ...}, ...]}`: the namespace's
/// tags become these, or with `X-Openstack-Append: true` these are added.
/// A name given twice, or (appending) one the namespace has, is a 409 and
/// nothing changes.
pub(super) fn create_tags(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::AddMetadefTags)?;
    let append = req
        .header("x-openstack-append")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let body = body(req, Doc::Tags)?;
    let names: Vec<String> = body["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(name_of)
        .collect();
    let mut seen: Vec<String> = Vec::new();
    for n in &names {
        let folded = n.to_lowercase();
        let taken = append && ctx.repo.item(Kind::Tag, ns.id, n)?.is_some();
        if seen.contains(&folded) || taken {
            return Err(duplicate(Kind::Tag, &ns.namespace, n));
        }
        seen.push(folded);
    }
    if !append {
        ctx.repo.delete_items(Kind::Tag, ns.id)?;
    }
    let now = Timestamp::now().to_string();
    for n in &names {
        // A racing request may have added the name since the check.
        if !matches!(
            ctx.repo
                .insert_item(Kind::Tag, ns.id, n, &Value::Null, &now)?,
            Write::Done(_)
        ) {
            return Err(duplicate(Kind::Tag, &ns.namespace, n));
        }
    }
    let list: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    Ok(ApiResponse::json(
        StatusCode::CREATED,
        &json!({"tags": list}),
    ))
}

/// `GET .../tags/{name}`.
pub(super) fn show_tag(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::GetMetadefTag)?;
    let t = find(ctx, Kind::Tag, &ns, &p["name"])?;
    Ok(ApiResponse::json(StatusCode::OK, &view::tag(&t)))
}

/// `PUT .../tags/{name}` with `{"name": new}`: renames the tag.
pub(super) fn update_tag(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::ModifyMetadefTag)?;
    let body = body(req, Doc::Tag)?;
    let old = find(ctx, Kind::Tag, &ns, &p["name"])?;
    let t = updated(ctx, Kind::Tag, &ns, &old, &name_of(&body), &Value::Null)?;
    Ok(ApiResponse::json(StatusCode::OK, &view::tag(&t)))
}

/// `DELETE .../tags/{name}`.
pub(super) fn delete_tag(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::DeleteMetadefTag)?;
    removed(ctx, Kind::Tag, &ns, &p["name"])
}

/// `DELETE .../tags`: every tag of the namespace.
pub(super) fn delete_tags(ctx: &Ctx, _: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let ns = namespace(ctx, p, Rule::DeleteMetadefNamespace)?;
    ctx.access().enforce(Rule::DeleteMetadefTags, Some(&ns))?;
    all_removed(ctx, Kind::Tag, &ns)
}

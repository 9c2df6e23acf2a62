//! The cache API (Glance 2.14–2.18): `GET/DELETE /v2/cache`,
//! `PUT/DELETE /v2/cache/{image_id}`, `POST /v2/cache/clean`,
//! `POST /v2/cache/prune`. Admin-only by default (`cache_*` rules); 404 when
//! the site runs without a cache (`image_cache_max_size` 0), after the rule.

use http::StatusCode;
use serde_json::{json, Value};

use super::{edge, Ctx};
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::{Rule, Target};
use crate::data::cache::{Cache, Source, Via, Wanted};
use crate::data::stores::Stores;
use crate::data::upstream;
use crate::db::cache::{CacheRepo, READY};
use crate::db::images::ImageRepo;
use crate::error::{ApiError, ApiResult};
use crate::image::{schema, Status};
use crate::ports::Ports;
use crate::settings::{CacheSettings, StoreSettings};

/// 403 unless the caller passes `rule` (on `target`); then 404 unless the
/// site has a cache — Glance's order.
fn enforce<'c>(ctx: &'c Ctx, rule: Rule, target: &Target) -> ApiResult<Cache<'c>> {
    ctx.policy.enforce(rule, &ctx.caller, target)?;
    let settings = CacheSettings::load(ctx.ports.vars)?;
    if !settings.enabled() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "Caching via API is not supported at this site.",
        ));
    }
    Cache::open(ctx.ports, ctx.stores()?, &settings)
        .ok_or_else(|| ApiError::internal("the cache is not enabled"))
}

fn entry_json(e: &crate::db::cache::Entry) -> Value {
    json!({
        "image_id": e.image_id,
        "hits": e.hits,
        "last_accessed": e.last_accessed,
        "last_modified": e.last_modified,
        "size": e.size,
    })
}

/// `GET /v2/cache`: the cached images and the queue.
pub(super) fn list(ctx: &Ctx, req: &mut ApiRequest, _p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let cache = enforce(ctx, Rule::CacheList, &Target::default())?;
    let cached: Vec<Value> = cache.repo().all(READY)?.iter().map(entry_json).collect();
    let queued = cache.repo().queued()?;
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"cached_images": cached, "queued_images": queued}),
    ))
}

/// `PUT /v2/cache/{image_id}`: queues an active image; it is fetched into the
/// cache after the response (202).
pub(super) fn queue(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    let access = ctx.access();
    let v = match access.load(id) {
        Err(e) if e.status == StatusCode::NOT_FOUND && edge::on(ctx) => {
            return queue_upstream(ctx, req, id)
        }
        other => other?,
    };
    let cache = enforce(ctx, Rule::CacheImage, &v.target)?;
    if v.image.status != Status::Active {
        return Err(ApiError::bad_request(
            "Only images with status active can be targeted for queueing",
        ));
    }
    let _ = req;
    cache.repo().enqueue(id)?;
    let image_id = id.to_string();
    let mut resp = ApiResponse::empty(StatusCode::ACCEPTED);
    resp.deferred = Some(Box::new(move |ports: &Ports| prefetch(ports, &image_id)));
    Ok(resp)
}

/// `DELETE /v2/cache/{image_id}`: removes the image from the cache and the queue.
pub(super) fn delete_entry(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let id = &p["image_id"];
    let target = match ctx.access().load(id) {
        Ok(v) => v.target,
        Err(e) if e.status == StatusCode::NOT_FOUND => {
            // Glance: 404 only if the cache does not know it either.
            let repo = CacheRepo::new(ctx.ports.db);
            let known =
                repo.get(id)?.is_some_and(|e| e.ready()) || repo.queued()?.iter().any(|q| q == id);
            if !known {
                return Err(e);
            }
            Target::default()
        }
        Err(e) => return Err(e),
    };
    let cache = enforce(ctx, Rule::CacheDelete, &target)?;
    cache.remove(id)?;
    cache.repo().dequeue(id)?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /v2/cache`: clears the cache, the queue, or both
/// (`x-image-cache-clear-target`: `cache`, `queue` or empty).
pub(super) fn clear(ctx: &Ctx, req: &mut ApiRequest, _p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let cache = enforce(ctx, Rule::CacheDelete, &Target::default())?;
    let target = req
        .header("x-image-cache-clear-target")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (cache_too, queue_too) = match target.as_str() {
        "" => (true, true),
        "cache" => (true, false),
        "queue" => (false, true),
        _ => return Err(ApiError::bad_request(
            "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string.",
        )),
    };
    if cache_too {
        cache.remove_all()?;
    }
    if queue_too {
        cache.repo().clear_queue()?;
    }
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT))
}

/// `POST /v2/cache/clean`: removes stalled and invalid entries — fills
/// whose lease expired are settled by a reclamation slice now.
pub(super) fn clean(ctx: &Ctx, req: &mut ApiRequest, _p: &Params) -> ApiResult<ApiResponse> {
    let _ = req;
    enforce(ctx, Rule::CacheClean, &Target::default())?;
    crate::data::reclaim::slice(ctx.ports);
    Ok(ApiResponse::raw_json(StatusCode::OK, b"null".to_vec()))
}

/// `POST /v2/cache/prune`: evicts least-recently-used entries until the
/// cache fits `image_cache_max_size`.
pub(super) fn prune(ctx: &Ctx, req: &mut ApiRequest, _p: &Params) -> ApiResult<ApiResponse> {
    let _ = req;
    let cache = enforce(ctx, Rule::CachePrune, &Target::default())?;
    let (files, bytes) = cache.make_room();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({"total_files_pruned": files, "total_bytes_pruned": bytes}),
    ))
}

/// Fetches queued image `id` into the cache (deferred work of a queue
/// request); it leaves the queue once cached.
pub(crate) fn prefetch(ports: &Ports, id: &str) {
    if let Err(e) = try_prefetch(ports, id) {
        ports.log_error(&format!("caching image {id}"), e);
    }
}

fn try_prefetch(ports: &Ports, id: &str) -> Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    if !schema::is_uuid(id) {
        return Ok(());
    }
    let images = ImageRepo::open(ports.db).map_err(|e| s(&e))?;
    let Some(img) = images.get(id).map_err(|e| s(&e))? else {
        return Ok(());
    };
    let store_settings = StoreSettings::load(ports.vars).map_err(|e| s(&e))?;
    let stores = Stores::open(store_settings, ports.kv, ports.http.clone()).map_err(|e| s(&e))?;
    let Some((store, location)) = img
        .locations
        .iter()
        .find_map(|l| stores.for_location(l).map(|st| (st, l)))
        .filter(|_| img.status == Status::Active)
    else {
        return Ok(());
    };
    let source = |r| store.read(location, r);
    fill_now(
        ports,
        &stores,
        id,
        location.size,
        img.checksum.as_deref(),
        &source,
    )
}

/// Fills the cache with image `id` from `source` now (no client waits).
fn fill_now(
    ports: &Ports,
    stores: &Stores,
    id: &str,
    size: u64,
    checksum: Option<&str>,
    source: Source,
) -> Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let settings = CacheSettings::load(ports.vars).map_err(|e| s(&e))?;
    let Some(cache) = Cache::open(ports, stores, &settings) else {
        return Ok(());
    };
    let wanted = Wanted {
        image_id: id,
        size,
        checksum,
        fill: true,
    };
    let served = cache.serve(&wanted, None, source).map_err(|e| s(&e))?;
    if served.via == Via::Fill {
        for chunk in served.stream {
            if chunk.is_err() {
                break;
            }
        }
        if let Some(work) = served.deferred {
            work(ports);
        }
    }
    if cache
        .repo()
        .get(id)
        .map_err(|e| s(&e))?
        .is_some_and(|e| e.ready())
    {
        cache.repo().dequeue(id).map_err(|e| s(&e))?;
    }
    Ok(())
}

/// `PUT /v2/cache/{image_id}` at an edge site for an image of the
/// upstream: queued, and fetched from the upstream with the caller's
/// credentials after the response.
fn queue_upstream(ctx: &Ctx, req: &ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let (rec, creds, url) = edge::record(ctx, req, id)?;
    let target = edge::target(ctx, &rec);
    let cache = enforce(ctx, Rule::CacheImage, &target)?;
    let size = rec["size"].as_u64();
    let (Some(size), Some("active")) = (size, rec["status"].as_str()) else {
        return Err(ApiError::bad_request(
            "Only images with status active can be targeted for queueing",
        ));
    };
    cache.repo().enqueue(id)?;
    let image_id = id.to_string();
    let checksum = rec["checksum"].as_str().map(str::to_string);
    let mut resp = ApiResponse::empty(StatusCode::ACCEPTED);
    resp.deferred = Some(Box::new(move |ports: &Ports| {
        let done = StoreSettings::load(ports.vars)
            .map_err(|e| e.to_string())
            .and_then(|st| {
                Stores::open(st, ports.kv, ports.http.clone()).map_err(|e| e.to_string())
            })
            .and_then(|stores| {
                let http = ports.http.clone();
                let source = |r| upstream::data(http.as_ref(), &url, &creds, &image_id, r);
                fill_now(
                    ports,
                    &stores,
                    &image_id,
                    size,
                    checksum.as_deref(),
                    &source,
                )
            });
        if let Err(e) = done {
            ports.log_error(&format!("caching upstream image {image_id}"), e);
        }
    }));
    Ok(resp)
}

#[cfg(test)]
mod tests;

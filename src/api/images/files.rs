//! Image data over HTTP: upload (`PUT /file`), download (`GET /file`) and
//! staging for interoperable import (`PUT /stage`).

use http::StatusCode;

use super::{edge, Ctx};
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse, Body};
use crate::auth::policy::Rule;
use crate::data::blob::{BlobStore, ByteRange, Location};
use crate::data::cache::{Cache, Served, Source, Via, Wanted};
use crate::data::inspect;
use crate::data::lease;
use crate::data::range::{parse_range, RangeRequest};
use crate::data::receive::{self, ReceiveRules};
use crate::data::stores::StoreId;
use crate::db::leases::{Lease, LeaseKind};
use crate::error::{ApiError, ApiResult};
use crate::image::{ContainerFormat, DiskFormat, Image, Staged, Status};
use crate::notify::Event;
use crate::settings::CacheSettings;

/// The media type of the request body, without parameters ("" when none).
fn media_type<'r>(req: &'r ApiRequest) -> &'r str {
    let ct = req.header("content-type").unwrap_or("");
    ct.split(';').next().unwrap_or("").trim()
}

/// Whether the body is declared `application/octet-stream`.
pub(crate) fn is_octet_stream(req: &ApiRequest) -> bool {
    media_type(req).eq_ignore_ascii_case("application/octet-stream")
}

/// 415 unless the body is `application/octet-stream`.
fn check_octet_stream(req: &ApiRequest) -> ApiResult<()> {
    let media = media_type(req);
    if !is_octet_stream(req) {
        return Err(ApiError::unsupported_media_type(format!(
            "Invalid content type {}",
            if media.is_empty() { "None" } else { media }
        )));
    }
    Ok(())
}

/// The size announced in `x-openstack-image-size`, if any (400 when not a number).
fn announced_size(req: &ApiRequest) -> ApiResult<Option<u64>> {
    match req.header("x-openstack-image-size") {
        None => Ok(None),
        Some(v) => v.trim().parse().map(Some).map_err(|_| {
            ApiError::bad_request("Invalid or missing image size in request headers.")
        }),
    }
}

/// Bytes the owner may still store under `user_storage_quota`.
fn quota_left(ctx: &Ctx, img: &Image) -> ApiResult<Option<u64>> {
    let Some(quota) = ctx.settings.user_storage_quota else {
        return Ok(None);
    };
    let used = ctx.repo.stored_bytes(img.owner.as_deref(), &img.id)?;
    Ok(Some(quota.saturating_sub(used)))
}

/// The most an upload may carry, and what to say when it carries more.
fn upload_limit(ctx: &Ctx, img: &Image) -> ApiResult<(u64, String)> {
    let cap = ctx.settings.image_size_cap;
    Ok(match quota_left(ctx, img)? {
        Some(left) if left < cap => (
            left,
            format!("Image exceeds the storage quota: {left} bytes left of the owner's quota"),
        ),
        _ => (
            cap,
            format!("The incoming image is too large: the limit is {cap} bytes"),
        ),
    })
}

/// Moves an image out of the transient status `from` back to `queued` after
/// a failed upload; an image that moved on meanwhile is left alone.
fn restore_queued(ctx: &Ctx, id: &str, from: Status) {
    let reset = ctx.modify(id, None, |img| {
        Ok(img.status == from && img.reset_to_queued().is_ok())
    });
    if let Err(e) = reset {
        ctx.ports
            .log_error(&format!("returning image {id} to queued"), e);
    }
}

/// Claims the queued image for `to` (saving or uploading) and streams the
/// request body into a new object of `store` under `rules`, under a lease
/// that names the object before its first byte. Exactly one of concurrent
/// claims wins; the others get 409. On any failure the image is back to
/// `queued` and the lease is expired, so whatever the clean-up missed is
/// reclaimed.
fn receive_claimed(
    ctx: &Ctx,
    req: &mut ApiRequest,
    id: &str,
    to: Status,
    store: &dyn BlobStore,
    rules: &ReceiveRules,
) -> ApiResult<(receive::Received, Lease)> {
    let kind = if to == Status::Saving {
        LeaseKind::Upload
    } else {
        LeaseKind::Stage
    };
    let seconds = ctx.settings.stale_seconds;
    let (held, writer) = lease::start(ctx.ports.db, store, id, kind, &[], seconds)?;
    let claimed = ctx.modify(id, None, |img| {
        img.start_upload(to)
            .map_err(|t| ApiError::conflict(t.to_string()))?;
        Ok(true)
    });
    if let Err(e) = claimed {
        lease::release(ctx.ports, &held);
        return Err(e);
    }
    match receive::receive(req.body(), Box::new(writer), rules) {
        Ok(received) => Ok((received, held)),
        Err(e) => {
            restore_queued(ctx, id, to);
            lease::expire(ctx.ports, &held);
            Err(e.into())
        }
    }
}

/// Picks the store for new data: the client's `X-Image-Meta-Store` in
/// multi-store mode, else the default.
fn target_store<'c>(ctx: &'c Ctx, req: &ApiRequest) -> ApiResult<&'c dyn BlobStore> {
    let stores = ctx.stores()?;
    let wanted = req
        .header("x-image-meta-store")
        .filter(|_| ctx.settings.multi_store())
        .map(str::trim);
    match wanted {
        Some(name) => StoreId::parse(name)
            .filter(|id| ctx.settings.writable(*id))
            .and_then(|id| stores.get(id))
            .ok_or_else(|| ApiError::bad_request(format!("Store for identifier {name} not found"))),
        None => stores
            .default_store()
            .ok_or_else(|| ApiError::internal("the default store is not available")),
    }
}

/// `PUT /v2/images/{image_id}/file`.
pub(super) fn upload(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    check_octet_stream(req)?;
    let expected = announced_size(req)?;
    let access = ctx.access();
    let v = access.load(id)?;
    access.enforce(Rule::UploadImage, &v)?;
    let img = v.image;
    if img.status == Status::Queued && (img.disk_format.is_none() || img.container_format.is_none())
    {
        let missing: Vec<&str> = [
            ("disk_format", img.disk_format.is_none()),
            ("container_format", img.container_format.is_none()),
        ]
        .iter()
        .filter(|(_, absent)| *absent)
        .map(|(k, _)| *k)
        .collect();
        return Err(ApiError::bad_request(if missing.len() == 1 {
            format!("Property {} must be set prior to saving data.", missing[0])
        } else {
            format!(
                "Properties {} must be set prior to saving data.",
                missing.join(", ")
            )
        }));
    }
    let announced = Announced {
        size: expected,
        checksum: None,
    };
    let uploaded = store_data(ctx, req, &img, &announced)?;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT).with_events(uploaded.events))
}

/// What the client said the data will be; an upload that differs is refused (400).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Announced<'a> {
    /// Bytes.
    pub size: Option<u64>,
    /// md5, hex (the v1 API's `x-image-meta-checksum`).
    pub checksum: Option<&'a str>,
}

/// Streams the request body into a new object of the target store and
/// activates the image `img` (already authorized for upload) with it: the
/// one upload path of both API versions. The image must be queued (409
/// otherwise, also when another upload claims it first). On failure the
/// image is queued again and nothing is kept.
///
/// v2 sets both formats first. The v1 API lets data come first (its
/// seeds' `images.create(name=...)` then `image.update(data=...)`): an image
/// without a container format takes `bare`, and one without a disk format
/// the format its data shows (`raw` when it shows none Glance names), judged
/// by the same safety checks as a declared one.
pub(crate) fn store_data(
    ctx: &Ctx,
    req: &mut ApiRequest,
    img: &Image,
    announced: &Announced,
) -> ApiResult<Uploaded> {
    let id = &img.id;
    let store = target_store(ctx, req)?;
    let (max_bytes, too_large) = upload_limit(ctx, img)?;
    let container = img.container_format.unwrap_or(ContainerFormat::Bare);
    let rules = ReceiveRules {
        disk_format: img.disk_format,
        inspect: container == ContainerFormat::Bare,
        max_bytes,
        too_large: &too_large,
        expected_size: announced.size,
        hash: ctx.settings.hash,
    };
    let (received, held) = receive_claimed(ctx, req, id, Status::Saving, store, &rules)?;
    let mut preparing = img.clone();
    preparing.status = Status::Saving;
    let mut facts = received.facts();
    let location = received.location;
    let discard = |why: &str| {
        if let Err(d) = store.delete(&location) {
            ctx.ports
                .log_error(&format!("removing the data of {why} image {id}"), d);
        }
        lease::expire(ctx.ports, &held);
    };
    let refuse = |err: ApiError| {
        restore_queued(ctx, id, Status::Saving);
        discard("refused");
        Err(err)
    };
    let disk = match (img.disk_format, &received.inspection) {
        (Some(d), _) => d,
        (None, inspection) => {
            let shown = inspection
                .as_ref()
                .and_then(|i| DiskFormat::parse(i.format.as_str()))
                .unwrap_or(DiskFormat::Raw);
            if let Some(i) = inspection {
                match inspect::verdict(shown.as_str(), i) {
                    Ok(v) => facts.virtual_size = v,
                    Err(e) => return refuse(e.into()),
                }
            }
            shown
        }
    };
    if let Some(want) = announced
        .checksum
        .filter(|c| !c.eq_ignore_ascii_case(&facts.checksum))
    {
        return refuse(ApiError::bad_request(format!(
            "Supplied checksum ({want}) and checksum generated from uploaded image ({}) did \
             not match.",
            facts.checksum
        )));
    }
    let saved = ctx.modify(id, None, |img| {
        if img.status != Status::Saving {
            return Err(ApiError::conflict("The image changed during the upload."));
        }
        img.disk_format.get_or_insert(disk);
        img.container_format.get_or_insert(container);
        img.activate(&facts, vec![location.clone()])
            .map_err(|t| ApiError::conflict(t.to_string()))?;
        Ok(true)
    });
    match saved {
        Ok(active) => {
            lease::release(ctx.ports, &held);
            let events = vec![
                Event::image("image.prepare", &preparing),
                Event::image("image.upload", &active),
                Event::image("image.activate", &active),
            ];
            Ok(Uploaded {
                image: active,
                events,
            })
        }
        Err(e) => {
            // Deleted (or otherwise changed) meanwhile: the data has no image.
            discard("vanished");
            if e.status != StatusCode::NOT_FOUND {
                return Err(e);
            }
            Err(ApiError::new(
                StatusCode::GONE,
                format!(
                    "Image {id} could not be found after upload. The image may have been \
                     deleted during the upload."
                ),
            ))
        }
    }
}

/// An upload's outcome: the image, now active, and the events it makes
/// (`image.prepare`, `image.upload`, `image.activate`) for the response to
/// publish.
pub(crate) struct Uploaded {
    /// The active image.
    pub image: Image,
    /// Its events, in the order they happened.
    pub events: Vec<Event>,
}

/// The store and location to read an image's data from: None unless the
/// image is active (or deactivated) and has data in an enabled store.
pub(crate) fn stored<'c>(
    ctx: &'c Ctx,
    img: &'c Image,
) -> ApiResult<Option<(&'c dyn BlobStore, &'c Location)>> {
    if !matches!(img.status, Status::Active | Status::Deactivated) {
        return Ok(None);
    }
    let stores = ctx.stores()?;
    Ok(img
        .locations
        .iter()
        .find_map(|l| stores.for_location(l).map(|s| (s, l))))
}

/// `GET /v2/images/{image_id}/file`.
pub(super) fn download(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let access = ctx.access();
    let v = match access.load(&p["image_id"]) {
        Err(e) if e.status == StatusCode::NOT_FOUND && edge::on(ctx) => {
            return edge::download(ctx, req, &p["image_id"])
        }
        other => other?,
    };
    access.enforce(Rule::DownloadImage, &v)?;
    let img = v.image;
    if img.status == Status::Deactivated && !ctx.caller.is_admin() {
        return Err(ApiError::forbidden(
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    let Some((store, location)) = stored(ctx, &img)? else {
        return Ok(ApiResponse::empty(StatusCode::NO_CONTENT));
    };
    let size = location.size;
    let (status, range) = wanted_range(req, size)?;
    let source = |r| store.read(location, r);
    let wanted = Wanted {
        image_id: &img.id,
        size,
        checksum: img.checksum.as_deref(),
        // Data in the local key-value store is as near as the cache's.
        fill: location.store != StoreId::Kv,
    };
    let served = through_cache(ctx, &wanted, range, &source)?;
    Ok(data_response(
        status,
        size,
        range,
        img.checksum.as_deref(),
        served,
    ))
}

/// The data of `wanted` through the image cache when the site has one,
/// else straight from `source`.
pub(super) fn through_cache(
    ctx: &Ctx,
    wanted: &Wanted,
    range: Option<ByteRange>,
    source: Source,
) -> ApiResult<Served> {
    let settings = CacheSettings::load(ctx.ports.vars)?;
    match Cache::open(ctx.ports, ctx.stores()?, &settings) {
        Some(cache) => Ok(cache.serve(wanted, range, source)?),
        None => Ok(Served {
            stream: source(range)?,
            deferred: None,
            via: Via::Direct,
        }),
    }
}

/// A download response: status, length, checksum and range headers, and the
/// body (with any cache fill's deferred work).
pub(super) fn data_response(
    status: StatusCode,
    size: u64,
    range: Option<ByteRange>,
    checksum: Option<&str>,
    served: Served,
) -> ApiResponse {
    let length = range.map_or(size, |r| r.len());
    let mut resp = ApiResponse {
        status,
        headers: vec![
            ("content-type".into(), "application/octet-stream".into()),
            ("content-length".into(), length.to_string()),
            ("x-image-cache".into(), served.via.as_str().into()),
        ],
        body: Body::Stream(served.stream),
        deferred: served.deferred,
    };
    if let Some(md5) = checksum {
        resp = resp.with_header("content-md5", md5.to_string());
    }
    if let Some(r) = range {
        resp = resp.with_header(
            "content-range",
            format!("bytes {}-{}/{size}", r.first, r.last),
        );
    }
    resp
}

/// The range a download asks for: None for the whole; the error to answer
/// when it cannot be served.
pub(super) fn wanted_range(
    req: &ApiRequest,
    size: u64,
) -> ApiResult<(StatusCode, Option<ByteRange>)> {
    match parse_range(req.header("range"), req.header("content-range"), size) {
        RangeRequest::Whole => Ok((StatusCode::OK, None)),
        RangeRequest::Partial(r) => Ok((StatusCode::PARTIAL_CONTENT, Some(r))),
        RangeRequest::Multiple => Err(ApiError::bad_request("Multiple ranges are not supported.")),
        RangeRequest::Unsatisfiable => Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "The requested range is not satisfiable.",
        )
        .with_header("Content-Range", format!("bytes */{size}"))),
    }
}

/// `PUT /v2/images/{image_id}/stage`: data for a later `glance-direct` import.
pub(super) fn stage(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    let id = &p["image_id"];
    if !ctx
        .settings
        .import_methods
        .iter()
        .any(|m| m == "glance-direct")
    {
        return Err(ApiError::no_resource());
    }
    check_octet_stream(req)?;
    let expected = announced_size(req)?;
    let access = ctx.access();
    let v = access.load(id)?;
    access.enforce(Rule::UploadImage, &v)?;
    if v.image.staged.is_some() {
        return Err(ApiError::conflict("Image data is already staged."));
    }
    let (max_bytes, too_large) = upload_limit(ctx, &v.image)?;
    let staging = ctx.stores()?.staging();
    let rules = ReceiveRules {
        disk_format: None,
        inspect: true,
        max_bytes,
        too_large: &too_large,
        expected_size: expected,
        hash: ctx.settings.hash,
    };
    let (received, held) = receive_claimed(ctx, req, id, Status::Uploading, staging, &rules)?;
    let staged = Staged {
        location: received.location.clone(),
        checksum: received.checksum.clone(),
        os_hash_value: received.os_hash_value.clone(),
        inspection: received.inspection.as_ref().map(Into::into),
    };
    let saved = ctx.modify(id, None, |img| {
        img.record_staged(staged.clone())
            .map_err(|_| ApiError::conflict("The image changed while staging."))?;
        Ok(true)
    });
    if let Err(e) = saved {
        if let Err(d) = staging.delete(&received.location) {
            ctx.ports
                .log_error(&format!("removing the staged data of image {id}"), d);
        }
        lease::expire(ctx.ports, &held);
        return Err(e);
    }
    lease::release(ctx.ports, &held);
    let mut staging = v.image;
    staging.status = Status::Uploading;
    Ok(ApiResponse::empty(StatusCode::NO_CONTENT)
        .with_events(vec![Event::image("image.prepare", &staging)]))
}

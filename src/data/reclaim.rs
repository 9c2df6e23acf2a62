//! Reclamation: bounded slices of clean-up that run after responses (the
//! deferred work Spin allows), so no extra process or schedule is needed.
//!
//! A slice (1) declares expired leases abandoned, removes what their writes
//! stored unless a live image references it, heals their images and fails
//! their tasks; (2) removes the data of garbage rows (references image rows
//! dropped) that no live image references. It never removes data a live
//! image references, and every step is idempotent, so a slice cut short by
//! a crash is finished by a later one.

use crate::data::blob::Location;
use crate::data::cache;
use crate::data::stores::Stores;
use crate::db::cache::CacheRepo;
use crate::db::garbage::{Garbage, GarbageRepo};
use crate::db::images::ImageRepo;
use crate::db::leases::{Lease, LeaseKind, LeaseRepo};
use crate::db::tasks::ABANDONED;
use crate::ports::{Ports, StoreError};
use crate::settings::{CacheSettings, StoreSettings};
use crate::timestamp::Timestamp;

/// Leases and garbage rows handled per slice.
const ROWS_PER_SLICE: usize = 8;

/// Why a slice stopped.
#[derive(Debug)]
enum Stop {
    Store(StoreError),
    Other(String),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Store(e) => e.fmt(f),
            Stop::Other(e) => f.write_str(e),
        }
    }
}

/// Runs one slice; failures are logged (the next slice retries).
pub(crate) fn slice(ports: &Ports) {
    if let Err(e) = run(ports) {
        ports.log_error("reclaiming image data", e);
    }
}

fn run(ports: &Ports) -> Result<(), Stop> {
    let now = Timestamp::now();
    let images = ImageRepo::open(ports.db)?;
    let leases = LeaseRepo::new(ports.db);
    let cache = CacheSettings::load(ports.vars).map_err(|e| Stop::Other(e.to_string()))?;
    let open = || {
        let settings = StoreSettings::load(ports.vars).map_err(|e| Stop::Other(e.to_string()))?;
        Stores::open(settings, ports.kv, ports.http.clone()).map_err(|e| Stop::Other(e.to_string()))
    };
    if cache.enabled() {
        // A cache fill streaming a response renews its lease through its
        // heartbeat: renew those before abandoning what expired.
        cache::renew_fills(ports, &open()?, cache.stale_seconds)?;
    }
    if cache.upstream.is_some() {
        CacheRepo::new(ports.db)
            .forget_old_views(now.0 - cache.upstream_ttl.max(1) * 2, ROWS_PER_SLICE * 8)?;
    }
    let abandoned = leases.abandon_expired(None, now.0, ROWS_PER_SLICE)?;
    let garbage = GarbageRepo::new(ports.db);
    let rows = garbage.oldest(ROWS_PER_SLICE)?;
    if abandoned.is_empty() && rows.is_empty() {
        return Ok(());
    }
    let stores = open()?;
    for lease in abandoned {
        // One that cannot be settled now (its store is down) waits for a
        // later slice without holding up the others.
        if let Err(e) = settle(ports, &images, &stores, &lease, now) {
            ports.log_error(&format!("settling abandoned lease {}", lease.id), e);
        }
    }
    collect(ports, &images, &stores, rows)?;
    Ok(())
}

/// Removes the data of image `image_id`'s garbage now (after a delete, or
/// once an import or copy dropped a reference), so it does not wait for a
/// slice; what fails is left for one.
pub(crate) fn image(ports: &Ports, stores: &Stores, image_id: &str) {
    let done = ImageRepo::open(ports.db).and_then(|images| {
        let rows = GarbageRepo::new(ports.db).of_image(image_id)?;
        collect(ports, &images, stores, rows)
    });
    if let Err(e) = done {
        ports.log_error(&format!("removing the data image {image_id} dropped"), e);
    }
}

/// Removes the data of garbage `rows` that no live image references.
fn collect(
    ports: &Ports,
    images: &ImageRepo,
    stores: &Stores,
    rows: Vec<Garbage>,
) -> Result<(), StoreError> {
    let garbage = GarbageRepo::new(ports.db);
    for row in rows {
        let mut keep = Vec::new();
        let refs = live_references(images, &row.image_id)?;
        for loc in row.locations.iter().chain(row.staged.as_ref()) {
            if refs.iter().any(|u| u == &loc.url) {
                continue;
            }
            if let Err(e) = remove(stores, loc, None) {
                ports.log_error(&format!("reclaiming {}", loc.url), e);
                keep.push(loc.clone());
            }
        }
        if keep.is_empty() {
            garbage.remove(row.id)?;
        } else {
            garbage.narrow(row.id, &keep)?;
        }
    }
    Ok(())
}

/// Cleans up after one abandoned lease: its data, its image, its task.
fn settle(
    ports: &Ports,
    images: &ImageRepo,
    stores: &Stores,
    lease: &Lease,
    now: Timestamp,
) -> Result<(), Stop> {
    if lease.kind == LeaseKind::Cache {
        // A cache fill: no image state to heal, its data is the cache's.
        cache::settle(ports, stores, lease).map_err(|e| Stop::Other(e.to_string()))?;
        LeaseRepo::new(ports.db).drop_lease(&lease.id)?;
        return Ok(());
    }
    if let Some(at) = &lease.location {
        let refs = live_references(images, &lease.image_id)?;
        if !refs.iter().any(|u| u == &at.url) {
            remove(stores, at, Some(lease.reserved)).map_err(|e| Stop::Other(e.to_string()))?;
        }
    }
    if lease.kind != LeaseKind::Data {
        if let Some(img) = images.get(&lease.image_id)? {
            images.heal(img, now)?;
        }
    }
    if let Some(task) = &lease.task_id {
        // A task the worker ended before it died keeps its outcome.
        crate::data::import::task_repo(ports).fail_if_unfinished(task, ABANDONED)?;
    }
    LeaseRepo::new(ports.db).drop_lease(&lease.id)?;
    Ok(())
}

/// The data URLs the live image `image_id` references (none once deleted).
fn live_references(images: &ImageRepo, image_id: &str) -> Result<Vec<String>, StoreError> {
    Ok(match images.get(image_id)? {
        Some(img) => img
            .locations
            .iter()
            .chain(img.staged.as_ref().map(|s| &s.location))
            .map(|l| l.url.clone())
            .collect(),
        None => Vec::new(),
    })
}

/// Removes the data at `loc`: an abandoned write's (at most `reserved`
/// bytes) or a finished object's.
fn remove(
    stores: &Stores,
    loc: &Location,
    reserved: Option<u64>,
) -> Result<(), crate::data::blob::BlobError> {
    let Some(store) = stores.for_location(loc) else {
        return Err(crate::data::blob::BlobError::Unsupported(format!(
            "no store for {}",
            loc.url
        )));
    };
    match reserved {
        Some(bytes) => store.reclaim(loc, bytes),
        None => store.delete(loc),
    }
}

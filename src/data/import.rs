//! The import worker: moves an accepted import's data into its stores after
//! the 202 has been sent, and records progress, the outcome and its task.
//!
//! Progress is visible in `os_glance_importing_to_stores`, failures in
//! `os_glance_failed_import`. Every change of the image goes through
//! [`ImageRepo::modify`] and the image's own transitions.

use std::cell::RefCell;

use serde_json::json;

use crate::data::blob::{BlobError, BlobStore, BlobWriter, ChunkStream, Location, StoreId};
use crate::data::lease::{self, LeasedWriter};
use crate::data::receive::{self, ReceiveRules};
use crate::data::reclaim;
use crate::data::stores::Stores;
use crate::data::upstream::Credentials;
use crate::db::images::{ImageRepo, Modified};
use crate::db::leases::{Lease, LeaseKind};
use crate::db::tasks::{TaskRepo, TIME_TO_LIVE};
use crate::error::ApiError;
use crate::image::{ContainerFormat, DataFacts, DiskFormat, Image, Status};
use crate::notify::{self, Event};
use crate::ports::outbound::{send_idempotent, OutRequest};
use crate::ports::{Ports, StoreError};
use crate::settings::{AuthSettings, AuthStrategy, CacheSettings, StoreSettings, Var};
use crate::timestamp::Timestamp;

/// An import the service carries out after answering 202.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The image.
    pub image_id: String,
    /// Where the data comes from.
    pub method: Method,
    /// The stores to write, in order.
    pub stores: Vec<StoreId>,
    /// Whether one failing store fails the import.
    pub all_must_succeed: bool,
    /// The task recording this import.
    pub task_id: String,
    /// The lease that keeps the import alive (renewed with each write).
    pub lease: Lease,
    /// Whether a failed import deletes the image (a legacy `import` task's
    /// image exists only for it, as Glance's flow reverts its creation).
    pub discard_on_failure: bool,
}

/// An import method and what it needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Method {
    /// The data staged with `PUT /stage`.
    GlanceDirect,
    /// Data fetched from this URL.
    WebDownload(String),
    /// The image's existing data, copied into more stores.
    CopyImage,
    /// An image of another region's Glance: its metadata and data.
    GlanceDownload(Remote),
}

/// What glance-download fetches, and as whom.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Remote {
    /// The image at the remote Glance.
    pub image_id: String,
    /// The region whose image endpoint is used.
    pub region: String,
    /// The endpoint interface (`public`, `internal`, `admin`).
    pub interface: String,
    /// The caller's credentials, forwarded.
    pub creds: Credentials,
}

/// What glance-download takes from the remote image, applied with its data.
#[derive(Debug, Clone)]
struct RemoteMeta {
    disk_format: DiskFormat,
    container_format: ContainerFormat,
    properties: Vec<(String, String)>,
}

/// Carries out an import after the 202 was sent, and records the outcome in its task.
pub(crate) fn run(ports: &Ports, job: Job) {
    let tasks = task_repo(ports);
    let repo = match ImageRepo::open(ports.db) {
        Ok(r) => r,
        Err(e) => return ports.log_error(&format!("import of image {}", job.image_id), e),
    };
    if let Err(e) = tasks.begin(&job.task_id) {
        ports.log_error(&format!("starting task {}", job.task_id), e);
    }
    announce_task(ports, &tasks, &job.task_id, "task.processing", Vec::new());
    let outcome = (|| {
        let settings = StoreSettings::load(ports.vars).map_err(|e| e.to_string())?;
        let stores =
            Stores::open(settings, ports.kv, ports.http.clone()).map_err(|e| e.to_string())?;
        let img = match repo.get(&job.image_id) {
            Ok(Some(img)) => img,
            _ => return Err(format!("Image {} not found", job.image_id)),
        };
        let worker = Worker {
            ports,
            repo: &repo,
            stores: &stores,
            job: &job,
            data_leases: RefCell::new(Vec::new()),
            remote: RefCell::new(None),
        };
        let outcome = worker.run(img);
        let leases = worker.data_leases.into_inner();
        for held in &leases {
            if outcome.is_ok() {
                lease::release(ports, held);
            } else {
                lease::expire(ports, held);
            }
        }
        if outcome.is_err() && job.discard_on_failure {
            discard_image(ports, &repo, &stores, &job.image_id);
        }
        outcome
    })();
    let succeeded = outcome.is_ok();
    if let Err(e) = tasks.finish(
        &job.task_id,
        outcome.map(|()| json!({"image_id": job.image_id})),
    ) {
        ports.log_error(&format!("finishing task {}", job.task_id), e);
    }
    // The image and the task say how the import ended (a crash before this
    // line leaves the lease to expire, which then changes nothing).
    lease::release(ports, &job.lease);
    let mut events = Vec::new();
    if succeeded && job.method != Method::CopyImage {
        if let Ok(Some(img)) = repo.get(&job.image_id) {
            events.push(Event::image("image.activate", &img));
        }
    }
    let ended = if succeeded {
        "task.success"
    } else {
        "task.failure"
    };
    announce_task(ports, &tasks, &job.task_id, ended, events);
}

/// The task records, with finished tasks kept for `task_time_to_live`.
pub(crate) fn task_repo<'a>(ports: &Ports<'a>) -> TaskRepo<'a> {
    let ttl = crate::settings::task_time_to_live(ports.vars).unwrap_or(TIME_TO_LIVE);
    TaskRepo::new(ports.db).with_time_to_live(ttl)
}

/// Deletes the image a failed legacy import task created, and its data.
fn discard_image(ports: &Ports, repo: &ImageRepo, stores: &Stores, id: &str) {
    match repo.delete(id, Timestamp::now()) {
        Ok(_) => reclaim::image(ports, stores, id),
        Err(e) => ports.log_error(&format!("deleting image {id} of a failed task"), e),
    }
}

/// Publishes `event_type` for the task as it is now, after `before`.
fn announce_task(
    ports: &Ports,
    tasks: &TaskRepo,
    task_id: &str,
    event_type: &'static str,
    mut before: Vec<Event>,
) {
    match tasks.get(task_id) {
        Ok(Some(task)) => before.push(Event::task(event_type, &task)),
        Ok(None) => {}
        Err(e) => ports.log_error(&format!("reading task {task_id}"), e),
    }
    notify::publish(ports, &before);
}

struct Worker<'a> {
    ports: &'a Ports<'a>,
    repo: &'a ImageRepo<'a>,
    stores: &'a Stores,
    job: &'a Job,
    /// The leases of the writes so far: released once the image references
    /// the data, expired (so it is reclaimed) if the import fails.
    data_leases: RefCell<Vec<Lease>>,
    /// glance-download: the remote image's metadata, set on activation.
    remote: RefCell<Option<RemoteMeta>>,
}

impl<'a> Worker<'a> {
    /// Imports into every store; Err says why the import failed.
    fn run(&self, img: Image) -> Result<(), String> {
        let mut written: Vec<Location> = Vec::new();
        let mut failed: Vec<StoreId> = Vec::new();
        let mut facts: Option<DataFacts> = None;
        let mut why = String::new();
        // A failure that ends the import is recorded together with the image's
        // return to `queued`, so a client polling the image never sees the
        // failure while it still says `importing`.
        let mut ending_failure: Option<StoreId> = None;
        let last = self.job.stores.len().saturating_sub(1);
        for (i, &store_id) in self.job.stores.iter().enumerate() {
            match self.import_into(&img, store_id, &written, &mut facts) {
                Ok(loc) => {
                    written.push(loc);
                    self.progress(store_id, false);
                }
                Err(e) => {
                    why = format!("Import to store {store_id} failed: {e}");
                    failed.push(store_id);
                    let ends = self.job.all_must_succeed || (i == last && written.is_empty());
                    if ends {
                        ending_failure = Some(store_id);
                        break;
                    }
                    self.progress(store_id, true);
                }
            }
        }
        let success = !written.is_empty() && (failed.is_empty() || !self.job.all_must_succeed);
        if success {
            if self.finish(&img, written, facts) {
                Ok(())
            } else {
                Err("The image could not be saved".into())
            }
        } else {
            self.fail(&img, written, ending_failure);
            Err(why)
        }
    }

    /// Streams the data into one store; the first store gets it from the
    /// source, later ones from the first copy.
    fn import_into(
        &self,
        img: &Image,
        store_id: StoreId,
        written: &[Location],
        facts: &mut Option<DataFacts>,
    ) -> Result<Location, String> {
        let store = self.stores.get(store_id).ok_or("store unavailable")?;
        let declared = img.disk_format.unwrap_or(DiskFormat::Raw);
        if let Some(first) = written.first() {
            return self.copy(self.source_of(first)?, first, store);
        }
        match &self.job.method {
            Method::CopyImage => {
                let from = img.locations.first().ok_or("image has no data")?;
                self.copy(self.source_of(from)?, from, store)
            }
            Method::GlanceDirect => {
                let staged = img.staged.as_ref().ok_or("nothing staged")?;
                let virtual_size = match &staged.inspection {
                    Some(ins) => ins.verdict(declared.as_str()).map_err(|e| e.to_string())?,
                    None => None,
                };
                *facts = Some(DataFacts {
                    size: staged.location.size,
                    checksum: staged.checksum.clone(),
                    os_hash_value: staged.os_hash_value.clone(),
                    // Staging hashed with the configured algorithm too
                    // (a change of it between stage and import mislabels).
                    os_hash_algo: self.stores.settings().hash.as_str(),
                    virtual_size,
                });
                if store_id == StoreId::Kv {
                    // The staging area lives in the same key-value store:
                    // adopt the staged chunks instead of copying them.
                    return Ok(staged.location.clone());
                }
                self.copy(self.stores.staging(), &staged.location, store)
            }
            Method::WebDownload(uri) => {
                let settings = self.stores.settings();
                let mut resp = settings
                    .download_hosts
                    .get(self.ports.http.as_ref(), uri)
                    .map_err(|e| e.to_string())?;
                let too_large =
                    format!("The image is larger than {} bytes", settings.image_size_cap);
                let rules = ReceiveRules {
                    disk_format: Some(declared),
                    inspect: img.container_format == Some(ContainerFormat::Bare),
                    max_bytes: settings.image_size_cap,
                    too_large: &too_large,
                    expected_size: None,
                    hash: settings.hash,
                };
                let writer = self.leased_writer(store)?;
                let got = receive::receive(&mut resp.body, Box::new(writer), &rules)
                    .map_err(|e| ApiError::from(e).message)?;
                *facts = Some(got.facts());
                Ok(got.location)
            }
            Method::GlanceDownload(remote) => {
                let settings = self.stores.settings();
                let endpoint = glance_endpoint(self.ports, remote)?;
                settings.download_hosts.check(&endpoint).map_err(|_| {
                    format!("the remote image service {endpoint} is not allowed by download_hosts")
                })?;
                let rec = remote_record(self.ports, &endpoint, remote)?;
                let (meta, size) = remote_meta(self.ports, &rec)?;
                let mut resp = send_idempotent(
                    self.ports.http.as_ref(),
                    OutRequest {
                        method: http::Method::GET,
                        url: format!("{endpoint}/v2/images/{}/file", remote.image_id),
                        headers: remote.creds.headers.clone(),
                        body: Vec::new(),
                    },
                )
                .map_err(|e| e.to_string())?;
                if resp.status != 200 {
                    return Err(format!(
                        "could not download remote image {}: HTTP {}",
                        remote.image_id, resp.status
                    ));
                }
                let too_large =
                    format!("The image is larger than {} bytes", settings.image_size_cap);
                let rules = ReceiveRules {
                    disk_format: Some(meta.disk_format),
                    inspect: meta.container_format == ContainerFormat::Bare,
                    max_bytes: settings.image_size_cap,
                    too_large: &too_large,
                    expected_size: Some(size),
                    hash: settings.hash,
                };
                let writer = self.leased_writer(store)?;
                let got = receive::receive(&mut resp.body, Box::new(writer), &rules)
                    .map_err(|e| ApiError::from(e).message)?;
                *facts = Some(got.facts());
                *self.remote.borrow_mut() = Some(meta);
                Ok(got.location)
            }
        }
    }

    /// A writer of a new object in `store` under a lease of its own, renewed
    /// with the job's.
    fn leased_writer(&self, store: &dyn BlobStore) -> Result<LeasedWriter<'a>, String> {
        let (held, writer) = lease::start(
            self.ports.db,
            store,
            &self.job.image_id,
            LeaseKind::Data,
            &[&self.job.lease.id],
            self.stores.settings().stale_seconds,
        )
        .map_err(|e| e.to_string())?;
        self.data_leases.borrow_mut().push(held);
        Ok(writer)
    }

    fn source_of(&self, loc: &Location) -> Result<&dyn BlobStore, String> {
        self.stores
            .for_location(loc)
            .ok_or_else(|| format!("store {} unavailable", loc.store))
    }

    fn copy(
        &self,
        from: &dyn BlobStore,
        loc: &Location,
        to: &dyn BlobStore,
    ) -> Result<Location, String> {
        let chunks: ChunkStream = from.read(loc, None).map_err(|e| e.to_string())?;
        let mut writer: Box<dyn BlobWriter + '_> = Box::new(self.leased_writer(to)?);
        for chunk in chunks {
            let res = chunk
                .map_err(|e| BlobError::Store(e.to_string()))
                .and_then(|c| writer.write(&c));
            if let Err(e) = res {
                writer.abort();
                return Err(e.to_string());
            }
        }
        writer.finish().map_err(|e| e.to_string())
    }

    /// Moves `store_id` from the importing list to done or failed.
    fn progress(&self, store_id: StoreId, failed: bool) {
        self.update("recording import progress", |img| {
            img.record_import(store_id, failed);
            Ok(())
        });
    }

    /// Records the data on the image and makes it active; false if that could not be saved.
    fn finish(&self, original: &Image, written: Vec<Location>, facts: Option<DataFacts>) -> bool {
        let copy = self.job.method == Method::CopyImage;
        let remote = self.remote.borrow().clone();
        let saved = self.update("activating an imported image", |img| {
            if copy {
                img.locations.extend(written.iter().cloned());
                return Ok(());
            }
            if let Some(meta) = &remote {
                img.disk_format = Some(meta.disk_format);
                img.container_format = Some(meta.container_format);
                for (k, v) in &meta.properties {
                    img.properties.insert(k.clone(), v.clone());
                }
            }
            let facts = facts
                .as_ref()
                .ok_or("the import learnt nothing about the data")?;
            let mut locations = img.locations.clone();
            locations.extend(written.iter().cloned());
            img.activate(facts, locations).map_err(|t| t.to_string())
        });
        if !saved {
            // Only what this import wrote: adopted staged data stays with the image.
            let own: Vec<Location> = written
                .into_iter()
                .filter(|l| !adopted(original, l))
                .collect();
            self.discard(&own);
            return false;
        }
        // Staged data that was copied, not adopted, is garbage now.
        reclaim::image(self.ports, self.stores, &self.job.image_id);
        true
    }

    /// Undoes a failed import; `failed_store`, if any, is recorded as failed
    /// in the same update.
    fn fail(&self, original: &Image, written: Vec<Location>, failed_store: Option<StoreId>) {
        let own: Vec<Location> = written
            .into_iter()
            .filter(|l| !adopted(original, l))
            .collect();
        self.discard(&own);
        let copy = self.job.method == Method::CopyImage;
        self.update("returning a failed import to queued", |img| {
            if let Some(store_id) = failed_store {
                img.record_import(store_id, true);
            }
            if !copy && img.status == Status::Importing {
                img.reset_to_queued().map_err(|t| t.to_string())?;
            }
            Ok(())
        });
        // A failed import from staged data drops it (Glance's stage is single use).
        reclaim::image(self.ports, self.stores, &self.job.image_id);
    }

    fn discard(&self, written: &[Location]) {
        for loc in written {
            self.delete(loc, "removing the data of a failed import");
        }
    }

    /// Deletes `loc`, logging a failure (`context` says why it was deleted).
    fn delete(&self, loc: &Location, context: &str) {
        if let Some(s) = self.stores.for_location(loc) {
            if let Err(e) = s.delete(loc) {
                self.ports.log_error(context, e);
            }
        }
    }

    /// Changes the image with [`ImageRepo::modify`]; false (and logged) if
    /// that failed. `context` says what the change is for.
    fn update(
        &self,
        context: &str,
        mut change: impl FnMut(&mut Image) -> Result<(), String>,
    ) -> bool {
        let outcome = self
            .repo
            .modify(&self.job.image_id, Timestamp::now(), |img| {
                change(img).map_err(Failure::Refused)?;
                Ok::<_, Failure>(true)
            });
        let why = match outcome {
            Ok(Modified::Done(_)) => return true,
            Ok(Modified::Gone) => "the image is gone".to_string(),
            Ok(Modified::Busy) => "the image kept changing".to_string(),
            Err(Failure::Refused(e)) => e,
            Err(Failure::Store(e)) => e.to_string(),
        };
        self.ports
            .log_error(&format!("{context} ({})", self.job.image_id), why);
        false
    }
}

/// Why a worker's change was not saved.
enum Failure {
    Refused(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<&str> for Failure {
    fn from(e: &str) -> Self {
        Failure::Refused(e.to_string())
    }
}

/// The image endpoint of `remote.region` and `remote.interface` in the
/// Keystone catalog the caller's token sees (Glance's `get_glance_endpoint`);
/// without Keystone (noauth), `upstream_glance_url`.
fn glance_endpoint(ports: &Ports, remote: &Remote) -> Result<String, String> {
    let auth = AuthSettings::load(ports.vars).map_err(|e| e.to_string())?;
    let AuthStrategy::Keystone(ks) = &auth.strategy else {
        let cache = CacheSettings::load(ports.vars).map_err(|e| e.to_string())?;
        return cache.upstream.ok_or_else(|| {
            "glance-download needs Keystone's catalog (or upstream_glance_url without it)".into()
        });
    };
    let mut resp = send_idempotent(
        ports.http.as_ref(),
        OutRequest {
            method: http::Method::GET,
            url: format!("{}{}/auth/catalog", ks.url, ks.api_path),
            headers: remote.creds.headers.clone(),
            body: Vec::new(),
        },
    )
    .map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!(
            "could not read the service catalog: HTTP {}",
            resp.status
        ));
    }
    let text = resp.read_text(4 << 20).map_err(|e| e.to_string())?;
    let doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let region = remote.region.to_ascii_lowercase();
    doc["catalog"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["type"] == "image")
        .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
        .find(|e| {
            let r = e["region_id"]
                .as_str()
                .or(e["region"].as_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            r == region && e["interface"].as_str() == Some(remote.interface.as_str())
        })
        .and_then(|e| e["url"].as_str())
        .map(|u| u.trim_end_matches('/').to_string())
        .ok_or_else(|| {
            format!(
                "no {} image endpoint in region '{}' in the catalog",
                remote.interface, remote.region
            )
        })
}

/// The remote image's record.
fn remote_record(
    ports: &Ports,
    endpoint: &str,
    remote: &Remote,
) -> Result<serde_json::Value, String> {
    let mut resp = send_idempotent(
        ports.http.as_ref(),
        OutRequest {
            method: http::Method::GET,
            url: format!("{endpoint}/v2/images/{}", remote.image_id),
            headers: remote.creds.headers.clone(),
            body: Vec::new(),
        },
    )
    .map_err(|e| e.to_string())?;
    if resp.status != 200 {
        return Err(format!(
            "could not read remote image {}: HTTP {}",
            remote.image_id, resp.status
        ));
    }
    let text = resp.read_text(4 << 20).map_err(|e| e.to_string())?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// What glance-download takes from the remote record (formats, properties
/// with the `glance_download_properties` prefixes), and its size.
fn remote_meta(ports: &Ports, rec: &serde_json::Value) -> Result<(RemoteMeta, u64), String> {
    let status = rec["status"].as_str().unwrap_or("");
    if status != "active" {
        return Err(format!(
            "Source image status should be active instead of {status}"
        ));
    }
    let disk_format = rec["disk_format"]
        .as_str()
        .and_then(DiskFormat::parse)
        .ok_or("the remote image has no usable disk_format")?;
    let container_format = rec["container_format"]
        .as_str()
        .and_then(ContainerFormat::parse)
        .ok_or("the remote image has no usable container_format")?;
    let size = rec["size"]
        .as_u64()
        .ok_or("Size attribute of the remote image could not be determined.")?;
    let prefixes = crate::settings::list(ports.vars, Var::GlanceDownloadProperties);
    let properties = rec
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            !k.starts_with("os_glance") && prefixes.iter().any(|p| k.starts_with(p.as_str()))
        })
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect();
    Ok((
        RemoteMeta {
            disk_format,
            container_format,
            properties,
        },
        size,
    ))
}

/// Whether `loc` is `img`'s staged data (adopted, not written, by the import).
fn adopted(img: &Image, loc: &Location) -> bool {
    img.staged
        .as_ref()
        .is_some_and(|s| s.location.url == loc.url)
}

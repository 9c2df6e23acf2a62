//! Interoperable image import: `POST /v2/images/{id}/import` with the
//! `glance-direct`, `web-download` and `copy-image` methods.
//!
//! The request is checked and the image marked `importing`, the client gets
//! 202, and the data moves after the response has been sent (the host keeps
//! the instance until the work is done). Progress is visible in
//! `os_glance_importing_to_stores`, failures in `os_glance_failed_import`.
//! Each accepted import is also recorded as a task (`api_image_import`, see
//! [`crate::db::tasks`]) carrying the request's id and body, which
//! `GET /v2/images/{id}/tasks` lists.

use http::StatusCode;
use serde_json::{json, Value};

use crate::api::images::{modify, Ctx};
use crate::api::{ApiRequest, ApiResponse};
use crate::data::blob::{BlobError, BlobStore, ChunkStream, Location};
use crate::data::receive::{self, ReceiveRules, HASH_ALGO};
use crate::data::stores::{StoreSettings, Stores};
use crate::db::images::ImageRepo;
use crate::db::tasks::{Task, TaskRepo, API_IMAGE_IMPORT};
use crate::error::{ApiError, ApiResult};
use crate::image::{Image, Status};
use crate::ports::outbound::OutRequest;
use crate::ports::Ports;

const IMPORTING: &str = "os_glance_importing_to_stores";
const FAILED: &str = "os_glance_failed_import";

/// An import the service carries out after answering 202.
#[derive(Debug, Clone)]
struct Job {
    image_id: String,
    method: Method,
    stores: Vec<String>,
    all_must_succeed: bool,
    /// The task recording this import.
    task_id: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Method {
    GlanceDirect,
    WebDownload(String),
    CopyImage,
}

fn flag(body: &serde_json::Map<String, Value>, name: &str, default: bool) -> ApiResult<bool> {
    match body.get(name) {
        None => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::bad_request(format!(
            "'{name}' must be boolean value only"
        ))),
    }
}

/// `POST /v2/images/{id}/import`.
pub fn import(ctx: &Ctx, req: &mut ApiRequest, id: &str) -> ApiResult<ApiResponse> {
    let body = req.json_body()?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request("Request body must be a JSON object."));
    };
    let method = body
        .get("method")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'method' field."))?;
    let name = method
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::bad_request("Import request requires a 'name' field."))?;
    if !ctx.settings.import_methods.iter().any(|m| m == name) {
        return Err(ApiError::bad_request(format!(
            "Unknown import method name '{name}'."
        )));
    }
    let all_must_succeed = flag(&body, "all_stores_must_succeed", true)?;
    let all_stores = flag(&body, "all_stores", false)?;
    let listed: Option<Vec<String>> = match body.get("stores") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|s| s.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| ApiError::bad_request("'stores' must be a list of store ids"))?,
        ),
        Some(_) => {
            return Err(ApiError::bad_request(
                "'stores' must be a list of store ids",
            ))
        }
    };
    let header_store = req.header("x-image-meta-store").map(str::to_string);
    if all_stores && (listed.is_some() || header_store.is_some()) {
        return Err(ApiError::bad_request(
            "All stores is set to true, so stores must not be given as well.",
        ));
    }
    if !all_must_succeed && !ctx.settings.multi_store() {
        return Err(ApiError::bad_request(
            "all_stores_must_succeed can only be false with multiple stores.",
        ));
    }
    let method = match name {
        "glance-direct" => Method::GlanceDirect,
        "copy-image" => Method::CopyImage,
        "web-download" => {
            let uri = method
                .get("uri")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::bad_request("web-download requires a 'uri'."))?;
            if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                return Err(ApiError::bad_request(format!(
                    "URI for web-download does not pass filtering: {uri}"
                )));
            }
            Method::WebDownload(uri.to_string())
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "Unknown import method name '{other}'."
            )))
        }
    };

    let access = ctx.access();
    let v = access.load(id)?;
    let img = &v.image;
    let (wanted, verb) = match &method {
        Method::GlanceDirect => (Status::Uploading, "'glance-direct'"),
        Method::WebDownload(_) => (Status::Queued, "'web-download'"),
        Method::CopyImage => (Status::Active, "'copy-image'"),
    };
    if img.status != wanted || (method == Method::GlanceDirect && img.staged.is_none()) {
        return Err(ApiError::conflict(format!(
            "Image needs to be in '{}' state to use {verb} method",
            wanted.as_str()
        )));
    }
    if method != Method::CopyImage && (img.disk_format.is_none() || img.container_format.is_none())
    {
        return Err(ApiError::conflict(
            "'disk_format' and 'container_format' need to be set before import",
        ));
    }
    access.enforce(
        if method == Method::CopyImage {
            "copy_image"
        } else {
            "modify_image"
        },
        &v,
    )?;

    let holding: Vec<&str> = img.locations.iter().map(|l| l.store.as_str()).collect();
    let writable: Vec<String> = ctx
        .settings
        .enabled
        .iter()
        .filter(|s| !s.read_only)
        .map(|s| s.id.clone())
        .collect();
    let stores: Vec<String> = if all_stores {
        writable
            .iter()
            .filter(|s| !holding.contains(&s.as_str()))
            .cloned()
            .collect()
    } else if let Some(list) = listed {
        list
    } else if let Some(h) = header_store {
        vec![h]
    } else {
        vec![ctx.settings.default.clone()]
    };
    for s in &stores {
        if !writable.contains(s) {
            return Err(ApiError::conflict(format!("Store {s} is not available")));
        }
        if method == Method::CopyImage && holding.contains(&s.as_str()) && !all_stores {
            return Err(ApiError::bad_request(format!(
                "Image is already present at store '{s}'"
            )));
        }
    }
    if stores.is_empty() {
        // Nothing to copy: every store already holds the image.
        return Ok(ApiResponse::empty(StatusCode::ACCEPTED));
    }

    let progress = stores.join(",");
    let copy = method == Method::CopyImage;
    modify(ctx, id, None, |img| {
        if img.status != wanted {
            return Err(ApiError::conflict(
                "The image changed; another import may be running.",
            ));
        }
        if !copy {
            img.status = Status::Importing;
        }
        img.properties.insert(IMPORTING.into(), progress.clone());
        img.properties.insert(FAILED.into(), String::new());
        Ok(true)
    })?;
    // The task, as Glance records it once the import is accepted: who asked,
    // the request's id, and what was asked. The image is already `importing`,
    // so the import goes ahead even if the record cannot be written.
    let mut task = Task::new(
        API_IMAGE_IMPORT,
        json!({"image_id": id, "import_req": Value::Object(body.clone()), "backend": stores}),
    );
    task.image_id = Some(id.to_string());
    task.owner = ctx.caller.project_id.clone();
    task.user_id = ctx.caller.user_id.clone();
    task.request_id = Some(req.request_id().to_string());
    let _ = TaskRepo::new(ctx.ports.db).insert(&task);
    let job = Job {
        image_id: id.to_string(),
        method,
        stores,
        all_must_succeed,
        task_id: task.id,
    };
    let mut resp = ApiResponse::empty(StatusCode::ACCEPTED);
    resp.deferred = Some(Box::new(move |ports: &Ports| run(ports, job)));
    Ok(resp)
}

/// Carries out an import after the 202 was sent, and records the outcome in its task.
fn run(ports: &Ports, job: Job) {
    let tasks = TaskRepo::new(ports.db);
    let Ok(repo) = ImageRepo::open(ports.db) else {
        return;
    };
    let _ = tasks.begin(&job.task_id);
    let outcome = (|| {
        let settings = StoreSettings::load(ports.vars).map_err(|e| e.message)?;
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
        };
        worker.run(img)
    })();
    let _ = tasks.finish(
        &job.task_id,
        outcome.map(|()| json!({"image_id": job.image_id})),
    );
}

struct Worker<'a> {
    ports: &'a Ports<'a>,
    repo: &'a ImageRepo<'a>,
    stores: &'a Stores,
    job: &'a Job,
}

/// What the first copy of the data taught us.
struct DataFacts {
    size: u64,
    checksum: String,
    os_hash_value: String,
    virtual_size: Option<u64>,
}

impl Worker<'_> {
    /// Imports into every store; Err says why the import failed.
    fn run(&self, img: Image) -> Result<(), String> {
        let mut written: Vec<Location> = Vec::new();
        let mut failed: Vec<String> = Vec::new();
        let mut facts: Option<DataFacts> = None;
        let mut why = String::new();
        // A failure that ends the import is recorded together with the image's
        // return to `queued`, so a client polling the image never sees the
        // failure while it still says `importing`.
        let mut ending_failure: Option<&str> = None;
        let last = self.job.stores.len().saturating_sub(1);
        for (i, store_id) in self.job.stores.iter().enumerate() {
            let result = self.import_into(&img, store_id, &written, &mut facts);
            match result {
                Ok(loc) => {
                    written.push(loc);
                    self.progress(store_id, false);
                }
                Err(e) => {
                    why = format!("Import to store {store_id} failed: {e}");
                    failed.push(store_id.clone());
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
        store_id: &str,
        written: &[Location],
        facts: &mut Option<DataFacts>,
    ) -> Result<Location, String> {
        let store = self.stores.get(store_id).ok_or("store unavailable")?;
        let declared = img.disk_format.as_deref().unwrap_or("raw");
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
                    Some(ins) => ins.verdict(declared).map_err(|e| e.to_string())?,
                    None => None,
                };
                *facts = Some(DataFacts {
                    size: staged.location.size,
                    checksum: staged.checksum.clone(),
                    os_hash_value: staged.os_hash_value.clone(),
                    virtual_size,
                });
                if store_id == "kv" {
                    // The staging area lives in the same key-value store:
                    // adopt the staged chunks instead of copying them.
                    return Ok(Location {
                        store: "kv".into(),
                        ..staged.location.clone()
                    });
                }
                let staging = self.stores.staging().ok_or("no staging area")?;
                self.copy(staging as &dyn BlobStore, &staged.location, store)
            }
            Method::WebDownload(uri) => {
                let mut resp = self
                    .ports
                    .http
                    .send(OutRequest {
                        method: http::Method::GET,
                        url: uri.clone(),
                        headers: Vec::new(),
                        body: Vec::new(),
                    })
                    .map_err(|e| e.to_string())?;
                if !(200..300).contains(&resp.status) {
                    return Err(format!("{uri}: HTTP {}", resp.status));
                }
                let settings = self.stores.settings();
                let too_large =
                    format!("The image is larger than {} bytes", settings.image_size_cap);
                let rules = ReceiveRules {
                    disk_format: Some(declared),
                    inspect: img.container_format.as_deref() == Some("bare"),
                    max_bytes: settings.image_size_cap,
                    too_large: &too_large,
                    expected_size: None,
                };
                let writer = store.writer(&img.id).map_err(|e| e.to_string())?;
                let got = receive::receive(&mut resp.body, writer, &rules)
                    .map_err(|e| ApiError::from(e).message)?;
                *facts = Some(DataFacts {
                    size: got.location.size,
                    checksum: got.checksum,
                    os_hash_value: got.os_hash_value,
                    virtual_size: got.virtual_size,
                });
                Ok(got.location)
            }
        }
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
        let mut writer = to.writer(&self.job.image_id).map_err(|e| e.to_string())?;
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
    fn progress(&self, store_id: &str, failed: bool) {
        let _ = self.update(|img| record_progress(img, store_id, failed));
    }

    /// Records the data on the image and makes it active; false if that could not be saved.
    fn finish(&self, original: &Image, written: Vec<Location>, facts: Option<DataFacts>) -> bool {
        let copy = self.job.method == Method::CopyImage;
        let adopted_staging = written.iter().any(|l| {
            original
                .staged
                .as_ref()
                .is_some_and(|s| s.location.url == l.url)
        });
        let saved = self.update(|img| {
            img.locations.extend(written.iter().cloned());
            if !copy {
                if let Some(f) = &facts {
                    img.size = Some(f.size as i64);
                    img.checksum = Some(f.checksum.clone());
                    img.os_hash_algo = Some(HASH_ALGO.into());
                    img.os_hash_value = Some(f.os_hash_value.clone());
                    img.virtual_size = f.virtual_size.map(|v| v as i64);
                }
                img.status = Status::Active;
                img.staged = None;
            }
        });
        match saved {
            Ok(()) => {
                if let (Some(staged), false) = (&original.staged, adopted_staging) {
                    if let Some(staging) = self.stores.staging() {
                        let _ = staging.delete(&staged.location);
                    }
                }
                true
            }
            Err(_) => {
                self.discard(&written);
                false
            }
        }
    }

    /// Undoes a failed import; `failed_store`, if any, is recorded as failed
    /// in the same update.
    fn fail(&self, original: &Image, written: Vec<Location>, failed_store: Option<&str>) {
        self.discard(&written);
        let copy = self.job.method == Method::CopyImage;
        let _ = self.update(|img| {
            if let Some(store_id) = failed_store {
                record_progress(img, store_id, true);
            }
            if !copy {
                img.status = Status::Queued;
                img.size = None;
                img.virtual_size = None;
                img.staged = None;
            }
        });
        if !copy {
            if let (Some(staged), Some(staging)) = (&original.staged, self.stores.staging()) {
                let _ = staging.delete(&staged.location);
            }
        }
    }

    fn discard(&self, written: &[Location]) {
        for loc in written {
            if let Some(s) = self.stores.for_location(loc) {
                let _ = s.delete(loc);
            }
        }
    }

    /// Re-reads, changes and saves the image, retrying on concurrent writes.
    fn update(&self, mut change: impl FnMut(&mut Image)) -> Result<(), ()> {
        for _ in 0..10 {
            let Ok(Some(mut img)) = self.repo.get(&self.job.image_id) else {
                return Err(());
            };
            change(&mut img);
            img.updated_at = crate::timestamp::Timestamp::now();
            if let Ok(crate::db::images::Write::Done) = self.repo.save(&mut img) {
                return Ok(());
            }
        }
        Err(())
    }
}

/// Moves `store_id` from the image's importing list to done, or to failed.
fn record_progress(img: &mut Image, store_id: &str, failed: bool) {
    let mut importing = store_list(img, IMPORTING);
    importing.retain(|s| s != store_id);
    img.properties.insert(IMPORTING.into(), importing.join(","));
    if failed {
        let mut f = store_list(img, FAILED);
        f.push(store_id.to_string());
        img.properties.insert(FAILED.into(), f.join(","));
    }
}

/// The store ids of a comma-separated image property.
fn store_list(img: &Image, property: &str) -> Vec<String> {
    img.properties.get(property).map_or_else(Vec::new, |v| {
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

//! Tasks: `GET /v2/images/{image_id}/tasks` (API v2.12), and the legacy
//! tasks API — `POST /v2/tasks`, `GET /v2/tasks`, `GET /v2/tasks/{task_id}`
//! (`DELETE` is 405, as in Glance) — deprecated in Glance in favour of the
//! interoperable import, and admin-only by default (`tasks_api_access`).
//!
//! An `import` task (`{"type": "import", "input": {"import_from": URL,
//! "import_from_format": F, "image_properties": {...}}}`) creates an image
//! from `image_properties` and fetches its data from `import_from` the way a
//! `web-download` import does (the URL must pass `download_hosts`; the data
//! is checked, hashed and stored by the same worker, under the same lease).
//! The image is created while the request is answered, not by the worker as
//! Glance does, so that a crash at any point leaves a failed task and a
//! `queued` image, never a task stuck `pending`. A failed import deletes the
//! image, as Glance's flow reverts its creation; a task whose input cannot
//! make an image fails with Glance's message. The task records the outcome:
//! `result: {"image_id": ...}` on success.

use http::StatusCode;
use serde_json::{json, Map, Value};

use super::metadata;
use super::Ctx;
use crate::api::routes::Params;
use crate::api::{ApiRequest, ApiResponse};
use crate::auth::policy::{Rule, Target};
use crate::data::import::{self, Job, Method};
use crate::data::lease;
use crate::db::leases::{Lease, LeaseKind, LeaseRepo};
use crate::db::tasks::{Task, TaskQuery, TaskRepo, FILTER_KEYS, IMPORT, SORT_KEYS, STATUSES};
use crate::error::{ApiError, ApiResult};
use crate::notify::Event;
use crate::ports::Ports;
use crate::timestamp::Timestamp;

/// The image's import tasks, oldest first, for any caller who may see the
/// image (404 otherwise). Like Glance, a caller sees the tasks its project
/// started; an admin sees them all.
pub(super) fn list(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    req.reject_body()?;
    let v = ctx.access().load(&p["image_id"])?;
    let tasks = TaskRepo::new(ctx.ports.db).list_for_image(
        &v.image.id,
        ctx.caller.project_id.as_deref(),
        ctx.caller.is_admin(),
    )?;
    let tasks: Vec<Value> = tasks.iter().map(Task::to_json).collect();
    Ok(ApiResponse::json(
        StatusCode::OK,
        &json!({ "tasks": tasks }),
    ))
}

/// The keys of Glance's task schema (`additionalProperties: false`).
const SCHEMA_KEYS: [&str; 15] = [
    "id",
    "type",
    "status",
    "input",
    "result",
    "owner",
    "message",
    "image_id",
    "request_id",
    "user_id",
    "expires_at",
    "created_at",
    "updated_at",
    "self",
    "schema",
];

/// The task types Glance's schema knows.
const TYPES: [&str; 3] = [IMPORT, "api_image_import", "location_import"];

/// 403 unless the caller may use the tasks API and pass `rule`.
fn enforce(ctx: &Ctx, rule: Rule) -> ApiResult<()> {
    let own = Target {
        owner: ctx.caller.project_id.clone(),
        ..Target::default()
    };
    ctx.policy
        .enforce(Rule::TasksApiAccess, &ctx.caller, &own)?;
    ctx.policy.enforce(rule, &ctx.caller, &own)
}

/// Checks a create body against Glance's task schema: 400 with the reason.
fn check_schema(body: &Map<String, Value>) -> ApiResult<()> {
    for key in ["type", "input"] {
        if !body.contains_key(key) {
            return Err(ApiError::bad_request(format!("Task '{key}' is required")));
        }
    }
    for (key, value) in body {
        if !SCHEMA_KEYS.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "Provided object does not match schema 'task': Additional properties are \
                 not allowed ('{key}' was unexpected)"
            )));
        }
        let ok = match key.as_str() {
            "type" => value.as_str().is_some_and(|t| TYPES.contains(&t)),
            "status" => value.as_str().is_some_and(|s| STATUSES.contains(&s)),
            "input" | "result" => value.is_object() || value.is_null(),
            "expires_at" => value.is_string() || value.is_null(),
            "id" => value
                .as_str()
                .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()),
            _ => value.is_string(),
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Provided object does not match schema 'task': {value} is not valid under \
                 the schema of '{key}'"
            )));
        }
    }
    Ok(())
}

/// Glance's `validate_legacy_import_from_uri`: an http(s) URL that passes
/// the download filter (`download_hosts`).
fn check_import_from(ctx: &Ctx, import_from: Option<&Value>) -> ApiResult<String> {
    let uri = match import_from {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid location: {}",
                match other {
                    Value::String(s) => s.clone(),
                    v => v.to_string(),
                }
            )))
        }
        None => return Err(ApiError::bad_request("Invalid location: None")),
    };
    if uri.starts_with("file:///") || uri.starts_with("filesystem:///") {
        return Err(ApiError::bad_request(
            "File based imports are not allowed. Please use a non-local source of image data.",
        ));
    }
    if !(uri.starts_with("http://") || uri.starts_with("https://")) {
        return Err(ApiError::bad_request(
            "The given uri is not valid. Please specify a valid uri from the following list \
             of supported uri ['http']",
        ));
    }
    if ctx.settings.download_hosts.check(&uri).is_err() {
        return Err(ApiError::bad_request(format!(
            "URI for legacy import task does not pass filtering: {uri}"
        )));
    }
    Ok(uri)
}

/// `POST /v2/tasks`: 201 with the `pending` task; the import runs after the
/// response.
pub(super) fn create(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    enforce(ctx, Rule::AddTask)?;
    let Value::Object(body) = req.json_body()? else {
        return Err(ApiError::bad_request("Request body must be a JSON object."));
    };
    check_schema(&body)?;
    let task_type = body["type"].as_str().unwrap_or_default();
    if task_type != IMPORT {
        return Err(ApiError::bad_request(format!(
            "Tasks of type '{task_type}' are started by the image import and location APIs, \
             not through /v2/tasks; the tasks API creates 'import' tasks."
        )));
    }
    let input = body["input"].as_object().cloned().unwrap_or_default();
    let uri = check_import_from(ctx, input.get("import_from"))?;

    let tasks = import::task_repo(ctx.ports);
    if let Err(e) = tasks.purge_expired(Timestamp::now()) {
        ctx.ports.log_error("removing expired tasks", e);
    }
    let mut task = Task::new(IMPORT, Value::Object(input.clone()));
    task.owner = ctx.caller.project_id.clone();
    task.user_id = ctx.caller.user_id.clone();
    task.request_id = Some(req.request_id().to_string());
    tasks.insert(&task)?;

    let work: crate::ports::Deferred = match start_import(ctx, &task, &input, uri) {
        Ok(job) => Box::new(move |ports: &Ports| import::run(ports, job)),
        Err(why) => {
            let id = task.id.clone();
            Box::new(move |ports: &Ports| fail(ports, &id, why))
        }
    };
    let mut resp = ApiResponse::json(StatusCode::CREATED, &task.to_api_json())
        .with_header("location", format!("{}/v2/tasks/{}", req.base_url, task.id));
    resp.deferred = Some(work);
    Ok(resp.with_events(vec![Event::task("task.create", &task)]))
}

/// Fails task `id` with `why` after the response (as Glance's worker does
/// when the input cannot make an image).
fn fail(ports: &Ports, id: &str, why: String) {
    let tasks = import::task_repo(ports);
    let ended = tasks.begin(id).and_then(|()| tasks.finish(id, Err(why)));
    if let Err(e) = ended {
        return ports.log_error(&format!("failing task {id}"), e);
    }
    match tasks.get(id) {
        Ok(Some(t)) => crate::notify::publish(ports, &[Event::task("task.failure", &t)]),
        Ok(None) => {}
        Err(e) => ports.log_error(&format!("reading task {id}"), e),
    }
}

/// Creates the task's image and marks it importing under a lease; Err is
/// the message the task fails with.
fn start_import(
    ctx: &Ctx,
    task: &Task,
    input: &Map<String, Value>,
    uri: String,
) -> Result<Job, String> {
    for key in ["import_from", "import_from_format", "image_properties"] {
        if !input.contains_key(key) {
            return Err(format!("Input does not contain '{key}' field"));
        }
    }
    let mut fields = match &input["image_properties"] {
        Value::Object(m) => m.clone(),
        other => return Err(format!("image_properties must be an object, not {other}")),
    };
    if fields.is_empty() {
        // Glance's `set_base_image_properties`.
        fields.insert("disk_format".into(), "qcow2".into());
        fields.insert("container_format".into(), "bare".into());
    }
    let message = |e: ApiError| format!("Error: {}: {}", e.title(), e.message);
    let img = metadata::new_image(ctx, &fields).map_err(message)?;
    metadata::insert_new(ctx, &img).map_err(message)?;
    let id = img.id.clone();
    let store = ctx.settings.default;
    let mut held = Lease::new(&id, LeaseKind::Import, ctx.settings.stale_seconds);
    held.task_id = Some(task.id.clone());
    LeaseRepo::new(ctx.ports.db)
        .take(&held)
        .map_err(|e| message(e.into()))?;
    let started = ctx.modify(&id, None, |img| {
        img.start_import()
            .map_err(|t| ApiError::conflict(t.to_string()))?;
        img.begin_import_progress(store.as_str());
        Ok(true)
    });
    if let Err(e) = started {
        lease::release(ctx.ports, &held);
        return Err(message(e));
    }
    Ok(Job {
        image_id: id,
        method: Method::WebDownload(uri),
        stores: vec![store],
        all_must_succeed: true,
        task_id: task.id.clone(),
        lease: held,
        discard_on_failure: true,
    })
}

/// One query parameter, the last value given.
fn param<'q>(params: &'q [(String, String)], name: &str) -> Option<&'q str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `GET /v2/tasks`: the caller's tasks (an admin's: every one), newest first
/// unless sorted otherwise, a page at a time.
pub(super) fn index(ctx: &Ctx, req: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    enforce(ctx, Rule::GetTasks)?;
    let params: Vec<(String, String)> = form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect();
    let sort_dir = param(&params, "sort_dir").unwrap_or("desc");
    if sort_dir != "asc" && sort_dir != "desc" {
        return Err(ApiError::bad_request(format!(
            "Invalid sort direction: {sort_dir}"
        )));
    }
    let sort_key = param(&params, "sort_key").unwrap_or("created_at");
    let sort_key = SORT_KEYS
        .iter()
        .find(|k| **k == sort_key)
        .copied()
        .ok_or_else(|| ApiError::bad_request("Sort key supplied was not valid."))?;
    if let Some(status) = param(&params, "status").filter(|s| !s.is_empty()) {
        if !STATUSES.contains(&status) {
            return Err(ApiError::bad_request(format!(
                "Invalid status value: {status}"
            )));
        }
    }
    if let Some(t) = param(&params, "type").filter(|s| !s.is_empty()) {
        if t != IMPORT {
            return Err(ApiError::bad_request(format!("Invalid type value: {t}")));
        }
    }
    let limit = match param(&params, "limit") {
        None => ctx.limits.limit_param_default as usize,
        Some(l) => {
            let n: i64 = l
                .trim()
                .parse()
                .map_err(|_| ApiError::bad_request("limit param must be an integer"))?;
            if n < 0 {
                return Err(ApiError::bad_request("limit param must be positive"));
            }
            n as usize
        }
    }
    .min(ctx.limits.api_limit_max as usize);
    let repo = TaskRepo::new(ctx.ports.db);
    let project = ctx.caller.project_id.as_deref();
    let admin = ctx.caller.is_admin();
    let marker = match param(&params, "marker") {
        None => None,
        Some(m) => {
            if uuid::Uuid::parse_str(m).is_err() {
                return Err(ApiError::bad_request("Invalid marker format"));
            }
            let found = repo
                .get_live(m)?
                .filter(|t| visible(t, project, admin))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Task with the given id {m} was not found"))
                })?;
            Some(found)
        }
    };
    let filters: Vec<(&'static str, String)> = FILTER_KEYS
        .iter()
        .filter_map(|k| param(&params, k).map(|v| (*k, v.to_string())))
        .collect();
    let q = TaskQuery {
        filters,
        sort_key,
        ascending: sort_dir == "asc",
        marker,
        limit,
    };
    let page = repo.list(&q, project, admin)?;

    let rest: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "marker").collect();
    let encode = |pairs: &[&(String, String)]| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, v);
        }
        s.finish()
    };
    let mut body = Map::new();
    body.insert(
        "tasks".into(),
        Value::Array(page.iter().map(Task::to_stub_json).collect()),
    );
    let first = if rest.is_empty() {
        "/v2/tasks".to_string()
    } else {
        format!("/v2/tasks?{}", encode(&rest))
    };
    body.insert("first".into(), first.into());
    body.insert("schema".into(), "/v2/schemas/tasks".into());
    if let Some(last) = page.last().filter(|_| page.len() == limit) {
        let marker = ("marker".to_string(), last.id.clone());
        let mut next = rest.clone();
        next.push(&marker);
        body.insert("next".into(), format!("/v2/tasks?{}", encode(&next)).into());
    }
    Ok(ApiResponse::json(StatusCode::OK, &Value::Object(body)))
}

/// Whether a caller of `project` sees task `t` (Glance's `_is_task_visible`).
fn visible(t: &Task, project: Option<&str>, admin: bool) -> bool {
    admin || t.owner.is_none() || t.owner.as_deref() == project
}

/// `GET /v2/tasks/{task_id}`: 404 when there is none or it expired, 403 when
/// another project's (Glance's answer).
pub(super) fn show(ctx: &Ctx, req: &mut ApiRequest, p: &Params) -> ApiResult<ApiResponse> {
    enforce(ctx, Rule::GetTask)?;
    req.reject_body()?;
    let id = &p["task_id"];
    let task = TaskRepo::new(ctx.ports.db)
        .get_live(id)?
        .ok_or_else(|| ApiError::not_found(format!("Task with the given id {id} was not found")))?;
    if !visible(
        &task,
        ctx.caller.project_id.as_deref(),
        ctx.caller.is_admin(),
    ) {
        return Err(ApiError::forbidden(format!(
            "Forbidding request, task {id} is not visible"
        )));
    }
    Ok(ApiResponse::json(StatusCode::OK, &task.to_api_json()))
}

/// `DELETE /v2/tasks/{task_id}`: tasks are never deleted by request (405,
/// `Allow: GET`, after the access check, as Glance).
pub(super) fn delete(ctx: &Ctx, _: &mut ApiRequest, _: &Params) -> ApiResult<ApiResponse> {
    enforce(ctx, Rule::TasksApiAccess)?;
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "This operation is currently not permitted on Glance Tasks. They are auto deleted \
         after reaching the time based on their expires_at property.",
    )
    .with_header("Allow", "GET"))
}

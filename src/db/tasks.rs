//! Tasks: the record Glance keeps of asynchronous work on an image (an
//! interoperable import is a task of type `api_image_import`), shown by
//! `GET /v2/images/{id}/tasks`.
//!
//! A task is `pending` when the import is accepted, `processing` while the
//! data moves, and ends `success` (with `result: {"image_id": ...}`) or
//! `failure` (with a `message`). A finished task expires its time to live
//! later (Glance's `[task] task_time_to_live`, 48 h by default; the
//! `task_time_to_live` variable): it is then gone, neither shown nor listed.
//!
//! The legacy tasks API (`/v2/tasks`, [`TaskQuery`]) lists and shows the
//! same records; its `import` tasks create an image and import into it.

use serde_json::{json, Value};

use crate::ports::{Database, SqlValue, StoreError};
use crate::timestamp::Timestamp;

/// Seconds a finished task stays listed (Glance's default `task_time_to_live`).
pub const TIME_TO_LIVE: i64 = 48 * 3600;

/// The message of a task whose work was abandoned (its worker died).
pub const ABANDONED: &str = "The import stopped making progress and was abandoned; try again.";

/// The task type of an interoperable import.
pub const API_IMAGE_IMPORT: &str = "api_image_import";

/// The task type of the legacy tasks API's import (`POST /v2/tasks`).
pub const IMPORT: &str = "import";

/// The task statuses, as Glance's task schema lists them.
pub const STATUSES: [&str; 4] = ["pending", "processing", "success", "failure"];

/// The columns a task list may be sorted by (Glance sorts by any task column).
pub const SORT_KEYS: [&str; 10] = [
    "id",
    "type",
    "status",
    "owner",
    "image_id",
    "request_id",
    "user_id",
    "expires_at",
    "created_at",
    "updated_at",
];

/// The columns a task list may be filtered on by equality (Glance filters on
/// any query parameter naming a task column; `type` and `status` are checked
/// against their values first).
pub const FILTER_KEYS: [&str; 7] = [
    "id",
    "type",
    "status",
    "owner",
    "image_id",
    "request_id",
    "user_id",
];

/// One page request of `GET /v2/tasks`, checked by the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskQuery {
    /// Equality filters: a column of [`FILTER_KEYS`] and its value.
    pub filters: Vec<(&'static str, String)>,
    /// A column of [`SORT_KEYS`].
    pub sort_key: &'static str,
    /// Ascending (else descending, Glance's default).
    pub ascending: bool,
    /// The last task of the previous page.
    pub marker: Option<Task>,
    /// Page size.
    pub limit: usize,
}

/// Formats a time as Glance's task API does (`timeutils.isotime`):
/// `2020-12-18T05:20:38Z`.
fn iso_time(t: &Timestamp) -> String {
    t.to_string()
}

/// One task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Task id (a UUID).
    pub id: String,
    /// `api_image_import`.
    pub task_type: String,
    /// `pending`, `processing`, `success` or `failure`.
    pub status: String,
    /// Project of the caller that started it.
    pub owner: Option<String>,
    /// The image it works on.
    pub image_id: Option<String>,
    /// The `x-openstack-request-id` of the request that started it.
    pub request_id: Option<String>,
    /// User that started it.
    pub user_id: Option<String>,
    /// What was asked: for an import `{"image_id", "import_req": <request body>, "backend": [stores]}`.
    pub input: Value,
    /// Outcome on success (`{"image_id": ...}`), else None.
    pub result: Option<Value>,
    /// Why it failed; empty otherwise.
    pub message: String,
    /// When it stops being listed (set when it finishes).
    pub expires_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

/// Glance shows task times as raw datetimes: `2020-12-18T05:20:38.000000`.
fn raw_datetime(t: &Timestamp) -> String {
    format!("{}.000000", t.to_string().trim_end_matches('Z'))
}

impl Task {
    /// A new `pending` task created now.
    pub fn new(task_type: &str, input: Value) -> Task {
        let now = Timestamp::now();
        Task {
            id: uuid::Uuid::new_v4().to_string(),
            task_type: task_type.to_string(),
            status: "pending".into(),
            owner: None,
            image_id: None,
            request_id: None,
            user_id: None,
            input,
            result: None,
            message: String::new(),
            expires_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The representation in `GET /v2/images/{id}/tasks` (Glance's task record
    /// as its database layer formats it).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.task_type,
            "status": self.status,
            "owner": self.owner,
            "expires_at": self.expires_at.as_ref().map(raw_datetime),
            "created_at": raw_datetime(&self.created_at),
            "updated_at": raw_datetime(&self.updated_at),
            "deleted_at": Value::Null,
            "deleted": false,
            "image_id": self.image_id,
            "request_id": self.request_id,
            "user_id": self.user_id,
            "input": self.input,
            "result": self.result,
            "message": self.message,
        })
    }

    /// The representation in `GET /v2/tasks/{id}` and `POST /v2/tasks`
    /// (Glance's `_format_task`): `image_id`, `request_id`, `user_id` and
    /// `expires_at` only when set.
    pub fn to_api_json(&self) -> Value {
        let mut v = self.to_stub_json();
        v["input"] = self.input.clone();
        v["result"] = self.result.clone().unwrap_or(Value::Null);
        v["message"] = Value::String(self.message.clone());
        for (key, value) in [
            ("image_id", &self.image_id),
            ("request_id", &self.request_id),
            ("user_id", &self.user_id),
        ] {
            if let Some(value) = value {
                v[key] = Value::String(value.clone());
            }
        }
        v
    }

    /// The representation in `GET /v2/tasks` (Glance's `_format_task_stub`:
    /// no input, result or message).
    pub fn to_stub_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "type": self.task_type,
            "status": self.status,
            "owner": self.owner,
            "created_at": iso_time(&self.created_at),
            "updated_at": iso_time(&self.updated_at),
            "self": format!("/v2/tasks/{}", self.id),
            "schema": "/v2/schemas/task",
        });
        if let Some(e) = &self.expires_at {
            v["expires_at"] = Value::String(iso_time(e));
        }
        v
    }

    /// The value of sort column `key` (one of [`SORT_KEYS`]), as stored.
    fn sort_value(&self, key: &str) -> String {
        let text = |o: &Option<String>| o.clone().unwrap_or_default();
        match key {
            "id" => self.id.clone(),
            "type" => self.task_type.clone(),
            "status" => self.status.clone(),
            "owner" => text(&self.owner),
            "image_id" => text(&self.image_id),
            "request_id" => text(&self.request_id),
            "user_id" => text(&self.user_id),
            "expires_at" => self.expires_at.map(|e| e.to_string()).unwrap_or_default(),
            "updated_at" => self.updated_at.to_string(),
            _ => self.created_at.to_string(),
        }
    }
}

const COLUMNS: &str = "id, type, status, owner, image_id, request_id, user_id, input, result, \
                       message, expires_at, created_at, updated_at";

fn task_from_row(r: &[SqlValue]) -> Result<Task, StoreError> {
    let corrupt = || StoreError("corrupt task row".into());
    let text = |i: usize| r.get(i).and_then(SqlValue::as_str).map(str::to_string);
    let ts = |i: usize| text(i).and_then(|s| Timestamp::parse(&s));
    let json_of = |i: usize| text(i).and_then(|s| serde_json::from_str::<Value>(&s).ok());
    Ok(Task {
        id: text(0).ok_or_else(corrupt)?,
        task_type: text(1).ok_or_else(corrupt)?,
        status: text(2).ok_or_else(corrupt)?,
        owner: text(3),
        image_id: text(4),
        request_id: text(5),
        user_id: text(6),
        input: json_of(7).unwrap_or(Value::Null),
        result: json_of(8),
        message: text(9).unwrap_or_default(),
        expires_at: ts(10),
        created_at: ts(11).ok_or_else(corrupt)?,
        updated_at: ts(12).ok_or_else(corrupt)?,
    })
}

/// Tasks over a [`Database`] (the table comes with the image schema's migrations).
pub struct TaskRepo<'a> {
    db: &'a dyn Database,
    /// Seconds a finished task stays.
    time_to_live: i64,
}

impl<'a> TaskRepo<'a> {
    /// Task records in `db` (migrated by [`crate::db::images::ImageRepo::open`]);
    /// finished tasks expire after Glance's default [`TIME_TO_LIVE`].
    pub fn new(db: &'a dyn Database) -> Self {
        TaskRepo {
            db,
            time_to_live: TIME_TO_LIVE,
        }
    }

    /// The same, with finished tasks expiring `seconds` after they end.
    pub fn with_time_to_live(mut self, seconds: i64) -> Self {
        self.time_to_live = seconds.max(0);
        self
    }

    /// Stores a new task.
    pub fn insert(&self, t: &Task) -> Result<(), StoreError> {
        self.db.execute(
            &format!(
                "INSERT INTO tasks ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            &[
                t.id.as_str().into(),
                t.task_type.as_str().into(),
                t.status.as_str().into(),
                t.owner.clone().into(),
                t.image_id.clone().into(),
                t.request_id.clone().into(),
                t.user_id.clone().into(),
                t.input.to_string().into(),
                t.result.as_ref().map(Value::to_string).into(),
                t.message.as_str().into(),
                t.expires_at.map(|e| e.to_string()).into(),
                t.created_at.to_string().into(),
                t.updated_at.to_string().into(),
            ],
        )?;
        Ok(())
    }

    /// Marks a task `processing`.
    pub fn begin(&self, id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE tasks SET status = 'processing', updated_at = ? WHERE id = ? AND status = 'pending'",
            &[Timestamp::now().to_string().into(), id.into()],
        )?;
        Ok(())
    }

    /// Ends a task: `success` with `result`, or `failure` with `message`; it
    /// expires [`TIME_TO_LIVE`] from now.
    pub fn finish(&self, id: &str, outcome: Result<Value, String>) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let (status, result, message) = match outcome {
            Ok(result) => ("success", Some(result.to_string()), String::new()),
            Err(message) => ("failure", None, message),
        };
        self.db.execute(
            "UPDATE tasks SET status = ?, result = ?, message = ?, expires_at = ?, updated_at = ? \
             WHERE id = ?",
            &[
                status.into(),
                result.into(),
                message.into(),
                Timestamp(now.0 + self.time_to_live).to_string().into(),
                now.to_string().into(),
                id.into(),
            ],
        )?;
        Ok(())
    }

    /// Fails task `id` with `message` unless it has ended.
    pub fn fail_if_unfinished(&self, id: &str, message: &str) -> Result<(), StoreError> {
        self.fail_unfinished_where("id", id, message)
    }

    /// Fails every task of `image_id` that has not ended (its work was
    /// abandoned), with `message`.
    pub fn fail_unfinished(&self, image_id: &str, message: &str) -> Result<(), StoreError> {
        self.fail_unfinished_where("image_id", image_id, message)
    }

    /// Fails the unfinished tasks whose `column` (a fixed name) is `value`.
    fn fail_unfinished_where(
        &self,
        column: &'static str,
        value: &str,
        message: &str,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        self.db.execute(
            &format!(
                "UPDATE tasks SET status = 'failure', message = ?, expires_at = ?, updated_at = ? \
                 WHERE {column} = ? AND status IN ('pending', 'processing')"
            ),
            &[
                message.into(),
                Timestamp(now.0 + self.time_to_live).to_string().into(),
                now.to_string().into(),
                value.into(),
            ],
        )?;
        Ok(())
    }

    /// One task, whether or not it expired.
    pub fn get(&self, id: &str) -> Result<Option<Task>, StoreError> {
        let rows = self.db.execute(
            &format!("SELECT {COLUMNS} FROM tasks WHERE id = ? AND deleted = 0"),
            &[id.into()],
        )?;
        rows.rows.first().map(|r| task_from_row(r)).transpose()
    }

    /// One task unless it has expired (an expired task is gone: Glance
    /// deletes it when it next looks).
    pub fn get_live(&self, id: &str) -> Result<Option<Task>, StoreError> {
        let rows = self.db.execute(
            &format!(
                "SELECT {COLUMNS} FROM tasks WHERE id = ? AND deleted = 0 \
                 AND (expires_at IS NULL OR expires_at > ?)"
            ),
            &[id.into(), Timestamp::now().to_string().into()],
        )?;
        rows.rows.first().map(|r| task_from_row(r)).transpose()
    }

    /// One page of unexpired tasks: those of `project` (every one when `all`
    /// — an admin — and those of no owner), matching the query's filters, in
    /// its order (then `created_at` and `id`, the same way), after its marker.
    /// Keyset paging: a page costs its own rows, whatever the page number.
    pub fn list(
        &self,
        q: &TaskQuery,
        project: Option<&str>,
        all: bool,
    ) -> Result<Vec<Task>, StoreError> {
        let dir = if q.ascending { "ASC" } else { "DESC" };
        let cmp = if q.ascending { ">" } else { "<" };
        let key = SORT_KEYS
            .iter()
            .find(|k| **k == q.sort_key)
            .copied()
            .unwrap_or("created_at");
        let mut sql = format!(
            "SELECT {COLUMNS} FROM tasks WHERE deleted = 0 \
             AND (expires_at IS NULL OR expires_at > ?) \
             AND (? OR owner IS NULL OR owner = ?)"
        );
        let mut params: Vec<SqlValue> = vec![
            Timestamp::now().to_string().into(),
            all.into(),
            project.into(),
        ];
        for (column, value) in &q.filters {
            if let Some(c) = FILTER_KEYS.iter().find(|k| *k == column) {
                sql.push_str(&format!(" AND {c} = ?"));
                params.push(value.as_str().into());
            }
        }
        // NULLs sort as '' so that row values compare (SQLite's row values
        // treat NULL as unknown).
        let sort = format!("COALESCE({key}, '')");
        if let Some(m) = &q.marker {
            sql.push_str(&format!(" AND ({sort}, created_at, id) {cmp} (?, ?, ?)"));
            params.push(m.sort_value(key).into());
            params.push(m.created_at.to_string().into());
            params.push(m.id.as_str().into());
        }
        sql.push_str(&format!(
            " ORDER BY {sort} {dir}, created_at {dir}, id {dir} LIMIT ?"
        ));
        params.push((q.limit as i64).into());
        let rows = self.db.execute(&sql, &params)?;
        rows.rows.iter().map(|r| task_from_row(r)).collect()
    }

    /// Removes the tasks that expired before `now` (their rows are kept by
    /// nothing else).
    pub fn purge_expired(&self, now: Timestamp) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM tasks WHERE expires_at IS NOT NULL AND expires_at <= ?",
            &[now.to_string().into()],
        )?;
        Ok(())
    }

    /// The unexpired tasks of an image that `project` may see (its own, or
    /// every one when `all` — an admin), oldest first, as Glance's
    /// `tasks_get_by_image` returns them.
    pub fn list_for_image(
        &self,
        image_id: &str,
        project: Option<&str>,
        all: bool,
    ) -> Result<Vec<Task>, StoreError> {
        let rows = self.db.execute(
            &format!(
                "SELECT {COLUMNS} FROM tasks WHERE image_id = ? AND deleted = 0 \
                 AND (expires_at IS NULL OR expires_at > ?) \
                 AND (? OR owner IS NULL OR owner = ?) ORDER BY created_at, id"
            ),
            &[
                image_id.into(),
                Timestamp::now().to_string().into(),
                all.into(),
                project.into(),
            ],
        )?;
        rows.rows.iter().map(|r| task_from_row(r)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryDb;

    fn repo_db() -> MemoryDb {
        let db = MemoryDb::new();
        crate::db::migrations::ensure(&db).unwrap();
        db
    }

    fn import_task(image: &str, owner: &str) -> Task {
        let mut t = Task::new(
            API_IMAGE_IMPORT,
            json!({"image_id": image, "import_req": {"method": {"name": "glance-direct"}}, "backend": ["kv"]}),
        );
        t.image_id = Some(image.into());
        t.owner = Some(owner.into());
        t.request_id = Some("req-1".into());
        t
    }

    #[test]
    fn lifecycle_and_representation() {
        let db = repo_db();
        let repo = TaskRepo::new(&db);
        let t = import_task("img", "p1");
        repo.insert(&t).unwrap();
        assert_eq!(repo.get(&t.id).unwrap().unwrap().status, "pending");
        repo.begin(&t.id).unwrap();
        assert_eq!(repo.get(&t.id).unwrap().unwrap().status, "processing");
        repo.finish(&t.id, Ok(json!({"image_id": "img"}))).unwrap();
        let done = repo.get(&t.id).unwrap().unwrap();
        assert_eq!(done.status, "success");
        assert!(done.expires_at.unwrap().0 >= Timestamp::now().0 + TIME_TO_LIVE - 5);
        let j = done.to_json();
        assert_eq!(j["request_id"], "req-1");
        assert_eq!(j["input"]["import_req"]["method"]["name"], "glance-direct");
        assert_eq!(j["result"], json!({"image_id": "img"}));
        assert_eq!(j["message"], "");
        assert_eq!(j["type"], "api_image_import");
        let created = j["created_at"].as_str().unwrap();
        assert!(
            created.ends_with(".000000") && !created.contains('Z'),
            "{created}"
        );

        let failed = import_task("img", "p1");
        repo.insert(&failed).unwrap();
        repo.finish(&failed.id, Err("boom".into())).unwrap();
        let f = repo.get(&failed.id).unwrap().unwrap();
        assert_eq!((f.status.as_str(), f.message.as_str()), ("failure", "boom"));
        assert_eq!(f.result, None);
    }

    #[test]
    fn listing_shows_own_unexpired_tasks() {
        let db = repo_db();
        let repo = TaskRepo::new(&db);
        let mine = import_task("img", "p1");
        let theirs = import_task("img", "p2");
        let mut old = import_task("img", "p1");
        old.expires_at = Some(Timestamp(Timestamp::now().0 - 10));
        for t in [&mine, &theirs, &old] {
            repo.insert(t).unwrap();
        }
        repo.insert(&import_task("other", "p1")).unwrap();
        let ids = |v: Vec<Task>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            ids(repo.list_for_image("img", Some("p1"), false).unwrap()),
            vec![mine.id.clone()]
        );
        let all = ids(repo.list_for_image("img", None, true).unwrap());
        assert_eq!(all.len(), 2);
        assert!(all.contains(&mine.id) && all.contains(&theirs.id));
    }
}

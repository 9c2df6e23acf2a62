//! `fermyon:spin/key-value@2.0.0`, and `wasi:keyvalue/store` and `batch`
//! (0.2.0-draft2), backed by SQLite, like Spin's `spin` store type.
//!
//! Mirrors spinframework/spin crates/key-value-spin/src/store.rs and
//! crates/factor-key-value/src/host.rs:
//! - one SQLite connection per configured label, opened on first use and shared (behind a
//!   mutex) by every instance, with the table
//!   `spin_key_value(store TEXT, key TEXT, value BLOB, PRIMARY KEY(store, key))` where
//!   `store` is the label;
//! - `open(label)` of a label the component was not granted is `access-denied` (whether or
//!   not the label exists: ungranted labels are never looked up);
//! - `get` and `get-keys` results larger than 128 MiB are `other("query result exceeds
//!   limit of 134217728 bytes")`; SQLite errors are `other(message)`;
//! - `wasi:keyvalue/store.open` and the Spin `open` share the labels, the grants and the
//!   limit of 256 open handles (a full table is `other("store table full")` there); an
//!   unknown bucket handle is `no-such-store` (a Spin store handle traps);
//! - `batch.set-many` writes every pair in one SQLite transaction (all or none);
//!   `get-many` answers only the keys that exist (`SELECT .. WHERE key IN rarray(..)`, in
//!   SQLite's order); `delete-many` is one statement; an empty list does nothing.
//!
//! Unlike Spin, file-backed stores use WAL journaling with `synchronous=NORMAL` and
//! 64 KiB pages, and their reads (`get`, `exists`, `get-keys`) go through a second
//! shared connection that maps the file; a `get` of a large value reads it with
//! blob I/O (large values, image chunks, are the common case here). A read still
//! sees every `set` that has returned: each statement reads the last commit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension};
use wasmtime::component::{Resource, ResourceTable};

use super::{ensure_parent_dir, MAX_HOST_BUFFERED_BYTES, MAX_OPEN_HANDLES};
use crate::bindings::key_value::{self, Error};
use crate::bindings::{wasi_kv_batch, wasi_kv_store};
use crate::runtime_config::DbLocation;

/// One configured store label: where it lives and its (lazily opened) connections.
pub struct Backend {
    location: DbLocation,
    connection: OnceLock<Arc<Mutex<Connection>>>,
    /// File-backed stores only: the connection for `get`, `exists` and `get-keys`.
    reader: OnceLock<Arc<Mutex<Connection>>>,
}

impl Backend {
    fn new(location: DbLocation) -> Self {
        Self {
            location,
            connection: OnceLock::new(),
            reader: OnceLock::new(),
        }
    }

    /// The connection reads go through: a file-backed store's own read
    /// connection, which maps the file (memory-mapped reads would slow the
    /// writer, which grows the file), or an in-memory store's only connection.
    fn reader(&self) -> Result<Arc<Mutex<Connection>>, Error> {
        let DbLocation::Path(path) = &self.location else {
            return self.connection();
        };
        if let Some(c) = self.reader.get() {
            return Ok(c.clone());
        }
        // The writer creates the file and its table first.
        self.connection()?;
        let new = open_reader(path).map_err(|e| Error::Other(format!("{e:#}")))?;
        Ok(self
            .reader
            .get_or_init(|| Arc::new(Mutex::new(new)))
            .clone())
    }

    fn connection(&self) -> Result<Arc<Mutex<Connection>>, Error> {
        if let Some(c) = self.connection.get() {
            return Ok(c.clone());
        }
        let new = open_connection(&self.location).map_err(|e| Error::Other(format!("{e:#}")))?;
        Ok(self
            .connection
            .get_or_init(|| Arc::new(Mutex::new(new)))
            .clone())
    }

    /// A human-readable location (for the start-up summary).
    pub fn describe(&self) -> String {
        match &self.location {
            DbLocation::InMemory => "a temporary in-memory store".into(),
            DbLocation::Path(p) => format!("{:?}", p.display().to_string()),
        }
    }
}

fn open_connection(location: &DbLocation) -> anyhow::Result<Connection> {
    let conn = match location {
        DbLocation::InMemory => Connection::open_in_memory()?,
        DbLocation::Path(p) => {
            ensure_parent_dir(p).with_context(|| {
                format!(
                    "failed to create key value store's parent directory: '{}'",
                    p.display()
                )
            })?;
            let conn = Connection::open(p)?;
            // Values are blobs of up to a megabyte (image chunks): 64 KiB pages
            // keep them in few overflow pages, which doubles write throughput.
            // Takes effect when the file is created (before WAL is enabled).
            conn.pragma_update(None, "page_size", 65536)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            conn
        }
    };
    // `rarray()` for the batch statements, as in Spin.
    rusqlite::vtab::array::load_module(&conn)?;
    conn.execute(
        "CREATE TABLE IF NOT EXISTS spin_key_value (
           store TEXT NOT NULL,
           key   TEXT NOT NULL,
           value BLOB NOT NULL,

           PRIMARY KEY (store, key)
        )",
        [],
    )?;
    Ok(conn)
}

/// A read connection to the store file at `path`. Reads copy straight from the
/// mapped file instead of `pread`ing each page first (SQLite maps at most its
/// compile-time limit, 2 GiB by default; the rest of a larger file is read as
/// before).
fn open_reader(path: &std::path::Path) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    rusqlite::vtab::array::load_module(&conn)?;
    Ok(conn)
}

/// All key-value stores of the application, by label.
pub struct KeyValueApp {
    backends: HashMap<String, Arc<Backend>>,
}

impl KeyValueApp {
    /// Builds the label table from the resolved runtime configuration.
    pub fn new(stores: BTreeMap<String, DbLocation>) -> Self {
        Self {
            backends: stores
                .into_iter()
                .map(|(label, loc)| (label, Arc::new(Backend::new(loc))))
                .collect(),
        }
    }

    /// The backend of `label`.
    pub fn backend(&self, label: &str) -> Option<&Arc<Backend>> {
        self.backends.get(label)
    }

    /// Opens the databases of `labels` now, so start-up reports unusable paths.
    pub fn open<'a>(&self, labels: impl IntoIterator<Item = &'a &'a str>) -> anyhow::Result<()> {
        for label in labels {
            if let Some(b) = self.backends.get(*label) {
                b.connection().map_err(|e| {
                    anyhow::anyhow!(
                        "could not open key-value store '{label}' ({}): {e:?}",
                        b.describe()
                    )
                })?;
            }
        }
        Ok(())
    }
}

/// The `store` resource: an open label.
pub struct StoreHandle {
    name: String,
    backend: Arc<Backend>,
}

/// The `wasi:keyvalue` `bucket` resource: an open label.
pub struct BucketHandle(StoreHandle);

/// One instance's view of key-value: its grants and open stores.
pub struct KeyValueInstance {
    allowed: Arc<HashSet<String>>,
    app: Arc<KeyValueApp>,
    table: ResourceTable,
    open: usize,
}

impl KeyValueInstance {
    /// A fresh per-request state for a component granted `allowed`.
    pub fn new(allowed: Arc<HashSet<String>>, app: Arc<KeyValueApp>) -> Self {
        Self {
            allowed,
            app,
            table: ResourceTable::new(),
            open: 0,
        }
    }

    fn store(&self, r: &Resource<StoreHandle>) -> wasmtime::Result<(String, Arc<Backend>)> {
        let h = self
            .table
            .get(r)
            .map_err(|_| wasmtime::format_err!("invalid key-value store handle"))?;
        Ok((h.name.clone(), h.backend.clone()))
    }

    /// A bucket's label and backend; an unknown handle is `no-such-store`, as in Spin.
    fn bucket(
        &self,
        r: &Resource<BucketHandle>,
    ) -> Result<(String, Arc<Backend>), wasi_kv_store::Error> {
        let h = self
            .table
            .get(r)
            .map_err(|_| wasi_kv_store::Error::NoSuchStore)?;
        Ok((h.0.name.clone(), h.0.backend.clone()))
    }

    /// Spin's `open`: the grant, then the label, then room in the table.
    async fn open_label(&mut self, label: String) -> Result<StoreHandle, Error> {
        if !self.allowed.contains(&label) {
            return Err(Error::AccessDenied);
        }
        let Some(backend) = self.app.backend(&label).cloned() else {
            return Err(Error::NoSuchStore);
        };
        if self.open >= MAX_OPEN_HANDLES {
            return Err(Error::StoreTableFull);
        }
        // Opening the database file is blocking I/O; it happens once per label.
        if backend.connection.get().is_none() {
            let b = backend.clone();
            blocking(move || b.connection().map(drop)).await?;
        }
        Ok(StoreHandle {
            name: label,
            backend,
        })
    }
}

/// Spin's `to_wasi_err`.
fn to_wasi(e: Error) -> wasi_kv_store::Error {
    match e {
        Error::AccessDenied => wasi_kv_store::Error::AccessDenied,
        Error::NoSuchStore => wasi_kv_store::Error::NoSuchStore,
        Error::StoreTableFull => wasi_kv_store::Error::Other("store table full".into()),
        Error::Other(m) => wasi_kv_store::Error::Other(m),
    }
}

/// What `get-many` answers: the keys found, with their values.
type Found = Vec<(String, Option<Vec<u8>>)>;

/// The statements every interface shares, on a label's backend.
mod ops {
    use super::*;

    pub fn get(backend: &Backend, name: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let conn = backend.reader()?;
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        read_value(&conn, name, key)
    }

    pub fn set(backend: &Backend, name: &str, key: &str, value: &[u8]) -> Result<(), Error> {
        let conn = backend.connection()?;
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.prepare_cached(UPSERT)
            .map_err(other)?
            .execute(rusqlite::params![name, key, value])
            .map_err(other)?;
        Ok(())
    }

    pub fn delete(backend: &Backend, name: &str, key: &str) -> Result<(), Error> {
        let conn = backend.connection()?;
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")
            .map_err(other)?
            .execute([name, key])
            .map_err(other)?;
        Ok(())
    }

    pub fn exists(backend: &Backend, name: &str, key: &str) -> Result<bool, Error> {
        let conn = backend.reader()?;
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let found = conn
            .prepare_cached("SELECT 1 FROM spin_key_value WHERE store=$1 AND key=$2")
            .map_err(other)?
            .exists([name, key])
            .map_err(other);
        found
    }

    pub fn keys(backend: &Backend, name: &str) -> Result<Vec<String>, Error> {
        let conn = backend.reader()?;
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn
            .prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")
            .map_err(other)?;
        let mut rows = stmt.query([name]).map_err(other)?;
        let mut keys = Vec::new();
        let mut size = std::mem::size_of::<Vec<String>>();
        while let Some(row) = rows.next().map_err(other)? {
            let key: String = row.get(0).map_err(other)?;
            size += std::mem::size_of::<String>() + key.len();
            if size > MAX_HOST_BUFFERED_BYTES {
                return Err(too_large());
            }
            keys.push(key);
        }
        Ok(keys)
    }

    fn key_array(keys: Vec<String>) -> std::rc::Rc<Vec<rusqlite::types::Value>> {
        std::rc::Rc::new(keys.into_iter().map(rusqlite::types::Value::from).collect())
    }

    /// Spin's `get_many`: the pairs of the keys that exist.
    pub fn get_many(backend: &Backend, name: &str, keys: Vec<String>) -> Result<Found, Error> {
        let conn = backend.reader()?;
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, value FROM spin_key_value WHERE store=:name AND key IN rarray(:keys)",
            )
            .map_err(other)?;
        let mut rows = stmt
            .query(rusqlite::named_params! {":name": name, ":keys": key_array(keys)})
            .map_err(other)?;
        let mut out = Vec::new();
        let mut size = std::mem::size_of::<Vec<String>>();
        while let Some(row) = rows.next().map_err(other)? {
            let key: String = row.get(0).map_err(other)?;
            let value: Option<Vec<u8>> = row.get(1).map_err(other)?;
            size += std::mem::size_of::<(String, Option<Vec<u8>>)>()
                + key.len()
                + value.as_ref().map_or(0, Vec::len);
            if size > MAX_HOST_BUFFERED_BYTES {
                return Err(too_large());
            }
            out.push((key, value));
        }
        Ok(out)
    }

    /// Spin's `set_many`: every pair in one transaction.
    pub fn set_many(
        backend: &Backend,
        name: &str,
        pairs: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Error> {
        let conn = backend.connection()?;
        let mut conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction().map_err(other)?;
        {
            let mut stmt = tx.prepare_cached(UPSERT).map_err(other)?;
            for (key, value) in &pairs {
                stmt.execute(rusqlite::params![name, key, value])
                    .map_err(other)?;
            }
        }
        tx.commit().map_err(other)
    }

    /// Spin's `delete_many`: one statement.
    pub fn delete_many(backend: &Backend, name: &str, keys: Vec<String>) -> Result<(), Error> {
        let conn = backend.connection()?;
        let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.prepare_cached(
            "DELETE FROM spin_key_value WHERE store=:name AND key IN rarray(:keys)",
        )
        .map_err(other)?
        .execute(rusqlite::named_params! {":name": name, ":keys": key_array(keys)})
        .map_err(other)?;
        Ok(())
    }
}

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT(store, key) DO UPDATE SET value=$3";

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

/// Runs blocking SQLite work off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(Error::Other(format!("internal error: {e}"))))
}

/// A deliberate fault for tests: with `GLANCE_HOST_KV_FAIL_SETS_AFTER=N`, the
/// key-value `set` after the first N (only that one) fails with
/// `other("injected fault")`. It
/// stands in for a backend failing mid-upload (disk full, connection lost),
/// which a real store cannot be made to do on demand. Off unless set.
fn injected_set_fault() -> bool {
    static LEFT: OnceLock<Option<AtomicI64>> = OnceLock::new();
    LEFT.get_or_init(|| {
        std::env::var("GLANCE_HOST_KV_FAIL_SETS_AFTER")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .map(AtomicI64::new)
    })
    .as_ref()
    .is_some_and(|left| left.fetch_sub(1, Ordering::SeqCst) == 0)
}

/// How much of a store file reads may map (`PRAGMA mmap_size`).
const MMAP_SIZE: i64 = 1 << 31;

/// Values at least this large are read with incremental blob I/O.
const BLOB_READ_MIN: i64 = 64 << 10;

/// The value of `key` in `store`, copied once from SQLite's pages into the
/// returned buffer: a large value (an image chunk) is read with blob I/O rather
/// than assembled by the query and then copied out of it.
fn read_value(conn: &Connection, store: &str, key: &str) -> Result<Option<Vec<u8>>, Error> {
    // One read transaction, so the blob opened below is the row the query
    // found even if the writer connection replaces it in between.
    let tx = conn.unchecked_transaction().map_err(other)?;
    let found: Option<(i64, i64, Option<Vec<u8>>)> = tx
        .prepare_cached(
            "SELECT rowid, octet_length(value),
                    CASE WHEN octet_length(value) < ?3 THEN value END
             FROM spin_key_value WHERE store=?1 AND key=?2",
        )
        .map_err(other)?
        .query_row(rusqlite::params![store, key, BLOB_READ_MIN], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .optional()
        .map_err(other)?;
    let Some((rowid, len, small)) = found else {
        return Ok(None);
    };
    let len = usize::try_from(len).map_err(other)?;
    if std::mem::size_of::<Option<Vec<u8>>>() + len > MAX_HOST_BUFFERED_BYTES {
        return Err(too_large());
    }
    if small.is_some() {
        return Ok(small);
    }
    let blob = tx
        .blob_open(rusqlite::MAIN_DB, "spin_key_value", "value", rowid, true)
        .map_err(other)?;
    // Read into uninitialised capacity: zeroing a megabyte first costs as
    // much as a copy of it.
    let mut value = Vec::with_capacity(len);
    let read = blob
        .raw_read_at_exact(&mut value.spare_capacity_mut()[..len], 0)
        .map_err(other)?
        .len();
    // SAFETY: `raw_read_at_exact` returned Ok, so it initialised the first
    // `read` (= `len`) bytes of the spare capacity.
    unsafe { value.set_len(read) };
    Ok(Some(value))
}

fn too_large() -> Error {
    Error::Other(format!(
        "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
    ))
}

impl key_value::Host for KeyValueInstance {}

impl key_value::HostStore for KeyValueInstance {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<StoreHandle>, Error>> {
        let handle = match self.open_label(label).await {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let handle = self.table.push(handle)?;
        self.open += 1;
        Ok(Ok(handle))
    }

    async fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (name, backend) = self.store(&store)?;
        Ok(blocking(move || ops::get(&backend, &name, &key)).await)
    }

    async fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (name, backend) = self.store(&store)?;
        if injected_set_fault() {
            return Ok(Err(Error::Other("injected fault".into())));
        }
        Ok(blocking(move || ops::set(&backend, &name, &key, &value)).await)
    }

    async fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (name, backend) = self.store(&store)?;
        Ok(blocking(move || ops::delete(&backend, &name, &key)).await)
    }

    async fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (name, backend) = self.store(&store)?;
        Ok(blocking(move || ops::exists(&backend, &name, &key)).await)
    }

    async fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let (name, backend) = self.store(&store)?;
        Ok(blocking(move || ops::keys(&backend, &name)).await)
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

type WasiResult<T> = wasmtime::Result<Result<T, wasi_kv_store::Error>>;

impl wasi_kv_store::Host for KeyValueInstance {
    async fn open(&mut self, identifier: String) -> WasiResult<Resource<BucketHandle>> {
        let handle = match self.open_label(identifier).await {
            Ok(h) => h,
            Err(e) => return Ok(Err(to_wasi(e))),
        };
        let handle = self.table.push(BucketHandle(handle))?;
        self.open += 1;
        Ok(Ok(handle))
    }
}

impl wasi_kv_store::HostBucket for KeyValueInstance {
    async fn get(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
    ) -> WasiResult<Option<Vec<u8>>> {
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(move || ops::get(&backend, &name, &key))
            .await
            .map_err(to_wasi))
    }

    async fn set(
        &mut self,
        bucket: Resource<BucketHandle>,
        key: String,
        value: Vec<u8>,
    ) -> WasiResult<()> {
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        if injected_set_fault() {
            return Ok(Err(wasi_kv_store::Error::Other("injected fault".into())));
        }
        Ok(blocking(move || ops::set(&backend, &name, &key, &value))
            .await
            .map_err(to_wasi))
    }

    async fn delete(&mut self, bucket: Resource<BucketHandle>, key: String) -> WasiResult<()> {
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(move || ops::delete(&backend, &name, &key))
            .await
            .map_err(to_wasi))
    }

    async fn exists(&mut self, bucket: Resource<BucketHandle>, key: String) -> WasiResult<bool> {
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(move || ops::exists(&backend, &name, &key))
            .await
            .map_err(to_wasi))
    }

    /// As in Spin: every key at once; a cursor is `other("list_keys: cursor not supported")`.
    async fn list_keys(
        &mut self,
        bucket: Resource<BucketHandle>,
        cursor: Option<String>,
    ) -> WasiResult<wasi_kv_store::KeyResponse> {
        if cursor.is_some() {
            return Ok(Err(wasi_kv_store::Error::Other(
                "list_keys: cursor not supported".into(),
            )));
        }
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(move || ops::keys(&backend, &name))
            .await
            .map(|keys| wasi_kv_store::KeyResponse { keys, cursor: None })
            .map_err(to_wasi))
    }

    async fn drop(&mut self, bucket: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

impl wasi_kv_batch::Host for KeyValueInstance {
    async fn get_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> WasiResult<Found> {
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        if keys.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        Ok(blocking(move || ops::get_many(&backend, &name, keys))
            .await
            .map_err(to_wasi))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> WasiResult<()> {
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        if key_values.is_empty() {
            return Ok(Ok(()));
        }
        // The test fault counts a `set-many` as one `set`.
        if injected_set_fault() {
            return Ok(Err(wasi_kv_store::Error::Other("injected fault".into())));
        }
        Ok(blocking(move || ops::set_many(&backend, &name, key_values))
            .await
            .map_err(to_wasi))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<BucketHandle>,
        keys: Vec<String>,
    ) -> WasiResult<()> {
        let (name, backend) = match self.bucket(&bucket) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        if keys.is_empty() {
            return Ok(Ok(()));
        }
        Ok(blocking(move || ops::delete_many(&backend, &name, keys))
            .await
            .map_err(to_wasi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::key_value::HostStore;

    fn instance(allowed: &[&str], app: Arc<KeyValueApp>) -> KeyValueInstance {
        KeyValueInstance::new(
            Arc::new(allowed.iter().map(|s| s.to_string()).collect()),
            app,
        )
    }

    /// A fresh directory named for `test`, and an app with the stores `default`
    /// (a file in it) and `mem` (in memory).
    fn file_and_memory_stores(test: &str) -> (std::path::PathBuf, Arc<KeyValueApp>) {
        let dir = std::env::temp_dir().join(format!("glance-host-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let app = Arc::new(KeyValueApp::new(BTreeMap::from([
            ("default".to_string(), DbLocation::Path(dir.join("kv.db"))),
            ("mem".to_string(), DbLocation::InMemory),
        ])));
        (dir, app)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn grants_and_round_trip() {
        let (dir, app) = file_and_memory_stores("kv");
        let mut kv = instance(&["default", "nope"], app.clone());
        assert!(matches!(
            kv.open("mem".into()).await.unwrap(),
            Err(Error::AccessDenied)
        ));
        assert!(matches!(
            kv.open("nope".into()).await.unwrap(),
            Err(Error::NoSuchStore)
        ));
        let s = kv.open("default".into()).await.unwrap().unwrap();
        let s2 = Resource::new_borrow(s.rep());
        kv.set(s2, "k".into(), b"v".to_vec())
            .await
            .unwrap()
            .unwrap();
        let got = kv
            .get(Resource::new_borrow(s.rep()), "k".into())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.as_deref(), Some(&b"v"[..]));
        assert!(kv
            .exists(Resource::new_borrow(s.rep()), "k".into())
            .await
            .unwrap()
            .unwrap());
        assert_eq!(
            kv.get_keys(Resource::new_borrow(s.rep()))
                .await
                .unwrap()
                .unwrap(),
            ["k"]
        );
        kv.delete(Resource::new_borrow(s.rep()), "k".into())
            .await
            .unwrap()
            .unwrap();
        assert!(!kv
            .exists(Resource::new_borrow(s.rep()), "k".into())
            .await
            .unwrap()
            .unwrap());
        assert_eq!(
            kv.get(Resource::new_borrow(s.rep()), "k".into())
                .await
                .unwrap()
                .unwrap(),
            None
        );
        kv.drop(s).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn large_values_round_trip_exactly() {
        let (dir, app) = file_and_memory_stores("kv-large");
        let mut kv = instance(&["default", "mem"], app);
        for label in ["default", "mem"] {
            let s = kv.open(label.into()).await.unwrap().unwrap();
            // Below, at and above the blob-read threshold, and a chunk-sized value.
            for len in [
                BLOB_READ_MIN as usize - 1,
                BLOB_READ_MIN as usize,
                1_000_000,
            ] {
                let value: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let key = format!("k{len}");
                kv.set(Resource::new_borrow(s.rep()), key.clone(), value.clone())
                    .await
                    .unwrap()
                    .unwrap();
                let got = kv
                    .get(Resource::new_borrow(s.rep()), key.clone())
                    .await
                    .unwrap();
                assert_eq!(got.unwrap().as_deref(), Some(&value[..]), "{label} {len}");
                // An overwrite with a shorter value reads back at its new length.
                kv.set(
                    Resource::new_borrow(s.rep()),
                    key.clone(),
                    value[..len / 2].to_vec(),
                )
                .await
                .unwrap()
                .unwrap();
                let got = kv.get(Resource::new_borrow(s.rep()), key).await.unwrap();
                assert_eq!(
                    got.unwrap().as_deref(),
                    Some(&value[..len / 2]),
                    "{label} {len}"
                );
            }
            kv.drop(s).await.unwrap();
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn batch_in_one_transaction_and_shared_handles() {
        let (dir, app) = file_and_memory_stores("kv-batch");
        let mut kv = instance(&["default"], app.clone());
        let b = wasi_kv_store::Host::open(&mut kv, "default".into())
            .await
            .unwrap()
            .unwrap();
        let commits = Arc::new(AtomicI64::new(0));
        {
            let c = commits.clone();
            let conn = app.backend("default").unwrap().connection().unwrap();
            conn.lock().unwrap().commit_hook(Some(move || {
                c.fetch_add(1, Ordering::SeqCst);
                false
            }));
        }
        let pairs: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| (format!("k{i}"), vec![i as u8; 100_000]))
            .collect();
        wasi_kv_batch::Host::set_many(&mut kv, Resource::new_borrow(b.rep()), pairs)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(commits.load(Ordering::SeqCst), 1, "one transaction");
        let mut got = wasi_kv_batch::Host::get_many(
            &mut kv,
            Resource::new_borrow(b.rep()),
            vec!["k4".into(), "nope".into(), "k0".into()],
        )
        .await
        .unwrap()
        .unwrap();
        got.sort();
        assert_eq!(got.len(), 2, "only keys that exist");
        assert_eq!(got[0], ("k0".to_string(), Some(vec![0u8; 100_000])));
        wasi_kv_batch::Host::delete_many(
            &mut kv,
            Resource::new_borrow(b.rep()),
            vec!["k0".into(), "k1".into()],
        )
        .await
        .unwrap()
        .unwrap();
        let keys =
            wasi_kv_store::HostBucket::list_keys(&mut kv, Resource::new_borrow(b.rep()), None)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(keys.keys.len(), 3);
        assert!(matches!(
            wasi_kv_store::HostBucket::list_keys(
                &mut kv,
                Resource::new_borrow(b.rep()),
                Some("c".into())
            )
            .await
            .unwrap(),
            Err(wasi_kv_store::Error::Other(_))
        ));
        // An unknown bucket handle is no-such-store, not a trap.
        assert!(matches!(
            wasi_kv_store::HostBucket::get(&mut kv, Resource::new_borrow(9999), "k".into())
                .await
                .unwrap(),
            Err(wasi_kv_store::Error::NoSuchStore)
        ));
        // Buckets and Spin stores share the 256-handle table.
        let mut held = Vec::new();
        for _ in 1..MAX_OPEN_HANDLES {
            held.push(
                HostStore::open(&mut kv, "default".into())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        assert!(matches!(
            wasi_kv_store::Host::open(&mut kv, "default".into()).await.unwrap(),
            Err(wasi_kv_store::Error::Other(m)) if m == "store table full"
        ));
        assert!(matches!(
            HostStore::open(&mut kv, "default".into()).await.unwrap(),
            Err(Error::StoreTableFull)
        ));
        wasi_kv_store::HostBucket::drop(&mut kv, b).await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `fermyon:spin/key-value@2.0.0` backed by SQLite, like Spin's `spin` store type.
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
//!   limit of 134217728 bytes")`; SQLite errors are `other(message)`.
//!
//! Unlike Spin, file-backed stores use WAL journaling with `synchronous=NORMAL`
//! and 64 KiB pages (large values are the common case here).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension};
use wasmtime::component::{Resource, ResourceTable};

use super::{ensure_parent_dir, MAX_HOST_BUFFERED_BYTES, MAX_OPEN_HANDLES};
use crate::bindings::key_value::{self, Error};
use crate::runtime_config::DbLocation;

/// One configured store label: where it lives and its (lazily opened) connection.
pub struct Backend {
    location: DbLocation,
    connection: OnceLock<Arc<Mutex<Connection>>>,
}

impl Backend {
    fn new(location: DbLocation) -> Self {
        Self {
            location,
            connection: OnceLock::new(),
        }
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

    fn store(
        &self,
        r: &Resource<StoreHandle>,
    ) -> wasmtime::Result<(String, Arc<Mutex<Connection>>)> {
        let h = self
            .table
            .get(r)
            .map_err(|_| wasmtime::format_err!("invalid key-value store handle"))?;
        match h.backend.connection.get() {
            Some(c) => Ok((h.name.clone(), c.clone())),
            None => wasmtime::bail!("key-value store handle without a connection"),
        }
    }
}

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
        if !self.allowed.contains(&label) {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(backend) = self.app.backend(&label).cloned() else {
            return Ok(Err(Error::NoSuchStore));
        };
        if self.open >= MAX_OPEN_HANDLES {
            return Ok(Err(Error::StoreTableFull));
        }
        // Opening the database file is blocking I/O; it happens once per label.
        if backend.connection.get().is_none() {
            let b = backend.clone();
            if let Err(e) = blocking(move || b.connection().map(drop)).await {
                return Ok(Err(e));
            }
        }
        let handle = self.table.push(StoreHandle {
            name: label,
            backend,
        })?;
        self.open += 1;
        Ok(Ok(handle))
    }

    async fn get(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        let (name, conn) = self.store(&store)?;
        Ok(blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let value: Option<Vec<u8>> = conn
                .prepare_cached("SELECT value FROM spin_key_value WHERE store=$1 AND key=$2")
                .map_err(other)?
                .query_row([&name, &key], |row| row.get(0))
                .optional()
                .map_err(other)?;
            let size = std::mem::size_of::<Option<Vec<u8>>>() + value.as_ref().map_or(0, Vec::len);
            if size > MAX_HOST_BUFFERED_BYTES {
                return Err(too_large());
            }
            Ok(value)
        })
        .await)
    }

    async fn set(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (name, conn) = self.store(&store)?;
        if injected_set_fault() {
            return Ok(Err(Error::Other("injected fault".into())));
        }
        Ok(blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            conn.prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT(store, key) DO UPDATE SET value=$3",
            )
            .map_err(other)?
            .execute(rusqlite::params![name, key, value])
            .map_err(other)?;
            Ok(())
        })
        .await)
    }

    async fn delete(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        let (name, conn) = self.store(&store)?;
        Ok(blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            conn.prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")
                .map_err(other)?
                .execute([&name, &key])
                .map_err(other)?;
            Ok(())
        })
        .await)
    }

    async fn exists(
        &mut self,
        store: Resource<StoreHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        let (name, conn) = self.store(&store)?;
        Ok(blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let found = conn
                .prepare_cached("SELECT 1 FROM spin_key_value WHERE store=$1 AND key=$2")
                .map_err(other)?
                .exists([&name, &key])
                .map_err(other);
            found
        })
        .await)
    }

    async fn get_keys(
        &mut self,
        store: Resource<StoreHandle>,
    ) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let (name, conn) = self.store(&store)?;
        Ok(blocking(move || {
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let mut stmt = conn
                .prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")
                .map_err(other)?;
            let mut rows = stmt.query([&name]).map_err(other)?;
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
        })
        .await)
    }

    async fn drop(&mut self, store: Resource<StoreHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
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

    #[tokio::test(flavor = "multi_thread")]
    async fn grants_and_round_trip() {
        let dir = std::env::temp_dir().join(format!("glance-host-kv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let app = Arc::new(KeyValueApp::new(BTreeMap::from([
            ("default".to_string(), DbLocation::Path(dir.join("kv.db"))),
            ("mem".to_string(), DbLocation::InMemory),
        ])));
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
}

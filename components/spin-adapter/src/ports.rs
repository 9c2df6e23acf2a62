//! Spin implementations of the core's ports.

use std::cell::{Cell, OnceCell};
use std::rc::Rc;

use glance_core::ports::{Database, KeyValue, KeyValueOpener, Rows, SqlValue, StoreError};
use glance_core::ports::{Level, Log, OutboundError, PubSub, Variables};
use spin_sdk::key_value::Store;
use spin_sdk::sqlite::{Connection, Value};

/// The `default` SQLite database, opened on first use (components that never
/// touch it need no grant for it).
#[derive(Default)]
pub struct SpinDb {
    conn: OnceCell<Connection>,
    tuned: Cell<bool>,
}

impl SpinDb {
    /// The connection; [`tune`]d before the first statement that may write
    /// (a request that only reads saves two host calls: WAL is already the
    /// file's mode, and `synchronous` matters to commits only).
    fn connection(&self, sql: &str) -> Result<&Connection, StoreError> {
        let c = match self.conn.get() {
            Some(c) => c,
            None => {
                let c = Connection::open_default()
                    .map_err(|e| StoreError(format!("cannot open database: {e:?}")))?;
                self.conn.get_or_init(|| c)
            }
        };
        if !self.tuned.get() && !reads_only(sql) {
            tune(c);
            self.tuned.set(true);
        }
        Ok(c)
    }
}

/// A plain `SELECT` (what the list and show paths run); anything else may write.
fn reads_only(sql: &str) -> bool {
    sql.trim_start()
        .get(..7)
        .is_some_and(|w| w.eq_ignore_ascii_case("SELECT "))
}

/// Spin's `spin` SQLite (crates/sqlite-inproc) opens a fresh rusqlite connection
/// for every `open`, with SQLite's defaults: rollback journal and
/// `synchronous=FULL`, so each write statement is a transaction with four
/// fsyncs plus a journal file created and unlinked, and readers and writers lock
/// each other out (waiting in SQLite's sleeping busy handler, rusqlite's 5 s
/// timeout). WAL is a property of the database file, so switching once
/// is enough (a no-op when it already is WAL); `synchronous` is per
/// connection, so it is set on every open. Backends that refuse either
/// (libsql, in-memory) are left as they are.
fn tune(c: &Connection) {
    let _ = c.execute("PRAGMA journal_mode=WAL", &[]);
    let _ = c.execute("PRAGMA synchronous=NORMAL", &[]);
}

impl Database for SpinDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        let params: Vec<Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::Integer(*i),
                SqlValue::Real(f) => Value::Real(*f),
                SqlValue::Text(s) => Value::Text(s.clone()),
                SqlValue::Blob(b) => Value::Blob(b.clone()),
            })
            .collect();
        let result = self
            .connection(sql)?
            .execute(sql, &params)
            .map_err(|e| StoreError(format!("{e:?}")))?;
        Ok(Rows {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|r| {
                    r.values
                        .into_iter()
                        .map(|v| match v {
                            Value::Null => SqlValue::Null,
                            Value::Integer(i) => SqlValue::Integer(i),
                            Value::Real(f) => SqlValue::Real(f),
                            Value::Text(s) => SqlValue::Text(s),
                            Value::Blob(b) => SqlValue::Blob(b),
                        })
                        .collect()
                })
                .collect(),
        })
    }
}

/// Spin application variables, as granted to the component.
pub struct SpinVars;

impl Variables for SpinVars {
    fn get(&self, name: &str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }
}

/// Image chunks gathered per `set-many`: Spin's `spin` key-value type runs it
/// as one SQLite transaction (crates/key-value-spin `set_many`), so eight
/// chunks cost the fsyncs of one (a 32 MiB upload: 136 -> 44 fsyncs).
const CHUNKS_PER_BATCH: usize = 8;

/// A Spin key-value store, opened on first use (by `fermyon:spin/key-value`,
/// and by `wasi:keyvalue` for batches).
pub struct SpinKv {
    label: String,
    store: OnceCell<Store>,
    bucket: OnceCell<spin_sdk::wit::wasi::keyvalue::store::Bucket>,
}

impl SpinKv {
    fn store(&self) -> Result<&Store, StoreError> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let s = Store::open(&self.label).map_err(|e| {
            StoreError(format!("cannot open key-value store {}: {e:?}", self.label))
        })?;
        Ok(self.store.get_or_init(|| s))
    }
}

fn kv_err(e: spin_sdk::key_value::Error) -> StoreError {
    StoreError(format!("{e:?}"))
}

impl KeyValue for SpinKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store()?.get(key).map_err(kv_err)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store()?.set(key, value).map_err(kv_err)
    }

    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.store()?.delete(key).map_err(kv_err)
    }

    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.store()?.exists(key).map_err(kv_err)
    }

    fn batch_hint(&self) -> usize {
        CHUNKS_PER_BATCH
    }

    fn set_many(&self, items: &[(String, Vec<u8>)]) -> Result<(), StoreError> {
        use spin_sdk::wit::wasi::keyvalue::{batch, store};
        let bucket = match self.bucket.get() {
            Some(b) => b,
            None => {
                let b = store::open(&self.label).map_err(|e| {
                    StoreError(format!(
                        "cannot open key-value bucket {}: {e:?}",
                        self.label
                    ))
                })?;
                self.bucket.get_or_init(|| b)
            }
        };
        batch::set_many(bucket, items).map_err(|e| StoreError(format!("{e:?}")))
    }
}

/// Opens Spin key-value stores by label.
pub struct SpinKvOpener;

impl KeyValueOpener for SpinKvOpener {
    fn open(&self, label: &str) -> Result<Rc<dyn KeyValue>, StoreError> {
        Ok(Rc::new(SpinKv {
            label: label.to_string(),
            store: OnceCell::new(),
            bucket: OnceCell::new(),
        }))
    }
}

/// Log lines to the component's stderr, which Spin keeps in its log
/// directory (and prints in the foreground).
pub struct SpinLog;

impl Log for SpinLog {
    fn line(&self, level: Level, text: &str) {
        eprintln!("{} {text}", level.as_str());
    }
}

/// Publishing over Spin's outbound Redis (`fermyon:spin/redis`); the address
/// must be one of the component's allowed outbound hosts.
pub struct SpinPubSub;

impl PubSub for SpinPubSub {
    fn publish(&self, address: &str, channel: &str, payload: &[u8]) -> Result<(), OutboundError> {
        let conn = spin_sdk::redis::Connection::open(address)
            .map_err(|e| OutboundError::Io(format!("cannot reach {address}: {e:?}")))?;
        conn.publish(channel, payload)
            .map_err(|e| OutboundError::Io(format!("publish to {address}: {e:?}")))
    }
}

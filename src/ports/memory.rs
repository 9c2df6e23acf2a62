//! In-memory implementations of the ports for native tests: a rusqlite
//! database, a key-value map with fault injection.

use super::{Database, KeyValue, Rows, SqlValue, StoreError};

use std::cell::RefCell;
use std::collections::BTreeMap;

/// An in-memory key-value store; `fail_sets_after` makes `set` fail after
/// that many successful calls (the fault of a full or broken backend).
#[derive(Default)]
pub struct MemoryKv {
    pub map: RefCell<BTreeMap<String, Vec<u8>>>,
    pub fail_sets_after: RefCell<Option<usize>>,
    /// The batch size it reports (0: no batching).
    pub batch: std::cell::Cell<usize>,
}

impl KeyValue for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map.borrow().get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if let Some(n) = self.fail_sets_after.borrow_mut().as_mut() {
            if *n == 0 {
                return Err(StoreError("store full".into()));
            }
            *n -= 1;
        }
        self.map
            .borrow_mut()
            .insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.map.borrow_mut().remove(key);
        Ok(())
    }
    fn exists(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.map.borrow().contains_key(key))
    }
    fn batch_hint(&self) -> usize {
        self.batch.get().max(1)
    }
}

/// In-memory SQLite database.
pub struct MemoryDb(rusqlite::Connection);

impl MemoryDb {
    pub fn new() -> Self {
        Self(rusqlite::Connection::open_in_memory().expect("in-memory sqlite"))
    }
}

impl Database for MemoryDb {
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError> {
        use rusqlite::types::{Value, ValueRef};
        let mut stmt = self
            .0
            .prepare_cached(sql)
            .map_err(|e| StoreError(e.to_string()))?;
        let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
        let bound: Vec<Value> = params
            .iter()
            .map(|p| match p {
                SqlValue::Null => Value::Null,
                SqlValue::Integer(i) => Value::Integer(*i),
                SqlValue::Real(f) => Value::Real(*f),
                SqlValue::Text(s) => Value::Text(s.clone()),
                SqlValue::Blob(b) => Value::Blob(b.clone()),
            })
            .collect();
        let n = columns.len();
        let mut out = Vec::new();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(bound))
            .map_err(|e| StoreError(e.to_string()))?;
        while let Some(row) = rows.next().map_err(|e| StoreError(e.to_string()))? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(
                    match row.get_ref(i).map_err(|e| StoreError(e.to_string()))? {
                        ValueRef::Null => SqlValue::Null,
                        ValueRef::Integer(i) => SqlValue::Integer(i),
                        ValueRef::Real(f) => SqlValue::Real(f),
                        ValueRef::Text(t) => {
                            SqlValue::Text(String::from_utf8_lossy(t).into_owned())
                        }
                        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
                    },
                );
            }
            out.push(vals);
        }
        Ok(Rows { columns, rows: out })
    }
}

/// Key-value stores by label, each a [`MemoryKv`] that lives as long as the
/// opener (so data written by one request is there for the next).
#[derive(Default)]
pub struct MemoryKvOpener {
    pub stores: RefCell<BTreeMap<String, std::rc::Rc<MemoryKv>>>,
}

impl MemoryKvOpener {
    /// The store `label`, created empty on first use.
    pub fn store(&self, label: &str) -> std::rc::Rc<MemoryKv> {
        self.stores
            .borrow_mut()
            .entry(label.to_string())
            .or_default()
            .clone()
    }
}

impl super::KeyValueOpener for MemoryKvOpener {
    fn open(&self, label: &str) -> Result<std::rc::Rc<dyn KeyValue>, StoreError> {
        Ok(self.store(label))
    }
}

/// Log lines kept in memory.
#[derive(Default)]
pub struct MemoryLog {
    pub lines: RefCell<Vec<String>>,
}

impl super::Log for MemoryLog {
    fn line(&self, level: super::Level, text: &str) {
        self.lines
            .borrow_mut()
            .push(format!("{} {text}", level.as_str()));
    }
}

/// Published messages kept in memory: (address, channel, payload).
#[derive(Default)]
pub struct MemoryPubSub {
    pub messages: RefCell<Vec<(String, String, Vec<u8>)>>,
}

impl super::PubSub for MemoryPubSub {
    fn publish(
        &self,
        address: &str,
        channel: &str,
        payload: &[u8],
    ) -> Result<(), super::OutboundError> {
        self.messages
            .borrow_mut()
            .push((address.into(), channel.into(), payload.to_vec()));
        Ok(())
    }
}

/// Outbound HTTP that answers every request with an error (no network in
/// unit tests), counting the attempts.
#[derive(Default)]
pub struct NoHttp {
    pub attempts: RefCell<Vec<String>>,
}

impl super::HttpClient for NoHttp {
    fn send(&self, req: super::OutRequest) -> Result<super::OutResponse, super::OutboundError> {
        self.attempts.borrow_mut().push(req.url.clone());
        Err(super::OutboundError::Io("no network in unit tests".into()))
    }
}

//! Storage ports: what the core needs from its host.
//!
//! The core speaks SQL to a [`Database`] (Spin's `fermyon:spin/sqlite` inside a
//! component, rusqlite in native tests) and never opens files itself.

use std::fmt;

/// A value bound to, or read from, a SQL statement.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL NULL.
    Null,
    /// 64-bit integer.
    Integer(i64),
    /// Floating point number.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

impl SqlValue {
    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            SqlValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            SqlValue::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Integer(i)
    }
}

impl From<bool> for SqlValue {
    fn from(b: bool) -> Self {
        SqlValue::Integer(b as i64)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// Rows returned by a statement, with their column names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// One vector of values per row, in column order.
    pub rows: Vec<Vec<SqlValue>>,
}

/// A storage failure. These are the service's fault, never the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "storage error: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

impl From<StoreError> for crate::ApiError {
    fn from(e: StoreError) -> Self {
        crate::ApiError::internal(e.to_string())
    }
}

/// A SQL database (SQLite dialect). One statement per call.
pub trait Database {
    /// Runs one statement with positional `?` parameters and returns its rows.
    fn execute(&self, sql: &str, params: &[SqlValue]) -> Result<Rows, StoreError>;
}

/// A key-value store (Spin's `fermyon:spin/key-value`): values up to 1 MB are
/// guaranteed by every backend.
pub trait KeyValue {
    /// The value of `key`, if set.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Sets `key` to `value`.
    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Whether `key` is set.
    fn exists(&self, key: &str) -> Result<bool, StoreError>;
}

/// Opens key-value stores by label (the labels a component is granted).
pub trait KeyValueOpener {
    /// Opens the store `label`.
    fn open(&self, label: &str) -> Result<std::rc::Rc<dyn KeyValue>, StoreError>;
}

#[cfg(test)]
pub(crate) mod testing {
    //! A rusqlite-backed [`Database`] for native tests.
    use super::*;

    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// An in-memory key-value store; `fail_sets_after` makes `set` fail after
    /// that many successful calls (the fault of a full or broken backend).
    #[derive(Default)]
    pub struct MemoryKv {
        pub map: RefCell<BTreeMap<String, Vec<u8>>>,
        pub fail_sets_after: RefCell<Option<usize>>,
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
            let mut stmt = self.0.prepare(sql).map_err(|e| StoreError(e.to_string()))?;
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
}

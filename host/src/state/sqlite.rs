//! `fermyon:spin/sqlite@2.0.0` backed by local SQLite files, like Spin's `spin` type.
//!
//! Mirrors spinframework/spin crates/factor-sqlite/src/host.rs and
//! crates/sqlite-inproc/src/lib.rs:
//! - `open(label)` of a label the component was not granted is `access-denied`; every
//!   `open` gets its own connection, never shared with another instance at the same time;
//! - statements run on a blocking thread; each value is converted as Spin does;
//!   SQLite errors are `io(message)`; a result over 128 MiB is `io("query result exceeds
//!   limit of 134217728 bytes")`;
//! - `ATTACH` of database files is denied unless the runtime config sets
//!   `allow_attach_file = true` (in-memory and temporary attachments are allowed);
//! - the busy timeout is rusqlite's default five seconds.
//!
//! Unlike Spin, which opens a fresh connection per `open`, a closed connection to a
//! database file is kept for reuse by a later `open`, but only if it is back in autocommit
//! mode with no temporary objects or attached databases; file databases use WAL
//! journaling with `synchronous=NORMAL`. An in-memory database is private to its `open`
//! and never reused, as in Spin.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use wasmtime::component::{Resource, ResourceTable};

use super::{ensure_parent_dir, MAX_HOST_BUFFERED_BYTES, MAX_OPEN_HANDLES};
use crate::bindings::sqlite::{self, Error, QueryResult, RowResult, Value};
use crate::runtime_config::{DbLocation, SqliteDbConfig};

/// Idle connections kept per database.
const MAX_IDLE: usize = 32;

/// One configured database label.
pub struct Database {
    config: SqliteDbConfig,
    idle: Mutex<Vec<Connection>>,
}

impl Database {
    fn new(config: SqliteDbConfig) -> Self {
        Self {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A connection for one `open`: an idle one, or a new one.
    fn checkout(&self) -> anyhow::Result<Connection> {
        if let Some(c) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(c);
        }
        self.connect()
    }

    fn connect(&self) -> anyhow::Result<Connection> {
        let conn = match &self.config.location {
            DbLocation::InMemory => Connection::open_in_memory()?,
            DbLocation::Path(p) => {
                ensure_parent_dir(p).with_context(|| {
                    format!(
                        "failed to create sqlite database directory '{}'",
                        p.display()
                    )
                })?;
                let conn = Connection::open(p)?;
                conn.pragma_update(None, "journal_mode", "WAL")?;
                conn.pragma_update(None, "synchronous", "NORMAL")?;
                conn
            }
        };
        if !self.config.allow_attach_file {
            conn.authorizer(Some(|ctx: rusqlite::hooks::AuthContext<'_>| {
                use rusqlite::hooks::{AuthAction, Authorization};
                match ctx.action {
                    AuthAction::Attach { filename } if !matches!(filename, "" | ":memory:") => {
                        Authorization::Deny
                    }
                    _ => Authorization::Allow,
                }
            }));
        }
        Ok(conn)
    }

    /// Takes back a connection whose `open` ended, if it is clean enough to reuse.
    fn checkin(&self, conn: Connection) {
        if matches!(self.config.location, DbLocation::InMemory) || !reusable(&conn) {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}

/// No open transaction, no temporary schema objects, no attached databases.
fn reusable(conn: &Connection) -> bool {
    conn.is_autocommit()
        && conn
            .query_row(
                "SELECT (SELECT count(*) FROM temp.sqlite_master) + \
                 (SELECT count(*) FROM pragma_database_list WHERE name NOT IN ('main', 'temp'))",
                [],
                |r| r.get::<_, i64>(0),
            )
            .is_ok_and(|n| n == 0)
}

/// All databases of the application, by label.
pub struct SqliteApp {
    databases: HashMap<String, Arc<Database>>,
}

impl SqliteApp {
    /// Builds the label table from the resolved runtime configuration.
    pub fn new(dbs: BTreeMap<String, SqliteDbConfig>) -> Self {
        Self {
            databases: dbs
                .into_iter()
                .map(|(label, c)| (label, Arc::new(Database::new(c))))
                .collect(),
        }
    }

    /// Opens (and returns to the pool) one connection per file database of `labels`, so
    /// start-up reports unusable paths and switches the files to WAL once.
    pub fn open<'a>(&self, labels: impl IntoIterator<Item = &'a &'a str>) -> anyhow::Result<()> {
        for label in labels {
            let Some(db) = self.databases.get(*label) else {
                continue;
            };
            if let DbLocation::Path(_) = db.config.location {
                let conn = db
                    .connect()
                    .with_context(|| format!("could not open SQLite database '{label}'"))?;
                db.checkin(conn);
            }
        }
        Ok(())
    }
}

/// The `connection` resource: one `open`'s connection, returned to its pool on drop.
pub struct ConnectionHandle {
    conn: Arc<Mutex<Option<Connection>>>,
    db: Arc<Database>,
}

impl Drop for ConnectionHandle {
    fn drop(&mut self) {
        // An `execute` still running holds its own clone of `conn`; then the connection is
        // simply closed when that finishes.
        if let Some(m) = Arc::get_mut(&mut self.conn) {
            if let Some(c) = m.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                self.db.checkin(c);
            }
        }
    }
}

/// One instance's view of SQLite: its grants and open connections.
pub struct SqliteInstance {
    allowed: Arc<HashSet<String>>,
    app: Arc<SqliteApp>,
    table: ResourceTable,
    open: usize,
}

impl SqliteInstance {
    /// A fresh per-request state for a component granted `allowed`.
    pub fn new(allowed: Arc<HashSet<String>>, app: Arc<SqliteApp>) -> Self {
        Self {
            allowed,
            app,
            table: ResourceTable::new(),
            open: 0,
        }
    }
}

fn io(e: impl std::fmt::Display) -> Error {
    Error::Io(e.to_string())
}

impl sqlite::Host for SqliteInstance {}

impl sqlite::HostConnection for SqliteInstance {
    async fn open(
        &mut self,
        database: String,
    ) -> wasmtime::Result<Result<Resource<ConnectionHandle>, Error>> {
        if !self.allowed.contains(&database) {
            return Ok(Err(Error::AccessDenied));
        }
        let Some(db) = self.app.databases.get(&database).cloned() else {
            return Ok(Err(Error::NoSuchDatabase));
        };
        if self.open >= MAX_OPEN_HANDLES {
            return Ok(Err(Error::Io("too many connections opened".into())));
        }
        let db2 = db.clone();
        let conn = match tokio::task::spawn_blocking(move || db2.checkout()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Ok(Err(Error::Io(format!("{e:#}")))),
            Err(e) => return Ok(Err(io(e))),
        };
        let handle = self.table.push(ConnectionHandle {
            conn: Arc::new(Mutex::new(Some(conn))),
            db,
        })?;
        self.open += 1;
        Ok(Ok(handle))
    }

    async fn execute(
        &mut self,
        connection: Resource<ConnectionHandle>,
        statement: String,
        parameters: Vec<Value>,
    ) -> wasmtime::Result<Result<QueryResult, Error>> {
        let conn = match self.table.get(&connection) {
            Ok(h) => h.conn.clone(),
            Err(_) => return Ok(Err(Error::InvalidConnection)),
        };
        let result = tokio::task::spawn_blocking(move || {
            let guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            let Some(c) = guard.as_ref() else {
                return Err(Error::InvalidConnection);
            };
            execute(c, &statement, parameters)
        })
        .await
        .unwrap_or_else(|e| Err(io(e)));
        Ok(result)
    }

    async fn drop(&mut self, connection: Resource<ConnectionHandle>) -> wasmtime::Result<()> {
        self.table.delete(connection)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

fn to_sql(v: Value) -> rusqlite::types::Value {
    match v {
        Value::Null => rusqlite::types::Value::Null,
        Value::Integer(i) => rusqlite::types::Value::Integer(i),
        Value::Real(r) => rusqlite::types::Value::Real(r),
        Value::Text(t) => rusqlite::types::Value::Text(t),
        Value::Blob(b) => rusqlite::types::Value::Blob(b),
    }
}

fn from_sql(v: ValueRef<'_>) -> Result<Value, Error> {
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8(t.to_vec()).map_err(io)?),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    })
}

fn memory_size(v: &Value) -> usize {
    std::mem::size_of::<Value>()
        + match v {
            Value::Text(t) => t.len(),
            Value::Blob(b) => b.len(),
            _ => 0,
        }
}

/// Runs one statement and collects its rows, enforcing the 128 MiB cap.
fn execute(
    conn: &Connection,
    statement: &str,
    parameters: Vec<Value>,
) -> Result<QueryResult, Error> {
    let mut stmt = conn.prepare_cached(statement).map_err(io)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let ncols = columns.len();
    let mut rows_iter = stmt
        .query(rusqlite::params_from_iter(
            parameters.into_iter().map(to_sql),
        ))
        .map_err(io)?;
    let mut rows = Vec::new();
    let mut size = std::mem::size_of::<QueryResult>();
    while let Some(row) = rows_iter.next().map_err(io)? {
        let mut values = Vec::with_capacity(ncols);
        for i in 0..ncols {
            let v = from_sql(row.get_ref(i).map_err(io)?)?;
            size += memory_size(&v);
            values.push(v);
        }
        if size > MAX_HOST_BUFFERED_BYTES {
            return Err(Error::Io(format!(
                "query result exceeds limit of {MAX_HOST_BUFFERED_BYTES} bytes"
            )));
        }
        rows.push(RowResult { values });
    }
    Ok(QueryResult { columns, rows })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::sqlite::HostConnection;

    fn app(path: std::path::PathBuf) -> Arc<SqliteApp> {
        Arc::new(SqliteApp::new(BTreeMap::from([
            (
                "default".to_string(),
                SqliteDbConfig {
                    location: DbLocation::Path(path),
                    allow_attach_file: false,
                },
            ),
            (
                "mem".to_string(),
                SqliteDbConfig {
                    location: DbLocation::InMemory,
                    allow_attach_file: false,
                },
            ),
        ])))
    }

    fn exec(c: &Resource<ConnectionHandle>) -> Resource<ConnectionHandle> {
        Resource::new_borrow(c.rep())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn grants_values_and_reuse() {
        let dir = std::env::temp_dir().join(format!("glance-host-sql-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let app = app(dir.join("db.sqlite"));
        let grants = Arc::new(HashSet::from(["default".to_string()]));
        let mut s = SqliteInstance::new(grants.clone(), app.clone());
        assert!(matches!(
            s.open("mem".into()).await.unwrap(),
            Err(Error::AccessDenied)
        ));
        let c = s.open("default".into()).await.unwrap().unwrap();
        s.execute(
            exec(&c),
            "CREATE TABLE t (i INTEGER, r REAL, x TEXT, b BLOB, n)".into(),
            vec![],
        )
        .await
        .unwrap()
        .unwrap();
        s.execute(
            exec(&c),
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)".into(),
            vec![
                Value::Integer(7),
                Value::Real(1.5),
                Value::Text("hé".into()),
                Value::Blob(vec![0, 1]),
                Value::Null,
            ],
        )
        .await
        .unwrap()
        .unwrap();
        let r = s
            .execute(exec(&c), "SELECT * FROM t".into(), vec![])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.columns, ["i", "r", "x", "b", "n"]);
        assert_eq!(r.rows.len(), 1);
        assert!(matches!(r.rows[0].values[0], Value::Integer(7)));
        assert!(matches!(&r.rows[0].values[2], Value::Text(t) if t == "hé"));
        assert!(matches!(r.rows[0].values[4], Value::Null));
        let err = s
            .execute(exec(&c), "SELEC nonsense".into(), vec![])
            .await
            .unwrap();
        assert!(matches!(err, Err(Error::Io(_))));
        let err = s
            .execute(exec(&c), "ATTACH DATABASE '/tmp/x.db' AS x".into(), vec![])
            .await
            .unwrap();
        assert!(
            matches!(err, Err(Error::Io(_))),
            "attaching files is denied"
        );

        // A connection left inside a transaction is not reused.
        s.execute(exec(&c), "BEGIN".into(), vec![])
            .await
            .unwrap()
            .unwrap();
        s.drop(c).await.unwrap();
        let idle_before = app.databases["default"].idle.lock().unwrap().len();
        let c = s.open("default".into()).await.unwrap().unwrap();
        let r = s
            .execute(exec(&c), "SELECT count(*) FROM t".into(), vec![])
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(r.rows[0].values[0], Value::Integer(1)));
        s.drop(c).await.unwrap();
        assert_eq!(
            app.databases["default"].idle.lock().unwrap().len(),
            idle_before + 1
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

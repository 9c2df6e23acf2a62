//! Spin runtime configuration file (`--runtime-config-file`): key-value stores and SQLite
//! databases beyond `default`, the state directory, and the instance memory limit.
//!
//! Mirrors spinframework/spin crates/runtime-config/src/lib.rs, crates/key-value-spin and
//! crates/sqlite/src/lib.rs:
//! - `[key_value_store.LABEL] type = "spin", path = "..."`: a relative path resolves
//!   against the runtime config file's directory; no `path` means an in-memory store.
//! - `[sqlite_database.LABEL] type = "spin", path = "..."`: a relative path resolves
//!   against the current working directory (Spin's `local_database_dir`); no `path` means
//!   an in-memory database.
//! - The `default` label of each, unless configured here, lives in the state directory
//!   (`sqlite_key_value.db`, `sqlite_db.db`), or in memory when there is no state directory.
//! - `state_dir = "..."` applies when `--state-dir` is not given (empty means unset).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};

/// Where a SQLite-backed store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLocation {
    /// A private in-memory database.
    InMemory,
    /// A database file.
    Path(PathBuf),
}

/// A configured SQLite database label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteDbConfig {
    /// Where the database lives.
    pub location: DbLocation,
    /// Whether `ATTACH` of other database files is allowed (Spin's `allow_attach_file`).
    pub allow_attach_file: bool,
}

/// The parsed runtime configuration.
#[derive(Debug, Default, Clone)]
pub struct RuntimeConfig {
    /// `state_dir` from the file: `Some("")` means "unset".
    pub state_dir: Option<String>,
    /// Key-value stores by label.
    pub key_value_stores: BTreeMap<String, DbLocation>,
    /// SQLite databases by label.
    pub sqlite_databases: BTreeMap<String, SqliteDbConfig>,
    /// `max_instance_memory` in bytes.
    pub max_instance_memory: Option<usize>,
}

/// File name of the default key-value store in the state directory (Spin's).
pub const DEFAULT_KV_FILENAME: &str = "sqlite_key_value.db";
/// File name of the default SQLite database in the state directory (Spin's).
pub const DEFAULT_SQLITE_FILENAME: &str = "sqlite_db.db";

impl RuntimeConfig {
    /// Reads a runtime config file. `cwd` anchors relative SQLite paths.
    pub fn load(path: &Path, cwd: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read runtime config file '{}'", path.display()))?;
        let abs = std::path::absolute(path)?;
        Self::parse(&text, &abs, cwd)
            .with_context(|| format!("failed to parse runtime config file '{}'", path.display()))
    }

    /// Parses runtime config text; `path` is the file's absolute path.
    pub fn parse(text: &str, path: &Path, cwd: &Path) -> Result<Self> {
        let table: toml::Table = toml::from_str(text)?;
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut config = RuntimeConfig::default();
        for (key, value) in table {
            match key.as_str() {
                "key_value_store" => {
                    for (label, store) in as_table(&value, &key)? {
                        let store = as_table(store, &format!("{key}.{label}"))?;
                        let location = spin_store(store, &format!("{key}.{label}"), dir)?;
                        config.key_value_stores.insert(label.clone(), location);
                    }
                }
                "sqlite_database" => {
                    for (label, db) in as_table(&value, &key)? {
                        let what = format!("{key}.{label}");
                        let db = as_table(db, &what)?;
                        let mut rest = db.clone();
                        let allow_attach_file = match rest.remove("allow_attach_file") {
                            None => false,
                            Some(toml::Value::Boolean(b)) => b,
                            Some(other) => bail!("[{what}] allow_attach_file must be a boolean, got {other}"),
                        };
                        let location = spin_store(&rest, &what, cwd)?;
                        config.sqlite_databases.insert(
                            label.clone(),
                            SqliteDbConfig {
                                location,
                                allow_attach_file,
                            },
                        );
                    }
                }
                "state_dir" => {
                    let s = value
                        .as_str()
                        .with_context(|| "`state_dir` must be a string".to_string())?;
                    config.state_dir = Some(s.to_string());
                }
                "log_dir" => {
                    // Component output goes to glance-host's own stdout/stderr; accepted
                    // for compatibility and otherwise ignored.
                    ensure!(value.is_str(), "`log_dir` must be a string");
                }
                "max_instance_memory" => {
                    let n = value
                        .as_integer()
                        .context("`max_instance_memory` must be an integer")?;
                    config.max_instance_memory =
                        Some(usize::try_from(n).context("`max_instance_memory` out of range")?);
                }
                other => bail!(
                    "runtime config key `{other}` is not supported by glance-host (supported: key_value_store, sqlite_database, state_dir, log_dir, max_instance_memory)"
                ),
            }
        }
        Ok(config)
    }

    /// The key-value stores with `default` added where not configured.
    pub fn resolved_key_value_stores(
        &self,
        state_dir: Option<&Path>,
    ) -> BTreeMap<String, DbLocation> {
        let mut stores = self.key_value_stores.clone();
        stores
            .entry("default".to_string())
            .or_insert_with(|| match state_dir {
                Some(d) => DbLocation::Path(d.join(DEFAULT_KV_FILENAME)),
                None => DbLocation::InMemory,
            });
        stores
    }

    /// The SQLite databases with `default` added where not configured.
    pub fn resolved_sqlite_databases(
        &self,
        state_dir: Option<&Path>,
    ) -> BTreeMap<String, SqliteDbConfig> {
        let mut dbs = self.sqlite_databases.clone();
        dbs.entry("default".to_string())
            .or_insert_with(|| SqliteDbConfig {
                location: match state_dir {
                    Some(d) => DbLocation::Path(d.join(DEFAULT_SQLITE_FILENAME)),
                    None => DbLocation::InMemory,
                },
                allow_attach_file: false,
            });
        dbs
    }

    /// Spin's one-line summary (`[key_value_store.x: spin], ...`), if anything is configured.
    pub fn summary(&self) -> Option<String> {
        let mut parts: Vec<String> = self
            .key_value_stores
            .keys()
            .map(|l| format!("[key_value_store.{l}: spin]"))
            .collect();
        parts.extend(
            self.sqlite_databases
                .keys()
                .map(|l| format!("[sqlite_database.{l}: spin]")),
        );
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

fn as_table<'a>(value: &'a toml::Value, what: &str) -> Result<&'a toml::Table> {
    value
        .as_table()
        .with_context(|| format!("[{what}] must be a table"))
}

/// A `type = "spin"` store: `path` resolved against `base`, or in-memory without one.
fn spin_store(table: &toml::Table, what: &str, base: &Path) -> Result<DbLocation> {
    let ty = table
        .get("type")
        .and_then(|v| v.as_str())
        .with_context(|| format!("[{what}] needs a `type`"))?;
    ensure!(
        ty == "spin",
        "[{what}] has type {ty:?}; glance-host supports only type \"spin\" (local SQLite)"
    );
    for key in table.keys() {
        ensure!(
            key == "type" || key == "path",
            "[{what}] has unknown key `{key}`"
        );
    }
    Ok(match table.get("path") {
        None => DbLocation::InMemory,
        Some(toml::Value::String(p)) => {
            let p = Path::new(p);
            DbLocation::Path(if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            })
        }
        Some(other) => bail!("[{what}] path must be a string, got {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_paths_like_spin() {
        let text = r#"
state_dir = "/var/state"
[key_value_store.image_data]
type = "spin"
path = ".spin/image_data.db"
[key_value_store.abs]
type = "spin"
path = "/data/abs.db"
[key_value_store.mem]
type = "spin"
[sqlite_database.other]
type = "spin"
path = "db/other.db"
allow_attach_file = true
"#;
        let rc = RuntimeConfig::parse(text, Path::new("/cfg/rc.toml"), Path::new("/work")).unwrap();
        assert_eq!(rc.state_dir.as_deref(), Some("/var/state"));
        assert_eq!(
            rc.key_value_stores["image_data"],
            DbLocation::Path("/cfg/.spin/image_data.db".into()),
            "key-value paths resolve against the runtime config file's directory"
        );
        assert_eq!(
            rc.key_value_stores["abs"],
            DbLocation::Path("/data/abs.db".into())
        );
        assert_eq!(rc.key_value_stores["mem"], DbLocation::InMemory);
        assert_eq!(
            rc.sqlite_databases["other"].location,
            DbLocation::Path("/work/db/other.db".into()),
            "SQLite paths resolve against the working directory"
        );
        assert!(rc.sqlite_databases["other"].allow_attach_file);

        let kv = rc.resolved_key_value_stores(Some(Path::new("/st")));
        assert_eq!(
            kv["default"],
            DbLocation::Path("/st/sqlite_key_value.db".into())
        );
        let db = rc.resolved_sqlite_databases(None);
        assert_eq!(db["default"].location, DbLocation::InMemory);
        assert_eq!(
            rc.summary().unwrap(),
            "[key_value_store.abs: spin], [key_value_store.image_data: spin], [key_value_store.mem: spin], [sqlite_database.other: spin]"
        );
    }

    #[test]
    fn rejects_what_it_cannot_serve() {
        let p = Path::new("/cfg/rc.toml");
        let cwd = Path::new("/");
        assert!(RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"redis\"\nurl = \"redis://x\"",
            p,
            cwd
        )
        .is_err());
        assert!(RuntimeConfig::parse("[key_value_store.x]\npath = \"a.db\"", p, cwd).is_err());
        assert!(RuntimeConfig::parse("[[variables_provider]]\ntype = \"vault\"", p, cwd).is_err());
        assert!(RuntimeConfig::parse(
            "[sqlite_database.x]\ntype = \"libsql\"\nurl = \"https://x\"\ntoken = \"t\"",
            p,
            cwd
        )
        .is_err());
        assert!(RuntimeConfig::parse("", p, cwd)
            .unwrap()
            .summary()
            .is_none());
    }
}

//! Spin's SQLite-backed state: key-value stores and SQLite databases.

pub mod key_value;
pub mod sqlite;

use std::path::Path;

/// Creates the parent directory of a database file, as Spin does before opening it.
pub(crate) fn ensure_parent_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => std::fs::create_dir_all(parent),
        _ => Ok(()),
    }
}

/// Largest result the host buffers for a guest: Spin's `MAX_HOST_BUFFERED_BYTES` (128 MiB).
pub const MAX_HOST_BUFFERED_BYTES: usize = 128 << 20;

/// Most resources (open stores or connections) one instance may hold, as in Spin.
pub const MAX_OPEN_HANDLES: usize = 256;

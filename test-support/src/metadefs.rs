//! Glance's own metadata definitions catalog (`etc/metadefs/*.json`, what
//! `glance-manage db_load_metadefs` loads), taken from the `glance` package on
//! PyPI at test time: installed once with `--no-deps` (only its data files are
//! wanted) into a virtualenv in the test cache, `<venv>/etc/glance/metadefs`.
//! The repository keeps no copy.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::cache::{cache_dir, cache_lock};
use crate::{Client, Payload};

/// The Glance release whose catalog the tests load.
pub const GLANCE_VERSION: &str = "33.0.0";

/// The directory holding Glance's catalog files, installed on first use.
pub fn catalog_dir() -> PathBuf {
    let venv = cache_dir().join(format!("glance-catalog-{GLANCE_VERSION}"));
    let ready = venv.join(".installed");
    if !ready.exists() {
        let _lock = cache_lock("glance-catalog");
        if !ready.exists() {
            let _ = std::fs::remove_dir_all(&venv);
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .expect("python3");
            assert!(ok.success(), "python3 -m venv {} failed", venv.display());
            let ok = Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                ])
                .arg(format!("glance=={GLANCE_VERSION}"))
                .status()
                .expect("pip");
            assert!(
                ok.success(),
                "pip install --no-deps glance=={GLANCE_VERSION} failed"
            );
            std::fs::write(&ready, b"ok").expect("marker");
        }
    }
    venv.join("etc/glance/metadefs")
}

/// Every catalog file: (file name, its namespace document), by file name.
pub fn catalog() -> Vec<(String, Value)> {
    let dir = catalog_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no catalog files in {}", dir.display());
    files.iter().map(|p| (file_name(p), read(p))).collect()
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn read(p: &Path) -> Value {
    let text = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Loads the whole catalog into a service, as an operator does: each file is
/// posted as one namespace (`POST /v2/metadefs/namespaces`) with `headers`
/// (an admin's identity or token). Returns the namespaces' names.
#[track_caller]
pub fn load(client: &Client, headers: &[(&str, &str)]) -> Vec<String> {
    let mut names = Vec::new();
    for (file, doc) in catalog() {
        let body = doc.to_string();
        let mut all = headers.to_vec();
        all.push(("Content-Type", "application/json"));
        let r = client.send(
            "POST",
            "/v2/metadefs/namespaces",
            &all,
            Payload::Bytes(body.as_bytes()),
        );
        assert_eq!(
            r.status,
            201,
            "{file}: {}",
            String::from_utf8_lossy(&r.body)
        );
        names.push(doc["namespace"].as_str().unwrap_or_default().to_string());
    }
    names
}

//! Support for the end-to-end tests (`tests/`), the host's own tests
//! (`host/tests/`) and the bench (`bench/`): the one copy of each helper
//! they share.
//!
//! - [`http`]: an HTTP/1.1 client over `TcpStream` that controls every byte
//!   (one connection per request, streamed bodies both ways, keep-alive).
//! - [`TempDir`], [`free_port`], [`report`], [`uuid_like`], [`root`],
//!   [`target_dir`].
//!
//! With the `service` feature (the default; the bench goes without):
//! - [`service`]: the service under test, `glance-host` or real Spin
//!   ([`Runtime`], `GLANCE_RUNTIME`), started by [`Service::builder`].
//! - [`keystone`]: a real Keystone on loopback; [`proxy`]: a counting proxy.
//! - [`cache`]: installs kept between runs (virtualenvs); [`python`]: the
//!   Python clients and moto; [`cli`]: `openstack` and `osc`; [`redis`]: a
//!   real `redis-server` (Debian's, unpacked into the cache).
//! - [`data`]: reproducible test bytes and Glance's hashes of them.
//! - [`netns`]: network namespaces of a test's own (clients that are not loopback).

pub mod http;
mod temp;

#[cfg(feature = "service")]
pub mod cache;
#[cfg(feature = "service")]
pub mod cli;
#[cfg(feature = "service")]
pub mod data;
#[cfg(feature = "service")]
pub mod keystone;
#[cfg(feature = "service")]
pub mod metadefs;
#[cfg(feature = "service")]
pub mod netns;
#[cfg(feature = "service")]
pub mod process;
#[cfg(feature = "service")]
pub mod proxy;
#[cfg(feature = "service")]
pub mod python;
#[cfg(feature = "service")]
pub mod redis;
#[cfg(feature = "service")]
pub mod service;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub use http::{Client, Payload, Response};
#[cfg(feature = "service")]
pub use netns::Netns;
#[cfg(feature = "service")]
pub use service::{shared, Runtime, Service, ServiceBuilder};
pub use temp::TempDir;

/// The workspace root (where spin.toml is).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test-support is inside the workspace")
        .to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR` (relative to the
/// workspace root if relative), else `cargo metadata`'s.
pub fn target_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
            let d = PathBuf::from(d);
            return if d.is_absolute() { d } else { root().join(d) };
        }
        let out = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(root())
            .output()
            .expect("run cargo metadata");
        assert!(out.status.success(), "cargo metadata failed");
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
        PathBuf::from(meta["target_directory"].as_str().expect("target_directory"))
    })
    .clone()
}

/// Writes a report (a table, a count) to the test run's output even when
/// the test passes: `cargo test` captures `println!`/`eprintln!`, not writes
/// to the stderr handle itself.
pub fn report(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A fresh project id, so each test sees only its own images.
pub fn new_project() -> String {
    format!("proj-{}", uuid_like())
}

/// A random (version 4) UUID string.
pub fn uuid_like() -> String {
    let mut b = [0u8; 16];
    let f = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut b)
    });
    f.expect("urandom");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

/// The last `lines` lines of a text file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A field of `/proc/<pid>/status` in KiB (Linux), e.g. `VmRSS`, `VmHWM`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

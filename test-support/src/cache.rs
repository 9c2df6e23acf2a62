//! Installs the tests reuse between runs, outside the repository:
//! `$GLANCE_TEST_CACHE` or `~/.cache/glance-edge`. Each install is made once
//! under a lock file, so test processes running at once install it only once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::root;

/// Where reusable test installs live.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("GLANCE_TEST_CACHE")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/glance-edge")
        })
}

/// Holds an exclusive lock on `cache_dir()/<name>.lock` until dropped.
pub fn cache_lock(name: &str) -> std::fs::File {
    use std::os::fd::AsRawFd;
    std::fs::create_dir_all(cache_dir()).expect("cache dir");
    let f = std::fs::File::create(cache_dir().join(format!("{name}.lock"))).expect("lock file");
    // SAFETY: flock on a file descriptor we own; released when the file is closed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    f
}

/// FNV-1a of `data` (names an install after the content it came from).
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// The virtualenv `cache_dir()/<prefix>-<hash of requirements>` with the
/// packages of `requirements` (relative to the repository), created on first
/// use and reused by later runs; a changed requirements file makes a new one.
pub fn cached_venv(prefix: &str, requirements: &str) -> &'static Path {
    static VENVS: Mutex<Vec<(String, &'static Path)>> = Mutex::new(Vec::new());
    let mut venvs = VENVS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = venvs.iter().find(|(r, _)| r == requirements) {
        return p;
    }
    let req = root().join(requirements);
    let text = std::fs::read(&req).expect("requirements file");
    let dir = cache_dir().join(format!("{prefix}-{:016x}", fnv(&text)));
    let ready = dir.join(".installed");
    if !ready.exists() {
        let _lock = cache_lock(prefix);
        if !ready.exists() {
            let started = std::time::Instant::now();
            eprintln!(
                "installing {requirements} into {} (once; cached)",
                dir.display()
            );
            let _ = std::fs::remove_dir_all(&dir);
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&dir)
                .status()
                .expect("python3");
            assert!(ok.success(), "python3 -m venv {} failed", dir.display());
            let ok = Command::new(dir.join("bin/pip"))
                .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&req)
                .status()
                .expect("pip");
            assert!(ok.success(), "pip install -r {} failed", req.display());
            std::fs::write(&ready, b"ok").expect("marker");
            eprintln!("{requirements}: installed in {:.1?}", started.elapsed());
        }
    }
    let leaked: &'static Path = Box::leak(dir.into_boxed_path());
    venvs.push((requirements.to_string(), leaked));
    leaked
}

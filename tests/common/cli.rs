//! Command-line clients installed on first use into the test cache
//! (`$GLANCE_TEST_CACHE` or `~/.cache/glance-edge`, see [`cache_dir`]) and
//! reused by later runs:
//! - python-openstackclient (`openstack`), pip-installed into a virtualenv
//!   keyed by the content of tests/clients/openstackclient-requirements.txt;
//! - the Rust `osc` (crate `openstack_cli`, version [`OSC_VERSION`]),
//!   `cargo install --locked` into a directory named after its version.
//!
//! Installs are serialized across test processes by lock files in the cache.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use super::python::{cache_dir, Run};
use super::{root, temp_dir};

/// The `openstack_cli` release the `osc` tests use (MSRV 1.91).
pub const OSC_VERSION: &str = "0.13.8";

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Holds an exclusive lock on `cache_dir()/<name>.lock` until dropped.
fn lock(name: &str) -> File {
    std::fs::create_dir_all(cache_dir()).expect("cache dir");
    let f = File::create(cache_dir().join(format!("{name}.lock"))).expect("lock file");
    // SAFETY: flock on a file descriptor we own; released when the file is closed.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
    f
}

/// The virtualenv with python-openstackclient, created (once) if missing.
pub fn openstackclient_venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let req = root().join("tests/clients/openstackclient-requirements.txt");
        let text = std::fs::read(&req).expect("openstackclient-requirements.txt");
        let dir = cache_dir().join(format!("openstackclient-venv-{:016x}", fnv(&text)));
        let ready = dir.join(".installed");
        if ready.exists() {
            return dir;
        }
        let _lock = lock("openstackclient-venv");
        if !ready.exists() {
            let started = Instant::now();
            eprintln!(
                "openstackclient: installing {} into {} (once; cached)",
                req.display(),
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
            eprintln!("openstackclient: installed in {:.1?}", started.elapsed());
        }
        dir
    })
}

/// The `osc` binary, built (once) with `cargo install --locked` if missing.
/// The build directory is kept in the cache until the install succeeds, so an
/// interrupted build resumes where it stopped.
pub fn osc_binary() -> &'static Path {
    static OSC: OnceLock<PathBuf> = OnceLock::new();
    OSC.get_or_init(|| {
        let install_root = cache_dir().join(format!("osc-{OSC_VERSION}"));
        let bin = install_root.join("bin/osc");
        if bin.exists() {
            return bin;
        }
        let _lock = lock("osc-install");
        if !bin.exists() {
            let started = Instant::now();
            let build_dir = cache_dir().join("osc-build");
            eprintln!(
                "osc: cargo install openstack_cli@{OSC_VERSION} into {} (once; cached; a long build)",
                install_root.display()
            );
            // Run from the cache, not the repository, so the workspace's
            // config plays no part; `CARGO` is the toolchain running the tests.
            let ok = Command::new(env!("CARGO"))
                .args(["install", "--locked", "--quiet"])
                .arg(format!("openstack_cli@{OSC_VERSION}"))
                .arg("--root")
                .arg(&install_root)
                .arg("--target-dir")
                .arg(&build_dir)
                .current_dir(cache_dir())
                .env_remove("CARGO_TARGET_DIR")
                .env_remove("RUSTFLAGS")
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .env_remove("CARGO_BUILD_TARGET")
                .status()
                .expect("cargo install");
            assert!(ok.success(), "cargo install openstack_cli@{OSC_VERSION} failed");
            assert!(bin.exists(), "{} missing after cargo install", bin.display());
            let _ = std::fs::remove_dir_all(&build_dir);
            eprintln!("osc: installed in {:.1?}", started.elapsed());
        }
        bin
    })
}

/// Runs `program` with `args` and `env`, from `dir`, with `HOME` set to `dir`,
/// stdin closed and no `OS_*` variables of the caller's environment.
pub fn run_in(dir: &Path, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args(args)
        .envs(env.iter().copied())
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", program.display()));
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A fresh working directory (also `HOME`) for a client.
pub fn client_home(tag: &str) -> PathBuf {
    temp_dir(tag)
}

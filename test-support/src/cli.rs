//! Command-line clients installed on first use into the test cache
//! (`$GLANCE_TEST_CACHE` or `~/.cache/glance-edge`, see [`cache_dir`]) and
//! reused by later runs:
//! - python-openstackclient (`openstack`), pip-installed into a virtualenv
//!   keyed by the content of tests/clients/openstackclient-requirements.txt;
//! - the Rust `osc` (crate `openstack_cli`, version [`OSC_VERSION`]),
//!   `cargo install --locked` into a directory named after its version.
//!
//! Installs are serialized across test processes by lock files in the cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::Value;

use crate::cache::{cache_dir, cache_lock, cached_venv};
use crate::keystone::PASSWORD;
use crate::python::Run;
use crate::TempDir;

/// The `openstack_cli` release the `osc` tests use (MSRV 1.91).
pub const OSC_VERSION: &str = "0.13.8";

/// The virtualenv with python-openstackclient, created (once) if missing.
pub fn openstackclient_venv() -> &'static Path {
    cached_venv(
        "openstackclient-venv",
        "tests/clients/openstackclient-requirements.txt",
    )
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
        let _lock = cache_lock("osc-install");
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
fn run_in(dir: &Path, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
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
    Run::from(out)
}

/// A command-line client run as `PROGRAM --os-cloud CLOUD ARGS...` in its
/// own home (also its working directory), which holds its clouds.yaml.
pub struct CloudCli {
    /// The client's home and working directory.
    pub home: TempDir,
    program: PathBuf,
    /// What makes the client print JSON (`-f json`, `-o json`).
    json_args: &'static [&'static str],
    env: Vec<(&'static str, &'static str)>,
}

impl CloudCli {
    /// A client in a fresh home whose clouds.yaml is `clouds_yaml`.
    pub fn new(
        program: &Path,
        clouds_yaml: &str,
        json_args: &'static [&'static str],
        env: &[(&'static str, &'static str)],
    ) -> CloudCli {
        let name = program
            .file_name()
            .map_or("cli".into(), |n| n.to_string_lossy().into_owned());
        let home = TempDir::new(&name);
        std::fs::write(home.join("clouds.yaml"), clouds_yaml).expect("clouds.yaml");
        CloudCli {
            home,
            program: program.to_path_buf(),
            json_args,
            env: env.to_vec(),
        }
    }

    /// Runs `--os-cloud CLOUD ARGS...` (stdin is /dev/null).
    pub fn run(&self, cloud: &str, args: &[&str]) -> Run {
        let clouds = self.home.join("clouds.yaml");
        let mut all = vec!["--os-cloud", cloud];
        all.extend_from_slice(args);
        let mut env = vec![(
            "OS_CLIENT_CONFIG_FILE",
            clouds.to_str().expect("utf-8 path"),
        )];
        env.extend(self.env.iter().copied());
        run_in(&self.home, &self.program, &all, &env)
    }

    /// Runs with JSON output and parses standard output.
    #[track_caller]
    pub fn json(&self, cloud: &str, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(self.json_args);
        let out = self.run(cloud, &all);
        let text = out.expect_ok();
        serde_json::from_str(text).unwrap_or_else(|e| {
            panic!(
                "{} {args:?}: not JSON ({e}):\n{text}",
                self.program.display()
            )
        })
    }

    /// Runs and asserts success; returns standard output.
    #[track_caller]
    pub fn ok(&self, cloud: &str, args: &[&str]) -> String {
        self.run(cloud, args).expect_ok().to_string()
    }

    /// A path in the client's home, as a string for an argument.
    pub fn path(&self, name: &str) -> String {
        self.home
            .join(name)
            .to_str()
            .expect("utf-8 path")
            .to_string()
    }
}

/// One column of a JSON list output (`ID`, `name`, ...).
#[track_caller]
pub fn column<'a>(list: &'a Value, key: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i[key].as_str().unwrap_or_else(|| panic!("no {key} in {i}")))
        .collect()
}

/// A clouds.yaml entry: `name` logs in to Keystone at `keystone` as `user`
/// (password [`PASSWORD`]) in `project`; `extra` is appended as is.
pub fn cloud_entry(name: &str, keystone: &str, user: &str, project: &str, extra: &str) -> String {
    format!(
        "  {name}:\n    auth:\n      auth_url: {keystone}/v3\n      username: {user}\n      password: {PASSWORD}\n      project_name: {project}\n      user_domain_id: default\n      project_domain_id: default\n    identity_api_version: 3\n    interface: public\n{extra}"
    )
}

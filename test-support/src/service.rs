//! The service under test: this repository's `spin.toml` served by
//! `glance-host` (the default) or by real Spin, on a free loopback port with
//! a state directory of its own.
//!
//! A test that needs a client whose address is not loopback starts it in a
//! network namespace of its own instead ([`ServiceBuilder::netns`], listening
//! on the namespace's veth address with [`ServiceBuilder::listen_ip`]): the
//! runtime runs under `ip netns exec NAME`, and its readiness is probed from
//! a thread inside the namespace. Such a service is reached only from inside
//! (see [`crate::netns`]).
//!
//! The runtime is chosen by `GLANCE_RUNTIME=glance-host|spin` ([`Runtime`]).
//! Spin is `$SPIN_BIN`, by default `<workspace>/../shared/spin/spin` when that
//! file exists, run as `spin up --from <root>/spin.toml --listen 127.0.0.1:PORT
//! --state-dir DIR --runtime-config-file FILE` with `SPIN_CACHE` set to the
//! test cache unless it is set. Both runtimes get the same runtime
//! configuration: the `image_data` key-value store in `DIR/image_data.db`
//! (Spin honours the absolute `path`; both use Spin's `spin_key_value`
//! table), plus any extra TOML a test adds. The `.wasm` files are built by
//! cargo, once per test binary.
//!
//! The runtime's standard output and error go to `DIR/stdout.log` and
//! `DIR/stderr.log` ([`Service::logs`]); Spin also writes component output
//! under `DIR/logs/`. A service is ready when `GET /versions` answers 200.
//!
//! Spin's `spin up` starts the server as a child process (`spin trigger
//! http`): [`Service::pid`] and [`Service::rss`] are that server's; the two
//! run in a process group of their own that is killed on drop (and at exit,
//! for services in statics). Test hooks of glance-host (`GLANCE_HOST_*`
//! variables, e.g. `GLANCE_HOST_KV_FAIL_SETS_AFTER`) do nothing on Spin.

use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use crate::cache::cache_dir;
use crate::http::probe;
use crate::keystone::{Keystone, PASSWORD, SERVICE_PROJECT, SERVICE_USER};
use crate::netns::{enter_and_run, Netns};
use crate::process::{children, kill_group, own_group, register_group, spawn_tied};
use crate::{free_port, proc_status_kib, report, root, tail, target_dir, Client, TempDir};

/// What serves the components.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// This repository's host (`host/`), built by cargo.
    GlanceHost,
    /// Real Spin (`$SPIN_BIN`).
    Spin,
}

impl Runtime {
    /// From `GLANCE_RUNTIME` (`glance-host`, the default, or `spin`).
    pub fn from_env() -> Runtime {
        match std::env::var("GLANCE_RUNTIME").as_deref() {
            Err(_) | Ok("") | Ok("glance-host") => Runtime::GlanceHost,
            Ok("spin") => Runtime::Spin,
            Ok(other) => panic!("GLANCE_RUNTIME={other:?}: expected glance-host or spin"),
        }
    }

    /// `glance-host` or `spin`, as `GLANCE_RUNTIME` names it.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::GlanceHost => "glance-host",
            Runtime::Spin => "spin",
        }
    }

    /// How long a start may take before the test fails (Spin compiles the
    /// components on a cold cache).
    fn ready_timeout(self) -> Duration {
        match self {
            Runtime::GlanceHost => Duration::from_secs(60),
            Runtime::Spin => Duration::from_secs(180),
        }
    }

    /// The program that runs `up`, built or found (once per process).
    fn program(self) -> PathBuf {
        match self {
            Runtime::GlanceHost => built_host(),
            Runtime::Spin => {
                built_components();
                spin_bin()
            }
        }
    }
}

/// The Spin CLI: `$SPIN_BIN`, else `<workspace>/../shared/spin/spin`.
pub fn spin_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("SPIN_BIN").filter(|b| !b.is_empty()) {
        return PathBuf::from(bin);
    }
    let shared = root().join("../shared/spin/spin");
    assert!(
        shared.exists(),
        "GLANCE_RUNTIME=spin needs the Spin CLI: set SPIN_BIN ({} does not exist)",
        shared.display()
    );
    shared.canonicalize().unwrap_or(shared)
}

fn cargo(args: &[&str]) {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo {args:?} failed");
}

/// Builds the three components (once per test binary); spin.toml names
/// them under `<root>/target/wasm32-wasip2/release/`.
pub fn built_components() {
    static BUILT: Once = Once::new();
    BUILT.call_once(|| {
        cargo(&[
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "glance-images",
            "-p",
            "glance-members",
            "-p",
            "glance-schemas",
        ]);
        for wasm in ["glance_images", "glance_members", "glance_schemas"] {
            let p = root().join(format!("target/wasm32-wasip2/release/{wasm}.wasm"));
            assert!(p.exists(), "{} missing: spin.toml names it", p.display());
        }
    });
}

/// Builds the components and the host (once per test binary); returns the
/// host binary.
pub fn built_host() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            built_components();
            // The same selection and profile as the README's `cargo test --release`,
            // so the host binary it builds is reused, not rebuilt with other features.
            cargo(&["test", "--release", "--no-run", "--quiet"]);
            target_dir().join("release/glance-host")
        })
        .clone()
}

/// How to start a [`Service`]: environment, Keystone, runtime configuration,
/// state directory, runtime. Made by [`Service::builder`].
#[derive(Clone, Debug, Default)]
pub struct ServiceBuilder {
    env: Vec<(String, String)>,
    /// The `[key_value_store.image_data]` table's body; None: a `spin` file
    /// in the state directory.
    image_data: Option<String>,
    runtime_config: String,
    state_dir: Option<PathBuf>,
    runtime: Option<Runtime>,
    netns: Option<String>,
    listen_ip: Option<IpAddr>,
}

impl ServiceBuilder {
    /// One environment variable (e.g. `SPIN_VARIABLE_API_LIMIT_MAX`); a
    /// later value for the same name wins.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Several environment variables.
    pub fn envs(mut self, vars: &[(&str, &str)]) -> Self {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Keystone authentication against `ks` as its service user (`glance`
    /// in project `service`).
    pub fn keystone(self, ks: &Keystone) -> Self {
        self.keystone_url(&ks.url)
    }

    /// Keystone authentication against the Keystone at `url` (e.g. a proxy
    /// in front of one), as the fixtures' service user.
    pub fn keystone_url(self, url: &str) -> Self {
        self.envs(&[
            ("SPIN_VARIABLE_AUTH_STRATEGY", "keystone"),
            ("SPIN_VARIABLE_KEYSTONE_URL", url),
            ("SPIN_VARIABLE_KEYSTONE_USERNAME", SERVICE_USER),
            ("SPIN_VARIABLE_KEYSTONE_PASSWORD", PASSWORD),
            ("SPIN_VARIABLE_KEYSTONE_PROJECT", SERVICE_PROJECT),
        ])
    }

    /// TOML appended to the runtime configuration (after the `image_data`
    /// store), e.g. another key-value store or SQLite database.
    pub fn runtime_config(mut self, toml: &str) -> Self {
        self.runtime_config.push_str(toml);
        if !toml.ends_with('\n') {
            self.runtime_config.push('\n');
        }
        self
    }

    /// The body of the `[key_value_store.image_data]` table (e.g.
    /// `type = "redis"` with its `url`) instead of a file in the state
    /// directory; `stored_chunks` then counts nothing.
    pub fn image_data_store(mut self, toml: &str) -> Self {
        self.image_data = Some(toml.to_string());
        self
    }

    /// Uses `dir` as the state directory (kept: the caller owns it), e.g.
    /// to start again on the data of a stopped service.
    pub fn state_dir(mut self, dir: &Path) -> Self {
        self.state_dir = Some(dir.to_path_buf());
        self
    }

    /// This runtime instead of `GLANCE_RUNTIME`'s.
    pub fn runtime(mut self, runtime: Runtime) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Runs the runtime inside the network namespace `ns` (`ip netns exec
    /// NAME glance-host|spin up ...`); `ns` must outlive the service. Its
    /// readiness is probed from inside `ns`; with it, [`Service::client`]
    /// works only on a thread inside `ns` ([`Netns::run`]).
    pub fn netns(mut self, ns: &Netns) -> Self {
        self.netns = Some(ns.name().to_string());
        self
    }

    /// Listens on `ip` (e.g. a veth address in [`netns`](Self::netns))
    /// instead of 127.0.0.1; the port is still a free one.
    pub fn listen_ip(mut self, ip: IpAddr) -> Self {
        self.listen_ip = Some(ip);
        self
    }

    /// Starts the service and waits until it answers `GET /versions`.
    pub fn start(self) -> Service {
        let runtime = self.runtime.unwrap_or_else(Runtime::from_env);
        let (owned, state_dir) = match &self.state_dir {
            Some(d) => {
                std::fs::create_dir_all(d).expect("state dir");
                (None, d.clone())
            }
            None => {
                let t = TempDir::new("state");
                let p = t.to_path_buf();
                (Some(t), p)
            }
        };
        let program = runtime.program();
        let port = free_port();
        let ip = self.listen_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let addr = SocketAddr::new(ip, port);
        let child = spawn(runtime, &program, &self, &state_dir, addr);
        let svc = Service {
            base: format!("http://{addr}"),
            addr,
            state_dir,
            runtime,
            settings: self,
            child: Mutex::new(child),
            server_pid: OnceLock::new(),
            stopped: false,
            _owned_state: owned,
        };
        let ready = svc.wait_ready();
        static REPORTED: Once = Once::new();
        REPORTED.call_once(|| {
            report(&format!(
                "service runtime: {} ({}; GLANCE_RUNTIME=glance-host|spin), first start ready in {:.1?}",
                runtime.name(),
                program.display(),
                ready
            ))
        });
        svc
    }
}

/// Writes the runtime configuration and spawns `program up ...`.
fn spawn(
    runtime: Runtime,
    program: &Path,
    settings: &ServiceBuilder,
    state_dir: &Path,
    addr: SocketAddr,
) -> Child {
    let runtime_config = state_dir.join("runtime-config.toml");
    std::fs::write(
        &runtime_config,
        format!(
            "[key_value_store.image_data]\n{}\n{}",
            settings.image_data.clone().unwrap_or_else(|| format!(
                "type = \"spin\"\npath = \"{}\"",
                state_dir.join("image_data.db").display()
            )),
            settings.runtime_config
        ),
    )
    .expect("runtime config");
    let log = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(state_dir.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let mut cmd = match &settings.netns {
        // `ip` execs the program: the child is still the runtime itself.
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.args(["up", "--from"])
        .arg(root().join("spin.toml"))
        .args(["--listen", &addr.to_string(), "--state-dir"])
        .arg(state_dir)
        .arg("--runtime-config-file")
        .arg(&runtime_config)
        .envs(settings.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log("stdout.log"))
        .stderr(log("stderr.log"));
    let child = match runtime {
        Runtime::GlanceHost => spawn_tied(cmd, libc::SIGKILL),
        Runtime::Spin => {
            if std::env::var_os("SPIN_CACHE").is_none() {
                cmd.env("SPIN_CACHE", cache_dir().join("real-spin"));
            }
            // `spin up` and its `spin trigger http` child in a group of their
            // own, killed together; SIGTERM (which `spin up` passes on to its
            // child) if the test process ends first.
            own_group(&mut cmd);
            let child = spawn_tied(cmd, libc::SIGTERM);
            if let Ok(c) = &child {
                register_group(c.id());
            }
            child
        }
    };
    child.unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()))
}

/// A running service (stopped when dropped).
pub struct Service {
    /// `http://127.0.0.1:PORT` (or the address given to
    /// [`ServiceBuilder::listen_ip`])
    pub base: String,
    /// Socket address of the service.
    pub addr: SocketAddr,
    /// The state directory (`.spin` equivalent): image data in
    /// `image_data.db`, the runtime's output in `stdout.log` and `stderr.log`.
    pub state_dir: PathBuf,
    runtime: Runtime,
    settings: ServiceBuilder,
    child: Mutex<Child>,
    server_pid: OnceLock<u32>,
    stopped: bool,
    _owned_state: Option<TempDir>,
}

impl Service {
    /// A builder: `Service::builder().env(..).keystone(&ks).start()`.
    pub fn builder() -> ServiceBuilder {
        ServiceBuilder::default()
    }

    /// Starts the service with its embedded defaults.
    pub fn start() -> Service {
        Self::builder().start()
    }

    /// The runtime serving it.
    pub fn runtime(&self) -> Runtime {
        self.runtime
    }

    /// A client acting as the default noauth identity (admin of the default project).
    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// A client acting for `project` with `roles` (comma separated, e.g. "member").
    pub fn project(&self, project: &str, roles: &str) -> Client {
        Client::new(self.addr)
            .with_header("X-Project-Id", project)
            .with_header("X-User-Id", &format!("user-of-{project}"))
            .with_header("X-Roles", roles)
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `GET /versions` answers 200; returns how long it took.
    fn wait_ready(&self) -> Duration {
        let started = Instant::now();
        let deadline = started + self.runtime.ready_timeout();
        let name = self.runtime.name();
        let mut last = None;
        loop {
            if let Ok(Some(status)) = self.child().try_wait() {
                panic!("{name} exited early: {status}\n{}", self.logs());
            }
            let addr = self.addr;
            let answer = || probe(addr, "/versions", Duration::from_secs(10));
            let answer = match &self.settings.netns {
                Some(ns) => enter_and_run(ns, answer),
                None => answer(),
            };
            last = answer.or(last);
            if last == Some(200) {
                // Known while serving (Spin's server is a child process).
                self.pid();
                return started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not answer GET /versions with 200 on {} within {:?} (last answer: {last:?})\n{}",
                self.addr,
                self.runtime.ready_timeout(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The id of the process that serves: glance-host itself, or Spin's
    /// `spin trigger http` child of `spin up`.
    pub fn pid(&self) -> u32 {
        *self.server_pid.get_or_init(|| {
            let own = self.child().id();
            match self.runtime {
                Runtime::GlanceHost => own,
                Runtime::Spin => {
                    let kids = children(own);
                    kids.iter()
                        .copied()
                        .find(|p| {
                            std::fs::read(format!("/proc/{p}/cmdline"))
                                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"trigger"))
                        })
                        .or(kids.first().copied())
                        .unwrap_or(own)
                }
            }
        })
    }

    /// The serving process's resident memory in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS").expect("VmRSS") * 1024
    }

    /// Runs `work` while sampling the serving process's resident memory
    /// every 10 ms; returns what `work` returned and the peak seen (at least
    /// the memory before it started).
    pub fn peak_rss_during<T>(&self, work: impl FnOnce() -> T) -> (T, u64) {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let peak = Arc::new(AtomicU64::new(self.rss()));
        let done = Arc::new(AtomicBool::new(false));
        let sampler = {
            let (peak, done, pid) = (peak.clone(), done.clone(), self.pid());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Some(kb) = proc_status_kib(pid, "VmRSS") {
                        peak.fetch_max(kb * 1024, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        let out = work();
        done.store(true, Ordering::Relaxed);
        let _ = sampler.join();
        (out, peak.load(Ordering::Relaxed))
    }

    /// Number of image data chunks in the key-value store (read straight
    /// from the store's SQLite file, `image_data.db` in the state directory,
    /// on either runtime), optionally only those under `prefix`.
    pub fn stored_chunks(&self, prefix: &str) -> usize {
        let db = self.state_dir.join("image_data.db");
        if !db.exists() {
            return 0;
        }
        let conn = rusqlite::Connection::open(db).expect("open kv db");
        let pattern = format!("{prefix}%");
        conn.query_row(
            "SELECT COUNT(*) FROM spin_key_value WHERE store = 'image_data' AND key LIKE ?",
            [pattern],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n as usize)
        .unwrap_or_else(|e| panic!("count chunks: {e}"))
    }

    /// The runtime's standard error so far (`stderr.log` in the state directory).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("stderr.log")).unwrap_or_default()
    }

    /// The tails of the runtime's output files (for failure messages).
    pub fn logs(&self) -> String {
        let part = |name: &str| {
            format!(
                "--- {} (tail):\n{}\n",
                self.state_dir.join(name).display(),
                tail(&self.state_dir.join(name), 40)
            )
        };
        format!("{}{}", part("stdout.log"), part("stderr.log"))
    }

    /// Stops the service and starts it again with the same settings on the
    /// same state directory (a new port).
    pub fn restart(mut self) -> Service {
        self.stop();
        let owned = self._owned_state.take();
        let mut again = self
            .settings
            .clone()
            .runtime(self.runtime)
            .state_dir(&self.state_dir)
            .start();
        again._owned_state = owned;
        again
    }

    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let runtime = self.runtime;
        let mut child = self.child();
        match runtime {
            Runtime::GlanceHost => {
                let _ = child.kill();
            }
            Runtime::Spin => kill_group(child.id()),
        }
        let _ = child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            report(&format!(
                "{} on {} (the test failed):\n{}",
                self.runtime.name(),
                self.addr,
                self.logs()
            ));
        }
    }
}

/// A shared service for the tests of one test binary, started on first use.
pub fn shared() -> &'static Service {
    static SVC: OnceLock<Service> = OnceLock::new();
    SVC.get_or_init(Service::start)
}

//! The host's own test support: builds the probe component and starts
//! `glance-host` on a free loopback port with a temporary state directory.
//! The HTTP client and temporary directories are `test_support`'s.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use test_support::http::{request, Response};
use test_support::{target_dir, TempDir};

/// The workspace root (parent of the `host` package).
pub fn workspace_root() -> PathBuf {
    test_support::root()
}

/// Builds the probe component (once per test binary) and returns its path.
pub fn probe_wasm() -> PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "-p",
                "glance-host-probe",
            ])
            .env("CARGO_TARGET_DIR", target_dir())
            .current_dir(workspace_root())
            .output()
            .expect("run cargo build for the probe");
        assert!(
            out.status.success(),
            "building the probe failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let wasm = target_dir().join("wasm32-wasip2/release/glance_host_probe.wasm");
        assert!(wasm.is_file(), "{} missing", wasm.display());
        wasm
    })
    .clone()
}

/// A shared compiled-component cache for the tests (keeps restarts fast).
pub fn test_cache_dir() -> PathBuf {
    target_dir().join("glance-host-test-cache")
}

/// The fixture manifest, with `source` pointing at the built probe.
pub fn probe_manifest_text() -> String {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/probe.toml"))
            .expect("read fixtures/probe.toml");
    let wasm = probe_wasm();
    text.replace(
        "source = \"../../target/wasm32-wasip2/release/glance_host_probe.wasm\"",
        &format!("source = {:?}", wasm.display().to_string()),
    )
}

/// A temp dir holding `spin.toml` (the probe manifest, possibly edited) and `rc.toml`
/// (the fixture runtime config).
pub fn probe_app(label: &str, edit: impl FnOnce(String) -> String) -> TempDir {
    let dir = TempDir::new(label);
    std::fs::write(dir.join("spin.toml"), edit(probe_manifest_text())).expect("write manifest");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/probe-runtime-config.toml"),
        dir.join("rc.toml"),
    )
    .expect("copy runtime config");
    dir
}

/// How to start the host.
pub struct HostCmd {
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
}

impl HostCmd {
    /// `glance-host up` for the app in `dir` (spin.toml, rc.toml, state in `dir/state`),
    /// listening on a free port, run from `dir`.
    pub fn up(dir: &TempDir) -> Self {
        Self {
            args: vec![
                "up".into(),
                "--from".into(),
                dir.join("spin.toml").display().to_string(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--state-dir".into(),
                dir.join("state").display().to_string(),
                "--runtime-config-file".into(),
                dir.join("rc.toml").display().to_string(),
            ],
            env: vec![(
                "GLANCE_HOST_CACHE_DIR".into(),
                test_cache_dir().display().to_string(),
            )],
            cwd: dir.to_path_buf(),
        }
    }

    /// Any command line.
    pub fn raw(args: &[&str], cwd: &Path) -> Self {
        Self {
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![(
                "GLANCE_HOST_CACHE_DIR".into(),
                test_cache_dir().display().to_string(),
            )],
            cwd: cwd.to_path_buf(),
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Adds arguments.
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_glance-host"));
        c.args(&self.args).current_dir(&self.cwd);
        c.env_remove("GLANCE_HOST_LOG")
            .env_remove("RUNTIME_CONFIG_FILE");
        for (k, _) in std::env::vars() {
            if k.starts_with("SPIN_VARIABLE_") {
                c.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Starts the host and waits until it prints `Serving http://ADDR`.
    pub fn start(self) -> Host {
        match self.try_start() {
            Ok(h) => h,
            Err(e) => panic!("glance-host did not start:\n{e}"),
        }
    }

    /// Starts the host; `Err(stderr)` if it exits before serving.
    pub fn try_start(self) -> Result<Host, String> {
        let started = Instant::now();
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn glance-host");
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let sink = stderr.clone();
            let mut pipe = child.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    let status = child.wait().ok();
                    // Let the stderr thread drain.
                    std::thread::sleep(Duration::from_millis(50));
                    return Err(format!(
                        "exit status {status:?}\nstdout:\n{}\nstderr:\n{}",
                        lines.join(""),
                        stderr.lock().unwrap()
                    ));
                }
                Ok(_) => {}
            }
            if let Some(rest) = line.trim().strip_prefix("Serving http://") {
                let addr: SocketAddr = rest.parse().expect("address after Serving");
                lines.push(line);
                // Keep draining stdout (route listing) so the host never blocks on it.
                let tail = Arc::new(Mutex::new(String::new()));
                let t = tail.clone();
                std::thread::spawn(move || {
                    let mut s = String::new();
                    while let Ok(n) = stdout.read_line(&mut s) {
                        if n == 0 {
                            break;
                        }
                        t.lock().unwrap().push_str(&s);
                        s.clear();
                    }
                });
                return Ok(Host {
                    child,
                    addr,
                    stderr,
                    stdout: tail,
                    startup: started.elapsed(),
                });
            }
            lines.push(line);
        }
    }

    /// Runs to completion (at most 5 minutes): exit status, stdout, stderr.
    pub fn run(self) -> (ExitStatus, String, String) {
        let mut child = self
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn glance-host");
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + Duration::from_secs(300);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("glance-host did not exit within 5 minutes");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, t_out.join().unwrap(), t_err.join().unwrap())
    }
}

/// A running host, killed on drop.
pub struct Host {
    child: Child,
    /// The address it serves on.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
    /// Time from spawn to "Serving".
    pub startup: Duration,
}

impl Host {
    /// Everything the host wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until stderr contains `needle` (up to 10 s).
    pub fn wait_stderr(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        request(self.addr, "GET", path, &[], None)
    }

    /// `GET path`, body parsed as JSON (panics unless 200).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {} {}", r.status, r.text());
        r.json()
    }

    /// Stops the host (SIGKILL) and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// FNV-1a, as the probe's `/echo` computes it.
pub fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100000001b3))
}

/// FNV-1a's starting value.
pub const FNV_START: u64 = 0xcbf29ce484222325;

/// Real Spin, when it is here: `$SPIN_BIN`, else `<workspace>/../shared/spin/spin`.
pub fn real_spin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SPIN_BIN").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let shared = workspace_root().join("../shared/spin/spin");
    shared
        .exists()
        .then(|| shared.canonicalize().unwrap_or(shared))
}

/// The runtimes a parity test runs on: glance-host, and real Spin when it is here.
pub fn runtimes() -> Vec<test_support::Runtime> {
    let mut r = vec![test_support::Runtime::GlanceHost];
    if real_spin().is_some() {
        r.push(test_support::Runtime::Spin);
    } else {
        test_support::report(
            "real Spin not found (SPIN_BIN, ../shared/spin/spin): glance-host only",
        );
    }
    r
}

/// The probe app of `dir` served by glance-host or real Spin.
pub enum Probe {
    /// glance-host.
    Host(Host),
    /// `spin up` (its process group is killed on drop).
    Spin {
        /// `spin up`.
        child: Child,
        /// Where it serves.
        addr: SocketAddr,
        /// Where its output goes.
        dir: PathBuf,
    },
}

impl Probe {
    /// Starts the app in `dir` (as [`probe_app`] makes it) on `runtime`, with `env`.
    pub fn start(dir: &TempDir, runtime: test_support::Runtime, env: &[(&str, &str)]) -> Probe {
        match runtime {
            test_support::Runtime::GlanceHost => {
                let mut cmd = HostCmd::up(dir);
                for (k, v) in env {
                    cmd = cmd.env(k, v);
                }
                Probe::Host(cmd.start())
            }
            test_support::Runtime::Spin => Self::start_spin(dir, env),
        }
    }

    fn start_spin(dir: &TempDir, env: &[(&str, &str)]) -> Probe {
        use test_support::process::{kill_group, own_group, register_group, spawn_tied};
        let bin = real_spin().expect("real Spin");
        let port = test_support::free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).expect("log file");
        let mut cmd = Command::new(&bin);
        cmd.args(["up", "--from"])
            .arg(dir.join("spin.toml"))
            .args(["--listen", &addr.to_string(), "--state-dir"])
            .arg(dir.join("state"))
            .arg("--runtime-config-file")
            .arg(dir.join("rc.toml"))
            .current_dir(dir)
            .env_remove("RUNTIME_CONFIG_FILE")
            .stdin(Stdio::null())
            .stdout(log("spin-stdout.log"))
            .stderr(log("spin-stderr.log"));
        for (k, _) in std::env::vars() {
            if k.starts_with("SPIN_VARIABLE_") || k == "SPIN_HTTP1_MAX_BUF_SIZE" {
                cmd.env_remove(k);
            }
        }
        if std::env::var_os("SPIN_CACHE").is_none() {
            cmd.env(
                "SPIN_CACHE",
                test_support::cache::cache_dir().join("real-spin"),
            );
        }
        cmd.envs(env.iter().copied());
        own_group(&mut cmd);
        let mut child = spawn_tied(cmd, libc::SIGTERM).expect("spawn spin");
        register_group(child.id());
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "spin exited early: {status}\n{}",
                    std::fs::read_to_string(dir.join("spin-stderr.log")).unwrap_or_default()
                );
            }
            if test_support::http::probe(addr, "/.well-known/spin/health", Duration::from_secs(5))
                == Some(200)
            {
                break;
            }
            if Instant::now() > deadline {
                kill_group(child.id());
                panic!("spin did not serve on {addr} within 180 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Probe::Spin {
            child,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    /// Where it serves.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Probe::Host(h) => h.addr,
            Probe::Spin { addr, .. } => *addr,
        }
    }

    /// The process that serves: glance-host, or Spin's `spin trigger http` child.
    pub fn server_pid(&self) -> u32 {
        match self {
            Probe::Host(h) => h.pid(),
            Probe::Spin { child, .. } => {
                let kids = test_support::process::children(child.id());
                kids.iter()
                    .copied()
                    .find(|p| {
                        std::fs::read(format!("/proc/{p}/cmdline"))
                            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"trigger"))
                    })
                    .or(kids.first().copied())
                    .unwrap_or(child.id())
            }
        }
    }

    /// `glance-host` or `spin`.
    pub fn name(&self) -> &'static str {
        match self {
            Probe::Host(_) => "glance-host",
            Probe::Spin { .. } => "spin",
        }
    }

    /// The runtime's standard error so far.
    pub fn stderr(&self) -> String {
        match self {
            Probe::Host(h) => h.stderr(),
            Probe::Spin { dir, .. } => {
                std::fs::read_to_string(dir.join("spin-stderr.log")).unwrap_or_default()
            }
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        request(self.addr(), "GET", path, &[], None)
    }

    /// `GET path`, body parsed as JSON (panics unless 200).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "{}: GET {path}: {} {}",
            self.name(),
            r.status,
            r.text()
        );
        r.json()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Probe::Spin { child, .. } = self {
            test_support::process::kill_group(child.id());
            let _ = child.wait();
        }
    }
}

/// Sends `raw` bytes on a new connection and reads until the server closes it
/// (or 10 s pass): everything the server sent.
pub fn raw_exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw).expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

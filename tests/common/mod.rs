//! End-to-end test support: builds the `.wasm` components and `glance-host`,
//! starts the host on a free loopback port with a fresh state directory, and
//! talks HTTP/1.1 to it over a plain socket (so tests control every byte).
#![allow(dead_code)]

pub mod cli;
pub mod data;
pub mod http;
pub mod keystone;
pub mod proxy;
pub mod python;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use http::Client;

/// The workspace root (where spin.toml is).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cargo target directory the nested builds use.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

fn cargo(args: &[&str]) {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .current_dir(root())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo {args:?} failed");
}

/// Builds the three components and the host once per test binary; returns the host binary.
pub fn built_host() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
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
            // The same selection and profile as the README's `cargo test --release`,
            // so the host binary it builds is reused, not rebuilt with other features.
            cargo(&["test", "--release", "--no-run", "--quiet"]);
            for wasm in ["glance_images", "glance_members", "glance_schemas"] {
                let p = root().join(format!("target/wasm32-wasip2/release/{wasm}.wasm"));
                assert!(p.exists(), "{} missing: spin.toml names it", p.display());
            }
            target_dir().join("release/glance-host")
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

/// A fresh, empty temporary directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: Mutex<u32> = Mutex::new(0);
    let n = {
        let mut g = N.lock().unwrap_or_else(|e| e.into_inner());
        *g += 1;
        *g
    };
    let dir = std::env::temp_dir().join(format!("glance-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `glance-host up` serving this repository's spin.toml.
pub struct Service {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Socket address of the service.
    pub addr: SocketAddr,
    /// The state directory (`.spin` equivalent); image data is in `image_data.db` there.
    pub state_dir: PathBuf,
    child: Mutex<Child>,
}

impl Service {
    /// Starts the service with its embedded defaults.
    pub fn start() -> Service {
        Self::start_with(&[])
    }

    /// Starts the service with extra environment (e.g. `SPIN_VARIABLE_API_LIMIT_MAX`).
    pub fn start_with(env: &[(&str, &str)]) -> Service {
        let host = built_host();
        let state_dir = temp_dir("state");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (tx, rx) = mpsc::channel();
        let sd = state_dir.clone();
        // The host is spawned from a thread that lives as long as the test
        // process, so PR_SET_PDEATHSIG kills it when the process ends.
        std::thread::spawn(move || {
            let result = spawn_host(&host, &sd, &env);
            let _ = tx.send(result);
            loop {
                std::thread::park();
            }
        });
        let (child, port) = rx.recv().expect("spawner thread");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let svc = Service {
            base: format!("http://{addr}"),
            addr,
            state_dir,
            child: Mutex::new(child),
        };
        svc.wait_ready();
        svc
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if TcpStream::connect(self.addr).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait()
            {
                panic!("glance-host exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("glance-host did not start listening on {}", self.addr);
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
}

impl Drop for Service {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn spawn_host(host: &Path, state_dir: &Path, env: &[(String, String)]) -> (Child, u16) {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    // Like the repository's runtime-config.toml, but with the image data
    // store inside this test's own state directory.
    let runtime_config = state_dir.join("runtime-config.toml");
    std::fs::write(
        &runtime_config,
        format!(
            "[key_value_store.image_data]\ntype = \"spin\"\npath = \"{}\"\n",
            state_dir.join("image_data.db").display()
        ),
    )
    .expect("runtime config");
    let mut cmd = Command::new(host);
    cmd.args(["up", "--from"])
        .arg(root().join("spin.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--state-dir"])
        .arg(state_dir)
        .arg("--runtime-config-file")
        .arg(&runtime_config)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: prctl is async-signal-safe; the closure touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    (cmd.spawn().expect("spawn glance-host"), port)
}

impl Service {
    /// The host's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// The host's resident memory in bytes (VmRSS).
    pub fn rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmRSS")
    }

    /// Number of image data chunks in the key-value store (read straight
    /// from the store's SQLite file), optionally only those under `prefix`.
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
}

/// A shared service for the tests of one test binary, started on first use.
pub fn shared() -> &'static Service {
    static SVC: OnceLock<Service> = OnceLock::new();
    SVC.get_or_init(Service::start)
}

/// A fresh project id, so each test sees only its own images.
pub fn new_project() -> String {
    format!("proj-{}", uuid_like())
}

/// A random UUID string.
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

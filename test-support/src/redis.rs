//! A real `redis-server` on a free loopback port, for tests of outbound Redis.
//!
//! The server comes from Debian's packages, installed once into the test cache
//! ([`crate::cache`]) without touching the system: `apt-get download` fetches
//! `redis-server`, `redis-tools` and the libraries they need that a base system
//! lacks, `dpkg -x` unpacks them under `cache_dir()/redis-<version>/`, and the
//! binary runs from there with `LD_LIBRARY_PATH` pointing at the unpacked
//! libraries. `$REDIS_SERVER` names another binary to use instead.
//!
//! [`RedisServer::start`] runs it in a temporary directory (no persistence, no
//! protected mode) and waits until it answers `PING`; it is killed on drop.
//! [`Subscriber`] is a plain RESP client subscribed to a channel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::cache::{cache_dir, cache_lock};
use crate::process::spawn_tied;
use crate::{free_port, TempDir};

/// The Debian packages unpacked into the cache: the server (a symlink in
/// `redis-server` to the binary in `redis-tools`) and the libraries of
/// `apt-cache depends redis-tools` that a minimal system may not have.
const PACKAGES: &[&str] = &[
    "redis-server",
    "redis-tools",
    "libjemalloc2",
    "liblzf1",
    "libatomic1",
];

/// Bumped when the install layout changes.
const LAYOUT: &str = "redis-1";

/// The `redis-server` binary and the library directory it needs.
#[derive(Clone, Debug)]
pub struct RedisInstall {
    /// The `redis-server` executable.
    pub bin: PathBuf,
    /// For `LD_LIBRARY_PATH` (`None` for `$REDIS_SERVER`).
    pub lib_dir: Option<PathBuf>,
}

/// `$REDIS_SERVER`, else the cached unpack of Debian's packages (made on
/// first use).
pub fn install() -> &'static RedisInstall {
    static INSTALL: OnceLock<RedisInstall> = OnceLock::new();
    INSTALL.get_or_init(|| {
        if let Some(bin) = std::env::var_os("REDIS_SERVER").filter(|b| !b.is_empty()) {
            return RedisInstall {
                bin: PathBuf::from(bin),
                lib_dir: None,
            };
        }
        let dir = cache_dir().join(LAYOUT);
        let ready = dir.join(".installed");
        if !ready.exists() {
            let _lock = cache_lock(LAYOUT);
            if !ready.exists() {
                unpack(&dir);
                std::fs::write(&ready, b"ok").expect("marker");
            }
        }
        RedisInstall {
            bin: dir.join("root/usr/bin/redis-server"),
            lib_dir: Some(dir.join("root/usr/lib/x86_64-linux-gnu")),
        }
    })
}

fn unpack(dir: &Path) {
    let started = Instant::now();
    eprintln!(
        "fetching redis-server from Debian's packages into {} (once; cached)",
        dir.display()
    );
    let _ = std::fs::remove_dir_all(dir);
    let debs = dir.join("debs");
    let root = dir.join("root");
    std::fs::create_dir_all(&debs).expect("redis cache dir");
    std::fs::create_dir_all(&root).expect("redis cache dir");
    let download = || {
        Command::new("apt-get")
            .arg("download")
            .args(PACKAGES)
            .current_dir(&debs)
            .output()
            .expect("run apt-get download (Debian's apt is needed to fetch redis-server)")
    };
    let mut out = download();
    if !out.status.success() {
        // A fresh machine may have no package lists yet.
        let update = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .expect("run apt-get update");
        assert!(update.success(), "apt-get update failed");
        out = download();
    }
    assert!(
        out.status.success(),
        "apt-get download {PACKAGES:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for deb in std::fs::read_dir(&debs).expect("debs") {
        let deb = deb.expect("deb").path();
        let ok = Command::new("dpkg")
            .arg("-x")
            .arg(&deb)
            .arg(&root)
            .status()
            .expect("run dpkg -x");
        assert!(ok.success(), "dpkg -x {} failed", deb.display());
    }
    let bin = root.join("usr/bin/redis-server");
    assert!(bin.exists(), "{} missing after unpacking", bin.display());
    eprintln!("redis-server: unpacked in {:.1?}", started.elapsed());
}

/// A running `redis-server` on loopback (killed on drop).
pub struct RedisServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a server on a free port in a fresh directory and waits (up to
    /// 10 s) until it answers `PING`.
    pub fn start() -> RedisServer {
        let inst = install();
        let dir = TempDir::new("redis");
        let port = free_port();
        let mut cmd = Command::new(&inst.bin);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
        ])
        .arg("--dir")
        .arg(&dir)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some(lib) = &inst.lib_dir {
            cmd.env("LD_LIBRARY_PATH", lib);
        }
        let child = spawn_tied(cmd, libc::SIGKILL)
            .unwrap_or_else(|e| panic!("spawn {}: {e}", inst.bin.display()));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let mut server = RedisServer {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("redis-server exited early: {status}");
            }
            if server.command(&["PING"]).is_ok_and(|r| r == "+PONG") {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Runs one command on a new connection; returns the reply's first line
    /// (`+OK`, `:1`, `$3`...) followed by a bulk string's content, if any.
    pub fn command(&self, args: &[&str]) -> std::io::Result<String> {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut r = BufReader::new(stream);
        r.get_mut().write_all(&encode(args))?;
        let line = read_line(&mut r)?;
        if let Some(n) = line.strip_prefix('$') {
            if let Ok(n) = n.parse::<usize>() {
                let mut buf = vec![0u8; n + 2];
                r.read_exact(&mut buf)?;
                buf.truncate(n);
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
        }
        Ok(line)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches("\r\n").to_string())
}

/// A connection subscribed to one channel.
pub struct Subscriber {
    r: BufReader<TcpStream>,
}

impl Subscriber {
    /// Subscribes to `channel` on `server` (returns once Redis confirmed it).
    pub fn new(server: &RedisServer, channel: &str) -> Subscriber {
        let stream = TcpStream::connect(server.addr).expect("connect to redis");
        let mut r = BufReader::new(stream);
        r.get_mut()
            .write_all(&encode(&["SUBSCRIBE", channel]))
            .expect("SUBSCRIBE");
        let mut s = Subscriber { r };
        let confirm = s.read_array().expect("SUBSCRIBE reply");
        assert_eq!(confirm.first().map(String::as_str), Some("subscribe"));
        s
    }

    /// The next message published on the channel, within `timeout`.
    pub fn next_message(&mut self, timeout: Duration) -> std::io::Result<String> {
        self.r.get_ref().set_read_timeout(Some(timeout))?;
        loop {
            let items = self.read_array()?;
            if items.first().map(String::as_str) == Some("message") && items.len() == 3 {
                return Ok(items[2].clone());
            }
        }
    }

    fn read_array(&mut self) -> std::io::Result<Vec<String>> {
        let head = read_line(&mut self.r)?;
        let n: usize = head
            .strip_prefix('*')
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("expected an array, got {head:?}")))?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let line = read_line(&mut self.r)?;
            if let Some(len) = line.strip_prefix('$').and_then(|l| l.parse::<usize>().ok()) {
                let mut buf = vec![0u8; len + 2];
                self.r.read_exact(&mut buf)?;
                buf.truncate(len);
                items.push(String::from_utf8_lossy(&buf).into_owned());
            } else {
                items.push(line.trim_start_matches([':', '+']).to_string());
            }
        }
        Ok(items)
    }
}

//! Shared test support: builds the probe component, starts `glance-host` on a free
//! loopback port with a temporary state directory, and speaks just enough HTTP/1.1.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The workspace root (parent of the `host` package).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host has a parent")
        .to_path_buf()
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else `cargo metadata`'s.
pub fn target_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(d) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
            let d = PathBuf::from(d);
            return if d.is_absolute() {
                d
            } else {
                workspace_root().join(d)
            };
        }
        let out = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(workspace_root())
            .output()
            .expect("run cargo metadata");
        assert!(out.status.success(), "cargo metadata failed");
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
        PathBuf::from(meta["target_directory"].as_str().expect("target_directory"))
    })
    .clone()
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

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh empty directory named after `label`.
    pub fn new(label: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "glance-host-test-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// A path inside the directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    std::fs::write(dir.path("spin.toml"), edit(probe_manifest_text())).expect("write manifest");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/probe-runtime-config.toml"),
        dir.path("rc.toml"),
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
                dir.path("spin.toml").display().to_string(),
                "--listen".into(),
                "127.0.0.1:0".into(),
                "--state-dir".into(),
                dir.path("state").display().to_string(),
                "--runtime-config-file".into(),
                dir.path("rc.toml").display().to_string(),
            ],
            env: vec![(
                "GLANCE_HOST_CACHE_DIR".into(),
                test_cache_dir().display().to_string(),
            )],
            cwd: dir.0.clone(),
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

/// An HTTP response, fully read.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header (lower-cased name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A response whose body is read incrementally.
pub struct Streaming {
    /// Status code.
    pub status: u16,
    /// Header (lower-cased name, value) pairs.
    pub headers: Vec<(String, String)>,
    /// The body (chunked encoding removed).
    pub body: BodyReader,
}

/// Reads a response body: `Content-Length`, chunked, or until close.
pub struct BodyReader {
    inner: BufReader<TcpStream>,
    mode: BodyMode,
}

enum BodyMode {
    Length(u64),
    Chunked { left: u64, done: bool },
    Close,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match &mut self.mode {
            BodyMode::Length(0) => Ok(0),
            BodyMode::Length(left) => {
                let max = (*left).min(buf.len() as u64) as usize;
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
            BodyMode::Close => self.inner.read(buf),
            BodyMode::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let mut line = String::new();
                    self.inner.read_line(&mut line)?;
                    if line.trim().is_empty() {
                        // CRLF after the previous chunk.
                        line.clear();
                        self.inner.read_line(&mut line)?;
                    }
                    let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                        .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
                    if size == 0 {
                        // Trailers, then the final CRLF.
                        loop {
                            let mut t = String::new();
                            if self.inner.read_line(&mut t)? == 0 || t.trim().is_empty() {
                                break;
                            }
                        }
                        *done = true;
                        return Ok(0);
                    }
                    *left = size;
                }
                let max = (*left).min(buf.len() as u64) as usize;
                let n = self.inner.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}

fn read_head(stream: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    stream.read_line(&mut status_line).expect("status line");
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).expect("header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (status, headers)
}

/// Sends a request head (plus an optional body) and returns the response with a body reader.
pub fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Streaming {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("write head");
    if let Some(b) = body {
        stream.write_all(b).expect("write body");
    }
    read_response(stream, method == "HEAD")
}

/// Reads a response from a connection whose request has been written.
pub fn read_response(stream: TcpStream, head_only: bool) -> Streaming {
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mode = if head_only || status == 204 || status == 304 {
        BodyMode::Length(0)
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        BodyMode::Chunked {
            left: 0,
            done: false,
        }
    } else if let Some(len) = find("content-length") {
        BodyMode::Length(len.parse().expect("content-length"))
    } else {
        BodyMode::Close
    };
    Streaming {
        status,
        headers,
        body: BodyReader {
            inner: reader,
            mode,
        },
    }
}

/// One request, fully read.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut s = send(addr, method, path, headers, body);
    let mut body = Vec::new();
    s.body.read_to_end(&mut body).expect("read body");
    Response {
        status: s.status,
        headers: s.headers,
        body,
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

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A field of `/proc/<pid>/status` in KiB (Linux), e.g. `VmHWM`.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(&format!("{field}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A keep-alive HTTP/1.1 connection for many sequential requests.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl Conn {
    /// Connects to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        let writer = TcpStream::connect(addr).expect("connect");
        writer.set_nodelay(true).expect("nodelay");
        let reader = BufReader::new(writer.try_clone().expect("clone"));
        Self {
            reader,
            writer,
            host: addr.to_string(),
        }
    }

    /// `GET path` on this connection: status and body.
    pub fn get(&mut self, path: &str) -> (u16, Vec<u8>) {
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.host
        )
        .expect("write");
        let (status, headers) = read_head(&mut self.reader);
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).expect("chunk size");
                let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk).expect("chunk");
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else if let Some(len) = find("content-length") {
            body.resize(len.parse().expect("length"), 0);
            self.reader.read_exact(&mut body).expect("body");
        }
        (status, body)
    }
}

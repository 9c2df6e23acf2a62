//! Real Python clients (python-glanceclient, openstacksdk) and moto's S3
//! server, from a virtualenv the tests create on first use in the test cache
//! ([`crate::cache`]), keyed by the content of tests/clients/requirements.txt.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::cache::cached_venv;
use crate::http::Payload;
use crate::process::spawn_tied;
use crate::{free_port, root, Client, Service, TempDir};

/// The virtualenv with the pinned clients, created (once) if missing.
pub fn venv() -> &'static Path {
    venv_for("tests/clients/requirements.txt")
}

/// A virtualenv with the packages of `requirements` (a path relative to the
/// repository), created once per content of that file and reused across runs.
pub fn venv_for(requirements: &str) -> &'static Path {
    cached_venv("venv", requirements)
}

/// Runs the openstacksdk script tests/clients/`script` with `args` in a fresh
/// home and returns the JSON document it prints; panics with its stderr if it
/// fails.
#[track_caller]
pub fn sdk_script(script: &str, args: &[&str]) -> serde_json::Value {
    client_script(script, args)
}

/// Runs the Python script tests/clients/`script` (openstacksdk,
/// python-glanceclient's Python API) with the clients' virtualenv and `args`
/// in a fresh home and returns the JSON document it prints; panics with its
/// stderr if it fails.
#[track_caller]
pub fn client_script(script: &str, args: &[&str]) -> serde_json::Value {
    let home = TempDir::new("sdk-home");
    let out = Command::new(venv().join("bin/python"))
        .arg(root().join("tests/clients").join(script))
        .args(args)
        .env("HOME", &home)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Result of a client command.
pub struct Run {
    /// Exit status was 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The result of a finished command.
    pub fn from(out: Output) -> Run {
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn expect_ok(&self) -> &str {
        assert!(
            self.ok,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
}

/// Runs the `glance` CLI against `svc` (no Keystone: endpoint and token given
/// directly, as `--os-image-url` + `--os-auth-token` allow). Its stdin is
/// closed, because glanceclient reads a non-terminal stdin as image data.
pub fn glance(svc: &Service, args: &[&str]) -> Run {
    glance_as(svc, &["--os-auth-token", "noauth-token"], args)
}

/// Runs the `glance` CLI against `svc` with the given authentication options
/// (e.g. Keystone's `--os-auth-url ... --os-username ...`).
pub fn glance_as(svc: &Service, auth: &[&str], args: &[&str]) -> Run {
    let home = TempDir::new("glance-home");
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" <&-")
        .arg(venv().join("bin/glance"))
        .args(["--os-image-url", &svc.base])
        .args(auth)
        .args(args)
        .env("HOME", &home)
        .env_remove("OS_AUTH_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run glance");
    Run::from(out)
}

/// Python that runs its arguments as a command on a pseudo-terminal and
/// exits with its status (the output comes through on stdout).
const ON_A_TERMINAL: &str =
    "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))";

/// Runs `glance --os-image-api-version 1` against `svc` (endpoint and token
/// given directly) on a pseudo-terminal: the v1 CLI reads any stdin that is
/// not a terminal as image data, and with stdin closed `image-update` of an
/// active image fails in the client (`sys.stdin` is None). Its stderr comes
/// out on [`Run::stdout`] too, lines end in `\n`.
pub fn glance_v1(svc: &Service, args: &[&str]) -> Run {
    let home = TempDir::new("glance-home");
    let out = Command::new(venv().join("bin/python"))
        .args(["-c", ON_A_TERMINAL])
        .arg(venv().join("bin/glance"))
        .args(["--os-image-api-version", "1", "--os-image-url", &svc.base])
        .args(["--os-auth-token", "noauth-token"])
        .args(args)
        .env("HOME", &home)
        .env_remove("OS_AUTH_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run glance on a terminal");
    let mut run = Run::from(out);
    run.stdout = run.stdout.replace("\r\n", "\n");
    run
}

/// Parses glanceclient's `| Property | Value |` table into pairs.
pub fn table(stdout: &str) -> Vec<Vec<String>> {
    stdout
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// The value of `key` in a two-column property table (glanceclient wraps long
/// values onto continuation rows with an empty first column; they are joined).
pub fn prop(stdout: &str, key: &str) -> Option<String> {
    let rows = table(stdout);
    let start = rows
        .iter()
        .position(|r| r.first().map(String::as_str) == Some(key))?;
    let mut value = rows[start].get(1).cloned().unwrap_or_default();
    for row in &rows[start + 1..] {
        match (row.first().map(String::as_str), row.get(1)) {
            (Some(""), Some(more)) => value.push_str(more),
            _ => break,
        }
    }
    Some(value)
}

/// A moto S3 server on a free loopback port (killed when dropped).
pub struct S3Server {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    child: std::process::Child,
}

impl S3Server {
    /// Starts moto in server mode and creates `bucket`. Ready means it
    /// answered an HTTP request (it accepts connections before it serves
    /// them); one that exited (its port taken meanwhile) starts again on
    /// another port.
    pub fn start(bucket: &str) -> S3Server {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let (addr, child) = loop {
            let port = free_port();
            let mut cmd = Command::new(venv().join("bin/moto_server"));
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = spawn_tied(cmd, libc::SIGKILL).expect("moto_server");
            let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
            let ready = loop {
                assert!(std::time::Instant::now() < deadline, "moto did not start");
                if answers_http(addr) {
                    break true;
                }
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break false;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            };
            if ready {
                break (addr, child);
            }
        };
        let s3 = S3Server {
            endpoint: format!("http://{addr}"),
            child,
        };
        let r = s3
            .client()
            .send("PUT", &format!("/{bucket}"), &[], Payload::None);
        assert_eq!(r.status, 200, "create bucket: {}", r.text());
        s3
    }

    /// A plain HTTP client for the S3 API (moto accepts unsigned requests).
    pub fn client(&self) -> Client {
        Client::new(
            self.endpoint
                .trim_start_matches("http://")
                .parse()
                .expect("addr"),
        )
    }

    /// (key, ETag) of every object in `bucket`.
    pub fn objects(&self, bucket: &str) -> Vec<(String, String)> {
        let r = self.client().get(&format!("/{bucket}?list-type=2"));
        assert_eq!(r.status, 200);
        let text = r.text();
        text.split("<Contents>")
            .skip(1)
            .map(|c| {
                let tag = |t: &str| {
                    c.split(&format!("<{t}>"))
                        .nth(1)
                        .and_then(|x| x.split(&format!("</{t}>")).next())
                        .unwrap_or("")
                        .replace("&#34;", "\"")
                        .replace("&quot;", "\"")
                };
                (tag("Key"), tag("ETag"))
            })
            .collect()
    }
}

/// Whether something at `addr` answers `GET /` with an HTTP status line.
fn answers_http(addr: std::net::SocketAddr) -> bool {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 8];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A real Keystone (PyPI `keystone`, pinned in tests/keystone/requirements.txt)
//! for the end-to-end tests: SQLite, fernet tokens, served by gunicorn on a
//! loopback port. The virtualenv is made on first use and cached like the
//! clients' one (`$GLANCE_TEST_CACHE` or `~/.cache/glance-edge`, keyed by the
//! requirements' content); every [`Keystone`] gets a fresh configuration,
//! database and keys in its own temporary directory.
//!
//! Fixtures (domain "default", every password [`PASSWORD`]):
//! - project `admin`: user `admin` (role `admin`), as `keystone-manage bootstrap` makes it;
//! - project `service`: user `glance` (role `service`, which Keystone's default
//!   policy accepts for `identity:validate_token`);
//! - projects `alpha` and `beta`: users `<project>-member` (role `member`) and
//!   `<project>-reader` (role `reader`).
//!
//! Roles are bootstrap's, with its implied roles admin ⇒ manager ⇒ member ⇒
//! reader, so a member's token lists `member` and `reader`.
//! The deployment is made by tests/keystone/keystone_setup.py, run in the
//! gunicorn master by tests/keystone/keystone_wsgi.py before it loads Keystone.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::cache::cached_venv;
use crate::http::{probe, Payload, Response};
use crate::process::spawn_tied;
use crate::{root, Client, TempDir};

/// The password of every fixture user.
pub const PASSWORD: &str = "secret";
/// The service user that validates other users' tokens, and its project.
pub const SERVICE_USER: &str = "glance";
/// Project of [`SERVICE_USER`].
pub const SERVICE_PROJECT: &str = "service";
/// gunicorn workers (forked from a master that has loaded Keystone, so more
/// workers cost no start-up time).
const WORKERS: u32 = 2;

/// The directory of the repository's Keystone files.
fn files() -> PathBuf {
    root().join("tests/keystone")
}

/// The virtualenv with Keystone and gunicorn, created (once) if missing.
pub fn venv() -> &'static Path {
    cached_venv("keystone-venv", "tests/keystone/requirements.txt")
}

/// A running Keystone (gunicorn master and workers; stopped when dropped).
pub struct Keystone {
    /// `http://127.0.0.1:PORT` (no `/v3`).
    pub url: String,
    /// Socket address of the server.
    pub addr: SocketAddr,
    /// The deployment: keystone.conf, keystone.db, keys, keystone.log,
    /// gunicorn.log, fixtures.json (kept if a test fails).
    pub dir: TempDir,
    /// Token lifetime in seconds.
    pub expiration: u64,
    fixtures: Value,
    child: Mutex<Child>,
}

impl Keystone {
    /// A Keystone issuing tokens valid for an hour.
    pub fn start() -> Keystone {
        Self::start_with_expiration(3600)
    }

    /// A Keystone issuing tokens valid for `secs` seconds.
    pub fn start_with_expiration(secs: u64) -> Keystone {
        Self::start_with(secs, WORKERS)
    }

    /// A Keystone issuing tokens valid for `secs` seconds, served by `workers`
    /// gunicorn workers. One worker serializes requests: with SQLite, workers
    /// writing at once (Tempest creating and deleting users and projects in
    /// parallel) can fail with "database is locked".
    pub fn start_with(secs: u64, workers: u32) -> Keystone {
        let python = venv();
        let dir = TempDir::new("keystone");
        // The socket is bound here and handed to gunicorn (`fd://N`), so the
        // port cannot be taken by someone else in between.
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind keystone port");
        let addr = listener.local_addr().expect("keystone addr");
        // Spawned tied to the test process (gunicorn ends with it).
        let child = spawn_gunicorn(python, &dir, secs, workers, &listener);
        drop(listener);
        let mut ks = Keystone {
            url: format!("http://{addr}"),
            addr,
            dir,
            expiration: secs,
            fixtures: Value::Null,
            child: Mutex::new(child),
        };
        ks.wait_ready();
        let fixtures = std::fs::read(ks.dir.join("fixtures.json"))
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            .unwrap_or_else(|e| panic!("keystone fixtures.json: {e}\n{}", ks.logs()));
        ks.fixtures = fixtures;
        ks
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Ok(Some(status)) = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_wait()
            {
                panic!(
                    "keystone (gunicorn) exited early: {status}\n{}",
                    self.logs()
                );
            }
            if probe(self.addr, "/v3", Duration::from_secs(5)) == Some(200) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "keystone did not answer GET /v3 on {}\n{}",
                    self.addr,
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The tails of gunicorn's and Keystone's logs (for failure messages).
    pub fn logs(&self) -> String {
        let tail = |name: &str| {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- {}/gunicorn.log (tail):\n{}\n--- keystone.log (tail):\n{}",
            self.dir.display(),
            tail("gunicorn.log"),
            tail("keystone.log")
        )
    }

    /// A raw HTTP client for Keystone.
    pub fn client(&self) -> Client {
        Client::new(self.addr)
    }

    /// The id of a fixture project.
    #[track_caller]
    pub fn project_id(&self, name: &str) -> String {
        self.fixture("projects", name)
    }

    /// The id of a fixture user.
    #[track_caller]
    pub fn user_id(&self, name: &str) -> String {
        self.fixture("users", name)
    }

    /// The id of a role (admin, manager, member, reader, service).
    #[track_caller]
    pub fn role_id(&self, name: &str) -> String {
        self.fixture("roles", name)
    }

    #[track_caller]
    fn fixture(&self, kind: &str, name: &str) -> String {
        self.fixtures[kind][name]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "no keystone fixture {kind} {name:?}: {}",
                    self.fixtures[kind]
                )
            })
            .to_string()
    }

    /// Issues a project-scoped token (password auth, domain "default");
    /// returns the `X-Subject-Token`.
    #[track_caller]
    pub fn token(&self, user: &str, password: &str, project: &str) -> String {
        let r = self.issue(user, password, project);
        assert_eq!(r.status, 201, "token for {user} in {project}: {}", r.text());
        r.header("x-subject-token")
            .unwrap_or_else(|| panic!("no X-Subject-Token for {user}: {:?}", r.headers))
            .to_string()
    }

    /// POST /v3/auth/tokens as `token` does, returning the raw response.
    pub fn issue(&self, user: &str, password: &str, project: &str) -> Response {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}
        }});
        self.client().post_json("/v3/auth/tokens", &body)
    }

    /// A token of the service user (`glance` in project `service`).
    #[track_caller]
    pub fn service_token(&self) -> String {
        self.token(SERVICE_USER, PASSWORD, SERVICE_PROJECT)
    }

    /// A token of `admin` in project `admin`.
    #[track_caller]
    pub fn admin_token(&self) -> String {
        self.token("admin", PASSWORD, "admin")
    }

    /// GET /v3/auth/tokens: validates `subject` with `auth_token`.
    pub fn validate(&self, auth_token: &str, subject: &str) -> Response {
        self.client().send(
            "GET",
            "/v3/auth/tokens",
            &[("X-Auth-Token", auth_token), ("X-Subject-Token", subject)],
            Payload::None,
        )
    }

    /// Revokes a token (DELETE /v3/auth/tokens with a fresh admin token).
    #[track_caller]
    pub fn revoke(&self, token: &str) {
        let admin = self.admin_token();
        let r = self.client().send(
            "DELETE",
            "/v3/auth/tokens",
            &[("X-Auth-Token", &admin), ("X-Subject-Token", token)],
            Payload::None,
        );
        assert_eq!(r.status, 204, "revoke token: {}", r.text());
    }

    /// gunicorn master's process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap_or_else(|e| e.into_inner()).id()
    }

    /// A system-scoped token of `admin`: the scope Keystone's default policy
    /// means for catalog administration (this Keystone accepts a
    /// project-scoped admin token as well).
    #[track_caller]
    pub fn system_admin_token(&self) -> String {
        let body = json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
            "scope": {"system": {"all": true}}
        }});
        let r = self.client().post_json("/v3/auth/tokens", &body);
        assert_eq!(r.status, 201, "system-scoped admin token: {}", r.text());
        r.header("x-subject-token")
            .expect("X-Subject-Token")
            .to_string()
    }

    /// Adds a service of `service_type` with a public endpoint at `url` (no
    /// region) to the catalog, as `openstack service create` and `openstack
    /// endpoint create ... public URL` do; clients that look endpoints up in
    /// the catalog then find it. Returns the service id.
    #[track_caller]
    pub fn register_endpoint(&self, service_type: &str, url: &str) -> String {
        let admin = self
            .client()
            .with_header("X-Auth-Token", &self.system_admin_token());
        let r = admin.post_json(
            "/v3/services",
            &json!({"service": {"type": service_type, "name": service_type, "enabled": true}}),
        );
        assert_eq!(r.status, 201, "create {service_type} service: {}", r.text());
        let service_id = r.json()["service"]["id"]
            .as_str()
            .expect("service id")
            .to_string();
        let r = admin.post_json(
            "/v3/endpoints",
            &json!({"endpoint": {"service_id": service_id, "interface": "public",
                                 "url": url, "enabled": true}}),
        );
        assert_eq!(
            r.status,
            201,
            "create {service_type} endpoint: {}",
            r.text()
        );
        service_id
    }
}

impl Drop for Keystone {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        // SIGINT: gunicorn's quick shutdown (the master stops its workers).
        // SAFETY: signalling our own child process.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        // `dir` is removed after this, unless the thread is panicking.
    }
}

fn spawn_gunicorn(
    python: &Path,
    dir: &Path,
    expiration: u64,
    workers: u32,
    listener: &TcpListener,
) -> Child {
    use std::os::unix::process::CommandExt;
    let fd = std::os::fd::AsRawFd::as_raw_fd(listener);
    let log = std::fs::File::create(dir.join("gunicorn.log")).expect("gunicorn.log");
    let mut cmd = Command::new(python.join("bin/gunicorn"));
    cmd.arg("--config")
        .arg(files().join("gunicorn_conf.py"))
        .arg("--pythonpath")
        .arg(files())
        .args(["--workers", &workers.to_string()])
        .args(["--bind", &format!("fd://{fd}")])
        .arg("keystone_wsgi:application")
        .current_dir(dir)
        .env("OS_KEYSTONE_CONFIG_DIR", dir)
        .env_remove("OS_KEYSTONE_CONFIG_FILES")
        .env("GLANCE_TEST_KEYSTONE_EXPIRATION", expiration.to_string())
        // Nothing written into the repository (tests/keystone/__pycache__).
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Eventlet's deprecation warning on every import.
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    // SAFETY: fcntl is async-signal-safe; the closure touches no shared state.
    unsafe {
        cmd.pre_exec(move || {
            // Hand the listening socket to gunicorn (`fd://N`) across exec.
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    spawn_tied(cmd, libc::SIGKILL).expect("spawn gunicorn")
}

//! Network namespaces of a test's own, for clients whose address is not
//! loopback (the noauth loopback check). Needs root (`CAP_SYS_ADMIN` and
//! `CAP_NET_ADMIN`) and iproute2's `ip`; [`Netns::new`] panics with a message
//! saying so when `ip netns add` is refused.
//!
//! - [`Netns`]: `ip netns add glance-<pid>-<n>` with `lo` up, deleted on drop
//!   (also while a test panics); namespaces left by a test process that no
//!   longer runs (SIGKILL) are deleted by the next [`Netns::new`].
//! - [`Netns::veth`]: a veth pair between two namespaces, an address on each end.
//! - [`Netns::command`]: a command run inside (`ip netns exec NAME ...`);
//!   [`Netns::run`]: a closure run on a thread inside (sockets it opens belong
//!   to the namespace).
//!
//! A service starts inside one with [`ServiceBuilder::netns`](crate::ServiceBuilder::netns).

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace, deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

/// Runs `ip ARGS`; the error names the command and what `ip` said.
fn ip(args: &[&str]) -> Result<Output, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("run `ip {}`: {e} (is iproute2 installed?)", args.join(" ")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[track_caller]
fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// Deletes `glance-<pid>-<n>` namespaces whose process is gone.
fn remove_stale() {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let pid = name
            .strip_prefix("glance-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = ip(&["netns", "del", name]);
            }
        }
    }
}

impl Netns {
    /// A new namespace `glance-<pid>-<n>` with `lo` up. Panics with the
    /// reason when namespaces cannot be made here (not root, no `ip`, a
    /// container without `CAP_SYS_ADMIN`).
    pub fn new() -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        remove_stale();
        let name = format!(
            "glance-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        if let Err(e) = ip(&["netns", "add", &name]) {
            panic!(
                "cannot make a network namespace: {e}\n\
                 This test needs a client whose address is not loopback, in a network \
                 namespace of its own: run it as root (CAP_SYS_ADMIN, CAP_NET_ADMIN) \
                 with iproute2 installed."
            );
        }
        let ns = Netns { name };
        ip_ok(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Its name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A veth pair from this namespace to `peer`: `addr` (e.g. 192.0.2.1/24)
    /// on this end, `peer_addr` on the other, both up. The ends are named
    /// `veth0` here and `veth1` there.
    pub fn veth(&self, addr: &str, peer: &Netns, peer_addr: &str) {
        ip_ok(&[
            "-n", &self.name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1",
            "netns", &peer.name,
        ]);
        for (ns, dev, a) in [(self, "veth0", addr), (peer, "veth1", peer_addr)] {
            ip_ok(&["-n", &ns.name, "addr", "add", a, "dev", dev]);
            ip_ok(&["-n", &ns.name, "link", "set", dev, "up"]);
        }
    }

    /// `program` run inside the namespace: `ip netns exec NAME program`
    /// (`ip` execs it: the child is the program itself).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread that has joined the namespace (`setns`), e.g. a
    /// [`Client`](crate::Client) whose connections start there.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        enter_and_run(&self.name, f)
    }
}

/// Runs `f` on a new thread inside the named namespace.
pub(crate) fn enter_and_run<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(name);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Moves the calling thread into the named network namespace.
fn enter(name: &str) {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{name}");
    let f = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a namespace file descriptor we hold; it changes only
    // this thread's network namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        panic!("setns {path}: {}", std::io::Error::last_os_error());
    }
}

impl Default for Netns {
    fn default() -> Self {
        Netns::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Its veth ends go with it; processes still inside keep it alive
        // (nameless) until they end.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            crate::report(&format!("netns cleanup: {e}"));
        }
    }
}

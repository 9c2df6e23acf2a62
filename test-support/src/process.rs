//! Child processes tied to the test process: each is spawned with
//! `PR_SET_PDEATHSIG` from one thread that lives as long as the process (the
//! signal fires when the *thread* that spawned a child ends, so spawning from
//! a test's own thread would end the child with that test).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

type Job = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that it gets `signal` when the test process ends.
pub fn spawn_tied(mut cmd: Command, signal: libc::c_int) -> io::Result<Child> {
    // SAFETY: prctl is async-signal-safe; the closure touches no shared state.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("test-support-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
                // The sender lives in a static: never reached while the process runs.
                loop {
                    std::thread::park();
                }
            })
            .expect("spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("spawner thread gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("spawner thread gone"))?
}

/// Process groups to kill with SIGKILL when the process exits normally
/// (services in statics are never dropped).
static GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

extern "C" fn kill_groups() {
    if let Ok(groups) = GROUPS.lock() {
        for &g in groups.iter() {
            // SAFETY: signalling process groups this process created.
            unsafe {
                libc::killpg(g, libc::SIGKILL);
            }
        }
    }
}

/// Puts the child of `cmd` in a process group of its own (its id), so that
/// [`kill_group`] ends it with every process it starts.
pub fn own_group(cmd: &mut Command) {
    cmd.process_group(0);
}

/// Remembers `pgid` to be killed at exit if it is still there.
pub fn register_group(pgid: u32) {
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(kill_groups);
        }
    });
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(pgid as i32);
}

/// SIGKILLs the process group `pgid` and forgets it.
pub fn kill_group(pgid: u32) {
    // SAFETY: signalling a process group this process created.
    unsafe {
        libc::killpg(pgid as i32, libc::SIGKILL);
    }
    GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&g| g != pgid as i32);
}

/// The processes whose parent is `pid` (from /proc).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    // pid (comm) state ppid ...; comm may hold spaces.
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

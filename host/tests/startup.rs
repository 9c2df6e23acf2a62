//! Start-up: invalid applications are refused with a clear message; build commands; the
//! compiled-component cache.

mod common;

use std::time::Instant;

use common::*;
use test_support::TempDir;

/// Starts the host on the edited probe app and expects it to exit; returns stderr.
fn refused(label: &str, edit: impl FnOnce(String) -> String) -> String {
    let app = probe_app(label, edit);
    match HostCmd::up(&app).try_start() {
        Ok(_) => panic!("{label}: the host started"),
        Err(e) => e,
    }
}

#[test]
fn trigger_naming_an_unknown_component_is_refused() {
    let err = refused("bad-trigger", |m| {
        m.replace(
            "route = \"/exact\"\ncomponent = \"exact\"",
            "route = \"/exact\"\ncomponent = \"ghost\"",
        )
    });
    assert!(
        err.contains("component `ghost`, which is not defined"),
        "{err}"
    );
}

#[test]
fn duplicate_route_is_refused() {
    let err = refused("dup-route", |m| {
        m.replace("route = \"/exact\"", "route = \"/v2/images/...\"")
    });
    assert!(err.contains("duplicate route `/v2/images/...`"), "{err}");
}

#[test]
fn template_naming_an_undefined_variable_is_refused() {
    let err = refused("bad-template", |m| {
        m.replace("\"{{ greeting }}\"", "\"{{ nonexistent }}\"")
    });
    assert!(err.contains("unknown variable \"nonexistent\""), "{err}");
}

#[test]
fn required_variable_needs_a_value() {
    let edit = |m: String| m.replace("who = { default = \"world\" }", "who = { required = true }");
    let err = refused("required-var", edit);
    assert!(
        err.contains("no provider resolved required variable(s)"),
        "{err}"
    );
    assert!(err.contains("\"who\""), "{err}");
    // …and starts once the environment provides it.
    let app = probe_app("required-var-given", edit);
    let host = HostCmd::up(&app).env("SPIN_VARIABLE_WHO", "env").start();
    assert_eq!(
        host.get_json("/?var=combined")["var"]["ok"],
        "prefix-hello-env-suffix"
    );
}

#[test]
fn undefined_store_labels_are_refused() {
    let app = probe_app("undefined-kv", |m| m);
    // Without the runtime config, `extra` and `other` are not defined.
    std::fs::write(app.join("rc.toml"), "").unwrap();
    let err = HostCmd::up(&app).try_start().err().expect("refused");
    assert!(
        err.contains("unknown key_value_stores label \"extra\" for component \"probe\""),
        "{err}"
    );
    let app = probe_app("undefined-db", |m| {
        m.replace("key_value_stores = [\"default\", \"extra\"]", "")
    });
    std::fs::write(app.join("rc.toml"), "").unwrap();
    let err = HostCmd::up(&app).try_start().err().expect("refused");
    assert!(
        err.contains("One or more components use SQLite databases which are not defined"),
        "{err}"
    );
    assert!(
        err.contains("- Component probe uses database 'other'"),
        "{err}"
    );
}

#[test]
fn missing_wasm_and_bad_runtime_config_are_refused() {
    let err = refused("missing-wasm", |m| {
        m.replacen(".wasm\"", "-missing.wasm\"", 1)
    });
    assert!(err.contains("failed to read Wasm source"), "{err}");

    let app = probe_app("bad-rc", |m| m);
    std::fs::write(
        app.join("rc.toml"),
        "[key_value_store.extra]\ntype = \"redis\"\nurl = \"redis://x\"\n",
    )
    .unwrap();
    let err = HostCmd::up(&app).try_start().err().expect("refused");
    assert!(err.contains("supports only type \"spin\""), "{err}");
}

#[test]
fn component_importing_an_unprovided_interface_is_refused() {
    let dir = TempDir::new("bad-import");
    let wasm = wat::parse_str(
        r#"(component
             (import "spin:postgres/postgres@3.0.0" (instance (export "query" (func))))
           )"#,
    )
    .unwrap();
    std::fs::write(dir.join("bad.wasm"), wasm).unwrap();
    std::fs::write(
        dir.join("spin.toml"),
        "spin_manifest_version = 2\n[application]\nname = \"bad\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"bad\"\n[component.bad]\nsource = \"bad.wasm\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("rc.toml"), "").unwrap();
    let err = HostCmd::up(&dir).try_start().err().expect("refused");
    assert!(err.contains("spin:postgres/postgres@3.0.0"), "{err}");
    assert!(err.contains("component `bad`"), "{err}");
}

#[test]
fn build_runs_commands_and_stops_at_a_failure() {
    let dir = TempDir::new("build");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let manifest = |second: &str| {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"b\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"one\"\n\
             [component.one]\nsource = \"one.wasm\"\n[component.one.build]\ncommand = \"echo built > marker\"\n\
             [component.two]\nsource = \"two.wasm\"\n[component.two.build]\ncommand = [\"pwd > where\", {second:?}]\nworkdir = \"sub\"\n"
        )
    };
    std::fs::write(dir.join("spin.toml"), manifest("true")).unwrap();
    let (status, out, err) = HostCmd::raw(
        &[
            "build",
            "--from",
            &dir.join("spin.toml").display().to_string(),
        ],
        &dir,
    )
    .run();
    assert!(status.success(), "{out}\n{err}");
    assert!(
        out.contains("Building component one with `echo built > marker`"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("marker")).unwrap().trim(),
        "built"
    );
    let where_ = std::fs::read_to_string(dir.join("sub/where")).unwrap();
    assert!(where_.trim().ends_with("/sub"), "workdir is used: {where_}");

    std::fs::write(dir.join("spin.toml"), manifest("exit 3")).unwrap();
    let (status, _out, err) = HostCmd::raw(
        &[
            "build",
            "--from",
            &dir.join("spin.toml").display().to_string(),
        ],
        &dir,
    )
    .run();
    assert!(!status.success());
    assert!(
        err.contains("Build command for component two failed"),
        "{err}"
    );

    // `up --build` stops before serving when a build fails.
    let (status, _out, err) = HostCmd::raw(
        &[
            "up",
            "--build",
            "--from",
            &dir.join("spin.toml").display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        &dir,
    )
    .run();
    assert!(!status.success());
    assert!(
        err.contains("Build command for component two failed"),
        "{err}"
    );
}

#[test]
fn compiled_components_are_cached() {
    let app = probe_app("cache", |m| m);
    let cache = TempDir::new("cache-dir");
    let cold_started = Instant::now();
    let host = HostCmd::up(&app)
        .env("GLANCE_HOST_CACHE_DIR", &cache.display().to_string())
        .start();
    let cold = cold_started.elapsed();
    host.stop();
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one compiled probe, shared by all seven components"
    );

    let warm_started = Instant::now();
    let host = HostCmd::up(&app)
        .env("GLANCE_HOST_CACHE_DIR", &cache.display().to_string())
        .start();
    let warm = warm_started.elapsed();
    assert_eq!(host.get("/").status, 200);
    eprintln!("start-up: cold {cold:?}, warm {warm:?}");
    assert!(
        warm < cold,
        "warm start ({warm:?}) should beat cold ({cold:?})"
    );

    // A corrupt cache entry is recompiled, not fatal.
    host.stop();
    std::fs::write(entries[0].path(), b"garbage").unwrap();
    let host = HostCmd::up(&app)
        .env("GLANCE_HOST_CACHE_DIR", &cache.display().to_string())
        .start();
    assert_eq!(host.get("/").status, 200);
}

#[test]
fn port_in_use_is_reported() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let app = probe_app("port-in-use", |m| m);
    let (status, _out, err) = HostCmd::raw(
        &[
            "up",
            "--from",
            &app.join("spin.toml").display().to_string(),
            "--runtime-config-file",
            &app.join("rc.toml").display().to_string(),
            "--state-dir",
            &app.join("state").display().to_string(),
            "--listen",
            &addr,
        ],
        &app,
    )
    .run();
    assert!(!status.success());
    assert!(err.contains(&format!("{addr} is already in use")), "{err}");
}

/// Sets the soft limit on open files of process `pid`; returns the old limits.
fn set_nofile(pid: u32, soft: Option<u64>, old: Option<libc::rlimit>) -> libc::rlimit {
    let mut previous = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let new = match (soft, old) {
        (_, Some(o)) => o,
        (Some(n), None) => {
            // SAFETY: reading this process's limit into a local.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut previous) };
            libc::rlimit {
                rlim_cur: n,
                rlim_max: previous.rlim_max,
            }
        }
        (None, None) => unreachable!(),
    };
    // SAFETY: prlimit on a child process of this test, with valid pointers.
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, &mut previous) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    previous
}

#[test]
fn accept_errors_do_not_stop_the_server() {
    use std::net::TcpStream;
    use std::time::Duration;
    for runtime in runtimes() {
        let app = probe_app("accept-errors", |m| m);
        let probe = Probe::start(&app, runtime, &[]);
        let addr = probe.addr();
        let pid = probe.server_pid();
        let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64;
        // Room for a few connections, then accept fails (EMFILE).
        let old = set_nofile(pid, Some(open + 3), None);
        // (On Spin the listener may be gone before the last ones connect.)
        let conns: Vec<TcpStream> = (0..20)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        assert!(
            conns.len() > 3,
            "{}: {} connections",
            probe.name(),
            conns.len()
        );
        std::thread::sleep(Duration::from_millis(500));
        drop(conns);
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            if !s.is_empty() {
                set_nofile(pid, None, Some(old));
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let answer = test_support::http::probe(addr, "/after", Duration::from_secs(5));
        match runtime {
            test_support::Runtime::GlanceHost => {
                assert_eq!(answer, Some(200), "glance-host serves on");
                assert!(
                    probe.stderr().contains("accept failed"),
                    "{}",
                    probe.stderr()
                );
            }
            test_support::Runtime::Spin => {
                assert_eq!(
                    answer,
                    None,
                    "Spin's accept loop has ended: {}",
                    probe.stderr()
                );
            }
        }
    }
}

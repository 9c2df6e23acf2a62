//! Self-test of the service start-up (test-support's `Service`), on whichever
//! runtime `GLANCE_RUNTIME` chooses: what the other tests read off the
//! service (its state directory, process, logs) is the serving runtime's.

use serde_json::json;
use test_support::{Runtime, Service};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");

#[test]
fn restart_serves_the_same_state() {
    let svc = Service::start();
    let c = svc.client();
    let id = c
        .create_image(&json!({"name": "kept", "disk_format": "raw", "container_format": "bare"}))
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    let data = vec![7u8; 2_500_000];
    let r = c.send(
        "PUT",
        &format!("/v2/images/{id}/file"),
        &[OCTET],
        test_support::Payload::Bytes(&data),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(svc.stored_chunks(&id), 3);
    let state = svc.state_dir.clone();

    let svc = svc.restart();
    assert_eq!(svc.state_dir, state);
    let c = svc.client();
    assert_eq!(
        c.get(&format!("/v2/images/{id}")).expect_json(200)["status"],
        "active"
    );
    assert_eq!(c.get(&format!("/v2/images/{id}/file")).body, data);
    assert_eq!(svc.stored_chunks(&id), 3);
}

#[test]
fn pid_rss_and_logs_are_the_serving_runtimes() {
    let svc = Service::start();
    assert_eq!(svc.runtime(), Runtime::from_env());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", svc.pid())).expect("cmdline");
    let args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    match svc.runtime() {
        Runtime::GlanceHost => assert!(args[0].ends_with("glance-host"), "{args:?}"),
        Runtime::Spin => assert_eq!(
            args.get(1..3),
            Some(&["trigger".to_string(), "http".to_string()][..]),
            "{args:?}"
        ),
    }
    assert!(
        args.iter().any(|a| a.contains(&svc.addr.to_string())),
        "{args:?}"
    );
    assert!(svc.rss() > 1 << 20, "rss {}", svc.rss());
    assert!(svc.state_dir.join("stderr.log").is_file());
    assert!(svc.state_dir.join("stdout.log").is_file());
    assert!(svc.logs().contains("stderr.log"));
}

#[test]
fn runtime_config_extras_reach_the_runtime() {
    let state = test_support::TempDir::new("extras");
    let db = state.join("elsewhere/sqlite.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let svc = Service::builder()
        .state_dir(&state)
        .runtime_config(&format!(
            "[sqlite_database.default]\ntype = \"spin\"\npath = \"{}\"\n",
            db.display()
        ))
        .start();
    svc.client().create_image(&json!({"name": "in elsewhere"}));
    assert!(db.is_file(), "the default database is at {}", db.display());
    assert!(!state.join("sqlite_db.db").exists());
}

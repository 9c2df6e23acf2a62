//! The end-to-end suite once more, on real Spin: `cargo test --release` runs
//! every test on glance-host, and this test runs the end-to-end binaries
//! below again with `GLANCE_RUNTIME=spin`, so one command covers both
//! runtimes. Their output (each names its runtime) goes straight to the
//! run's output.
//!
//! Real Spin is `$SPIN_BIN`, else `../shared/spin/spin` beside the
//! repository. Without either (a fresh clone elsewhere), this says so and
//! passes: the suite has run on glance-host.
//!
//! Tempest, the openstackclient and osc CLI suites and the Python client
//! data suites stay on glance-host: together they take ~10 minutes, they test
//! API conformance that the binaries below already check on Spin over the
//! same HTTP surface, and the CI budget would not hold them twice.

use std::process::Command;

use test_support::{report, root};

/// The end-to-end binaries that run on both runtimes.
const ON_SPIN: &[&str] = &[
    "images_api",
    "bad_input",
    "image_data",
    "image_tasks",
    "tasks_api",
    "http_surface",
    "members",
    "s3_store",
    "ssrf",
    "crash_safety",
    "list_memory",
    "keystone_auth",
    "keystone_scope",
    "keystone_harness",
    "glanceclient",
    "openapi",
    "service_harness",
    "noauth_remote",
    "notifications",
    "edge_cache",
    "v1_api",
    "v1_clients",
];

#[test]
fn end_to_end_suite_on_real_spin() {
    let spin = std::env::var_os("SPIN_BIN")
        .filter(|b| !b.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/spin/spin"));
    if !spin.exists() {
        report(&format!(
            "real Spin not found ({}; set SPIN_BIN): the end-to-end suite ran on glance-host only",
            spin.display()
        ));
        return;
    }
    report(&format!(
        "running {} end-to-end test binaries again on real Spin ({})",
        ON_SPIN.len(),
        spin.display()
    ));
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--release", "--no-fail-fast"]);
    for test in ON_SPIN {
        cmd.args(["--test", test]);
    }
    let status = cmd
        .current_dir(root())
        .env("GLANCE_RUNTIME", "spin")
        .env("SPIN_BIN", &spin)
        .status()
        .expect("run cargo test on Spin");
    assert!(status.success(), "the end-to-end suite failed on real Spin");
}

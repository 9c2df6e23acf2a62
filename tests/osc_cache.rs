//! python-openstackclient's own functional `CacheTests`
//! (`openstackclient.tests.functional.image.v2.test_cache`, unmodified, as
//! installed with python-openstackclient 10.5.0) against the service with its
//! image cache on and a real Keystone whose catalog lists the image endpoint,
//! as devstack would give it: `openstack cached image queue`, `list`, `clear`,
//! `delete` as the `devstack-admin` cloud.
//!
//! The suite needs tempest.lib and testtools beside the client:
//! tests/clients/suites-requirements.txt pins them.

use std::path::Path;
use std::process::{Command, Stdio};

use test_support::keystone::{Keystone, PASSWORD};
use test_support::python::venv_for;
use test_support::{Service, TempDir};

const REQUIREMENTS: &str = "tests/clients/suites-requirements.txt";

/// `~/.config/openstack/clouds.yaml` with devstack's admin cloud.
fn write_clouds_yaml(home: &Path, ks: &Keystone) {
    let yaml = format!(
        "clouds:\n  devstack-admin:\n    auth:\n      auth_url: {}/v3\n      username: admin\n      \
         password: {PASSWORD}\n      project_name: admin\n      user_domain_id: default\n      \
         project_domain_id: default\n    identity_api_version: '3'\n",
        ks.url
    );
    let dir = home.join(".config/openstack");
    std::fs::create_dir_all(&dir).expect("config dir");
    std::fs::write(dir.join("clouds.yaml"), yaml).expect("clouds.yaml");
}

#[test]
fn openstackclient_functional_cache_tests_pass() {
    let venv = venv_for(REQUIREMENTS);
    let ks = Keystone::start();
    let svc = Service::builder()
        .keystone(&ks)
        .env("SPIN_VARIABLE_IMAGE_CACHE_MAX_SIZE", "1GB")
        .start();
    ks.register_endpoint("identity", &format!("{}/v3", ks.url));
    ks.register_endpoint("image", &svc.base);
    let home = TempDir::new("osc-cache");
    write_clouds_yaml(&home, &ks);
    let bin = venv.join("bin");
    let mut cmd = Command::new(bin.join("python"));
    cmd.args([
        "-m",
        "testtools.run",
        "openstackclient.tests.functional.image.v2.test_cache",
    ])
    .current_dir(&*home)
    .env("HOME", &*home)
    .env(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .env("PYTHONWARNINGS", "ignore")
    // As in CI: no terminal on stdin, so `image create` without a file
    // uploads what stdin holds (nothing) and the image is active.
    .stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OS_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().expect("run testtools");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("Ran 1 test") && text.contains("OK"),
        "openstackclient CacheTests:\n{text}\nservice log:\n{}",
        svc.logs()
    );
    eprintln!("{}", text.trim());
}

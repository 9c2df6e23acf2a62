//! Conformance: OpenStack Tempest's image API v2 tests and glance-tempest-plugin's
//! RBAC suites, run against this service and the real Keystone of the test
//! harness, both on loopback.
//!
//! Tempest and the plugin are pip-installed (tests/tempest/requirements.txt)
//! into a virtualenv cached like the clients' one. For each deployment the
//! test starts Keystone, registers the identity and image endpoints in its
//! catalog (Tempest finds Glance only there), starts the service with Keystone
//! authentication, loads Glance's metadefs catalog into it (`test_support::metadefs`),
//! serves a small qcow2 image on loopback for the web-download
//! tests, writes tests/tempest/tempest.conf into a Tempest workspace and runs
//! `tempest run --regex ... --exclude-regex 'ImageDependency|ImagesFormat'`
//! (those two need Nova or Cinder). Deployments: the default single `kv` store
//! (every test), then `kv` + `s3` (moto) for the import and store tests that
//! need several stores. The stestr results become docs/tempest-results.md, one
//! row per test; the test fails if a test failed that
//! tests/tempest/expected-failures.txt does not list (a feature deliberately
//! absent), or if an entry there covers no failing test any more.
//!
//! `GLANCE_TEMPEST_REGEX=<regex>` runs only the matching tests, on the single
//! store (or on several with `GLANCE_TEMPEST_MULTI_STORE=1`), for working on
//! one failure; such a partial run leaves docs/tempest-results.md alone.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::http::serve_bytes;
use test_support::keystone::Keystone;
use test_support::python::{venv_for, S3Server};
use test_support::{root, Service, TempDir};

/// Tempest's image API v2 tests and the plugin's RBAC suites.
const REGEX: &str = r"^(tempest\.api\.image\.v2|glance_tempest_plugin\.tests\.rbac\.v2)\.";
/// The tests that behave differently with several stores (they skip, or skip
/// checks, on a single store): run again against a kv + s3 deployment.
const MULTI_STORE_REGEX: &str = r"^tempest\.api\.image\.v2\.(test_images\.(ImportImagesTest|MultiStoresImportImagesTest|MultistoreLocationImportTest|StoreWeightTest)|test_images_negative\.ImportImagesNegativeTest|admin\.test_images\.(ImportCopyImagesTest|MultiStoresImagesTest))\.";
/// The tests that need a second site (Tempest's alternate image endpoint):
/// run again with an edge site of the service as that endpoint.
const EDGE_REGEX: &str = r"^tempest\.api\.image\.v2\.admin\.test_image_caching\.ImageCachingTest\.";
/// Tests that need Compute or Block Storage.
const EXCLUDE: &str = "ImageDependency|ImagesFormat";
/// How long one Tempest run may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(40 * 60);
const REQUIREMENTS: &str = "tests/tempest/requirements.txt";
const ALLOW_LIST: &str = "tests/tempest/expected-failures.txt";
const RESULTS: &str = "docs/tempest-results.md";
const BUCKET: &str = "tempest-images";

/// One test's outcome, as tests/tempest/results.py reports it.
#[derive(Debug, Clone)]
struct Outcome {
    status: String,
    reason: String,
}

/// A deployment Tempest runs against, and which tests.
struct Deployment {
    /// Heading in the results file.
    title: &'static str,
    /// What is special about it.
    about: &'static str,
    /// Tempest's `--regex`.
    regex: String,
    /// Multi-store: kv plus an S3 store (moto on loopback).
    multi_store: bool,
    /// A second instance, an edge site of the first (its upstream), is
    /// Tempest's alternate image endpoint (`image_remote` in the catalog).
    edge: bool,
}

/// The results of one deployment's run.
struct RunResult {
    deployment: Deployment,
    outcomes: BTreeMap<String, Outcome>,
    time: Duration,
}

#[test]
fn tempest_image_suite() {
    let started = Instant::now();
    let venv = venv_for(REQUIREMENTS);
    let partial = std::env::var("GLANCE_TEMPEST_REGEX")
        .ok()
        .filter(|r| !r.is_empty());
    let single = Deployment {
        title: "Single store (the default deployment)",
        about: "one `kv` store",
        regex: REGEX.to_string(),
        multi_store: false,
        edge: false,
    };
    let multi = Deployment {
        title: "Several stores",
        about: "stores `kv` (default) and `s3` (moto on loopback): the import and store \
                tests that skip, or skip checks, on a single store — with several stores the \
                version document lists v2.12, so the glance-direct test also checks the \
                image's import task",
        regex: MULTI_STORE_REGEX.to_string(),
        multi_store: true,
        edge: false,
    };
    let edge = Deployment {
        title: "An edge site as the alternate image endpoint",
        about: "one `kv` store, and a second instance in edge site mode (its upstream: the \
                first) registered as `image_remote`, Tempest's alternate image endpoint: the \
                cache tests that compare the caches of two sites",
        regex: EDGE_REGEX.to_string(),
        multi_store: false,
        edge: true,
    };
    let deployments = match &partial {
        // A partial run: the given tests on one deployment (the single store
        // unless GLANCE_TEMPEST_MULTI_STORE is set).
        Some(regex) => {
            let mut d = if std::env::var_os("GLANCE_TEMPEST_MULTI_STORE").is_some() {
                multi
            } else if std::env::var_os("GLANCE_TEMPEST_EDGE").is_some() {
                edge
            } else {
                single
            };
            d.regex = regex.clone();
            vec![d]
        }
        None => vec![single, multi, edge],
    };
    let runs: Vec<RunResult> = deployments
        .into_iter()
        .map(|d| run_deployment(venv, d))
        .collect();

    let allowed = allow_list();
    let mut unexpected = Vec::new();
    for run in &runs {
        for (id, o) in &run.outcomes {
            if failed(o) && allowed_reason(&allowed, id).is_none() {
                unexpected.push(format!("[{}] {id}: {}", run.deployment.title, o.reason));
            }
        }
    }
    // An entry is stale when none of the tests it covers failed (tests it
    // covers may pass trivially: some metadefs RBAC tests are empty).
    let stale: Vec<&str> = if partial.is_some() {
        Vec::new()
    } else {
        allowed
            .iter()
            .filter(|(pat, _)| {
                !runs.iter().any(|r| {
                    r.outcomes
                        .iter()
                        .any(|(id, o)| failed(o) && covers(pat, id))
                })
            })
            .map(|(pat, _)| pat.as_str())
            .collect()
    };
    if partial.is_none() {
        write_results(&runs, &allowed);
    }
    for run in &runs {
        let count = |s: &str| run.outcomes.values().filter(|o| o.status == s).count();
        test_support::report(&format!(
            "tempest [{}]: {} tests: {} passed, {} skipped, {} failed; tempest run {:.0?}",
            run.deployment.title,
            run.outcomes.len(),
            count("success"),
            count("skip"),
            run.outcomes.values().filter(|o| failed(o)).count(),
            run.time,
        ));
    }
    test_support::report(&format!("tempest: whole test {:.0?}", started.elapsed()));
    assert!(
        unexpected.is_empty(),
        "Tempest tests failed that {ALLOW_LIST} does not list:\n{}",
        unexpected.join("\n"),
    );
    assert!(
        stale.is_empty(),
        "{ALLOW_LIST} lists tests that no longer fail; remove them:\n{}",
        stale.join("\n")
    );
}

fn failed(o: &Outcome) -> bool {
    matches!(o.status.as_str(), "fail" | "uxsuccess")
}

/// Starts Keystone, the service (and moto for several stores), registers the
/// endpoints, runs Tempest and reads its results. The workspace is removed
/// unless a test failed.
fn run_deployment(venv: &Path, deployment: Deployment) -> RunResult {
    // One gunicorn worker: Tempest creates and deletes users and projects from
    // two processes at once, and SQLite-backed Keystone workers writing
    // concurrently fail with "database is locked".
    let ks = Keystone::start_with(3600, 1);
    let http_image = serve_qcow2();
    let s3 = deployment.multi_store.then(|| S3Server::start(BUCKET));
    // The image cache is on (ImageCachingTest), and glance-download is
    // offered: its "remote" region is this service itself, found in the
    // catalog (Tempest imports from its own region).
    let mut service = Service::builder().keystone(&ks).envs(&[
        ("SPIN_VARIABLE_DOWNLOAD_HOSTS", "http://127.0.0.1:*"),
        ("SPIN_VARIABLE_IMAGE_CACHE_MAX_SIZE", "1GB"),
        (
            "SPIN_VARIABLE_IMPORT_METHODS",
            "glance-direct,web-download,copy-image,glance-download",
        ),
    ]);
    if let Some(s3) = &s3 {
        service = service.envs(&[
            ("SPIN_VARIABLE_STORES", "kv,s3"),
            ("SPIN_VARIABLE_S3_ENDPOINT", s3.endpoint.as_str()),
            ("SPIN_VARIABLE_S3_BUCKET", BUCKET),
            ("SPIN_VARIABLE_S3_ACCESS_KEY", "testing"),
            ("SPIN_VARIABLE_S3_SECRET_KEY", "testing"),
        ]);
    }
    let svc = service.start();
    ks.register_endpoint("identity", &format!("{}/v3", ks.url));
    ks.register_endpoint("image", &svc.base);
    // Glance's catalog of metadata definitions, loaded as devstack loads it
    // (`glance-manage db_load_metadefs`): the metadefs tests take a resource
    // type from it.
    let admin = ks.admin_token();
    test_support::metadefs::load(&svc.client(), &[("X-Auth-Token", admin.as_str())]);
    let remote = deployment.edge.then(|| {
        let edge = Service::builder()
            .keystone(&ks)
            .envs(&[
                ("SPIN_VARIABLE_UPSTREAM_GLANCE_URL", svc.base.as_str()),
                ("SPIN_VARIABLE_IMAGE_CACHE_MAX_SIZE", "1GB"),
            ])
            .start();
        ks.register_endpoint("image_remote", &edge.base);
        edge
    });

    // Kept when a test fails (removed below otherwise).
    let work = TempDir::new("tempest").keep();
    let conf = std::fs::read_to_string(root().join("tests/tempest/tempest.conf"))
        .expect("tests/tempest/tempest.conf")
        .replace("{{workdir}}", &work.display().to_string())
        .replace("{{keystone}}", &ks.url)
        .replace("{{http_image}}", &http_image)
        .replace(
            "{{alternate_image_endpoint}}",
            if remote.is_some() {
                "alternate_image_endpoint = image_remote\nalternate_image_endpoint_type = public"
            } else {
                ""
            },
        );
    let conf_path = work.join("etc/tempest.conf");
    std::fs::create_dir_all(work.join("etc")).expect("etc dir");
    std::fs::write(&conf_path, conf).expect("write tempest.conf");

    let run_started = Instant::now();
    let code = run_tempest(venv, &work, &conf_path, &deployment.regex);
    let time = run_started.elapsed();
    let outcomes = results(venv, &work);
    assert!(
        !outcomes.is_empty(),
        "tempest ran no test (exit {code:?}); see {}/tempest-run.log:\n{}",
        work.display(),
        tail(&work.join("tempest-run.log"), 40)
    );
    if outcomes.values().any(failed) {
        eprintln!(
            "tempest [{}]: workspace kept in {} (tempest.log, tempest-run.log)",
            deployment.title,
            work.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    RunResult {
        deployment,
        outcomes,
        time,
    }
}

/// Runs `tempest run` in the workspace `work`; its output goes to
/// `work/tempest-run.log`. Returns the exit code (None if killed).
fn run_tempest(venv: &Path, work: &Path, conf: &Path, regex: &str) -> Option<i32> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(work.join("tempest-run.log")).expect("tempest-run.log");
    let mut cmd = Command::new(venv.join("bin/tempest"));
    cmd.arg("run")
        .arg("--config-file")
        .arg(conf)
        .args(["--regex", regex, "--exclude-regex", EXCLUDE])
        .args(["--concurrency", "2"])
        .current_dir(work)
        // Tempest's workspace registry and caches stay in the workspace.
        .env("HOME", work)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONWARNINGS", "ignore")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OS_") {
            cmd.env_remove(k);
        }
    }
    // SAFETY: setpgid and prctl are async-signal-safe; the closure touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            // Its own process group, so a timeout stops the stestr workers too.
            libc::setpgid(0, 0);
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run tempest");
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait tempest") {
            return status.code();
        }
        if Instant::now() > deadline {
            // SAFETY: signalling the process group of our own child.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.wait();
            eprintln!("tempest: stopped after {RUN_TIMEOUT:?}");
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The last run's results: test id → outcome (`stestr last --subunit`, read by
/// tests/tempest/results.py).
fn results(venv: &Path, work: &Path) -> BTreeMap<String, Outcome> {
    let subunit = Command::new(venv.join("bin/stestr"))
        .args(["last", "--subunit"])
        .current_dir(work)
        .env("HOME", work)
        .stderr(Stdio::null())
        .output()
        .expect("stestr last --subunit");
    let mut parse = Command::new(venv.join("bin/python"))
        .arg(root().join("tests/tempest/results.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("results.py");
    let mut stdin = parse.stdin.take().expect("stdin");
    let feed = std::thread::spawn(move || {
        let _ = stdin.write_all(&subunit.stdout);
    });
    let mut out = String::new();
    parse
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut out)
        .expect("read results");
    feed.join().expect("feed subunit");
    assert!(
        parse.wait().expect("results.py").success(),
        "results.py failed"
    );
    out.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            (
                v["id"].as_str().unwrap_or_default().to_string(),
                Outcome {
                    status: v["status"].as_str().unwrap_or_default().to_string(),
                    reason: v["reason"].as_str().unwrap_or_default().to_string(),
                },
            )
        })
        .collect()
}

/// tests/tempest/expected-failures.txt: `test-id reason` per line (`#`
/// comments); a test id ending in `*` covers every id with that prefix.
fn allow_list() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join(ALLOW_LIST)).expect(ALLOW_LIST);
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (id, reason) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            let reason = reason.trim();
            assert!(!reason.is_empty(), "{ALLOW_LIST}: no reason given for {id}");
            (id.to_string(), reason.to_string())
        })
        .collect()
}

fn covers(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

fn allowed_reason<'a>(allowed: &'a [(String, String)], id: &str) -> Option<&'a str> {
    allowed
        .iter()
        .find(|(pat, _)| covers(pat, id))
        .map(|(_, reason)| reason.as_str())
}

/// Reasons without the parts that change from run to run (object addresses,
/// generated ids and names), so the results file only changes when results do.
fn stable(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    for word in reason.split(' ') {
        if !out.is_empty() {
            out.push(' ');
        }
        let w = if word.starts_with("0x") && word.len() > 6 {
            "0x…".to_string()
        } else {
            word.to_string()
        };
        out.push_str(&w);
    }
    out.replace('|', "\\|")
}

fn write_results(runs: &[RunResult], allowed: &[(String, String)]) {
    let mut md = String::new();
    md.push_str("# Tempest results\n\n");
    md.push_str(
        "Written by `tests/tempest.rs` (part of `cargo test --release`): Tempest 47.0.0 and \
         glance-tempest-plugin 0.17.0 against this service (`auth_strategy=keystone`) and \
         Keystone 30.0.0, both on loopback, configured by `tests/tempest/tempest.conf`. \
         Every failure is a feature deliberately absent, listed with its reason in \
         `tests/tempest/expected-failures.txt`; a test id `setUpClass (…)` stands for a \
         whole class skipped before its tests ran.\n",
    );
    for run in runs {
        let count = |s: &[&str]| {
            run.outcomes
                .values()
                .filter(|o| s.contains(&o.status.as_str()))
                .count()
        };
        md.push_str(&format!(
            "\n## {}\n\nDeployment: {}.\n\nCommand: `tempest run --regex '{}' --exclude-regex \
             '{EXCLUDE}' --concurrency 2`\n\n**{} tests: {} passed, {} skipped, {} failed \
             (absent features).**\n\n| test | result | reason |\n|---|---|---|\n",
            run.deployment.title,
            run.deployment.about,
            run.deployment.regex,
            run.outcomes.len(),
            count(&["success", "xfail"]),
            count(&["skip"]),
            count(&["fail", "uxsuccess"]),
        ));
        for (id, o) in &run.outcomes {
            let (result, reason) = match o.status.as_str() {
                "success" => ("pass", String::new()),
                "xfail" => ("pass (expected failure)", stable(&o.reason)),
                "skip" => ("skip", stable(&o.reason)),
                "fail" | "uxsuccess" => match allowed_reason(allowed, id) {
                    Some(why) => ("fail (absent feature)", stable(why)),
                    None => ("**FAIL**", stable(&o.reason)),
                },
                other => (other, stable(&o.reason)),
            };
            md.push_str(&format!("| `{id}` | {result} | {reason} |\n"));
        }
    }
    std::fs::create_dir_all(root().join("docs")).expect("docs dir");
    std::fs::write(root().join(RESULTS), md).expect("write docs/tempest-results.md");
}

/// Serves a small qcow2 image (made by `qemu-img`) over HTTP on loopback, for
/// any number of requests; returns its URL.
fn serve_qcow2() -> String {
    let dir = TempDir::new("tempest-image");
    let file = dir.join("cirros.qcow2");
    let ok = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&file)
        .arg("1M")
        .status()
        .expect("qemu-img");
    assert!(ok.success(), "qemu-img create failed");
    let body = std::fs::read(&file).expect("read qcow2");
    let _ = std::fs::remove_dir_all(&dir);
    serve_bytes(body, "cirros.qcow2")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

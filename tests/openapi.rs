//! The OpenAPI 3.1 description (docs/openapi.yaml) is served at /openapi.yaml,
//! and schemathesis (pip-installed) generates requests for every operation from
//! it against the live service: no 5xx, and every response (status, content
//! type, headers, body) must match the document.

use std::process::Command;

use test_support::python::venv_for;
use test_support::{root, Service, TempDir};

#[test]
fn openapi_document_is_served() {
    let svc = test_support::shared();
    let r = svc.client().get("/openapi.yaml");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/yaml"));
    let file = std::fs::read(root().join("docs/openapi.yaml")).unwrap();
    assert_eq!(r.body, file);
    assert!(r.text().starts_with("openapi: 3.1.0"));
}

#[test]
fn schemathesis_finds_no_server_errors_or_nonconforming_responses() {
    let svc = Service::start();
    let venv = venv_for("tests/clients/schemathesis-requirements.txt");
    let work = TempDir::new("schemathesis");
    let out = Command::new(venv.join("bin/st"))
        .args([
            "run",
            &format!("{}/openapi.yaml", svc.base),
            "--url",
            &svc.base,
        ])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "30",
            "--seed",
            "20261123",
            "--no-color",
        ])
        .env("PYTHONPATH", root().join("tests/clients"))
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .current_dir(&work)
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .find(|l| l.contains(" generated, "))
        .unwrap_or("")
        .trim()
        .to_string();
    test_support::report(&format!("schemathesis: {summary}"));
    assert!(
        out.status.success(),
        "schemathesis reported problems:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated: usize = summary
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(generated > 500, "too few generated cases: {summary}");
    assert!(
        summary.contains(&format!("{generated} passed")),
        "{summary}"
    );
    assert!(
        // 25 operations of the images API and 28 of the metadefs catalog.
        stdout.contains("Selected: 53/53") && stdout.contains("Tested: 53"),
        "{stdout}"
    );
}

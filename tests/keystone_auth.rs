//! End-to-end with a real Keystone (pip-installed, SQLite, fernet tokens, on
//! loopback): authentication, token caching, and Glance's authorization rules
//! as a matrix of visibility × caller × operation.

use std::fmt::Write as _;

use serde_json::{json, Value};
use test_support::http::Payload;
use test_support::keystone::Keystone;
use test_support::proxy::CountingProxy;
use test_support::{Client, Service};

const OCTET: (&str, &str) = ("Content-Type", "application/octet-stream");

fn with_token(svc: &Service, token: Option<&str>) -> Client {
    match token {
        Some(t) => svc.client().with_header("X-Auth-Token", t),
        None => svc.client(),
    }
}

const OPS: [&str; 8] = [
    "list",
    "show",
    "download",
    "update",
    "delete",
    "add member",
    "remove member",
    "member status",
];
const ROWS: [&str; 6] = [
    "public",
    "community",
    "shared/pending",
    "shared/accepted",
    "shared/rejected",
    "private",
];
const ACTORS: [&str; 8] = [
    "owner member",
    "owner reader",
    "other project",
    "image member",
    "admin",
    "no token",
    "garbage token",
    "revoked token",
];

/// What Glance answers, by hand from its default policy: `L` listed, `-` not
/// listed, else the status code. Callers without a valid token get 401 everywhere.
fn expected(row: &str, actor: &str) -> [&'static str; 8] {
    const OWNER_SHARED: [&str; 8] = ["L", "200", "200", "200", "204", "200", "204", "403"];
    const OWNER: [&str; 8] = ["L", "200", "200", "200", "204", "403", "403", "403"];
    const READER: [&str; 8] = ["L", "200", "403", "403", "403", "403", "403", "403"];
    const HIDDEN: [&str; 8] = ["-", "404", "404", "404", "404", "404", "404", "404"];
    const UNAUTH: [&str; 8] = ["401"; 8];
    match (row, actor) {
        (_, "no token" | "garbage token" | "revoked token") => UNAUTH,
        ("public" | "community" | "private", "owner member") => OWNER,
        (_, "owner member") => OWNER_SHARED,
        (_, "owner reader") => READER,
        ("public", "other project" | "image member") => {
            ["L", "200", "200", "403", "403", "403", "403", "403"]
        }
        ("community", "other project" | "image member") => {
            ["-", "200", "200", "403", "403", "403", "403", "403"]
        }
        ("private", "other project" | "image member") | (_, "other project") => HIDDEN,
        ("shared/accepted", "image member") => {
            ["L", "200", "200", "403", "403", "403", "403", "200"]
        }
        (_, "image member") => ["-", "200", "200", "403", "403", "403", "403", "200"],
        ("public" | "private", "admin") => OWNER,
        ("community", "admin") => ["-", "200", "200", "200", "204", "403", "403", "403"],
        (_, "admin") => ["L", "200", "200", "200", "204", "200", "204", "200"],
        _ => unreachable!("{row} {actor}"),
    }
}

struct World {
    svc: Service,
    tokens: std::collections::HashMap<&'static str, Option<String>>,
    owner: Client,
    admin: Client,
    member_client: Client,
    alpha: String,
    beta: String,
}

impl World {
    /// A fresh active image of `row`, owned by project alpha, with data and,
    /// for shared rows, project beta as a member in the row's state.
    fn image(&self, row: &str) -> String {
        let visibility = row.split('/').next().unwrap();
        let creator = if visibility == "public" {
            &self.admin
        } else {
            &self.owner
        };
        let img = creator.create_image(&json!({
            "name": format!("m-{row}"), "visibility": visibility, "owner": self.alpha,
            "disk_format": "raw", "container_format": "bare"
        }));
        let id = img["id"].as_str().unwrap().to_string();
        let up = self.owner.send(
            "PUT",
            &format!("/v2/images/{id}/file"),
            &[OCTET],
            Payload::Bytes(b"matrix data"),
        );
        assert_eq!(up.status, 204, "{}", up.text());
        if let Some(state) = row.strip_prefix("shared/") {
            self.owner
                .post_json(
                    &format!("/v2/images/{id}/members"),
                    &json!({"member": self.beta}),
                )
                .expect_json(200);
            if state != "pending" {
                let r = self.member_client.send(
                    "PUT",
                    &format!("/v2/images/{id}/members/{}", self.beta),
                    &[("Content-Type", "application/json")],
                    Payload::Bytes(json!({"status": state}).to_string().as_bytes()),
                );
                assert_eq!(r.status, 200, "{}", r.text());
            }
        }
        id
    }

    fn run(&self, actor: &str, op: &str, id: &str) -> String {
        let c = with_token(&self.svc, self.tokens[actor].as_deref());
        let json_put = |path: &str, body: Value| {
            c.send(
                "PUT",
                path,
                &[("Content-Type", "application/json")],
                Payload::Bytes(body.to_string().as_bytes()),
            )
        };
        let resp = match op {
            "list" => {
                let r = c.get("/v2/images?limit=1000");
                if r.status != 200 {
                    return r.status.to_string();
                }
                let listed = r.json()["images"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["id"] == id);
                return if listed { "L" } else { "-" }.to_string();
            }
            "show" => c.get(&format!("/v2/images/{id}")),
            "download" => c.get(&format!("/v2/images/{id}/file")),
            "update" => c.patch(
                &format!("/v2/images/{id}"),
                &json!([{"op": "replace", "path": "/name", "value": "x"}]),
            ),
            "delete" => c.delete(&format!("/v2/images/{id}")),
            "add member" => c.post_json(
                &format!("/v2/images/{id}/members"),
                &json!({"member": "newcomer"}),
            ),
            "remove member" => c.delete(&format!("/v2/images/{id}/members/{}", self.beta)),
            "member status" => json_put(
                &format!("/v2/images/{id}/members/{}", self.beta),
                json!({"status": "accepted"}),
            ),
            _ => unreachable!(),
        };
        if resp.status >= 400 {
            // Every refusal is a Glance-shaped JSON error.
            resp.expect_error(resp.status);
        }
        if resp.status == 401 {
            assert!(resp
                .header("www-authenticate")
                .is_some_and(|h| h.starts_with("Keystone uri=")));
        }
        resp.status.to_string()
    }
}

#[test]
fn authorization_matrix() {
    let ks = Keystone::start();
    let svc = Service::builder()
        .keystone(&ks)
        .env("SPIN_VARIABLE_TOKEN_CACHE_TTL", "300")
        .start();
    let tok = |u: &str, p: &str| ks.token(u, "secret", p);
    let revoked = tok("alpha-member", "alpha");
    ks.revoke(&revoked);
    let mut tokens = std::collections::HashMap::new();
    tokens.insert("owner member", Some(tok("alpha-member", "alpha")));
    tokens.insert("owner reader", Some(tok("alpha-reader", "alpha")));
    tokens.insert("other project", Some(tok("gamma-member", "gamma")));
    tokens.insert("image member", Some(tok("beta-member", "beta")));
    tokens.insert("admin", Some(tok("admin", "admin")));
    tokens.insert("no token", None);
    tokens.insert("garbage token", Some("gAAAAA-not-a-token".to_string()));
    tokens.insert("revoked token", Some(revoked));
    let world = World {
        owner: with_token(&svc, tokens["owner member"].as_deref()),
        admin: with_token(&svc, tokens["admin"].as_deref()),
        member_client: with_token(&svc, tokens["image member"].as_deref()),
        alpha: ks.project_id("alpha"),
        beta: ks.project_id("beta"),
        tokens,
        svc,
    };

    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<16} {:<14} {}",
        "visibility",
        "caller",
        OPS.map(|o| format!("{o:>14}")).concat()
    );
    let mut mismatches = Vec::new();
    for row in ROWS {
        let shared_image = world.image(row); // read-only operations share one image
        for actor in ACTORS {
            let want = expected(row, actor);
            let mut got = Vec::new();
            for (i, op) in OPS.iter().enumerate() {
                let mutating = i >= 3;
                let id = if mutating {
                    world.image(row)
                } else {
                    shared_image.clone()
                };
                let result = world.run(actor, op, &id);
                if result != want[i] {
                    mismatches.push(format!(
                        "{row} / {actor} / {op}: expected {}, got {result}",
                        want[i]
                    ));
                }
                got.push(result);
            }
            let _ = writeln!(
                table,
                "{row:<16} {actor:<14} {}",
                got.iter().map(|g| format!("{g:>14}")).collect::<String>()
            );
        }
    }
    test_support::report(&format!(
        "\nAuthorization matrix (L = listed, - = not listed, else HTTP status):\n{table}"
    ));
    assert!(
        mismatches.is_empty(),
        "cells differing from Glance's rules:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn tokens_are_cached_and_revocation_applies_within_the_ttl() {
    let ks = Keystone::start();
    let proxy = CountingProxy::start(ks.url.trim_start_matches("http://").parse().unwrap());
    // Keystone through the counting proxy.
    let svc = Service::builder()
        .keystone_url(&proxy.url)
        // Long enough for the 51 requests below on a loaded machine (Spin's
        // requests are slower than glance-host's).
        .env("SPIN_VARIABLE_TOKEN_CACHE_TTL", "6")
        .start();
    let token = ks.token("alpha-member", "secret", "alpha");
    let c = with_token(&svc, Some(&token));
    c.get("/v2/images").expect_json(200);
    let after_first = proxy.requests();
    assert!(after_first >= 1, "the first request must ask Keystone");
    for _ in 0..50 {
        c.get("/v2/images").expect_json(200);
    }
    c.create_image(&json!({"name": "cached"}));
    assert_eq!(
        proxy.requests(),
        after_first,
        "a hot token must not cost a Keystone round trip"
    );

    // Revoked: still trusted until the cache entry ages out (TTL 6 s), then 401.
    ks.revoke(&token);
    std::thread::sleep(std::time::Duration::from_millis(6500));
    let r = c.get("/v2/images");
    r.expect_error(401);
    assert!(proxy.requests() > after_first);
}

#[test]
fn expired_tokens_are_refused() {
    let ks = Keystone::start_with_expiration(4);
    let svc = Service::builder()
        .keystone(&ks)
        .env("SPIN_VARIABLE_TOKEN_CACHE_TTL", "300")
        .start();
    let token = ks.token("alpha-member", "secret", "alpha");
    let c = with_token(&svc, Some(&token));
    c.get("/v2/images").expect_json(200);
    std::thread::sleep(std::time::Duration::from_secs(5));
    // The cached entry never outlives the token's own expiry.
    c.get("/v2/images").expect_error(401);
}

#[test]
fn spoofed_identity_headers_have_no_effect() {
    let ks = Keystone::start();
    let svc = Service::builder()
        .keystone(&ks)
        .env("SPIN_VARIABLE_TOKEN_CACHE_TTL", "300")
        .start();
    let reader = ks.token("beta-reader", "secret", "beta");
    let spoof = |c: Client| {
        c.with_header("X-Project-Id", "admin")
            .with_header("X-Tenant-Id", "admin")
            .with_header("X-Roles", "admin,member,reader")
            .with_header("X-User-Id", "admin")
            .with_header("X-Identity-Status", "Confirmed")
    };
    // Without a token, headers do not authenticate.
    spoof(svc.client()).get("/v2/images").expect_error(401);
    // With a reader's token, headers do not add roles or change the project.
    let c = spoof(with_token(&svc, Some(&reader)));
    c.post_json("/v2/images", &json!({"name": "x"}))
        .expect_error(403);
    let member = spoof(with_token(
        &svc,
        Some(&ks.token("beta-member", "secret", "beta")),
    ));
    let img = member.create_image(&json!({"name": "mine"}));
    assert_eq!(img["owner"], ks.project_id("beta").as_str());
    member
        .post_json("/v2/images", &json!({"visibility": "public"}))
        .expect_error(403);
    // Version discovery needs no token; schemas do.
    assert_eq!(svc.client().get("/versions").status, 200);
    svc.client().get("/v2/schemas/image").expect_error(401);
    with_token(&svc, Some(&reader))
        .get("/v2/schemas/image")
        .expect_json(200);
}

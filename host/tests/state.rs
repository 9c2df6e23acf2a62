//! Key-value stores, SQLite databases and variables, through the probe.

mod common;

use common::*;
use test_support::http::{enc, request};

#[test]
fn key_value_grants_and_persistence() {
    let app = probe_app("kv", |m| m);
    let host = HostCmd::up(&app).start();

    // Granted labels: `default` (state dir) and `extra` (runtime config).
    let v = host.get_json("/?kv=default&set=greeting&value=hello%20kv");
    assert_eq!(
        (v["kv"].as_str(), v["set"].as_str()),
        (Some("ok"), Some("ok")),
        "{v}"
    );
    let v = host.get_json("/?kv=default&get=greeting");
    assert_eq!(v["get"], "hello kv");
    let v = host.get_json("/?kv=default&get=absent");
    assert!(v["get"].is_null());
    let v = host.get_json("/?kv=extra&set=k&value=in-extra");
    assert_eq!(v["set"], "ok");
    // Stores are separate.
    assert!(host.get_json("/?kv=extra&get=greeting")["get"].is_null());

    // Not granted: access-denied, whether or not the label exists anywhere.
    assert_eq!(
        host.get_json("/restricted/?kv=default")["kv"],
        "Error::AccessDenied"
    );
    assert_eq!(
        host.get_json("/?kv=undefined-label")["kv"],
        "Error::AccessDenied"
    );
    assert_eq!(
        host.get_json("/exact?kv=extra")["kv"],
        "Error::AccessDenied"
    );

    // Spin's file layout and schema.
    let db = app.join("state/sqlite_key_value.db");
    assert!(db.is_file(), "default store lives in the state dir");
    let extra = app.join("extra/extra_kv.db");
    assert!(
        extra.is_file(),
        "runtime-config paths resolve against the config file's dir"
    );
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let v: Vec<u8> = conn
            .query_row(
                "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'greeting'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, b"hello kv");
    }

    // Survives a restart with the same state dir.
    host.stop();
    let host = HostCmd::up(&app).start();
    assert_eq!(
        host.get_json("/?kv=default&get=greeting")["get"],
        "hello kv"
    );
    assert_eq!(host.get_json("/?kv=extra&get=k")["get"], "in-extra");
}

#[test]
fn sqlite_grants_and_persistence() {
    let app = probe_app("sqlite", |m| m);
    let host = HostCmd::up(&app).start();
    let sql =
        |label: &str, stmt: &str| host.get_json(&format!("/?sqlite={label}&sql={}", enc(stmt)));

    let v = sql(
        "default",
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT, data BLOB, score REAL)",
    );
    assert_eq!(v["sqlite"], "ok", "{v}");
    assert!(v.get("sql_error").is_none(), "{v}");
    let v = sql(
        "default",
        "INSERT INTO t (name, data, score) VALUES ('a', x'00ff', 1.5), ('b', NULL, NULL)",
    );
    assert!(v.get("sql_error").is_none(), "{v}");
    let v = sql("default", "SELECT id, name, data, score FROM t ORDER BY id");
    assert_eq!(
        v["columns"],
        serde_json::json!(["id", "name", "data", "score"])
    );
    assert_eq!(
        v["rows"],
        serde_json::json!([[1, "a", [0, 255], 1.5], [2, "b", null, null]])
    );

    // Errors are io(message).
    let v = sql("default", "SELECT * FROM no_such_table");
    assert!(
        v["sql_error"].as_str().unwrap().starts_with("Error::Io("),
        "{v}"
    );
    // Attaching files is refused, as in Spin.
    let v = sql("default", "ATTACH DATABASE 'x.db' AS x");
    assert!(
        v["sql_error"].as_str().unwrap().contains("not authorized"),
        "{v}"
    );

    // The second database (runtime config, path relative to the working directory).
    let v = sql("other", "CREATE TABLE o (x)");
    assert!(v.get("sql_error").is_none(), "{v}");
    assert!(app.join("other/other.db").is_file());

    // Not granted.
    assert_eq!(
        host.get_json("/restricted/?sqlite=default")["sqlite"],
        "Error::AccessDenied"
    );
    assert_eq!(
        host.get_json("/?sqlite=nope")["sqlite"],
        "Error::AccessDenied"
    );
    assert!(app.join("state/sqlite_db.db").is_file());

    host.stop();
    let host = HostCmd::up(&app).start();
    let v = host.get_json(&format!(
        "/?sqlite=default&sql={}",
        enc("SELECT count(*) FROM t")
    ));
    assert_eq!(v["rows"], serde_json::json!([[2]]));
}

#[test]
fn concurrent_sqlite_writers_do_not_fail() {
    let app = probe_app("sqlite-concurrent", |m| m);
    let host = HostCmd::up(&app).start();
    host.get_json(&format!(
        "/?sqlite=default&sql={}",
        enc("CREATE TABLE c (n INTEGER)")
    ));
    let addr = host.addr;
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                for j in 0..10 {
                    let stmt = format!("INSERT INTO c VALUES ({})", i * 100 + j);
                    let r = request(
                        addr,
                        "GET",
                        &format!("/?sqlite=default&sql={}", enc(&stmt)),
                        &[],
                        None,
                    );
                    assert_eq!(r.status, 200);
                    let v = r.json();
                    assert!(v.get("sql_error").is_none(), "{v}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let v = host.get_json(&format!(
        "/?sqlite=default&sql={}",
        enc("SELECT count(*) FROM c")
    ));
    assert_eq!(v["rows"], serde_json::json!([[80]]));
}

#[test]
fn variables_defaults_env_override_and_errors() {
    let app = probe_app("vars", |m| m);
    let host = HostCmd::up(&app).start();
    assert_eq!(host.get_json("/?var=greeting")["var"]["ok"], "hello");
    assert_eq!(
        host.get_json("/?var=combined")["var"]["ok"],
        "prefix-hello-world-suffix"
    );
    assert_eq!(host.get_json("/?var=literal")["var"]["ok"], "just text");
    assert_eq!(
        host.get_json("/?var=missing")["var"]["err"],
        "Error::Undefined(\"no variable for \\\"probe\\\".\\\"missing\\\"\")"
    );
    let err = host.get_json("/?var=Bad-Name")["var"]["err"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.starts_with("Error::InvalidName(\"\\\"Bad-Name\\\": invalid character"),
        "{err}"
    );
    // Another component has no variables of its own.
    assert!(host.get_json("/restricted/?var=greeting")["var"]["err"]
        .as_str()
        .unwrap()
        .starts_with("Error::Undefined"));
    host.stop();

    let host = HostCmd::up(&app)
        .env("SPIN_VARIABLE_GREETING", "bonjour")
        .env("SPIN_VARIABLE_WHO", "le monde")
        .start();
    assert_eq!(host.get_json("/?var=greeting")["var"]["ok"], "bonjour");
    assert_eq!(
        host.get_json("/?var=combined")["var"]["ok"],
        "prefix-bonjour-le monde-suffix"
    );
    host.stop();

    // A `.env` file in the working directory also provides values.
    std::fs::write(app.join(".env"), "SPIN_VARIABLE_WHO=dotenv\n").unwrap();
    let host = HostCmd::up(&app).start();
    assert_eq!(
        host.get_json("/?var=combined")["var"]["ok"],
        "prefix-hello-dotenv-suffix"
    );
}

#[test]
fn component_environment_is_only_the_manifest_table() {
    let app = probe_app("env", |m| m);
    let host = HostCmd::up(&app).env("SOME_HOST_SECRET", "x").start();
    let v = host.get_json("/?env=PROBE_ENV");
    assert_eq!(v["env"], "set", "{v}");
    let v = host.get_json("/?env=SOME_HOST_SECRET");
    assert!(v["env"].is_null(), "host environment must not leak: {v}");
    let v = host.get_json("/restricted/?env=PROBE_ENV");
    assert!(v["env"].is_null(), "another component's table: {v}");
}

#[test]
fn wasi_keyvalue_batch_shares_the_spin_stores() {
    for runtime in runtimes() {
        let app = probe_app("kv-batch", |m| m);
        let probe = Probe::start(&app, runtime, &[]);
        let name = probe.name();
        let v = probe.get_json("/?bucket=default&set_many=a,b,c&values=1,2,3");
        assert_eq!(
            (v["bucket"].as_str(), v["set_many"].as_str()),
            (Some("ok"), Some("ok")),
            "{name}: {v}"
        );
        // Only the keys that exist come back.
        let v = probe.get_json("/?bucket=default&get_many=c,missing,a");
        let mut pairs: Vec<(String, String)> = v["get_many"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: {v}"))
            .iter()
            .map(|p| (p[0].as_str().unwrap().into(), p[1].as_str().unwrap().into()))
            .collect();
        pairs.sort();
        assert_eq!(
            pairs,
            [("a".into(), "1".into()), ("c".into(), "3".into())],
            "{name}: {v}"
        );
        // The same store as fermyon:spin/key-value's `default`, both ways.
        assert_eq!(probe.get_json("/?kv=default&get=b")["get"], "2", "{name}");
        assert_eq!(
            probe.get_json("/?kv=default&set=d&value=4")["set"],
            "ok",
            "{name}"
        );
        assert_eq!(
            probe.get_json("/?bucket=default&bget=d")["bget"],
            "4",
            "{name}"
        );
        let v = probe.get_json("/?bucket=default&delete_many=a,c,missing");
        assert_eq!(v["delete_many"], "ok", "{name}: {v}");
        let v = probe.get_json("/?bucket=default&get_many=a,b,c");
        assert_eq!(
            v["get_many"],
            serde_json::json!([["b", "2"]]),
            "{name}: {v}"
        );
        // Empty lists do nothing.
        let v = probe.get_json("/?bucket=extra&get_many=");
        assert_eq!(v["get_many"], serde_json::json!([]), "{name}: {v}");
        // The same grants.
        assert_eq!(
            probe.get_json("/restricted/?bucket=default")["bucket"],
            "Error::AccessDenied",
            "{name}"
        );
        assert_eq!(
            probe.get_json("/?bucket=undefined-label")["bucket"],
            "Error::AccessDenied",
            "{name}"
        );
        drop(probe);
        // Spin's table, on either runtime.
        let conn = rusqlite::Connection::open(app.join("state/sqlite_key_value.db")).unwrap();
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM spin_key_value WHERE store = 'default' AND key IN ('b', 'd')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 2, "{name}");
    }
}

//! Measurements (ignored by default; run with
//! `cargo test --release -p glance-host --test bench -- --ignored --nocapture`):
//! per-request overhead with concurrent keep-alive connections, and start-up time with a
//! cold and a warm compiled-component cache.

mod common;

use std::time::{Duration, Instant};

use common::*;
use test_support::http::Conn;
use test_support::TempDir;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn load(host: &Host, path: &'static str, total: usize, conns: usize) {
    let addr = host.addr;
    let per_conn = total / conns;
    // Warm up every connection's first request outside the measurement.
    let started = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = Conn::new(addr);
                let mut lat = Vec::with_capacity(per_conn);
                for _ in 0..per_conn {
                    let t = Instant::now();
                    let (status, _) = c.get(path);
                    lat.push(t.elapsed());
                    assert_eq!(status, 200);
                }
                lat
            })
        })
        .collect();
    let mut all: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    all.sort();
    println!(
        "{path}: {} requests over {conns} connections in {:.2} s: {:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.90).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[test]
#[ignore = "measurement, not a check"]
fn request_overhead() {
    let app = probe_app("bench", |m| m);
    let host = HostCmd::up(&app).start();
    // The probe's cheapest answer (an unrouted well-known path needs no instance at all).
    load(&host, "/.well-known/spin/health", 2000, 16);
    for _ in 0..2 {
        load(&host, "/bench", 2000, 16);
    }
    load(&host, "/bench", 2000, 1);
    load(&host, "/?kv=default&get=x", 2000, 16);
    load(&host, "/?sqlite=default&sql=SELECT%201", 2000, 16);
}

#[test]
#[ignore = "measurement, not a check"]
fn startup_time() {
    let app = probe_app("bench-startup", |m| m);
    let cache = TempDir::new("bench-cache");
    let start = |label: &str| {
        let t = Instant::now();
        let host = HostCmd::up(&app)
            .env("GLANCE_HOST_CACHE_DIR", &cache.display().to_string())
            .start();
        let ready = t.elapsed();
        let first = Instant::now();
        assert_eq!(host.get("/").status, 200);
        println!(
            "{label}: serving after {:.0} ms, first request {:.2} ms",
            ready.as_secs_f64() * 1e3,
            first.elapsed().as_secs_f64() * 1e3
        );
        host.stop();
    };
    start("cold (empty cache)");
    for _ in 0..3 {
        start("warm (cached)");
    }
}

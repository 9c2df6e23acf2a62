//! `glance-bench`: measures a Glance v2 endpoint (this service or the real
//! Glance) with persistent HTTP/1.1 connections, one per worker thread.
//!
//! ```text
//! glance-bench --endpoint http://127.0.0.1:3000 [--label NAME] [--header 'K: V']...
//!              [--ops create,show,list,update] [--concurrency 1,16] [--seconds 5]
//!              [--list-images 1000]
//! glance-bench --endpoint URL --ops upload,download --concurrency 1,4 [--size 268435456] [--rounds 2]
//! glance-bench --endpoint EDGE --upstream CENTRAL --ops central,edge-miss,edge-hit [--size N] [--rounds 2]
//! glance-bench --endpoint URL --queries FILE [--reps 200] [--warmup 5] [--max-seconds 15]
//! ```
//! The query rows (`--queries`, for `bench/scale.sh`): each line of FILE is
//! `label<TAB>path?query` (blank lines and `#` comments skipped); every query
//! is sent `--warmup` times untimed, then `--reps` times timed (fewer once it
//! has run `--max-seconds`, but at least 10), all over one keep-alive
//! connection (a server that answers `Connection: close` gets a new one for
//! the next request). One line per query: p50, p90, p99 in ms, the repetitions
//! timed, errors, the number of images in the first page (a sanity check: a
//! query shape that finds nothing measures nothing) and a digest of their ids
//! (the same page on two targets has the same digest).
//! The edge rows: images uploaded at `--upstream` (the central site), then
//! downloaded straight from it (`central`), at the edge site `--endpoint`
//! once each (`edge-miss`: fetched from the central site while it fills the
//! edge's cache), and again from the edge's cache (`edge-hit`).
//! Prints one line per (operation, concurrency): ops/s, p50 and p99 latency,
//! and for data operations MB/s (MiB per second over all workers). Each worker
//! uploads `--rounds` images; downloads repeat `--rounds` times and then until
//! `--seconds` have passed, since one download is over in a fraction of a second.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use test_support::http::Conn;

struct Args {
    endpoint: String,
    label: String,
    headers: Vec<(String, String)>,
    ops: Vec<String>,
    concurrency: Vec<usize>,
    seconds: f64,
    list_images: usize,
    size: u64,
    rounds: usize,
    upstream: String,
    queries: String,
    reps: usize,
    warmup: usize,
    max_seconds: f64,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        endpoint: String::new(),
        label: String::new(),
        headers: Vec::new(),
        ops: ["create", "show", "list", "update"]
            .map(String::from)
            .to_vec(),
        concurrency: vec![1, 16],
        seconds: 5.0,
        list_images: 1000,
        size: 256 << 20,
        rounds: 2,
        upstream: String::new(),
        queries: String::new(),
        reps: 200,
        warmup: 5,
        max_seconds: 15.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--endpoint" => a.endpoint = val()?.trim_end_matches('/').to_string(),
            "--label" => a.label = val()?,
            "--header" => {
                let h = val()?;
                let (k, v) = h.split_once(':').ok_or("--header takes 'Name: value'")?;
                a.headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "--ops" => a.ops = val()?.split(',').map(str::to_string).collect(),
            "--concurrency" => {
                a.concurrency = val()?
                    .split(',')
                    .map(|c| c.parse().map_err(|_| "bad --concurrency".to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => a.seconds = val()?.parse().map_err(|_| "bad --seconds")?,
            "--list-images" => a.list_images = val()?.parse().map_err(|_| "bad --list-images")?,
            "--size" => a.size = val()?.parse().map_err(|_| "bad --size")?,
            "--rounds" => a.rounds = val()?.parse().map_err(|_| "bad --rounds")?,
            "--upstream" => a.upstream = val()?.trim_end_matches('/').to_string(),
            "--queries" => a.queries = val()?,
            "--reps" => a.reps = val()?.parse().map_err(|_| "bad --reps")?,
            "--warmup" => a.warmup = val()?.parse().map_err(|_| "bad --warmup")?,
            "--max-seconds" => a.max_seconds = val()?.parse().map_err(|_| "bad --max-seconds")?,
            "-h" | "--help" => return Err("usage: glance-bench --endpoint URL [options]".into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.endpoint.is_empty() {
        return Err("--endpoint is required".into());
    }
    if a.label.is_empty() {
        a.label = a.endpoint.clone();
    }
    Ok(a)
}

/// One measured operation: builds and sends a request on a connection.
type Op = Arc<dyn Fn(&mut Conn, usize) -> Result<(), String> + Send + Sync>;

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&args) {
        eprintln!("glance-bench: {e}");
        std::process::exit(1);
    }
}

fn connect(args: &Args) -> Result<Conn, String> {
    Conn::open(&args.endpoint, args.headers.clone())
}

fn run(args: &Args) -> Result<(), String> {
    if !args.queries.is_empty() {
        return run_queries(args);
    }
    println!(
        "{:<28} {:<8} {:>5} {:>10} {:>9} {:>9} {:>8} {:>9}",
        "target", "op", "conc", "ops/s", "p50 ms", "p99 ms", "errors", "MiB/s"
    );
    let (edge_ops, ops): (Vec<String>, Vec<String>) = args
        .ops
        .iter()
        .cloned()
        .partition(|o| matches!(o.as_str(), "central" | "edge-miss" | "edge-hit"));
    if !edge_ops.is_empty() {
        return run_edge(args, &edge_ops);
    }
    let (data_ops, meta_ops): (Vec<String>, Vec<String>) = ops
        .into_iter()
        .partition(|o| o == "upload" || o == "download");
    if !meta_ops.is_empty() {
        run_metadata(args, &meta_ops)?;
    }
    for op in &data_ops {
        for &conc in &args.concurrency {
            run_data(args, op, conc)?;
        }
    }
    Ok(())
}

fn new_image(c: &mut Conn, name: &str) -> Result<String, String> {
    let body = json!({"name": name, "disk_format": "raw", "container_format": "bare"});
    let img = c.json("POST", "/v2/images", Some(&body), &[])?;
    Ok(img["id"].as_str().ok_or("create: no id")?.to_string())
}

/// Upload `args.size` bytes `args.rounds` times per worker, or download them
/// at least that often and for at least `args.seconds`.
fn run_data(args: &Args, op: &str, conc: usize) -> Result<(), String> {
    let mut setup = connect(args)?;
    let mut images: Vec<Vec<String>> = Vec::new();
    for w in 0..conc {
        let mut mine = Vec::new();
        for r in 0..args.rounds {
            let id = new_image(&mut setup, &format!("bench-data-{w}-{r}"))?;
            if op == "download" {
                setup.put_repeated(
                    &format!("/v2/images/{id}/file"),
                    args.size,
                    noise_block(),
                    &[("Content-Type", "application/octet-stream")],
                )?;
            }
            mine.push(id);
            if op == "download" {
                break; // one image per worker, downloaded every round
            }
        }
        images.push(mine);
    }
    let start = Instant::now();
    let mut handles = Vec::new();
    for mine in images {
        let mut conn = connect(args)?;
        let (op, size, rounds) = (op.to_string(), args.size, args.rounds);
        let until =
            start + Duration::from_secs_f64(if op == "download" { args.seconds } else { 0.0 });
        handles.push(std::thread::spawn(move || {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut r = 0;
            while r < rounds || Instant::now() < until {
                let t = Instant::now();
                let result = if op == "upload" {
                    conn.put_repeated(
                        &format!("/v2/images/{}/file", mine[r]),
                        size,
                        noise_block(),
                        &[("Content-Type", "application/octet-stream")],
                    )
                    .map(|_| ())
                } else {
                    match conn.get_discard(&format!("/v2/images/{}/file", mine[0])) {
                        Ok(n) if n == size => Ok(()),
                        Ok(n) => Err(format!("downloaded {n} of {size} bytes")),
                        Err(e) => Err(e),
                    }
                };
                if let Err(e) = result {
                    eprintln!("{op}: {e}");
                    errors += 1;
                }
                lat.push(t.elapsed());
                r += 1;
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().map_err(|_| "worker panicked")?;
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let ok = (all.len() - errors) as f64;
    println!(
        "{:<28} {:<8} {:>5} {:>10.2} {:>9.1} {:>9.1} {:>8} {:>9.1}",
        args.label,
        op,
        conc,
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        errors,
        ok * args.size as f64 / (1 << 20) as f64 / elapsed
    );
    Ok(())
}

/// The edge rows (one connection each): a direct download from the central
/// site, an edge download that misses (a fresh image each time), and one
/// that hits the edge's cache; all in the same run, on the same images' size.
fn run_edge(args: &Args, ops: &[String]) -> Result<(), String> {
    if args.upstream.is_empty() {
        return Err("the edge rows need --upstream (the central site)".into());
    }
    let mut central = Conn::open(&args.upstream, args.headers.clone())?;
    let mut edge = connect(args)?;
    let rounds = args.rounds.max(1);
    let mut fresh = Vec::new();
    for r in 0..rounds + 1 {
        let id = new_image(&mut central, &format!("bench-edge-{r}"))?;
        central.put_repeated(
            &format!("/v2/images/{id}/file"),
            args.size,
            noise_block(),
            &[("Content-Type", "application/octet-stream")],
        )?;
        fresh.push(id);
    }
    let hot = fresh.pop().ok_or("no image")?;
    let get = |c: &mut Conn, id: &str| -> Result<Duration, String> {
        let t = Instant::now();
        match c.get_discard(&format!("/v2/images/{id}/file"))? {
            n if n == args.size => Ok(t.elapsed()),
            n => Err(format!("downloaded {n} of {} bytes", args.size)),
        }
    };
    for op in ops {
        let mut lat = Vec::new();
        let start = Instant::now();
        match op.as_str() {
            "central" => {
                while lat.len() < rounds || start.elapsed().as_secs_f64() < args.seconds {
                    lat.push(get(&mut central, &hot)?);
                }
            }
            "edge-miss" => {
                for id in &fresh {
                    lat.push(get(&mut edge, id)?);
                }
            }
            _ => {
                get(&mut edge, &hot)?; // the fill
                let start = Instant::now();
                while lat.len() < rounds || start.elapsed().as_secs_f64() < args.seconds {
                    lat.push(get(&mut edge, &hot)?);
                }
            }
        }
        let busy: f64 = lat.iter().map(Duration::as_secs_f64).sum();
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{:<28} {:<8} {:>5} {:>10.2} {:>9.1} {:>9.1} {:>8} {:>9.1}",
            args.label,
            op,
            1,
            lat.len() as f64 / busy,
            pct(0.5),
            pct(0.99),
            0,
            lat.len() as f64 * args.size as f64 / (1 << 20) as f64 / busy
        );
    }
    Ok(())
}

fn run_metadata(args: &Args, ops: &[String]) -> Result<(), String> {
    let mut setup = connect(args)?;
    let run_tag = format!("bench-{}", std::process::id());
    // Images for show/update/list: the list scenario wants `list_images` present.
    let needed = args.list_images.max(64);
    let mut ids = Vec::with_capacity(needed);
    eprintln!("[{}] creating {needed} images...", args.label);
    for i in 0..needed {
        let body = json!({"name": format!("{run_tag}-{i}"), "disk_format": "raw",
                          "container_format": "bare", "bench_run": run_tag});
        let img = setup.json("POST", "/v2/images", Some(&body), &[])?;
        ids.push(img["id"].as_str().ok_or("create: no id")?.to_string());
    }
    let ids = Arc::new(ids);
    for op_name in ops {
        let op: Op = match op_name.as_str() {
            "create" => {
                let tag = run_tag.clone();
                Arc::new(move |c: &mut Conn, n: usize| {
                    let body = json!({"name": format!("{tag}-c{n}")});
                    c.json("POST", "/v2/images", Some(&body), &[]).map(|_| ())
                })
            }
            "show" => {
                let ids = ids.clone();
                Arc::new(move |c: &mut Conn, n: usize| {
                    c.json(
                        "GET",
                        &format!("/v2/images/{}", ids[n % ids.len()]),
                        None,
                        &[],
                    )
                    .map(|_| ())
                })
            }
            "list" => {
                Arc::new(|c: &mut Conn, _| c.json("GET", "/v2/images", None, &[]).map(|_| ()))
            }
            "update" => {
                let ids = ids.clone();
                Arc::new(move |c: &mut Conn, n: usize| {
                    let ops = json!([{"op": "replace", "path": "/name", "value": format!("u{n}")}]);
                    c.json(
                        "PATCH",
                        &format!("/v2/images/{}", ids[n % ids.len()]),
                        Some(&ops),
                        &[(
                            "Content-Type",
                            "application/openstack-images-v2.1-json-patch",
                        )],
                    )
                    .map(|_| ())
                })
            }
            other => return Err(format!("unknown op {other}")),
        };
        for &conc in &args.concurrency {
            let r = measure(args, op.clone(), conc)?;
            println!(
                "{:<28} {:<8} {:>5} {:>10.1} {:>9.2} {:>9.2} {:>8}",
                args.label, op_name, conc, r.ops_per_sec, r.p50_ms, r.p99_ms, r.errors
            );
        }
    }
    Ok(())
}

struct Result_ {
    ops_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: usize,
}

fn measure(args: &Args, op: Op, conc: usize) -> Result<Result_, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let start = Instant::now();
    for _ in 0..conc {
        let mut conn = connect(args)?;
        let (op, stop, counter, errors) =
            (op.clone(), stop.clone(), counter.clone(), errors.clone());
        let label = args.label.clone();
        handles.push(std::thread::spawn(move || {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if let Err(e) = op(&mut conn, n) {
                    // The first error of a row says what went wrong; the count says how often.
                    if errors.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("[{label}] conc {conc}: {e}");
                    }
                }
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    std::thread::sleep(Duration::from_secs_f64(args.seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Duration> = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "worker panicked")?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Result_ {
        ops_per_sec: all.len() as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors: errors.load(Ordering::Relaxed),
    })
}

/// One line of a `--queries` file: a short label and the request path.
struct Query {
    label: String,
    path: String,
}

/// Reads a `--queries` file: `label<TAB>path` lines, `#` comments.
fn read_queries(file: &str) -> Result<Vec<Query>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            let (label, path) = l
                .split_once('\t')
                .ok_or_else(|| format!("{file}:{}: expected label<TAB>path", n + 1))?;
            Ok(Query {
                label: label.trim().to_string(),
                path: path.trim().to_string(),
            })
        })
        .collect()
}

/// What a list request returned: how many images, and a digest of their
/// ids in order (equal digests: the same page).
#[derive(Clone, Copy)]
struct Page {
    images: usize,
    digest: u32,
}

/// FNV-1a over the ids, each followed by a comma.
fn page_digest<'a>(ids: impl Iterator<Item = &'a str>) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in ids.flat_map(|id| id.bytes().chain([b','])) {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h
}

/// One timed list request: Ok(the page), or what went wrong (a reconnect for
/// the next request included).
fn list_once(conn: &mut Conn, path: &str) -> Result<Page, String> {
    let resp = match conn.exchange("GET", path, &[], &[]) {
        Ok(r) => r,
        Err(e) => {
            conn.reconnect()?;
            return Err(format!("GET {path}: {e}"));
        }
    };
    // Glance under gunicorn's sync workers answers `Connection: close`: the
    // next request then pays for a new connection, as its clients do.
    if resp
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        conn.reconnect()?;
    }
    if resp.status != 200 {
        return Err(format!(
            "GET {path}: HTTP {}: {}",
            resp.status,
            resp.text().chars().take(300).collect::<String>()
        ));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&resp.body).map_err(|e| format!("GET {path}: bad JSON: {e}"))?;
    let images = doc["images"]
        .as_array()
        .ok_or_else(|| format!("GET {path}: no \"images\" array"))?;
    Ok(Page {
        images: images.len(),
        digest: page_digest(images.iter().filter_map(|i| i["id"].as_str())),
    })
}

/// The `--queries` rows: each query's latency over one keep-alive connection.
fn run_queries(args: &Args) -> Result<(), String> {
    let queries = read_queries(&args.queries)?;
    let mut conn = connect(args)?;
    println!(
        "{:<20} {:<22} {:>9} {:>9} {:>9} {:>6} {:>6} {:>6} {:>8}",
        "target", "query", "p50 ms", "p90 ms", "p99 ms", "reps", "errors", "images", "page"
    );
    for q in &queries {
        let mut first_page = None;
        let mut errors = 0usize;
        let mut note = |r: Result<Page, String>, first: &mut Option<Page>| match r {
            Ok(n) => {
                first.get_or_insert(n);
            }
            Err(e) => {
                if errors == 0 {
                    eprintln!("[{}] {}: {e}", args.label, q.label);
                }
                errors += 1;
            }
        };
        for _ in 0..args.warmup {
            note(list_once(&mut conn, &q.path), &mut first_page);
        }
        let mut lat = Vec::with_capacity(args.reps);
        let start = Instant::now();
        while lat.len() < args.reps
            && (lat.len() < 10 || start.elapsed().as_secs_f64() < args.max_seconds)
        {
            let t = Instant::now();
            let r = list_once(&mut conn, &q.path);
            lat.push(t.elapsed());
            note(r, &mut first_page);
        }
        lat.sort();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{:<20} {:<22} {:>9.2} {:>9.2} {:>9.2} {:>6} {:>6} {:>6} {:>8}",
            args.label,
            q.label,
            pct(0.5),
            pct(0.9),
            pct(0.99),
            lat.len(),
            errors,
            first_page.map_or_else(|| "-".to_string(), |p| p.images.to_string()),
            first_page.map_or_else(|| "-".to_string(), |p| format!("{:08x}", p.digest))
        );
    }
    Ok(())
}

/// The upload body: 1 MiB of xorshift noise repeated (incompressible, cheap
/// to produce once).
fn noise_block() -> &'static [u8] {
    static BLOCK: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut s: u64 = 0x9e3779b97f4a7c15;
        (0..(1 << 17))
            .flat_map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s.to_le_bytes()
            })
            .collect()
    })
}

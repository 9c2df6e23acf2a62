//! Request and response bodies stream through the host; traps become 500s.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use test_support::http::{read_response, request, send};
use test_support::proc_status_kib;

const MIB: u64 = 1 << 20;

/// The probe's `/stream` pattern byte at offset `i`.
fn pattern(i: u64) -> u8 {
    b'a' + (i % 26) as u8
}

#[test]
fn trap_is_500_and_the_host_keeps_serving() {
    let app = probe_app("trap", |m| m);
    let host = HostCmd::up(&app).start();
    let r = host.get("/trap");
    assert_eq!(r.status, 500);
    assert!(r.body.is_empty());
    assert!(
        host.wait_stderr("error processing request for component `probe`"),
        "trap logged: {}",
        host.stderr()
    );
    // Repeatedly, and interleaved with good requests.
    for _ in 0..3 {
        assert_eq!(host.get("/trap").status, 500);
        assert_eq!(host.get("/after").status, 200);
    }
}

#[test]
fn request_body_streams_through_with_flat_memory() {
    let app = probe_app("upload", |m| m);
    let host = HostCmd::up(&app).start();
    // Warm up so the baseline includes an instance's memory.
    assert_eq!(host.get("/").status, 200);
    let before = proc_status_kib(host.pid(), "VmRSS");

    let total = 64 * MIB;
    let mut stream = std::net::TcpStream::connect(host.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        stream,
        "POST /echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        host.addr
    )
    .unwrap();
    let mut hash = FNV_START;
    let mut sent = 0u64;
    let mut chunk = vec![0u8; 256 * 1024];
    let mut peak_rss = 0;
    while sent < total {
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = ((sent + i as u64) * 7 % 251) as u8;
        }
        hash = fnv1a(hash, &chunk);
        write!(stream, "{:x}\r\n", chunk.len()).unwrap();
        stream.write_all(&chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
        sent += chunk.len() as u64;
        if let Some(rss) = proc_status_kib(host.pid(), "VmRSS") {
            peak_rss = peak_rss.max(rss);
        }
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let mut resp = read_response(stream, false);
    assert_eq!(resp.status, 200);
    let mut body = Vec::new();
    resp.body.read_to_end(&mut body).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["bytes"], total, "{v}");
    assert_eq!(v["fnv"], format!("{hash:016x}"));

    if let Some(before) = before {
        let growth_mib = peak_rss.saturating_sub(before) / 1024;
        eprintln!(
            "upload: RSS before {} MiB, peak during {} MiB",
            before / 1024,
            peak_rss / 1024
        );
        assert!(
            growth_mib < 32,
            "a 64 MiB upload grew the host's RSS by {growth_mib} MiB: the body is being buffered"
        );
    }
}

#[test]
fn large_response_streams_out() {
    let app = probe_app("download", |m| m);
    let host = HostCmd::up(&app).start();
    let n = 64 * MIB;
    let mut resp = send(
        host.addr,
        "GET",
        &format!("/stream?n={n}&chunk=1048576"),
        &[],
        None,
    );
    assert_eq!(resp.status, 200);
    let mut buf = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    loop {
        let k = resp.body.read(&mut buf).unwrap();
        if k == 0 {
            break;
        }
        for (i, b) in buf[..k].iter().enumerate() {
            assert_eq!(*b, pattern(offset + i as u64), "byte {}", offset + i as u64);
        }
        offset += k as u64;
    }
    assert_eq!(offset, n);
}

#[test]
fn response_chunks_reach_the_client_as_they_are_written() {
    let app = probe_app("chunks", |m| m);
    let host = HostCmd::up(&app).start();
    // First chunk, then the guest sleeps 1.5 s before the rest.
    let started = Instant::now();
    let mut resp = send(
        host.addr,
        "GET",
        "/stream?n=196608&chunk=65536&delay_ms=1500",
        &[],
        None,
    );
    assert_eq!(resp.status, 200);
    let mut first = vec![0u8; 65536];
    resp.body.read_exact(&mut first).unwrap();
    let first_at = started.elapsed();
    let mut rest = Vec::new();
    resp.body.read_to_end(&mut rest).unwrap();
    let all_at = started.elapsed();
    assert_eq!(rest.len(), 131072);
    assert!(all_at >= Duration::from_millis(1500), "total {all_at:?}");
    assert!(
        first_at < Duration::from_millis(1000),
        "the first chunk arrived after {first_at:?}: the response was buffered"
    );
}

#[test]
fn concurrent_requests_each_get_their_own_instance() {
    let app = probe_app("concurrent", |m| m);
    let host = HostCmd::up(&app).start();
    let addr = host.addr;
    let threads: Vec<_> = (0..16)
        .map(|i| {
            std::thread::spawn(move || {
                for j in 0..10 {
                    let r = request(addr, "GET", &format!("/c/{i}/{j}"), &[], None);
                    assert_eq!(r.status, 200);
                    assert_eq!(r.json()["path"], format!("/c/{i}/{j}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

//! End-to-end: lists of images with huge records stay bounded in memory. A
//! page holds at most a few MiB of records (a `next` link leads on), so six
//! clients walking 120 images of ~0.9 MB each at once cost the host less
//! than twice what one uncut listing of them would weigh.

use serde_json::json;
use test_support::{report, Client, Service};

/// Walks every page of `GET /v2/images`; returns (images, body bytes, pages).
fn walk(c: &Client) -> (usize, usize, usize) {
    let mut path = "/v2/images?limit=1000".to_string();
    let (mut images, mut bytes, mut pages) = (0, 0, 0);
    loop {
        let r = c.get(&path);
        assert_eq!(r.status, 200, "{}", r.text());
        bytes += r.body.len();
        pages += 1;
        let doc = r.json();
        images += doc["images"].as_array().map_or(0, Vec::len);
        match doc["next"].as_str() {
            Some(next) => path = next.to_string(),
            None => return (images, bytes, pages),
        }
    }
}

#[test]
fn six_concurrent_lists_of_huge_records_stay_bounded() {
    let svc = Service::start();
    let c = svc.client();
    let blob = "x".repeat(880_000);
    for i in 0..120 {
        c.create_image(&json!({"name": format!("big-{i}"), "blob": blob}));
    }
    let (images, full, pages) = walk(&c);
    assert_eq!(images, 120);
    let baseline = svc.rss();
    let ((), peak) = svc.peak_rss_during(|| {
        let walkers: Vec<_> = (0..6)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || walk(&c))
            })
            .collect();
        for w in walkers {
            assert_eq!(w.join().expect("walker").0, 120);
        }
    });
    let growth = peak.saturating_sub(baseline);
    report(&format!(
        "6 concurrent lists of 120 images ({} MiB in all, {pages} pages each): host RSS {} MiB, \
         growth {} MiB (bound: {} MiB)",
        full >> 20,
        baseline >> 20,
        growth >> 20,
        (2 * full) >> 20
    ));
    assert!(
        growth < 2 * full as u64,
        "RSS grew {} MiB for listings of {} MiB",
        growth >> 20,
        full >> 20
    );
}

//! The image cache: local copies, in their own key-value store
//! (`image_cache`), of images whose data lives in a slower store (`s3`,
//! `http`) or at an upstream Glance (edge site mode), so a site's hundred
//! downloads of one image cost one transfer from where it lives.
//!
//! - **Hit**: a ready entry is streamed from the cache store (and counted).
//! - **Miss**: the first download claims the entry in the database (an
//!   `INSERT OR IGNORE`: exactly one claim wins across every instance), under
//!   a lease that names the cache location and reserves the image's size
//!   before the first byte. Its response streams from the source and writes
//!   each chunk into the cache as it passes ([`FillStream`]); once the body
//!   is complete and its size and MD5 match the image, the deferred work
//!   publishes the entry — in one statement that also checks the lease is
//!   still held — and evicts least-recently-used entries until the cache fits
//!   `image_cache_max_size`.
//! - **Concurrent misses** find the claim and stream from the filling copy:
//!   chunks land under fixed keys (`<prefix>/<n>`), so a follower reads chunk
//!   `n` as soon as it exists ([`FollowStream`]). Spin instances share
//!   nothing in memory; the database claim and the key-value chunks are the
//!   only coordination, and the source is fetched once.
//! - **Crash safety**: a fill cannot reach the database while it streams
//!   (a response body outlives the request's ports), so it beats a heartbeat
//!   key beside its chunks; a reclamation slice renews the lease of a fill
//!   whose heartbeat is fresh. A fill that breaks off (client gone, source
//!   failed, instance killed) publishes nothing: its deferred work, or the
//!   reclaimer once its lease expires, removes the entry claim, the chunks
//!   (at most the reserved size) and the heartbeat. Evicting or deleting a
//!   ready entry records its data as garbage in the same statement, for the
//!   reclaimer (`data::reclaim`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

use crate::data::blob::kv::KvStore;
use crate::data::blob::{BlobError, BlobStore, BlobWriter, ByteRange, ChunkStream, Location};
use crate::data::reclaim;
use crate::data::stores::Stores;
use crate::db::cache::CacheRepo;
use crate::db::leases::{Lease, LeaseKind, LeaseRepo};
use crate::ports::{Deferred, KeyValue, Ports, StoreError};
use crate::settings::{CacheSettings, StoreSettings};
use crate::timestamp::Timestamp;

/// Opens an image's data at its source: the whole of it (None) or a range.
pub(crate) type Source<'s> = &'s dyn Fn(Option<ByteRange>) -> Result<ChunkStream, BlobError>;

/// The image whose data is wanted.
pub(crate) struct Wanted<'s> {
    /// Image id (the cache key).
    pub image_id: &'s str,
    /// Its size in bytes.
    pub size: u64,
    /// Its MD5, hex, if known: a fill whose data differs is not kept.
    pub checksum: Option<&'s str>,
    /// Whether a miss fills the cache (data in a slower store, or upstream).
    pub fill: bool,
}

/// How a download was served (for the log and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// From a ready entry.
    Hit,
    /// From the source, filling the cache.
    Fill,
    /// From another request's fill as it lands.
    Follow,
    /// From the source, not cached.
    Direct,
}

impl Via {
    /// The `x-image-cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Hit => "hit",
            Via::Fill => "miss",
            Via::Follow => "follow",
            Via::Direct => "bypass",
        }
    }
}

/// A served download: the body, and the work to do once it is sent.
pub(crate) struct Served {
    /// The data.
    pub stream: ChunkStream,
    /// A fill's publication (or clean-up), after the response.
    pub deferred: Option<Deferred>,
    /// How it was served.
    pub via: Via,
}

/// The key of a fill's heartbeat, beside its chunks.
fn beat_key(lease_id: &str) -> String {
    format!("fills/{lease_id}")
}

fn unix_secs() -> i64 {
    Timestamp::now().0
}

/// The image cache of one request.
pub(crate) struct Cache<'a> {
    ports: &'a Ports<'a>,
    stores: &'a Stores,
    repo: CacheRepo<'a>,
    max_size: u64,
    stale: i64,
}

impl<'a> Cache<'a> {
    /// The cache, if `settings` turn it on.
    pub fn open(
        ports: &'a Ports<'a>,
        stores: &'a Stores,
        settings: &CacheSettings,
    ) -> Option<Self> {
        Some(Cache {
            ports,
            stores,
            repo: CacheRepo::new(ports.db),
            max_size: settings.max_size?,
            stale: settings.stale_seconds,
        })
    }

    /// The cache records.
    pub fn repo(&self) -> &CacheRepo<'a> {
        &self.repo
    }

    fn store(&self) -> &KvStore {
        self.stores.cache()
    }

    /// Serves the data of `w` (or `range` of it): from the cache when it is
    /// there, else from `source` — filling the cache on a whole-image miss
    /// when `w.fill`, or following another request's fill of it.
    pub fn serve(
        &self,
        w: &Wanted,
        range: Option<ByteRange>,
        source: Source,
    ) -> Result<Served, BlobError> {
        for _ in 0..2 {
            match self.repo.get(w.image_id)? {
                Some(e) if e.ready() && e.size == w.size => {
                    if let Err(err) = self.repo.touch(w.image_id) {
                        self.ports.log_error("counting a cache hit", err);
                    }
                    return Ok(Served {
                        stream: self.store().read(&e.location, range)?,
                        deferred: None,
                        via: Via::Hit,
                    });
                }
                Some(e) if !e.ready() && range.is_none() && e.size == w.size => {
                    let Some(lease) = e.lease_id.as_deref() else {
                        break;
                    };
                    return Ok(Served {
                        stream: Box::new(FollowStream {
                            kv: self.store().kv().clone(),
                            store: self.store().clone(),
                            location: e.location.clone(),
                            size: w.size,
                            next: 0,
                            beat: beat_key(lease),
                            stale: self.stale,
                            progress: Instant::now(),
                        }),
                        deferred: None,
                        via: Via::Follow,
                    });
                }
                Some(_) => break,
                None => {
                    if !w.fill || range.is_some() || w.size == 0 || w.size > self.max_size {
                        break;
                    }
                    if let Some(served) = self.fill(w, source)? {
                        return Ok(served);
                    }
                    // Another request claimed it first: serve from its fill.
                }
            }
        }
        Ok(Served {
            stream: source(range)?,
            deferred: None,
            via: Via::Direct,
        })
    }

    /// Claims the entry of `w` and returns a stream that fills it from
    /// `source`; None when another request holds the claim.
    fn fill(&self, w: &Wanted, source: Source) -> Result<Option<Served>, BlobError> {
        let store = self.store().clone();
        let at = store.plan(w.image_id)?;
        let mut lease = Lease::new(w.image_id, LeaseKind::Cache, self.stale);
        lease.location = Some(at.clone());
        lease.reserved = w.size;
        let leases = LeaseRepo::new(self.ports.db);
        leases.take(&lease)?;
        if !self
            .repo
            .claim(w.image_id, &at, &lease.id, w.size, w.checksum)?
        {
            leases.drop_lease(&lease.id)?;
            return Ok(None);
        }
        let beat = beat_key(&lease.id);
        let started = (|| {
            store.kv().set(&beat, unix_secs().to_string().as_bytes())?;
            self.make_room();
            let writer = store.writer(&at)?;
            Ok::<_, BlobError>((writer, source(None)?))
        })();
        let (writer, upstream) = match started {
            Ok(s) => s,
            Err(e) => {
                discard(self.ports, &store, &lease);
                return Err(e);
            }
        };
        let outcome = Rc::new(RefCell::new(None));
        let stream = FillStream {
            source: upstream,
            writer: Some(writer),
            kv: store.kv().clone(),
            beat,
            beat_every: (self.stale / 4).max(1),
            last_beat: unix_secs(),
            expected: w.size,
            seen: 0,
            md5: Md5::new(),
            want_md5: w.checksum.map(str::to_string),
            outcome: outcome.clone(),
        };
        let max_size = self.max_size;
        let deferred: Deferred = Box::new(move |ports: &Ports| {
            let done = outcome.borrow_mut().take();
            publish(ports, &store, &lease, done, max_size);
        });
        Ok(Some(Served {
            stream: Box::new(stream),
            deferred: Some(deferred),
            via: Via::Fill,
        }))
    }

    /// Evicts least-recently-used ready entries until the cache (fills
    /// included) fits its size; returns (entries, bytes) evicted.
    pub fn make_room(&self) -> (u64, u64) {
        evict(self.ports, self.stores, self.max_size)
    }

    /// Drops the ready entry of `image_id`; true if there was one.
    pub fn remove(&self, image_id: &str) -> Result<bool, StoreError> {
        let removed = self.repo.remove_ready(image_id)?;
        if removed {
            reclaim::image(self.ports, self.stores, image_id);
        }
        Ok(removed)
    }

    /// Drops every ready entry; returns how many.
    pub fn remove_all(&self) -> Result<usize, StoreError> {
        let ids = self.repo.remove_all_ready()?;
        for id in &ids {
            reclaim::image(self.ports, self.stores, id);
        }
        Ok(ids.len())
    }
}

/// Evicts LRU ready entries of the cache until it fits `max_size`.
fn evict(ports: &Ports, stores: &Stores, max_size: u64) -> (u64, u64) {
    let repo = CacheRepo::new(ports.db);
    let (mut files, mut bytes) = (0, 0);
    // Bounded: each round drops one entry.
    for _ in 0..1000 {
        let over = match repo.total_size() {
            Ok(total) => total > max_size,
            Err(e) => {
                ports.log_error("measuring the image cache", e);
                break;
            }
        };
        if !over {
            break;
        }
        let Ok(Some(lru)) = repo.least_recent() else {
            break;
        };
        match repo.remove_ready(&lru.image_id) {
            Ok(true) => {
                files += 1;
                bytes += lru.size;
                reclaim::image(ports, stores, &lru.image_id);
            }
            Ok(false) => {}
            Err(e) => {
                ports.log_error("evicting from the image cache", e);
                break;
            }
        }
    }
    (files, bytes)
}

/// After a fill's response: publishes the entry if its data is whole and
/// its lease still held, else removes what it wrote.
fn publish(ports: &Ports, store: &KvStore, lease: &Lease, done: Option<Location>, max_size: u64) {
    let Some(location) = done else {
        discard(ports, store, lease);
        return;
    };
    match CacheRepo::new(ports.db).publish(&lease.image_id, &lease.id, &location) {
        Ok(true) => {
            if let Err(e) = LeaseRepo::new(ports.db).drop_lease(&lease.id) {
                ports.log_error("dropping a cache fill's lease", e);
            }
            let _ = store.kv().delete(&beat_key(&lease.id));
            let stores = StoreSettings::load(ports.vars)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    Stores::open(s, ports.kv, ports.http.clone()).map_err(|e| e.to_string())
                });
            match stores {
                Ok(stores) => {
                    evict(ports, &stores, max_size);
                }
                Err(e) => ports.log_error("opening the stores to evict", e),
            }
        }
        Ok(false) => discard(ports, store, lease),
        Err(e) => {
            ports.log_error("publishing a cache entry", e);
            discard(ports, store, lease);
        }
    }
}

/// Removes an unpublished fill: its claim, its chunks, its heartbeat, its
/// lease. What fails is left to the reclaimer (the lease is expired).
pub(crate) fn discard(ports: &Ports, store: &KvStore, lease: &Lease) {
    let done = (|| {
        CacheRepo::new(ports.db).drop_fill(&lease.id)?;
        if let Some(at) = &lease.location {
            store.reclaim(at, lease.reserved)?;
        }
        store.kv().delete(&beat_key(&lease.id))?;
        LeaseRepo::new(ports.db).drop_lease(&lease.id)?;
        Ok::<_, BlobError>(())
    })();
    if let Err(e) = done {
        ports.log_error(&format!("removing cache fill {}", lease.id), e);
        if let Err(e) = LeaseRepo::new(ports.db).expire(&lease.id) {
            ports.log_error(&format!("expiring lease {}", lease.id), e);
        }
    }
}

/// Settles an abandoned fill's lease (the reclaimer's part): drops its
/// claim, and its data unless a ready entry holds it.
pub(crate) fn settle(ports: &Ports, stores: &Stores, lease: &Lease) -> Result<(), BlobError> {
    let repo = CacheRepo::new(ports.db);
    repo.drop_fill(&lease.id)?;
    if let Some(at) = &lease.location {
        if !repo.references(&at.url)? {
            stores.cache().reclaim(at, lease.reserved)?;
        }
    }
    stores.cache().kv().delete(&beat_key(&lease.id))?;
    Ok(())
}

/// Renews the leases of fills whose heartbeat is fresh (a fill streaming a
/// response cannot reach the database itself), before a slice abandons
/// expired leases.
pub(crate) fn renew_fills(ports: &Ports, stores: &Stores, stale: i64) -> Result<(), StoreError> {
    let now = unix_secs();
    let leases = LeaseRepo::new(ports.db);
    for lease in leases.held_due(LeaseKind::Cache, now + stale / 2, 16)? {
        let beat = stores
            .cache()
            .kv()
            .get(&beat_key(&lease.id))?
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|t| t.parse::<i64>().ok());
        if let Some(t) = beat.filter(|t| *t >= now - stale) {
            leases.renew(&[&lease.id], t + stale, None)?;
        }
    }
    Ok(())
}

/// A download's body that also writes every chunk into the cache.
struct FillStream {
    source: ChunkStream,
    writer: Option<Box<dyn BlobWriter>>,
    kv: Rc<dyn KeyValue>,
    beat: String,
    beat_every: i64,
    last_beat: i64,
    expected: u64,
    seen: u64,
    md5: Md5,
    want_md5: Option<String>,
    /// The cache location once the data is whole and verified.
    outcome: Rc<RefCell<Option<Location>>>,
}

impl FillStream {
    /// Stops filling (the client still gets its data from the source).
    fn give_up(&mut self) {
        if let Some(w) = self.writer.take() {
            w.abort();
        }
        let _ = self.kv.delete(&self.beat);
    }
}

impl Iterator for FillStream {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.source.next() {
            Some(Ok(chunk)) => {
                self.seen += chunk.len() as u64;
                if let Some(w) = self.writer.as_mut() {
                    self.md5.update(&chunk);
                    if self.seen > self.expected || w.write(&chunk).is_err() {
                        self.give_up();
                    } else {
                        let now = unix_secs();
                        if now - self.last_beat >= self.beat_every {
                            self.last_beat = now;
                            let _ = self.kv.set(&self.beat, now.to_string().as_bytes());
                        }
                    }
                }
                Some(Ok(chunk))
            }
            Some(Err(e)) => {
                self.give_up();
                Some(Err(e))
            }
            None => {
                if self.seen != self.expected {
                    self.give_up();
                    return Some(Err(std::io::Error::other(format!(
                        "the source ended after {} of {} bytes",
                        self.seen, self.expected
                    ))));
                }
                if let Some(w) = self.writer.take() {
                    let digest = std::mem::take(&mut self.md5).finalize();
                    let md5: String = digest.iter().map(|b| format!("{b:02x}")).collect();
                    let matches = self.want_md5.as_ref().is_none_or(|want| *want == md5);
                    if matches {
                        if let Ok(loc) = w.finish() {
                            *self.outcome.borrow_mut() = Some(loc);
                        }
                    } else {
                        w.abort();
                    }
                    let _ = self.kv.delete(&self.beat);
                }
                None
            }
        }
    }
}

/// How long a follower waits between looks for the next chunk.
const FOLLOW_POLL: Duration = Duration::from_millis(20);

/// A download's body read from another request's fill as its chunks land.
struct FollowStream {
    kv: Rc<dyn KeyValue>,
    store: KvStore,
    location: Location,
    size: u64,
    next: u64,
    beat: String,
    stale: i64,
    progress: Instant,
}

impl FollowStream {
    /// Whether the fill is still going: its heartbeat exists and is fresh.
    fn fill_alive(&self) -> bool {
        match self.kv.get(&self.beat) {
            Ok(Some(v)) => String::from_utf8(v)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| t >= unix_secs() - self.stale),
            _ => false,
        }
    }
}

impl Iterator for FollowStream {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.location.chunk_size.max(1);
        if self.next * chunk >= self.size {
            return None;
        }
        let key = match self.store.chunk_key(&self.location, self.next) {
            Ok(k) => k,
            Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
        };
        let mut checked_beat = false;
        loop {
            match self.kv.get(&key) {
                Ok(Some(v)) => {
                    self.next += 1;
                    self.progress = Instant::now();
                    return Some(Ok(v));
                }
                Ok(None) => {}
                Err(e) => return Some(Err(std::io::Error::other(e.to_string()))),
            }
            if checked_beat {
                return Some(Err(std::io::Error::other(
                    "the cache fill this download followed stopped",
                )));
            }
            if self.progress.elapsed() >= Duration::from_secs(1) {
                self.progress = Instant::now();
                if !self.fill_alive() {
                    // One more look: the fill may have just written its last chunk.
                    checked_beat = true;
                    continue;
                }
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::blob::StoreId;
    use crate::ports::memory::MemoryKv;

    fn follower(kv: Rc<MemoryKv>, size: u64) -> FollowStream {
        let store = KvStore::new("image_cache", kv.clone(), 4);
        FollowStream {
            kv,
            store,
            location: Location {
                store: StoreId::Kv,
                url: "kv://image_cache/img/u1".into(),
                size: 0,
                chunk_size: 4,
            },
            size,
            next: 0,
            beat: beat_key("l1"),
            stale: 600,
            progress: Instant::now(),
        }
    }

    #[test]
    fn a_follower_reads_the_chunks_of_a_fill_and_stops_when_it_stops() {
        let kv = Rc::new(MemoryKv::default());
        kv.set("img/u1/0", b"abcd").unwrap();
        kv.set("img/u1/1", b"ef").unwrap();
        let got: Vec<u8> = follower(kv.clone(), 6).flat_map(|c| c.unwrap()).collect();
        assert_eq!(got, b"abcdef");
        // A fill without a heartbeat whose chunk never comes: an error, not a hang.
        let mut f = follower(kv.clone(), 10);
        f.progress = Instant::now() - Duration::from_secs(5);
        assert_eq!(f.next().unwrap().unwrap(), b"abcd");
        assert_eq!(f.next().unwrap().unwrap(), b"ef");
        f.progress = Instant::now() - Duration::from_secs(5);
        assert!(f.next().unwrap().is_err(), "the fill is gone");
    }
}

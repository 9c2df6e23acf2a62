//! The `kv` store: image data in fixed-size chunks in a Spin key-value store.
//!
//! Chunk `n` of an upload lives at `<image_id>/<upload_id>/<n>`; the location
//! records the upload id, size and chunk size, so reading computes keys instead
//! of listing them, and a range read starts at the right chunk. Every upload
//! gets its own upload id, so a failed or concurrent upload never touches the
//! chunks of another.

use std::rc::Rc;

use crate::data::blob::{
    BlobError, BlobStore, BlobWriter, ByteRange, ChunkStream, Location, StoreId,
};
use crate::ports::KeyValue;

/// Default chunk size: below the 1 MB every Spin key-value backend accepts.
pub const DEFAULT_CHUNK_SIZE: usize = 1_000_000;

/// Chunked image data in a key-value store.
#[derive(Clone)]
pub struct KvStore {
    label: String,
    key_prefix: String,
    kv: Rc<dyn KeyValue>,
    chunk_size: usize,
}

impl KvStore {
    /// The store over the key-value store `label`.
    pub fn new(label: &str, kv: Rc<dyn KeyValue>, chunk_size: usize) -> Self {
        KvStore {
            label: label.to_string(),
            key_prefix: String::new(),
            kv,
            chunk_size: chunk_size.max(1),
        }
    }

    /// The same store writing under `prefix` (e.g. `staging/`), so another
    /// store can share the key-value store without sharing keys.
    pub fn with_key_prefix(mut self, prefix: &str) -> Self {
        self.key_prefix = prefix.to_string();
        self
    }

    fn prefix_of(&self, location: &Location) -> Result<String, BlobError> {
        location
            .url
            .strip_prefix(&format!("kv://{}/", self.label))
            .map(str::to_string)
            .ok_or_else(|| BlobError::Missing(format!("not a kv location: {}", location.url)))
    }
}

impl BlobStore for KvStore {
    fn plan(&self, image_id: &str) -> Result<Location, BlobError> {
        Ok(Location {
            store: StoreId::Kv,
            url: format!(
                "kv://{}/{}{image_id}/{}",
                self.label,
                self.key_prefix,
                uuid::Uuid::new_v4().simple()
            ),
            size: 0,
            chunk_size: self.chunk_size as u64,
        })
    }

    fn writer(&self, at: &Location) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(KvWriter {
            store: self.clone(),
            prefix: self.prefix_of(at)?,
            buf: Vec::with_capacity(self.chunk_size),
            pending: Vec::new(),
            chunks: 0,
            size: 0,
        }))
    }

    fn read(
        &self,
        location: &Location,
        range: Option<ByteRange>,
    ) -> Result<ChunkStream, BlobError> {
        let prefix = self.prefix_of(location)?;
        let chunk = location.chunk_size.max(1);
        let (first, last) = match range {
            Some(r) => (r.first, r.last),
            None if location.size == 0 => return Ok(Box::new(std::iter::empty())),
            None => (0, location.size - 1),
        };
        Ok(Box::new(KvReader {
            kv: self.kv.clone(),
            prefix,
            chunk,
            next: first,
            last,
        }))
    }

    fn delete(&self, location: &Location) -> Result<(), BlobError> {
        let prefix = self.prefix_of(location)?;
        let chunk = location.chunk_size.max(1);
        let count = location.size.div_ceil(chunk);
        for n in 0..count {
            self.kv.delete(&format!("{prefix}/{n}"))?;
        }
        Ok(())
    }
}

struct KvWriter {
    store: KvStore,
    /// Chunks gathered for one `set_many` (counted in `chunks` already).
    pending: Vec<(String, Vec<u8>)>,
    prefix: String,
    buf: Vec<u8>,
    chunks: u64,
    size: u64,
}

impl KvWriter {
    /// Stores the buffered chunk, or gathers it for a batch when the store
    /// takes several values in one transaction (far fewer fsyncs per MB).
    fn flush_chunk(&mut self) -> Result<(), BlobError> {
        let key = format!("{}/{}", self.prefix, self.chunks);
        let batch = self.store.kv.batch_hint();
        self.chunks += 1;
        if batch <= 1 {
            self.store.kv.set(&key, &self.buf)?;
            self.buf.clear();
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(self.store.chunk_size));
        self.pending.push((key, full));
        if self.pending.len() >= batch {
            self.flush_pending()?;
        }
        Ok(())
    }

    fn flush_pending(&mut self) -> Result<(), BlobError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.pending);
        self.store.kv.set_many(&items)?;
        Ok(())
    }
}

impl BlobWriter for KvWriter {
    fn write(&mut self, mut data: &[u8]) -> Result<(), BlobError> {
        self.size += data.len() as u64;
        let cap = self.store.chunk_size;
        while !data.is_empty() {
            let take = (cap - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == cap {
                self.flush_chunk()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Location, BlobError> {
        let stored = if self.buf.is_empty() {
            Ok(())
        } else {
            self.flush_chunk()
        }
        .and_then(|()| self.flush_pending());
        if let Err(e) = stored {
            self.abort();
            return Err(e);
        }
        Ok(Location {
            store: StoreId::Kv,
            url: format!("kv://{}/{}", self.store.label, self.prefix),
            size: self.size,
            chunk_size: self.store.chunk_size as u64,
        })
    }

    fn abort(self: Box<Self>) {
        for n in 0..self.chunks {
            // Best effort: a store that fails writes may fail deletes too.
            let _ = self.store.kv.delete(&format!("{}/{n}", self.prefix));
        }
    }
}

struct KvReader {
    kv: Rc<dyn KeyValue>,
    prefix: String,
    chunk: u64,
    next: u64,
    last: u64,
}

impl Iterator for KvReader {
    type Item = std::io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next > self.last {
            return None;
        }
        let index = self.next / self.chunk;
        let start = (self.next % self.chunk) as usize;
        let key = format!("{}/{index}", self.prefix);
        let data = match self.kv.get(&key) {
            Ok(Some(d)) => d,
            Ok(None) => {
                self.next = self.last + 1;
                return Some(Err(std::io::Error::other(format!("chunk {key} missing"))));
            }
            Err(e) => {
                self.next = self.last + 1;
                return Some(Err(std::io::Error::other(e.to_string())));
            }
        };
        let chunk_end = (index + 1) * self.chunk - 1;
        let end_in_chunk = (self.last.min(chunk_end) - index * self.chunk) as usize;
        if start > end_in_chunk || end_in_chunk >= data.len() {
            self.next = self.last + 1;
            return Some(Err(std::io::Error::other(format!("chunk {key} is short"))));
        }
        self.next = self.last.min(chunk_end) + 1;
        let mut data = data;
        data.truncate(end_in_chunk + 1);
        if start > 0 {
            data.drain(..start);
        }
        Some(Ok(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::memory::MemoryKv;

    fn store(chunk: usize) -> (Rc<MemoryKv>, KvStore) {
        let kv = Rc::new(MemoryKv::default());
        (kv.clone(), KvStore::new("image_data", kv, chunk))
    }

    fn collect(s: ChunkStream) -> Vec<u8> {
        s.flat_map(|c| c.unwrap()).collect()
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_in_chunks() {
        let (kv, s) = store(10);
        let d = data(95);
        let mut w = s.writer(&s.plan("img").unwrap()).unwrap();
        for piece in d.chunks(7) {
            w.write(piece).unwrap();
        }
        let loc = w.finish().unwrap();
        assert_eq!(loc.size, 95);
        assert_eq!(kv.map.borrow().len(), 10);
        assert_eq!(collect(s.read(&loc, None).unwrap()), d);
        s.delete(&loc).unwrap();
        assert!(kv.map.borrow().is_empty());
    }

    #[test]
    fn ranges() {
        let (_, s) = store(10);
        let d = data(95);
        let mut w = s.writer(&s.plan("img").unwrap()).unwrap();
        w.write(&d).unwrap();
        let loc = w.finish().unwrap();
        for (a, b) in [
            (0, 0),
            (0, 9),
            (9, 10),
            (13, 57),
            (90, 94),
            (94, 94),
            (0, 94),
        ] {
            let got = collect(s.read(&loc, Some(ByteRange { first: a, last: b })).unwrap());
            assert_eq!(got, d[a as usize..=b as usize], "{a}-{b}");
        }
    }

    #[test]
    fn abort_removes_written_chunks_and_uploads_are_separate() {
        let (kv, s) = store(10);
        let mut keep = s.writer(&s.plan("img").unwrap()).unwrap();
        keep.write(&data(25)).unwrap();
        let kept = keep.finish().unwrap();
        let mut w = s.writer(&s.plan("img").unwrap()).unwrap();
        w.write(&data(35)).unwrap();
        w.abort();
        assert_eq!(
            kv.map.borrow().len(),
            3,
            "only the finished upload's chunks remain"
        );
        assert_eq!(collect(s.read(&kept, None).unwrap()), data(25));
    }

    #[test]
    fn empty_object() {
        let (_, s) = store(10);
        let loc = s.writer(&s.plan("img").unwrap()).unwrap().finish().unwrap();
        assert_eq!(loc.size, 0);
        assert!(collect(s.read(&loc, None).unwrap()).is_empty());
    }

    #[test]
    fn reclaim_removes_what_an_abandoned_write_left() {
        let (kv, s) = store(10);
        let at = s.plan("img").unwrap();
        let mut w = s.writer(&at).unwrap();
        w.write(&data(45)).unwrap();
        drop(w); // the writer died without finishing or aborting
        assert_eq!(kv.map.borrow().len(), 4);
        // It had reserved 60 bytes: six chunk keys are cleared, four existed.
        s.reclaim(&at, 60).unwrap();
        assert!(kv.map.borrow().is_empty());
    }

    #[test]
    fn batched_chunks_are_all_stored_and_a_failed_batch_leaves_nothing() {
        let (kv, s) = store(10);
        kv.batch.set(3);
        let mut w = s.writer(&s.plan("img").unwrap()).unwrap();
        w.write(&data(65)).unwrap();
        assert_eq!(kv.map.borrow().len(), 6, "two full batches stored");
        let loc = w.finish().unwrap();
        assert_eq!(kv.map.borrow().len(), 7, "the rest at finish");
        assert_eq!(collect(s.read(&loc, None).unwrap()), data(65));
        s.delete(&loc).unwrap();

        *kv.fail_sets_after.borrow_mut() = Some(4);
        let mut w = s.writer(&s.plan("img").unwrap()).unwrap();
        let err = w.write(&data(65));
        assert!(err.is_err(), "the second batch fails midway");
        w.abort();
        assert!(kv.map.borrow().is_empty());
    }
}

//! Regions of the stream kept as they pass, and the fixed-width integer
//! readers the formats' headers need.

/// A region of the stream (`len` bytes at `offset`) captured as it passes.
pub(super) struct Capture {
    /// Stream offset of the region's first byte.
    pub(super) offset: u64,
    /// Bytes the region wants.
    len: usize,
    /// The bytes captured so far (from `offset` on, without gaps).
    pub(super) data: Vec<u8>,
}

impl Capture {
    /// A region of `len` bytes at stream offset `offset`, nothing captured.
    pub(super) fn new(offset: u64, len: usize) -> Self {
        Capture {
            offset,
            len,
            data: Vec::with_capacity(len),
        }
    }

    /// Whether every byte of the region was captured.
    pub(super) fn complete(&self) -> bool {
        self.data.len() >= self.len
    }

    /// The stream offset of the next byte this region still needs.
    fn next_needed(&self) -> u64 {
        self.offset.saturating_add(self.data.len() as u64)
    }

    /// Whether the region can no longer be completed once `pos` bytes were seen.
    pub(super) fn lost(&self, pos: u64) -> bool {
        !self.complete() && self.next_needed() < pos
    }

    /// Wants nothing more: the region ends where the captured bytes do.
    pub(super) fn stop(&mut self) {
        self.len = self.data.len();
    }

    /// Takes what it needs from `chunk`, which starts at stream offset `at`.
    pub(super) fn offer(&mut self, at: u64, chunk: &[u8]) {
        if self.complete() {
            return;
        }
        let want = self.next_needed();
        let end = at + chunk.len() as u64;
        if want < at || want >= end {
            return;
        }
        let start = (want - at) as usize;
        let n = (self.len - self.data.len()).min(chunk.len() - start);
        self.data.extend_from_slice(&chunk[start..start + n]);
    }

    /// Fills a newly created region from data already held (given in any
    /// order, each with its stream offset), then from the current chunk.
    pub(super) fn fill(&mut self, sources: &[(u64, &[u8])]) {
        loop {
            let before = self.data.len();
            for (at, bytes) in sources {
                self.offer(*at, bytes);
            }
            if self.data.len() == before {
                break;
            }
        }
    }
}

/// The big-endian `u16` at `at`, if `b` holds it.
pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The big-endian `u32` at `at`, if `b` holds it.
pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The big-endian `u64` at `at`, if `b` holds it.
pub(super) fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The little-endian `u16` at `at`, if `b` holds it.
pub(super) fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

/// The little-endian `u32` at `at`, if `b` holds it.
pub(super) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The little-endian `u64` at `at`, if `b` holds it.
pub(super) fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

//! Test data: reproducible pseudo-random bytes produced piece by piece, and
//! hashing as Glance reports it (md5 `checksum`, sha512 `os_hash_value`).

use md5::{Digest, Md5};
use sha2::Sha512;

/// `total` bytes of xorshift noise from `seed`, in pieces of `piece` bytes.
pub fn noise(seed: u64, total: u64, piece: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut state = seed | 1;
    let mut left = total;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(piece as u64) as usize;
        left -= n as u64;
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            v.extend_from_slice(&state.to_le_bytes());
        }
        v.truncate(n);
        Some(v)
    })
}

/// The whole of `noise(seed, total, ..)` in memory (small sizes only).
pub fn noise_vec(seed: u64, total: usize) -> Vec<u8> {
    noise(seed, total as u64, 1 << 20).flatten().collect()
}

/// md5 and sha512, hex.
#[derive(Default)]
pub struct Hashes {
    md5: Md5,
    sha: Sha512,
}

impl Hashes {
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha.update(data);
    }

    /// (md5 hex, sha512 hex).
    pub fn finish(self) -> (String, String) {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        (hex(&self.md5.finalize()), hex(&self.sha.finalize()))
    }
}

/// Hashes of a byte slice.
pub fn hashes(data: &[u8]) -> (String, String) {
    let mut h = Hashes::default();
    h.update(data);
    h.finish()
}

//! The inspector's tests, on images made by `qemu-img` (see `qemu`) and by
//! hand, by topic; the helpers here build and inspect such data.

mod detect;
mod early;
mod qemu;
mod reasons;
mod safety;
mod verdict;

use super::iso::ISO_PVD_AT;
use super::*;

/// Chunk sizes every image is fed in: single bytes, odd sizes, aligned
/// sizes, and the whole image at once.
const CHUNKS: &[usize] = &[1, 7, 512, 4093, 65536, 1 << 20, usize::MAX];

fn inspect(data: &[u8], chunk: usize) -> Inspection {
    let mut inspector = FormatInspector::new();
    for piece in data.chunks(chunk.min(data.len()).max(1)) {
        inspector.feed(piece);
    }
    inspector.finish()
}

/// Inspects `data` in every chunk size and checks the answers agree.
fn inspect_all(data: &[u8]) -> Inspection {
    let reference = inspect(data, usize::MAX);
    for &chunk in CHUNKS {
        assert_eq!(inspect(data, chunk), reference, "chunk size {chunk}");
    }
    reference
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A minimal ISO 9660 image: `blocks` logical blocks of 2048 bytes with a
/// primary volume descriptor at 32 KiB and a terminator after it.
fn iso_image(blocks: u32) -> Vec<u8> {
    let mut data = vec![0u8; blocks as usize * 2048];
    let pvd = &mut data[ISO_PVD_AT..ISO_PVD_AT + 2048];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].fill(b' ');
    pvd[40..72].fill(b' ');
    pvd[40..46].copy_from_slice(b"GLANCE");
    pvd[80..84].copy_from_slice(&blocks.to_le_bytes());
    pvd[84..88].copy_from_slice(&blocks.to_be_bytes());
    pvd[120..122].copy_from_slice(&1u16.to_le_bytes());
    pvd[122..124].copy_from_slice(&1u16.to_be_bytes());
    pvd[124..126].copy_from_slice(&1u16.to_le_bytes());
    pvd[126..128].copy_from_slice(&1u16.to_be_bytes());
    pvd[128..130].copy_from_slice(&2048u16.to_le_bytes());
    pvd[130..132].copy_from_slice(&2048u16.to_be_bytes());
    pvd[881] = 1;
    let term = &mut data[ISO_PVD_AT + 2048..ISO_PVD_AT + 4096];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;
    data
}

/// A first sector holding an MBR with the given partition entries
/// (boot flag, start CHS, type, start LBA).
fn mbr(entries: &[(u8, [u8; 3], u8, u32)]) -> Vec<u8> {
    let mut sector = vec![0u8; 512];
    for (i, (boot, chs, os_type, lba)) in entries.iter().enumerate() {
        let pte = &mut sector[446 + 16 * i..462 + 16 * i];
        pte[0] = *boot;
        pte[1..4].copy_from_slice(chs);
        pte[4] = *os_type;
        pte[8..12].copy_from_slice(&lba.to_le_bytes());
        pte[12..16].copy_from_slice(&1000u32.to_le_bytes());
    }
    sector[510] = 0x55;
    sector[511] = 0xaa;
    sector
}

fn protective_mbr() -> Vec<u8> {
    mbr(&[(0, [0, 2, 0], 0xee, 1)])
}

fn unsafe_err(result: Result<Option<u64>, FormatError>) -> String {
    match result {
        Err(FormatError::Unsafe(reasons)) => {
            let texts: Vec<String> = reasons.iter().map(Reason::to_string).collect();
            texts.join("; ")
        }
        other => panic!("expected an unsafe refusal, got {other:?}"),
    }
}

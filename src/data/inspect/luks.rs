//! LUKS encrypted volumes.

use super::capture::{be16, be32};
use super::probe::{Completion, Details, FormatProbe, Seen, Tri};
use super::Reason;

const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";
/// oslo captures 592 bytes of LUKS header (header plus eight key slots).
const LUKS_HEADER_LEN: usize = 592;
/// End of the LUKS header fields oslo unpacks to compute the virtual size.
const LUKS_SIZE_FIELDS_END: usize = 168;

/// LUKS: its magic; version 1 only.
pub(super) struct Luks;

impl FormatProbe for Luks {
    fn status(&self, seen: &Seen) -> Tri {
        seen.magic(0, LUKS_MAGIC, LUKS_MAGIC.len())
    }

    fn details(&self, seen: &Seen) -> Details {
        let head = seen.head;
        // payload offset: big-endian u32 at 104, in 512-byte sectors.
        let virtual_size =
            be32(head, 104).and_then(|sectors| seen.pos.checked_sub(u64::from(sectors) * 512));
        let complete = if seen.pos >= LUKS_HEADER_LEN as u64 {
            Completion::Done
        } else {
            Completion::Pending
        };
        let mut failed = Vec::new();
        if let Some(version) = be16(head, 6).filter(|&v| v != 1) {
            failed.push(Reason::LuksVersion(version));
        }
        Details {
            virtual_size,
            failed,
            complete,
            // oslo reads the size from the first 168 header bytes.
            unreadable: seen.finished && head.len() < LUKS_SIZE_FIELDS_END,
        }
    }
}

//! qcow2: QEMU copy-on-write images.

use super::capture::{be32, be64};
use super::probe::{Details, FormatProbe, Seen, Tri, SECTOR};
use super::Reason;

const QCOW2_MAGIC: &[u8] = b"QFI\xfb";

/// qcow2: its magic, judged once the 512-byte header was seen.
pub(super) struct Qcow2;

impl FormatProbe for Qcow2 {
    fn status(&self, seen: &Seen) -> Tri {
        seen.magic(0, QCOW2_MAGIC, SECTOR)
    }

    fn details(&self, seen: &Seen) -> Details {
        Details::checked(be64(seen.head, 24), qcow2_checks(seen.head))
    }
}

/// oslo's qcow2 checks on the first 512 bytes: backing file, external data
/// file, and incompatible features beyond those it knows (bits 0-3), or a
/// version other than 2 and 3.
fn qcow2_checks(header: &[u8]) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if be64(header, 8).unwrap_or(0) != 0 {
        reasons.push(Reason::Qcow2BackingFile);
    }
    // Incompatible feature bits, big-endian u64 at 0x48; bit 2 = external data file.
    let features = be64(header, 0x48).unwrap_or(0);
    if features & 0x04 != 0 {
        reasons.push(Reason::Qcow2DataFile);
    }
    match be32(header, 4) {
        Some(2) => {}
        Some(3) => {
            if features & !0x0f != 0 {
                reasons.push(Reason::Qcow2UnknownFeatures);
            }
        }
        _ => reasons.push(Reason::Qcow2UnsupportedVersion),
    }
    reasons
}

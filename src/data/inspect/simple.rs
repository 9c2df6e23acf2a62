//! Formats told by a magic number whose size sits in a fixed header, with no
//! safety check of their own: VHD and VDI; and QED, which is always refused.

use super::capture::{be64, le64};
use super::probe::{Completion, Details, FormatProbe, Seen, Tri, SECTOR};
use super::Reason;

const VHD_MAGIC: &[u8] = b"conectix";
/// 0xBEDA107F, little-endian, at offset 0x40.
const VDI_MAGIC: &[u8] = b"\x7f\x10\xda\xbe";
const VDI_MAGIC_AT: usize = 0x40;
const QED_MAGIC: &[u8] = b"QED\x00";

/// VHD: the copy of the footer at the start of a dynamic or differencing
/// disk (a fixed VHD only has its footer at the end, which oslo never reads).
pub(super) struct Vhd;

impl FormatProbe for Vhd {
    fn status(&self, seen: &Seen) -> Tri {
        seen.magic(0, VHD_MAGIC, VHD_MAGIC.len())
    }

    fn details(&self, seen: &Seen) -> Details {
        if seen.head.len() >= SECTOR {
            Details::checked(be64(seen.head, 40), Vec::new())
        } else {
            Details {
                complete: Completion::Pending,
                ..Details::checked(None, Vec::new())
            }
        }
    }
}

/// VDI: the VirtualBox header.
pub(super) struct Vdi;

impl FormatProbe for Vdi {
    fn status(&self, seen: &Seen) -> Tri {
        seen.magic(VDI_MAGIC_AT, VDI_MAGIC, SECTOR)
    }

    fn details(&self, seen: &Seen) -> Details {
        Details::checked(le64(seen.head, 0x170), Vec::new())
    }
}

/// QED: recognised only to be refused.
pub(super) struct Qed;

impl FormatProbe for Qed {
    fn status(&self, seen: &Seen) -> Tri {
        seen.magic(0, QED_MAGIC, SECTOR)
    }

    fn details(&self, seen: &Seen) -> Details {
        Details::checked(Some(seen.pos), vec![Reason::QedBanned])
    }
}

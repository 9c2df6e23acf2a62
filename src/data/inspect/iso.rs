//! ISO 9660 and UDF optical disc images.

use super::capture::{le16, le32};
use super::probe::{Details, FormatProbe, Seen, Tri};

const ISO_MAGICS: [&[u8]; 3] = [b"CD001", b"NSR02", b"NSR03"];
/// The primary volume descriptor follows the 32 KiB system area.
pub(super) const ISO_PVD_AT: usize = 32 * 1024;
const ISO_PVD_LEN: usize = 2048;

/// ISO: a volume descriptor signature after the 32 KiB system area.
pub(super) struct Iso;

impl FormatProbe for Iso {
    fn status(&self, seen: &Seen) -> Tri {
        let all = ISO_MAGICS.map(|m| seen.magic(ISO_PVD_AT + 1, m, ISO_PVD_AT + ISO_PVD_LEN));
        if all.contains(&Tri::Yes) {
            Tri::Yes
        } else if all.iter().all(|s| *s == Tri::No) {
            Tri::No
        } else {
            Tri::Pending
        }
    }

    fn details(&self, seen: &Seen) -> Details {
        Details::checked(iso_virtual_size(seen.head), Vec::new())
    }
}

/// ISO 9660 / UDF size: logical block size × volume space size from the
/// primary volume descriptor (0 when the descriptor is of another type).
fn iso_virtual_size(head: &[u8]) -> Option<u64> {
    let pvd = head.get(ISO_PVD_AT..ISO_PVD_AT + ISO_PVD_LEN)?;
    if pvd[0] != 1 {
        return Some(0);
    }
    let blocks = u64::from(le32(pvd, 80)?);
    let block_size = u64::from(le16(pvd, 128)?);
    Some(blocks * block_size)
}

//! Partitioned disks: an MBR, protective (GPT) or classic, which Glance calls
//! `gpt`.

use super::capture::{le16, le32};
use super::probe::{Details, FormatProbe, Seen, Tri, SECTOR};
use super::{MbrProblem, Reason};

/// GPT/MBR: a boot signature in the first sector, and oslo's check of the
/// partition table.
pub(super) struct Gpt;

impl FormatProbe for Gpt {
    fn status(&self, seen: &Seen) -> Tri {
        if seen.pos >= SECTOR as u64 {
            Tri::from(gpt_match(seen.head))
        } else if seen.finished {
            Tri::No
        } else {
            Tri::Pending
        }
    }

    fn details(&self, seen: &Seen) -> Details {
        Details::checked(Some(seen.pos), gpt_checks(seen.head))
    }
}

/// An MBR boot signature in the first sector that is not a FAT boot sector.
fn gpt_match(head: &[u8]) -> bool {
    let Some(sector) = head.get(..SECTOR) else {
        return false;
    };
    let is_fat = sector[0x10] == 2 && sector[0x15] == 0xf8;
    le16(sector, 510) == Some(0xaa55) && !is_fat
}

/// oslo's MBR partition table check (one failure at most, like oslo).
fn gpt_checks(head: &[u8]) -> Vec<Reason> {
    let fail = |why: MbrProblem| vec![Reason::GptMbr(why)];
    let mut used = Vec::new();
    let mut protective = false;
    for i in 0..4 {
        let pte = &head[446 + 16 * i..446 + 16 * (i + 1)];
        if pte[0] != 0x00 && pte[0] != 0x80 {
            return fail(MbrProblem::InvalidBootFlag(i as u8));
        }
        let os_type = pte[4];
        if os_type != 0 {
            used.push(i);
        }
        if os_type == 0xee {
            protective = true;
            if pte[1..4] != [0x00, 0x02, 0x00] {
                return fail(MbrProblem::InvalidStartChs);
            }
            if le32(pte, 8) != Some(1) {
                return fail(MbrProblem::InvalidStartLba);
            }
        }
    }
    if protective && used != [0] {
        return fail(MbrProblem::ExtraPartitions);
    }
    if used.is_empty() {
        return fail(MbrProblem::NoPartitions);
    }
    Vec::new()
}

//! VHDX: Hyper-V virtual hard disks.

use super::capture::{le16, le32, le64, Capture};
use super::probe::{Completion, Details, FormatProbe, Seen, Tri};

const VHDX_MAGIC: &[u8] = b"vhdxfile";
const VHDX_REGION_TABLE_AT: usize = 192 * 1024;
const VHDX_REGION_TABLE_LEN: usize = 64 * 1024;
/// Largest metadata table (header plus 2047 entries), the most oslo captures.
const VHDX_METADATA_MAX: usize = 32 * 2048;
/// GUID 8B7CA206-4790-4B9A-B8FE-575F050F886E (metadata region), as stored.
const VHDX_METADATA_GUID: [u8; 16] = [
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e,
];
/// GUID 2FA54224-CD1B-4876-B211-5DBED83BF4B8 (virtual disk size item), as stored.
const VHDX_VDS_GUID: [u8; 16] = [
    0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8,
];

/// Progress through the VHDX structures: region table (in the head) →
/// metadata table → virtual disk size item.
#[derive(Default)]
enum VhdxStage {
    /// The region table (ending at 256 KiB) has not been seen yet.
    #[default]
    RegionTable,
    /// The region table lists no metadata region: nothing more to find.
    NoMetadata,
    /// oslo stops parsing here; `complete` says whether what it had captured
    /// was complete.
    Failed { complete: bool },
    /// Capturing the metadata table (and then the size item).
    Metadata,
}

/// VHDX: the region table (within the head) points at the metadata table,
/// whose virtual disk size item holds the size; all followed through the
/// stream.
#[derive(Default)]
pub(super) struct Vhdx {
    stage: VhdxStage,
    /// The metadata table, once the region table located it.
    table: Option<Capture>,
    /// The virtual disk size item, once the metadata table located it.
    vds: Option<Capture>,
    /// The metadata table was searched and has no virtual disk size item.
    no_vds: bool,
}

impl Vhdx {
    /// Takes what it needs from `chunk` (at stream offset `at`) and moves on.
    pub(super) fn feed(&mut self, head: &Capture, at: u64, chunk: &[u8]) {
        self.offer(at, chunk);
        self.advance(head, at, chunk);
    }

    fn offer(&mut self, at: u64, chunk: &[u8]) {
        if let VhdxStage::Metadata = self.stage {
            if let Some(table) = &mut self.table {
                table.offer(at, chunk);
            }
            if let Some(vds) = &mut self.vds {
                vds.offer(at, chunk);
            }
        }
    }

    fn advance(&mut self, head: &Capture, at: u64, chunk: &[u8]) {
        if !head.data.starts_with(VHDX_MAGIC) {
            return;
        }
        if let VhdxStage::RegionTable = self.stage {
            if !head.complete() {
                return;
            }
            let regions = &head.data[VHDX_REGION_TABLE_AT..];
            match find_metadata_region(regions) {
                Err(()) => self.stage = VhdxStage::Failed { complete: true },
                Ok(None) => self.stage = VhdxStage::NoMetadata,
                Ok(Some(offset)) => {
                    let mut table = Capture::new(offset, VHDX_METADATA_MAX);
                    table.fill(&[(0, &head.data), (at, chunk)]);
                    self.table = Some(table);
                    self.stage = VhdxStage::Metadata;
                }
            }
        }
        if !matches!(self.stage, VhdxStage::Metadata) || self.vds.is_some() || self.no_vds {
            return;
        }
        let Some(table) = &mut self.table else {
            return;
        };
        let meta = &table.data;
        if meta.len() < 32 {
            return;
        }
        if &meta[..8] != b"metadata" {
            // The table stops being captured here (with small chunks oslo
            // never completes it): the image cannot be safety checked.
            self.stage = VhdxStage::Failed { complete: false };
            return;
        }
        let count = usize::from(le16(meta, 10).unwrap_or(0));
        if meta.len() < 32 + count * 32 {
            return;
        }
        let found = (0..count)
            .map(|i| &meta[32 + 32 * i..64 + 32 * i])
            .find(|e| e[..16] == VHDX_VDS_GUID);
        let Some(entry) = found else {
            self.no_vds = true;
            return;
        };
        let item_offset = u64::from(le32(entry, 16).unwrap_or(0));
        let item_len = (le32(entry, 20).unwrap_or(0) as usize).min(VHDX_METADATA_MAX);
        let mut vds = Capture::new(table.offset.saturating_add(item_offset), item_len);
        vds.fill(&[(0, &head.data), (table.offset, &table.data), (at, chunk)]);
        // The rest of the table is not needed.
        table.stop();
        self.vds = Some(vds);
    }

    fn completion(&self, pos: u64) -> Completion {
        match self.stage {
            VhdxStage::RegionTable => Completion::Pending,
            VhdxStage::NoMetadata | VhdxStage::Failed { complete: true } => Completion::Done,
            VhdxStage::Failed { complete: false } => Completion::Never,
            VhdxStage::Metadata => {
                let regions = [self.table.as_ref(), self.vds.as_ref()];
                let regions = regions.iter().flatten();
                if regions.clone().all(|c| c.complete()) {
                    Completion::Done
                } else if regions.clone().any(|c| c.lost(pos)) {
                    Completion::Never
                } else {
                    Completion::Pending
                }
            }
        }
    }

    /// The virtual disk size, and whether the item holding it is malformed.
    fn virtual_size(&self) -> (Option<u64>, bool) {
        match &self.vds {
            Some(vds) if vds.complete() => match vds.data.as_slice().try_into() {
                Ok(bytes) => (Some(u64::from_le_bytes(bytes)), false),
                Err(_) => (None, true),
            },
            _ => (None, false),
        }
    }

    /// Bytes held in capture buffers (allocated capacity).
    #[cfg(test)]
    pub(super) fn buffered_bytes(&self) -> usize {
        self.table.as_ref().map_or(0, |c| c.data.capacity())
            + self.vds.as_ref().map_or(0, |c| c.data.capacity())
    }
}

impl FormatProbe for Vhdx {
    fn status(&self, seen: &Seen) -> Tri {
        seen.magic(0, VHDX_MAGIC, VHDX_MAGIC.len())
    }

    fn details(&self, seen: &Seen) -> Details {
        let (virtual_size, unreadable) = self.virtual_size();
        let complete = if seen.pos < (VHDX_REGION_TABLE_AT + VHDX_REGION_TABLE_LEN) as u64 {
            Completion::Pending
        } else {
            self.completion(seen.pos)
        };
        Details {
            virtual_size,
            failed: Vec::new(),
            complete,
            unreadable,
        }
    }
}

/// The metadata region's offset from the region table: `Err` where oslo
/// raises (bad signature, too many entries).
fn find_metadata_region(table: &[u8]) -> Result<Option<u64>, ()> {
    if le32(table, 0) != Some(0x6967_6572) {
        return Err(());
    }
    let count = le32(table, 8).unwrap_or(0) as usize;
    if count >= 2048 {
        return Err(());
    }
    for i in 0..count {
        let entry = &table[16 + 32 * i..48 + 32 * i];
        if entry[..16] == VHDX_METADATA_GUID {
            return Ok(le64(entry, 16));
        }
    }
    Ok(None)
}

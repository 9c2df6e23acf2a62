//! In-flight disk image format inspection, as Glance does it for uploads with
//! container format `bare`.
//!
//! While image data streams into a store, [`FormatInspector`] looks at the bytes
//! as they pass, keeping only the few header regions each known format needs
//! (never the image itself). When the stream ends, [`FormatInspector::finish`]
//! reports the detected format, the guest-visible (virtual) size the format
//! records, and the safety checks the data failed. [`verdict`] then makes
//! Glance's decision for the image's declared `disk_format`: accept (with the
//! virtual size to record) or refuse.
//!
//! The detection rules, virtual-size computations and safety checks follow
//! oslo.utils' `imageutils.format_inspector` (the inspector Glance 33 uses), and
//! the decision follows `ImageProxy.set_data` in Glance's `location.py`:
//!
//! * every known format is tried in parallel; data that matches none is `raw`;
//! * more than one match is refused, except ISO + GPT (a hybrid ISO with a boot
//!   record), which counts as ISO;
//! * the detected format must equal the declared one, except that `raw`
//!   declarations accept anything (the virtual size is then the byte count) and
//!   formats oslo cannot inspect (`ami`, `ari`, `aki`, `ploop`, ...) accept data
//!   that looks raw;
//! * the detected format's safety checks must pass (qcow2 backing and external
//!   data files, unknown qcow2 features, VMDK descriptors and extents, the MBR of
//!   GPT/MBR disks, banned QED, LUKS version).
//!
//! Where oslo's outcome depends on how the stream happens to be cut into
//! chunks, this module behaves as oslo does with large chunks, so its answers
//! never depend on chunk boundaries.

use std::fmt;

mod format;
mod reason;

pub use format::Format;
pub use reason::{MbrProblem, Reason, VmdkDescriptorProblem, VmdkFooterProblem};

/// Bytes kept from the start of the stream: enough for every fixed header,
/// the ISO primary volume descriptor (32 KiB + 2 KiB) and the VHDX region
/// table (192 KiB + 64 KiB).
const HEAD_LEN: usize = 256 * 1024;
/// Bytes of the stream's end kept for a streamOptimized VMDK footer.
const TAIL_LEN: usize = 1536;

const QCOW2_MAGIC: &[u8] = b"QFI\xfb";
const QED_MAGIC: &[u8] = b"QED\x00";
const VHD_MAGIC: &[u8] = b"conectix";
const VHDX_MAGIC: &[u8] = b"vhdxfile";
const VMDK_MAGIC: &[u8] = b"KDMV";
/// 0xBEDA107F, little-endian, at offset 0x40.
const VDI_MAGIC: &[u8] = b"\x7f\x10\xda\xbe";
const VDI_MAGIC_AT: usize = 0x40;
const LUKS_MAGIC: &[u8] = b"LUKS\xba\xbe";
const ISO_MAGICS: [&[u8]; 3] = [b"CD001", b"NSR02", b"NSR03"];
/// The primary volume descriptor follows the 32 KiB system area.
const ISO_PVD_AT: usize = 32 * 1024;
const ISO_PVD_LEN: usize = 2048;

/// Size of the fixed headers oslo captures before judging most formats.
const SECTOR: usize = 512;
/// oslo captures 592 bytes of LUKS header (header plus eight key slots).
const LUKS_HEADER_LEN: usize = 592;
/// End of the LUKS header fields oslo unpacks to compute the virtual size.
const LUKS_SIZE_FIELDS_END: usize = 168;

const VMDK_MIN_HEADER: usize = 64;
const VMDK_DESC_OFFSET: u64 = 0x200;
const VMDK_DESC_MAX: usize = (1 << 20) - 1;
const VMDK_GD_AT_END: u64 = u64::MAX;
const VMDK_SPARSE_TYPES: [&str; 2] = ["monolithicsparse", "streamoptimized"];
const VMDK_NO_TYPE: &str = "formatnotfound";

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

/// Streaming format detector.
///
/// Fed every chunk of an upload in order ([`FormatInspector::feed`], any chunk
/// sizes), it keeps only bounded header regions: the first 256 KiB, the last
/// 1.5 KiB, and the few regions a VMDK descriptor or VHDX metadata table points
/// at (each at most 1 MiB) — never the whole image.
pub struct FormatInspector {
    /// Bytes seen so far.
    pos: u64,
    /// The first [`HEAD_LEN`] bytes.
    head: Capture,
    /// The last bytes seen (at least [`TAIL_LEN`] once that many were seen).
    tail: Vec<u8>,
    vmdk: Vmdk,
    vhdx: Vhdx,
}

/// What the inspector found once the stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// The detected format ([`Format::Raw`] when nothing else matched). When
    /// several formats matched this is the first of them and `unsafe_reasons`
    /// says so.
    pub format: Format,
    /// Virtual (guest-visible) size when the format records it (for `raw` and
    /// `gpt`, the byte count).
    pub virtual_size: Option<u64>,
    /// Bytes seen.
    pub actual_size: u64,
    /// Failed safety checks of the detected format, e.g.
    /// [`Reason::Qcow2BackingFile`]; empty = safe. Also records why the data
    /// cannot be judged at all ([`Reason::Multiple`], [`Reason::Incomplete`],
    /// [`Reason::Unreadable`]).
    pub unsafe_reasons: Vec<Reason>,
}

/// Why data is refused (the API answers 415 or 400 — the caller decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The data is not in the declared disk format. Glance: "Image disk_format
    /// qcow2 does not match stream data raw".
    Mismatch {
        /// The image's `disk_format`.
        declared: String,
        /// The format the data is really in.
        detected: Format,
    },
    /// The detected format failed a safety check (or could not be judged:
    /// several formats matched, truncated structures). Holds the reasons: the
    /// one why the data cannot be judged, or every failed check. The
    /// `Display` text is Glance's message for the case.
    Unsafe(Vec<Reason>),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Mismatch { declared, detected } => {
                write!(
                    f,
                    "Image disk_format {declared} does not match stream data {detected}"
                )
            }
            FormatError::Unsafe(reasons) => match reasons.as_slice() {
                [Reason::Multiple(_), ..] => f.write_str(&join(reasons)),
                [.., Reason::Incomplete(_)] => {
                    f.write_str("Incomplete file cannot be safety checked")
                }
                [.., Reason::Unreadable(_)] => f.write_str("Image format inspection failed"),
                _ => f.write_str("Image failed safety checks"),
            },
        }
    }
}

impl std::error::Error for FormatError {}

/// Glance's decision for `declared` disk_format given the inspection:
/// `Ok(virtual size to record)` (`None`: leave it unset) or the refusal.
///
/// As in Glance's `set_data`: several matching formats are refused; a format
/// equal to the declared one gives its virtual size; raw-looking data declared
/// as a format oslo cannot inspect (`ami`, `aki`, `ari`, `ploop`, ...) is
/// accepted without a virtual size; a `raw` declaration accepts any data, with
/// the byte count as virtual size; anything else is a [`FormatError::Mismatch`].
/// Then the detected format's safety checks must have passed, except that for
/// `aki`/`ari` the MBR check does not count, and a GPT whose only failures do
/// not count is accepted. A zero virtual size is left unset, as Glance does.
pub fn verdict(declared: &str, inspection: &Inspection) -> Result<Option<u64>, FormatError> {
    let reasons = &inspection.unsafe_reasons;
    let only = |r: &Reason| Err(FormatError::Unsafe(vec![r.clone()]));
    if let Some(multiple) = reasons.iter().find(|r| matches!(r, Reason::Multiple(_))) {
        return only(multiple);
    }
    let detected = inspection.format;
    let declared_format = Format::parse(declared);
    let virtual_size = if declared_format == Some(detected) {
        if let Some(r) = reasons.iter().find(|r| matches!(r, Reason::Unreadable(_))) {
            return only(r);
        }
        inspection.virtual_size
    } else if detected == Format::Raw && declared_format.is_none() {
        None
    } else if declared_format == Some(Format::Raw) {
        Some(inspection.actual_size)
    } else {
        return Err(FormatError::Mismatch {
            declared: declared.to_string(),
            detected,
        });
    };
    if let Some(r) = reasons.iter().find(|r| matches!(r, Reason::Incomplete(_))) {
        return only(r);
    }
    let failures: Vec<Reason> = reasons
        .iter()
        .filter(|r| !matches!(r, Reason::Unreadable(_)))
        .cloned()
        .collect();
    if !failures.is_empty() {
        // Kernel and ramdisk images may carry an intentionally invalid MBR.
        let lenient_mbr = matches!(declared, "aki" | "ari");
        let fatal = failures
            .iter()
            .any(|r| !(lenient_mbr && matches!(r, Reason::GptMbr(_))));
        if detected != Format::Gpt || fatal {
            return Err(FormatError::Unsafe(failures));
        }
    }
    Ok(virtual_size.filter(|&v| v > 0))
}

/// The reasons' texts, `; `-separated.
fn join(reasons: &[Reason]) -> String {
    let texts: Vec<String> = reasons.iter().map(Reason::to_string).collect();
    texts.join("; ")
}

impl Default for FormatInspector {
    fn default() -> Self {
        Self::new()
    }
}

impl FormatInspector {
    /// An inspector that has seen no data yet.
    pub fn new() -> Self {
        FormatInspector {
            pos: 0,
            head: Capture::new(0, HEAD_LEN),
            tail: Vec::with_capacity(3 * TAIL_LEN),
            vmdk: Vmdk::default(),
            vhdx: Vhdx::default(),
        }
    }

    /// Presents the next chunk of the stream (any size, including empty).
    pub fn feed(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let at = self.pos;
        self.pos += data.len() as u64;
        self.head.offer(at, data);
        self.push_tail(data);
        self.vmdk.offer(at, data);
        self.vhdx.offer(at, data);
        self.vmdk.advance(&self.head, self.pos, at, data);
        self.vhdx.advance(&self.head, at, data);
    }

    /// Ends the stream and reports what was found.
    pub fn finish(mut self) -> Inspection {
        self.vmdk.settle(&self.head, self.pos);
        // Every format is decided once the stream has ended; raw is the
        // answer should that ever not hold.
        let actual_size = self.pos;
        self.snapshot(true).unwrap_or(Inspection {
            format: Format::Raw,
            virtual_size: Some(actual_size),
            actual_size,
            unsafe_reasons: Vec::new(),
        })
    }

    /// Early answer, once enough of the stream has been seen, so an upload can
    /// be refused before the whole image is stored: `Some(refusal)` when the
    /// data already certainly fails [`verdict`] for `declared`, whatever
    /// follows; `None` while undecided (or acceptable so far). Never a false
    /// refusal, and the refusal is the one [`verdict`] gives at the end. For
    /// most data the answer is known after about 32 KiB (once an ISO volume
    /// descriptor signature could be seen); text that could be a VMDK
    /// descriptor keeps it open for up to 1 MiB.
    pub fn early_refusal(&self, declared: &str) -> Option<FormatError> {
        let inspection = self.snapshot(false)?;
        verdict(declared, &inspection).err()
    }

    fn push_tail(&mut self, data: &[u8]) {
        let take = data.len().min(TAIL_LEN);
        self.tail.extend_from_slice(&data[data.len() - take..]);
        if self.tail.len() > 2 * TAIL_LEN {
            let cut = self.tail.len() - TAIL_LEN;
            self.tail.drain(..cut);
        }
    }

    /// The inspection as far as it is certain: `None` while some format may
    /// still turn out to match or not. The reasons in a partial snapshot are
    /// final (more may follow), so a refusal drawn from it stands.
    fn snapshot(&self, finished: bool) -> Option<Inspection> {
        let mut matched = Vec::new();
        // Raw is what matches when nothing else does.
        for format in &Format::ALL[1..] {
            match self.status(*format, finished) {
                Tri::Yes => matched.push(*format),
                Tri::No => {}
                Tri::Pending => return None,
            }
        }
        let chosen = match matched.as_slice() {
            [] => {
                return Some(Inspection {
                    format: Format::Raw,
                    virtual_size: Some(self.pos),
                    actual_size: self.pos,
                    unsafe_reasons: Vec::new(),
                })
            }
            [one] => *one,
            [Format::Iso, Format::Gpt] => Format::Iso,
            several => {
                return Some(Inspection {
                    format: several[0],
                    virtual_size: None,
                    actual_size: self.pos,
                    unsafe_reasons: vec![Reason::Multiple(several.to_vec())],
                })
            }
        };
        let (virtual_size, unsafe_reasons) = self.details(chosen, finished);
        Some(Inspection {
            format: chosen,
            virtual_size,
            actual_size: self.pos,
            unsafe_reasons,
        })
    }

    /// Whether `format` matches the data (final unless `Pending`).
    fn status(&self, format: Format, finished: bool) -> Tri {
        match format {
            Format::Qcow2 => self.magic(0, QCOW2_MAGIC, SECTOR, finished),
            Format::Qed => self.magic(0, QED_MAGIC, SECTOR, finished),
            Format::Vhd => self.magic(0, VHD_MAGIC, VHD_MAGIC.len(), finished),
            Format::Vhdx => self.magic(0, VHDX_MAGIC, VHDX_MAGIC.len(), finished),
            Format::Luks => self.magic(0, LUKS_MAGIC, LUKS_MAGIC.len(), finished),
            Format::Vdi => self.magic(VDI_MAGIC_AT, VDI_MAGIC, SECTOR, finished),
            Format::Iso => {
                let all = ISO_MAGICS
                    .map(|m| self.magic(ISO_PVD_AT + 1, m, ISO_PVD_AT + ISO_PVD_LEN, finished));
                if all.contains(&Tri::Yes) {
                    Tri::Yes
                } else if all.iter().all(|s| *s == Tri::No) {
                    Tri::No
                } else {
                    Tri::Pending
                }
            }
            Format::Gpt => {
                if self.pos >= SECTOR as u64 {
                    Tri::from(gpt_match(&self.head.data))
                } else if finished {
                    Tri::No
                } else {
                    Tri::Pending
                }
            }
            Format::Vmdk => self.vmdk.status(&self.head.data, finished),
            Format::Raw => Tri::No,
        }
    }

    /// Whether `magic` sits at `at`, judged once `need` bytes were seen.
    fn magic(&self, at: usize, magic: &[u8], need: usize, finished: bool) -> Tri {
        let head = &self.head.data;
        let avail = head.len().min(at + magic.len());
        if avail > at && head[at..avail] != magic[..avail - at] {
            return Tri::No;
        }
        if avail == at + magic.len() && self.pos >= need as u64 {
            Tri::Yes
        } else if finished {
            Tri::No
        } else {
            Tri::Pending
        }
    }

    /// Virtual size and failed checks of the matched format `name`.
    fn details(&self, name: Format, finished: bool) -> (Option<u64>, Vec<Reason>) {
        let head = &self.head.data;
        let incomplete = |complete: Completion, reasons: Vec<Reason>| -> Vec<Reason> {
            match complete {
                Completion::Done => reasons,
                Completion::Never => vec![Reason::Incomplete(name)],
                Completion::Pending if finished => vec![Reason::Incomplete(name)],
                Completion::Pending => reasons,
            }
        };
        match name {
            Format::Qcow2 => (be64(head, 24), qcow2_checks(head)),
            Format::Qed => (Some(self.pos), vec![Reason::QedBanned]),
            Format::Vhd => {
                if head.len() >= SECTOR {
                    (be64(head, 40), Vec::new())
                } else {
                    (None, incomplete(Completion::Pending, Vec::new()))
                }
            }
            Format::Vdi => (le64(head, 0x170), Vec::new()),
            Format::Iso => (iso_virtual_size(head), Vec::new()),
            Format::Gpt => (Some(self.pos), gpt_checks(head)),
            Format::Luks => {
                // payload offset: big-endian u32 at 104, in 512-byte sectors.
                let virtual_size = be32(head, 104)
                    .and_then(|sectors| self.pos.checked_sub(u64::from(sectors) * 512));
                let complete = if self.pos >= LUKS_HEADER_LEN as u64 {
                    Completion::Done
                } else {
                    Completion::Pending
                };
                let mut reasons = Vec::new();
                if let Some(version) = be16(head, 6).filter(|&v| v != 1) {
                    reasons.push(Reason::LuksVersion(version));
                }
                let mut reasons = incomplete(complete, reasons);
                // oslo reads the size from the first 168 header bytes.
                if finished && head.len() < LUKS_SIZE_FIELDS_END {
                    reasons.push(Reason::Unreadable(Format::Luks));
                }
                (virtual_size, reasons)
            }
            Format::Vhdx => {
                let (virtual_size, unreadable) = self.vhdx.virtual_size();
                let complete = if self.pos < (VHDX_REGION_TABLE_AT + VHDX_REGION_TABLE_LEN) as u64 {
                    Completion::Pending
                } else {
                    self.vhdx.completion(self.pos)
                };
                let mut reasons = incomplete(complete, Vec::new());
                if unreadable {
                    reasons.push(Reason::Unreadable(Format::Vhdx));
                }
                (virtual_size, reasons)
            }
            Format::Vmdk => {
                let (virtual_size, reasons, complete, unreadable) =
                    self.vmdk.details(&self.tail, self.pos, finished);
                let mut reasons = incomplete(complete, reasons);
                if unreadable {
                    reasons.push(Reason::Unreadable(Format::Vmdk));
                }
                (virtual_size, reasons)
            }
            Format::Raw => (None, Vec::new()),
        }
    }

    /// Bytes the inspector holds in its buffers (allocated capacity).
    #[cfg(test)]
    fn buffered_bytes(&self) -> usize {
        self.head.data.capacity()
            + self.tail.capacity()
            + self.vmdk.buffered_bytes()
            + self.vhdx.buffered_bytes()
    }
}

/// A three-way answer: certainly yes, certainly no, or not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tri {
    Yes,
    No,
    Pending,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Self {
        if b {
            Tri::Yes
        } else {
            Tri::No
        }
    }
}

/// Whether every region a format needs was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    Done,
    /// Not yet; the rest of the stream may still supply it.
    Pending,
    /// Never: the needed bytes have gone by (or the parse stopped).
    Never,
}

/// A region of the stream (`len` bytes at `offset`) captured as it passes.
struct Capture {
    offset: u64,
    len: usize,
    data: Vec<u8>,
}

impl Capture {
    fn new(offset: u64, len: usize) -> Self {
        Capture {
            offset,
            len,
            data: Vec::with_capacity(len),
        }
    }

    fn complete(&self) -> bool {
        self.data.len() >= self.len
    }

    /// The stream offset of the next byte this region still needs.
    fn next_needed(&self) -> u64 {
        self.offset.saturating_add(self.data.len() as u64)
    }

    /// Whether the region can no longer be completed once `pos` bytes were seen.
    fn lost(&self, pos: u64) -> bool {
        !self.complete() && self.next_needed() < pos
    }

    /// Takes what it needs from `chunk`, which starts at stream offset `at`.
    fn offer(&mut self, at: u64, chunk: &[u8]) {
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
    /// order), then from the current chunk.
    fn fill(&mut self, sources: &[(u64, &[u8])]) {
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

// ---------------------------------------------------------------- fixed headers

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
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

// ------------------------------------------------------------------------ VMDK

/// What is known of a VMDK.
#[derive(Default)]
enum VmdkState {
    /// Too early to tell.
    #[default]
    Pending,
    /// Neither a sparse header nor a text descriptor.
    NotVmdk,
    /// A "KDMV" header cut short before its 64 bytes.
    Truncated,
    /// A "KDMV" header oslo refuses to parse (bad version, descriptor
    /// elsewhere than sector 1): it still counts as VMDK and fails its check.
    Broken(VmdkDescriptorProblem),
    /// A hosted sparse extent: header then embedded descriptor.
    Sparse {
        header: [u8; VMDK_MIN_HEADER],
        sectors: u64,
        footer: bool,
        descriptor: Capture,
    },
    /// A text-only descriptor file (first sector all text).
    Text {
        descriptor: Capture,
        /// The captured text contains a NUL: nothing after it counts.
        closed: bool,
    },
}

/// A parsed VMDK descriptor.
struct Descriptor {
    /// Lower-cased text up to the first NUL; `None` when it is not ASCII.
    text: Option<String>,
    /// The lower-cased createType, or `formatnotfound`.
    create_type: String,
}

#[derive(Default)]
struct Vmdk {
    state: VmdkState,
    parsed: Option<Descriptor>,
}

/// ASCII bytes Python counts as printable or whitespace.
fn is_text_byte(b: u8) -> bool {
    matches!(b, 0x20..=0x7e | 0x09..=0x0d | 0x1c..=0x1f)
}

/// ASCII bytes Python's `str.strip()` removes.
fn is_py_space(c: char) -> bool {
    matches!(c, ' ' | '\x09'..='\x0d' | '\x1c'..='\x1f')
}

impl Vmdk {
    fn offer(&mut self, at: u64, chunk: &[u8]) {
        match &mut self.state {
            VmdkState::Sparse { descriptor, .. } => descriptor.offer(at, chunk),
            VmdkState::Text { descriptor, closed } if !*closed => {
                let before = descriptor.data.len();
                descriptor.offer(at, chunk);
                *closed = descriptor.data[before..].contains(&0);
            }
            _ => {}
        }
    }

    /// Moves the state machine on after a chunk (`chunk` at `at`).
    fn advance(&mut self, head: &Capture, pos: u64, at: u64, chunk: &[u8]) {
        if matches!(self.state, VmdkState::Pending) {
            self.classify(&head.data, pos, false, &[(0, &head.data), (at, chunk)]);
        }
        self.parse_if_ready(false);
    }

    /// At the end of the stream: decides what is still open.
    fn settle(&mut self, head: &Capture, pos: u64) {
        if matches!(self.state, VmdkState::Pending) {
            self.classify(&head.data, pos, true, &[(0, &head.data)]);
        }
        self.parse_if_ready(true);
    }

    fn classify(&mut self, head: &[u8], pos: u64, finished: bool, sources: &[(u64, &[u8])]) {
        let prefix = head.len().min(VMDK_MAGIC.len());
        if head[..prefix] == VMDK_MAGIC[..prefix] {
            if head.len() >= VMDK_MIN_HEADER {
                self.state = parse_sparse_header(head, sources);
            } else if finished {
                self.state = if prefix == VMDK_MAGIC.len() {
                    VmdkState::Truncated
                } else {
                    VmdkState::NotVmdk
                };
            }
            return;
        }
        // Not a sparse header: a text descriptor file if the first sector is text.
        let first = &head[..head.len().min(SECTOR)];
        if !first.iter().copied().all(is_text_byte) {
            self.state = VmdkState::NotVmdk;
        } else if pos >= SECTOR as u64 || (finished && head.len() >= VMDK_MIN_HEADER) {
            let mut descriptor = Capture::new(0, VMDK_DESC_MAX);
            descriptor.fill(sources);
            let closed = descriptor.data.contains(&0);
            self.state = VmdkState::Text { descriptor, closed };
        } else if finished {
            self.state = VmdkState::NotVmdk;
        }
    }

    fn parse_if_ready(&mut self, finished: bool) {
        if self.parsed.is_some() {
            return;
        }
        let descriptor = match &mut self.state {
            VmdkState::Sparse { descriptor, .. } if descriptor.complete() => descriptor,
            VmdkState::Text { descriptor, closed } => {
                if !(*closed || descriptor.complete() || finished) {
                    return;
                }
                *closed = true;
                descriptor
            }
            _ => return,
        };
        self.parsed = Some(parse_descriptor(&descriptor.data));
        // The parsed descriptor is all that is needed from now on.
        *descriptor = Capture::new(descriptor.offset, 0);
    }

    fn status(&self, head: &[u8], finished: bool) -> Tri {
        match &self.state {
            VmdkState::Pending => {
                if head.starts_with(VMDK_MAGIC) {
                    Tri::Yes
                } else if finished {
                    Tri::No
                } else {
                    Tri::Pending
                }
            }
            VmdkState::NotVmdk => Tri::No,
            VmdkState::Truncated | VmdkState::Broken(_) | VmdkState::Sparse { .. } => Tri::Yes,
            // oslo fails with an AttributeError on a non-ASCII text descriptor
            // (and Glance then skips inspection); here it is simply not a VMDK.
            VmdkState::Text { .. } => match &self.parsed {
                Some(d) => Tri::from(d.text.is_some() && d.create_type != VMDK_NO_TYPE),
                None if finished => Tri::No,
                None => Tri::Pending,
            },
        }
    }

    /// Virtual size, failed checks, completion, and whether the virtual size
    /// is unreadable.
    fn details(
        &self,
        tail: &[u8],
        pos: u64,
        finished: bool,
    ) -> (Option<u64>, Vec<Reason>, Completion, bool) {
        match &self.state {
            VmdkState::Pending | VmdkState::Truncated => {
                (None, Vec::new(), Completion::Pending, false)
            }
            VmdkState::NotVmdk => (None, Vec::new(), Completion::Done, false),
            VmdkState::Broken(why) => (
                None,
                vec![Reason::VmdkDescriptor(why.clone())],
                Completion::Done,
                false,
            ),
            VmdkState::Sparse {
                header,
                sectors,
                footer,
                descriptor,
            } => {
                let Some(parsed) = &self.parsed else {
                    let complete = if descriptor.lost(pos) {
                        Completion::Never
                    } else {
                        Completion::Pending
                    };
                    return (None, Vec::new(), complete, false);
                };
                let sparse = parsed.text.as_deref().is_some_and(|t| !t.is_empty())
                    && VMDK_SPARSE_TYPES.contains(&parsed.create_type.as_str());
                let virtual_size = if sparse {
                    sectors.checked_mul(512)
                } else {
                    Some(0)
                };
                let mut reasons = descriptor_checks(parsed);
                let complete = if !*footer {
                    Completion::Done
                } else if !finished {
                    Completion::Pending
                } else if tail.len() < TAIL_LEN {
                    Completion::Never
                } else {
                    if let Err(why) = footer_check(header, &tail[tail.len() - TAIL_LEN..]) {
                        reasons.push(Reason::VmdkFooter(why));
                    }
                    Completion::Done
                };
                (virtual_size, reasons, complete, false)
            }
            VmdkState::Text { .. } => {
                let Some(parsed) = &self.parsed else {
                    return (None, Vec::new(), Completion::Pending, false);
                };
                // With no sparse header oslo cannot read the size of a sparse
                // type (KeyError), which Glance reports as a failed inspection.
                let sparse_type = parsed.text.as_deref().is_some_and(|t| !t.is_empty())
                    && VMDK_SPARSE_TYPES.contains(&parsed.create_type.as_str());
                let virtual_size = if sparse_type { None } else { Some(0) };
                (
                    virtual_size,
                    descriptor_checks(parsed),
                    Completion::Done,
                    sparse_type,
                )
            }
        }
    }

    #[cfg(test)]
    fn buffered_bytes(&self) -> usize {
        match &self.state {
            VmdkState::Sparse { descriptor, .. } | VmdkState::Text { descriptor, .. } => {
                descriptor.data.capacity()
            }
            _ => 0,
        }
    }
}

/// Reads the 64-byte hosted sparse extent header at the start of `head`.
fn parse_sparse_header(head: &[u8], sources: &[(u64, &[u8])]) -> VmdkState {
    let mut header = [0u8; VMDK_MIN_HEADER];
    header.copy_from_slice(&head[..VMDK_MIN_HEADER]);
    let field = |at| le64(&header, at).unwrap_or(0);
    let version = le32(&header, 4).unwrap_or(0);
    if !(1..=3).contains(&version) {
        return VmdkState::Broken(VmdkDescriptorProblem::UnsupportedHeaderVersion);
    }
    let footer = field(56) == VMDK_GD_AT_END;
    if field(28).checked_mul(512) != Some(VMDK_DESC_OFFSET) {
        return VmdkState::Broken(VmdkDescriptorProblem::WrongLocation);
    }
    let size = field(36).saturating_mul(512).min(VMDK_DESC_MAX as u64) as usize;
    let mut descriptor = Capture::new(VMDK_DESC_OFFSET, size);
    descriptor.fill(sources);
    VmdkState::Sparse {
        header,
        sectors: field(12),
        footer,
        descriptor,
    }
}

/// Reads a descriptor the way oslo does: up to the first NUL, ASCII,
/// lower-cased, createType taken from `createtype="..."`.
fn parse_descriptor(data: &[u8]) -> Descriptor {
    let data = match data.iter().position(|&b| b == 0) {
        Some(nul) => &data[..nul],
        None => data,
    };
    if !data.is_ascii() {
        return Descriptor {
            text: None,
            create_type: VMDK_NO_TYPE.into(),
        };
    }
    let text = String::from_utf8_lossy(data).to_ascii_lowercase();
    const KEY: &str = "createtype=\"";
    let create_type = match text.find(KEY) {
        None => VMDK_NO_TYPE.to_string(),
        Some(at) => {
            let start = at + KEY.len();
            match text[start..].find('"') {
                Some(len) if len < 64 => text[start..start + len].to_string(),
                Some(_) => VMDK_NO_TYPE.to_string(),
                // Python slices up to index -1 when the quote is missing.
                None => text
                    .get(start..text.len().saturating_sub(1))
                    .unwrap_or("")
                    .to_string(),
            }
        }
    };
    Descriptor {
        text: Some(text),
        create_type,
    }
}

/// oslo's cautious descriptor check: a sparse createType, only comment,
/// `ddb`, `key=value` and extent lines, extents without paths, at least one.
fn descriptor_checks(parsed: &Descriptor) -> Vec<Reason> {
    let fail = |why: VmdkDescriptorProblem| vec![Reason::VmdkDescriptor(why)];
    let text = match parsed.text.as_deref() {
        Some(t) if !t.is_empty() => t,
        _ => return fail(VmdkDescriptorProblem::NotFound),
    };
    if !VMDK_SPARSE_TYPES.contains(&parsed.create_type.as_str()) {
        return fail(VmdkDescriptorProblem::UnsupportedSubformat(
            parsed.create_type.clone(),
        ));
    }
    let mut extents = Vec::new();
    for line in text.split('\n').map(|l| l.trim_matches(is_py_space)) {
        if line.is_empty() || line.starts_with('#') || line.starts_with("ddb") {
            continue;
        }
        let is_field = line
            .split_once('=')
            .is_some_and(|(key, _)| !key.contains(' '));
        if is_field {
            continue;
        }
        let first = line.split(' ').next().unwrap_or("");
        if ["rw", "rdonly", "noaccess"].contains(&first) {
            extents.push(line);
        } else {
            return fail(VmdkDescriptorProblem::InvalidData);
        }
    }
    if extents.iter().any(|e| e.contains('/')) {
        return fail(VmdkDescriptorProblem::ExtentFilenames);
    }
    if extents.is_empty() {
        return fail(VmdkDescriptorProblem::NoExtents);
    }
    Vec::new()
}

/// oslo's check of a streamOptimized footer (`tail` = the last 1536 bytes:
/// footer marker, footer header, end-of-stream marker).
fn footer_check(header: &[u8], tail: &[u8]) -> Result<(), VmdkFooterProblem> {
    let footer = &tail[512..512 + VMDK_MIN_HEADER];
    let u32_at = |b: &[u8], at| le32(b, at).unwrap_or(0);
    let u64_at = |b: &[u8], at| le64(b, at).unwrap_or(0);
    if header[..4] != footer[..4] {
        return Err(VmdkFooterProblem::SignatureMismatch);
    }
    if u32_at(header, 4) != u32_at(footer, 4) {
        return Err(VmdkFooterProblem::VersionMismatch);
    }
    if u64_at(header, 28) != u64_at(footer, 28) || u64_at(header, 36) != u64_at(footer, 36) {
        return Err(VmdkFooterProblem::DescriptorMismatch);
    }
    if u64_at(footer, 56) == VMDK_GD_AT_END {
        return Err(VmdkFooterProblem::AnotherFooter);
    }
    let marker = &tail[..512];
    if u32_at(marker, 8) != 0 || u32_at(marker, 12) != 3 || marker[16..].iter().any(|&b| b != 0) {
        return Err(VmdkFooterProblem::InvalidMarker);
    }
    let eos = &tail[1024..];
    if u64_at(eos, 0) != 0
        || u32_at(eos, 8) != 0
        || u32_at(eos, 12) != 0
        || eos[16..].iter().any(|&b| b != 0)
    {
        return Err(VmdkFooterProblem::InvalidEndOfStream);
    }
    Ok(())
}

// ------------------------------------------------------------------------ VHDX

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

#[derive(Default)]
struct Vhdx {
    stage: VhdxStage,
    table: Option<Capture>,
    vds: Option<Capture>,
    /// The metadata table was searched and has no virtual disk size item.
    no_vds: bool,
}

impl Vhdx {
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
        table.len = table.data.len();
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

    #[cfg(test)]
    fn buffered_bytes(&self) -> usize {
        self.table.as_ref().map_or(0, |c| c.data.capacity())
            + self.vds.as_ref().map_or(0, |c| c.data.capacity())
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Chunk sizes every image is fed in: single bytes, odd sizes, aligned
    /// sizes, and the whole image at once.
    const CHUNKS: &[usize] = &[1, 7, 512, 4093, 65536, 1 << 20, usize::MAX];

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "glance-format-inspector-{}-{tag}-{n}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).expect("create scratch dir");
            Scratch(dir)
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.join(name)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn qemu_img(dir: &Scratch, args: &[&str]) {
        let out = Command::new("qemu-img")
            .current_dir(&dir.0)
            .args(args)
            .output()
            .expect("qemu-img must be installed to run these tests");
        assert!(
            out.status.success(),
            "qemu-img {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// qemu-img's format name and virtual size for `path`.
    fn qemu_info(path: &Path) -> (String, u64) {
        let out = Command::new("qemu-img")
            .args(["info", "--output=json"])
            .arg(path)
            .output()
            .expect("qemu-img info");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("qemu-img json");
        (
            info["format"].as_str().expect("format").to_string(),
            info["virtual-size"].as_u64().expect("virtual-size"),
        )
    }

    /// Creates an image with `qemu-img create <args>` and returns its bytes.
    fn make_image(dir: &Scratch, name: &str, args: &[&str]) -> Vec<u8> {
        let mut all = vec!["create", "-q"];
        all.extend_from_slice(args);
        qemu_img(dir, &all);
        std::fs::read(dir.path(name)).expect("read image")
    }

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
            Err(FormatError::Unsafe(reasons)) => join(&reasons),
            other => panic!("expected an unsafe refusal, got {other:?}"),
        }
    }

    #[test]
    fn detects_qemu_images_with_their_virtual_size() {
        let dir = Scratch::new("formats");
        let cases: &[(&str, &[&str], &str, Format)] = &[
            (
                "a.qcow2",
                &["-f", "qcow2", "a.qcow2", "64M"],
                "qcow2",
                Format::Qcow2,
            ),
            (
                "b.qcow2",
                &["-f", "qcow2", "-o", "compat=0.10", "b.qcow2", "1G"],
                "qcow2",
                Format::Qcow2,
            ),
            (
                "c.vmdk",
                &["-f", "vmdk", "c.vmdk", "100M"],
                "vmdk",
                Format::Vmdk,
            ),
            (
                "d.vmdk",
                &[
                    "-f",
                    "vmdk",
                    "-o",
                    "subformat=streamOptimized",
                    "d.vmdk",
                    "300M",
                ],
                "vmdk",
                Format::Vmdk,
            ),
            ("e.vhd", &["-f", "vpc", "e.vhd", "10M"], "vpc", Format::Vhd),
            (
                "f.vhdx",
                &["-f", "vhdx", "f.vhdx", "100M"],
                "vhdx",
                Format::Vhdx,
            ),
            ("g.vdi", &["-f", "vdi", "g.vdi", "50M"], "vdi", Format::Vdi),
            ("h.raw", &["-f", "raw", "h.raw", "3M"], "raw", Format::Raw),
            (
                "i.luks",
                &[
                    "--object",
                    "secret,id=s0,data=glance",
                    "-f",
                    "luks",
                    "-o",
                    "key-secret=s0,iter-time=10",
                    "i.luks",
                    "4M",
                ],
                "luks",
                Format::Luks,
            ),
        ];
        for (name, args, qemu_format, glance_format) in cases {
            let data = make_image(&dir, name, args);
            let (format, virtual_size) = qemu_info(&dir.path(name));
            assert_eq!(&format, qemu_format, "{name}");
            let inspection = inspect_all(&data);
            assert_eq!(inspection.format, *glance_format, "{name}");
            assert_eq!(inspection.virtual_size, Some(virtual_size), "{name}");
            assert_eq!(inspection.actual_size, data.len() as u64, "{name}");
            assert!(
                inspection.unsafe_reasons.is_empty(),
                "{name}: {:?}",
                inspection.unsafe_reasons
            );
            assert_eq!(
                verdict(glance_format.as_str(), &inspection),
                Ok(Some(virtual_size)),
                "{name}"
            );
        }
    }

    #[test]
    fn iso_size_comes_from_the_primary_volume_descriptor() {
        let dir = Scratch::new("iso");
        let data = iso_image(40);
        std::fs::write(dir.path("a.iso"), &data).expect("write iso");
        // qemu sees an ISO as raw; its virtual size is the file's size, which
        // is what the volume descriptor records for this image.
        let (_, qemu_size) = qemu_info(&dir.path("a.iso"));
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Iso);
        assert_eq!(inspection.virtual_size, Some(qemu_size));
        assert_eq!(verdict("iso", &inspection), Ok(Some(40 * 2048)));
        assert_eq!(
            verdict("qcow2", &inspection),
            Err(FormatError::Mismatch {
                declared: "qcow2".into(),
                detected: Format::Iso
            })
        );
        // A bigger volume than the upload: the descriptor wins.
        let mut short = iso_image(40);
        short[ISO_PVD_AT + 80..ISO_PVD_AT + 84].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(inspect_all(&short).virtual_size, Some(1000 * 2048));
    }

    #[test]
    fn hybrid_iso_with_a_boot_record_counts_as_iso() {
        let mut data = iso_image(40);
        data[..512].copy_from_slice(&protective_mbr());
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Iso);
        assert_eq!(verdict("iso", &inspection), Ok(Some(40 * 2048)));
        // Even an MBR that would fail its own check: only the ISO is judged.
        data[..512].copy_from_slice(&mbr(&[(0x7f, [1, 1, 0], 0x83, 2048)]));
        assert_eq!(verdict("iso", &inspect_all(&data)), Ok(Some(40 * 2048)));
    }

    #[test]
    fn random_bytes_are_raw() {
        let data = random_bytes(300_000, 7);
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Raw);
        assert_eq!(inspection.virtual_size, Some(300_000));
        assert!(inspection.unsafe_reasons.is_empty());
        assert_eq!(verdict("raw", &inspection), Ok(Some(300_000)));
    }

    #[test]
    fn qcow2_declared_with_raw_data_is_a_mismatch() {
        let inspection = inspect_all(&random_bytes(100_000, 11));
        let err = verdict("qcow2", &inspection).unwrap_err();
        assert_eq!(
            err,
            FormatError::Mismatch {
                declared: "qcow2".into(),
                detected: Format::Raw
            }
        );
        assert_eq!(
            err.to_string(),
            "Image disk_format qcow2 does not match stream data raw"
        );
    }

    #[test]
    fn uninspectable_formats_accept_raw_data_without_a_size() {
        let inspection = inspect_all(&random_bytes(50_000, 3));
        for declared in ["ami", "aki", "ari", "ploop"] {
            assert_eq!(verdict(declared, &inspection), Ok(None), "{declared}");
        }
    }

    #[test]
    fn uninspectable_formats_refuse_recognised_data() {
        let dir = Scratch::new("ami");
        let data = make_image(&dir, "a.qcow2", &["-f", "qcow2", "a.qcow2", "1M"]);
        let inspection = inspect_all(&data);
        assert_eq!(
            verdict("ami", &inspection),
            Err(FormatError::Mismatch {
                declared: "ami".into(),
                detected: Format::Qcow2
            })
        );
    }

    #[test]
    fn raw_declared_accepts_qcow2_data_with_its_byte_count() {
        let dir = Scratch::new("rawqcow");
        let data = make_image(&dir, "a.qcow2", &["-f", "qcow2", "a.qcow2", "5G"]);
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Qcow2);
        assert_eq!(inspection.virtual_size, Some(5 << 30));
        assert_eq!(verdict("raw", &inspection), Ok(Some(data.len() as u64)));
    }

    #[test]
    fn qcow2_backing_file_is_unsafe() {
        let dir = Scratch::new("backing");
        make_image(&dir, "base.qcow2", &["-f", "qcow2", "base.qcow2", "16M"]);
        let data = make_image(
            &dir,
            "top.qcow2",
            &[
                "-f",
                "qcow2",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "top.qcow2",
            ],
        );
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Qcow2);
        assert_eq!(inspection.virtual_size, Some(16 << 20));
        assert_eq!(inspection.unsafe_reasons, vec![Reason::Qcow2BackingFile]);
        let err = verdict("qcow2", &inspection).unwrap_err();
        assert_eq!(err, FormatError::Unsafe(vec![Reason::Qcow2BackingFile]));
        assert_eq!(err.to_string(), "Image failed safety checks");
        // Declaring raw does not make it safe.
        assert_eq!(
            unsafe_err(verdict("raw", &inspection)),
            "qcow2 backing file"
        );
    }

    #[test]
    fn qcow2_external_data_file_is_unsafe() {
        let dir = Scratch::new("datafile");
        let data = make_image(
            &dir,
            "a.qcow2",
            &["-f", "qcow2", "-o", "data_file=a.data", "a.qcow2", "32M"],
        );
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Qcow2);
        assert!(inspection.unsafe_reasons.contains(&Reason::Qcow2DataFile));
        assert!(unsafe_err(verdict("qcow2", &inspection)).contains("qcow2 data file"));
    }

    #[test]
    fn qcow2_unknown_incompatible_features_are_unsafe() {
        let dir = Scratch::new("features");
        let data = make_image(
            &dir,
            "a.qcow2",
            &["-f", "qcow2", "-o", "extended_l2=on", "a.qcow2", "32M"],
        );
        let inspection = inspect_all(&data);
        assert_eq!(
            inspection.unsafe_reasons,
            vec![Reason::Qcow2UnknownFeatures]
        );
        // qcow1 shares the magic and is refused as an unsupported version.
        let mut v1 = data.clone();
        v1[4..8].copy_from_slice(&1u32.to_be_bytes());
        assert!(inspect_all(&v1)
            .unsafe_reasons
            .contains(&Reason::Qcow2UnsupportedVersion));
    }

    #[test]
    fn early_refusal_refuses_random_bytes_declared_qcow2() {
        let data = random_bytes(1 << 20, 5);
        let mut inspector = FormatInspector::new();
        let mut refused_at = None;
        for (i, piece) in data.chunks(1024).enumerate() {
            inspector.feed(piece);
            if let Some(err) = inspector.early_refusal("qcow2") {
                assert_eq!(
                    err,
                    FormatError::Mismatch {
                        declared: "qcow2".into(),
                        detected: Format::Raw
                    }
                );
                refused_at = Some((i + 1) * 1024);
                break;
            }
        }
        // Decided as soon as no format can match any more: after the ISO
        // volume descriptor's signature at 32 KiB.
        let at = refused_at.expect("refused early");
        assert!(at <= 40 * 1024, "refused only after {at} bytes");
        // Raw and uninspectable declarations are never refused for raw data.
        assert_eq!(inspector.early_refusal("raw"), None);
        assert_eq!(inspector.early_refusal("ami"), None);
    }

    #[test]
    fn early_refusal_never_refuses_a_genuine_qcow2() {
        let dir = Scratch::new("early");
        let data = make_image(&dir, "a.qcow2", &["-f", "qcow2", "a.qcow2", "1G"]);
        for chunk in [1, 100, 4096, 65536] {
            let mut inspector = FormatInspector::new();
            for piece in data.chunks(chunk) {
                inspector.feed(piece);
                assert_eq!(inspector.early_refusal("qcow2"), None, "chunk {chunk}");
                assert_eq!(inspector.early_refusal("raw"), None, "chunk {chunk}");
            }
            assert_eq!(verdict("qcow2", &inspector.finish()), Ok(Some(1 << 30)));
        }
    }

    #[test]
    fn early_refusal_catches_an_unsafe_qcow2() {
        let dir = Scratch::new("earlyunsafe");
        make_image(&dir, "base.qcow2", &["-f", "qcow2", "base.qcow2", "16M"]);
        let data = make_image(
            &dir,
            "top.qcow2",
            &[
                "-f",
                "qcow2",
                "-b",
                "base.qcow2",
                "-F",
                "qcow2",
                "top.qcow2",
            ],
        );
        let mut inspector = FormatInspector::new();
        inspector.feed(&data[..64 * 1024]);
        assert_eq!(
            inspector.early_refusal("qcow2"),
            Some(FormatError::Unsafe(vec![Reason::Qcow2BackingFile]))
        );
        assert!(inspector.early_refusal("vmdk").is_some());
    }

    #[test]
    fn early_refusal_agrees_with_the_final_verdict() {
        let dir = Scratch::new("agree");
        let mut samples = vec![
            make_image(&dir, "a.vmdk", &["-f", "vmdk", "a.vmdk", "10M"]),
            make_image(&dir, "b.vhdx", &["-f", "vhdx", "b.vhdx", "10M"]),
            make_image(&dir, "c.vhd", &["-f", "vpc", "c.vhd", "10M"]),
            iso_image(40),
            random_bytes(70_000, 9),
            b"createType=\"monolithicFlat\"\nRW 1 FLAT \"x-flat.vmdk\" 0\n".repeat(20),
        ];
        let mut gpt = protective_mbr();
        gpt.resize(100_000, 0);
        samples.push(gpt);
        let declared = [
            "raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso", "ami", "aki", "gpt",
        ];
        for data in &samples {
            let mut inspector = FormatInspector::new();
            let mut early: Vec<Option<FormatError>> = vec![None; declared.len()];
            for piece in data.chunks(4093) {
                inspector.feed(piece);
                for (slot, d) in early.iter_mut().zip(declared) {
                    if slot.is_none() {
                        *slot = inspector.early_refusal(d);
                    }
                }
            }
            let inspection = inspector.finish();
            for (slot, d) in early.into_iter().zip(declared) {
                if let Some(err) = slot {
                    assert_eq!(
                        verdict(d, &inspection),
                        Err(err),
                        "{d} on {}",
                        inspection.format
                    );
                }
            }
        }
    }

    #[test]
    fn memory_stays_bounded() {
        const LIMIT: usize = 3 << 20;
        let zeros = vec![0u8; 1 << 20];
        let mut inspector = FormatInspector::new();
        for _ in 0..64 {
            inspector.feed(&zeros);
            assert!(
                inspector.buffered_bytes() < LIMIT,
                "{}",
                inspector.buffered_bytes()
            );
        }
        assert!(
            inspector.buffered_bytes() < 512 * 1024,
            "{}",
            inspector.buffered_bytes()
        );
        let inspection = inspector.finish();
        assert_eq!(
            (inspection.format, inspection.actual_size),
            (Format::Raw, 64 << 20)
        );

        // Text keeps the VMDK descriptor capture open (up to 1 MiB).
        let text = b"just some text\n".repeat(70_000);
        let mut inspector = FormatInspector::new();
        for piece in text.chunks(1 << 20).cycle().take(8) {
            inspector.feed(piece);
            assert!(
                inspector.buffered_bytes() < LIMIT,
                "{}",
                inspector.buffered_bytes()
            );
        }

        // One-byte chunks do not make the tail grow.
        let mut inspector = FormatInspector::new();
        for b in random_bytes(300_000, 1) {
            inspector.feed(&[b]);
        }
        assert!(
            inspector.buffered_bytes() < LIMIT,
            "{}",
            inspector.buffered_bytes()
        );
    }

    #[test]
    fn vmdk_descriptor_checks() {
        let dir = Scratch::new("vmdk");
        // Flat and split subformats need other files: refused.
        make_image(
            &dir,
            "flat.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=monolithicFlat",
                "flat.vmdk",
                "1M",
            ],
        );
        let flat = std::fs::read(dir.path("flat.vmdk")).expect("read");
        let inspection = inspect_all(&flat);
        assert_eq!(inspection.format, Format::Vmdk);
        assert!(verdict("vmdk", &inspection).is_err());
        assert!(verdict("raw", &inspection).is_err());

        make_image(
            &dir,
            "split.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=twoGbMaxExtentSparse",
                "split.vmdk",
                "1M",
            ],
        );
        let split = std::fs::read(dir.path("split.vmdk")).expect("read");
        let inspection = inspect_all(&split);
        assert_eq!(inspection.format, Format::Vmdk);
        assert!(unsafe_err(verdict("vmdk", &inspection)).contains("unsupported subformat"));
        let extent = std::fs::read(dir.path("split-s001.vmdk")).expect("read");
        assert!(verdict("vmdk", &inspect_all(&extent)).is_err());

        // An extent pointing at a path.
        let good = make_image(&dir, "good.vmdk", &["-f", "vmdk", "good.vmdk", "1M"]);
        assert_eq!(verdict("vmdk", &inspect_all(&good)), Ok(Some(1 << 20)));
        let mut evil = good.clone();
        let at = evil
            .windows(10)
            .position(|w| w == b"\"good.vmdk")
            .expect("extent line");
        evil[at + 1..at + 10].copy_from_slice(b"/etc/pass");
        let inspection = inspect_all(&evil);
        assert_eq!(inspection.virtual_size, Some(1 << 20));
        assert!(unsafe_err(verdict("vmdk", &inspection)).contains("invalid extent filenames"));
    }

    #[test]
    fn vmdk_stream_optimized_footer() {
        let dir = Scratch::new("footer");
        let data = make_image(
            &dir,
            "s.vmdk",
            &[
                "-f",
                "vmdk",
                "-o",
                "subformat=streamOptimized",
                "s.vmdk",
                "8M",
            ],
        );
        // Move the grain directory to a footer, as VMware's streams do.
        let header = data[..512].to_vec();
        let mut stream = data.clone();
        stream[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut marker = vec![0u8; 512];
        marker[12..16].copy_from_slice(&3u32.to_le_bytes());
        stream.extend_from_slice(&marker);
        stream.extend_from_slice(&header);
        stream.extend_from_slice(&[0u8; 512]);
        let inspection = inspect_all(&stream);
        assert_eq!(inspection.format, Format::Vmdk);
        assert_eq!(verdict("vmdk", &inspection), Ok(Some(8 << 20)));

        let last = stream.len() - 1;
        stream[last] = 1;
        let inspection = inspect_all(&stream);
        assert!(unsafe_err(verdict("vmdk", &inspection)).contains("end-of-stream marker"));
    }

    #[test]
    fn fixed_vhd_is_raw_as_in_oslo() {
        // A fixed VHD only has its footer at the end, which oslo never reads.
        let dir = Scratch::new("fixedvhd");
        let data = make_image(
            &dir,
            "f.vhd",
            &["-f", "vpc", "-o", "subformat=fixed", "f.vhd", "2M"],
        );
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Raw);
        assert_eq!(verdict("raw", &inspection), Ok(Some(data.len() as u64)));
    }

    #[test]
    fn gpt_and_mbr_disks() {
        let mut disk = protective_mbr();
        disk.resize(200_000, 0);
        let inspection = inspect_all(&disk);
        assert_eq!(inspection.format, Format::Gpt);
        assert!(inspection.unsafe_reasons.is_empty());
        assert_eq!(verdict("raw", &inspection), Ok(Some(200_000)));
        assert_eq!(verdict("gpt", &inspection), Ok(Some(200_000)));
        // Glance 33 compares before its aki/ari MBR leniency can apply.
        assert_eq!(
            verdict("aki", &inspection),
            Err(FormatError::Mismatch {
                declared: "aki".into(),
                detected: Format::Gpt
            })
        );

        let mut bad = mbr(&[(0x81, [1, 1, 0], 0x83, 2048)]);
        bad.resize(10_000, 0);
        let inspection = inspect_all(&bad);
        assert_eq!(inspection.format, Format::Gpt);
        assert!(unsafe_err(verdict("raw", &inspection)).contains("invalid boot flag"));

        let mut empty = mbr(&[]);
        empty.resize(10_000, 0);
        assert!(unsafe_err(verdict("raw", &inspect_all(&empty))).contains("no partitions"));

        let mut extra = mbr(&[(0, [0, 2, 0], 0xee, 1), (0, [0, 0, 0], 0x83, 5)]);
        extra.resize(10_000, 0);
        assert!(unsafe_err(verdict("raw", &inspect_all(&extra))).contains("extra partitions"));

        // A classic MBR disk with two partitions is fine.
        let mut classic = mbr(&[(0x80, [1, 1, 0], 0x83, 2048), (0, [0, 0, 0], 0x82, 4096)]);
        classic.resize(10_000, 0);
        assert_eq!(verdict("raw", &inspect_all(&classic)), Ok(Some(10_000)));

        // A FAT boot sector looks like an MBR but is not one.
        let mut fat = mbr(&[]);
        fat[0x10] = 2;
        fat[0x15] = 0xf8;
        fat.resize(10_000, 0);
        assert_eq!(inspect_all(&fat).format, Format::Raw);
    }

    #[test]
    fn gpt_mbr_failures_are_fatal_for_disk_declarations() {
        let inspection = Inspection {
            format: Format::Gpt,
            virtual_size: Some(4096),
            actual_size: 4096,
            unsafe_reasons: vec![Reason::GptMbr(MbrProblem::InvalidBootFlag(0))],
        };
        assert_eq!(
            verdict("raw", &inspection).unwrap_err().to_string(),
            "Image failed safety checks"
        );
        assert!(verdict("gpt", &inspection).is_err());
        // Glance's aki/ari MBR leniency sits after the format comparison, so
        // a kernel that looks like an MBR disk is a mismatch first.
        assert_eq!(
            verdict("aki", &inspection),
            Err(FormatError::Mismatch {
                declared: "aki".into(),
                detected: Format::Gpt
            })
        );
    }

    #[test]
    fn several_matching_formats_are_refused() {
        let dir = Scratch::new("multi");
        let mut data = make_image(&dir, "a.qcow2", &["-f", "qcow2", "a.qcow2", "1M"]);
        data[510] = 0x55;
        data[511] = 0xaa;
        let inspection = inspect_all(&data);
        for declared in ["qcow2", "raw", "gpt", "ami"] {
            let err = verdict(declared, &inspection).unwrap_err();
            assert_eq!(err.to_string(), "Multiple formats detected: qcow2,gpt");
        }
    }

    #[test]
    fn qed_is_banned() {
        let dir = Scratch::new("qed");
        let data = make_image(&dir, "a.qed", &["-f", "qed", "a.qed", "10M"]);
        let inspection = inspect_all(&data);
        assert_eq!(inspection.format, Format::Qed);
        assert!(verdict("qed", &inspection).is_err());
        assert!(verdict("raw", &inspection).is_err());
    }

    #[test]
    fn truncated_headers() {
        let empty = inspect_all(&[]);
        assert_eq!(empty.format, Format::Raw);
        assert_eq!(verdict("raw", &empty), Ok(None));

        // A VHD whose 512-byte footer copy is cut short.
        let mut vhd = b"conectix".to_vec();
        vhd.resize(100, 0);
        let inspection = inspect_all(&vhd);
        assert_eq!(inspection.format, Format::Vhd);
        let err = verdict("vhd", &inspection).unwrap_err();
        assert_eq!(err.to_string(), "Incomplete file cannot be safety checked");

        // A qcow2 magic without a whole header is not a qcow2.
        let inspection = inspect_all(b"QFI\xfb\x00\x00\x00\x03");
        assert_eq!(inspection.format, Format::Raw);

        // Nor is a VHDX whose metadata lies beyond the end.
        let dir = Scratch::new("trunc");
        let data = make_image(&dir, "a.vhdx", &["-f", "vhdx", "a.vhdx", "10M"]);
        let inspection = inspect_all(&data[..1 << 20]);
        assert_eq!(inspection.format, Format::Vhdx);
        assert!(verdict("vhdx", &inspection).is_err());
    }

    #[test]
    fn format_names_round_trip() {
        for name in &Format::ALL {
            assert!(Format::ALL.iter().filter(|f| *f == name).count() == 1);
        }
        let dir = Scratch::new("names");
        let data = make_image(&dir, "a.vdi", &["-f", "vdi", "a.vdi", "1M"]);
        assert!(Format::ALL.contains(&inspect_all(&data).format));
    }
}

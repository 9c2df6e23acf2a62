//! In-flight disk image format inspection, as Glance does it for uploads with
//! container format `bare`.
//!
//! While image data streams into a store, [`FormatInspector`] looks at the bytes
//! as they pass, keeping only the few header regions each known format needs
//! (never the image itself). When the stream ends, [`FormatInspector::finish`]
//! reports the detected format, the guest-visible (virtual) size the format
//! records, and the safety checks the data failed. [`verdict()`] then makes
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
//!
//! Here: the streaming inspector, which captures the head and tail of the
//! stream and asks each format's `FormatProbe` (one file per format family;
//! `simple` holds VHD, VDI and QED) whether the data matches and what its
//! checks say. [`Format`] and [`Reason`] name formats and reasons; the
//! `verdict` file holds Glance's decision.

mod capture;
mod format;
mod gpt;
mod iso;
mod luks;
mod probe;
mod qcow2;
mod reason;
mod simple;
mod verdict;
mod vhdx;
mod vmdk;

#[cfg(test)]
mod tests;

pub use format::Format;
pub use reason::{MbrProblem, Reason, VmdkDescriptorProblem, VmdkFooterProblem};
pub use verdict::{verdict, FormatError};

use capture::Capture;
use probe::{FormatProbe, Seen, Tri};
use vhdx::Vhdx;
use vmdk::Vmdk;

/// Bytes kept from the start of the stream: enough for every fixed header,
/// the ISO primary volume descriptor (32 KiB + 2 KiB) and the VHDX region
/// table (192 KiB + 64 KiB).
const HEAD_LEN: usize = 256 * 1024;
/// Bytes of the stream's end kept for a streamOptimized VMDK footer.
const TAIL_LEN: usize = 1536;

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
        self.vmdk.feed(&self.head, self.pos, at, data);
        self.vhdx.feed(&self.head, at, data);
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
    /// data already certainly fails [`verdict()`] for `declared`, whatever
    /// follows; `None` while undecided (or acceptable so far). Never a false
    /// refusal, and the refusal is the one [`verdict()`] gives at the end. For
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
        let seen = Seen {
            head: &self.head.data,
            tail: &self.tail,
            pos: self.pos,
            finished,
        };
        let mut matched = Vec::new();
        for &format in Format::ALL {
            let Some(probe) = self.probe(format) else {
                continue;
            };
            match probe.status(&seen) {
                Tri::Yes => matched.push(format),
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
        let probe = self.probe(chosen)?;
        let (virtual_size, unsafe_reasons) = probe.details(&seen).judge(chosen, finished);
        Some(Inspection {
            format: chosen,
            virtual_size,
            actual_size: self.pos,
            unsafe_reasons,
        })
    }

    /// The inspection of `format`; none for raw, which is what matches when
    /// nothing else does.
    fn probe(&self, format: Format) -> Option<&dyn FormatProbe> {
        Some(match format {
            Format::Raw => return None,
            Format::Qcow2 => &qcow2::Qcow2,
            Format::Vhd => &simple::Vhd,
            Format::Vhdx => &self.vhdx,
            Format::Vmdk => &self.vmdk,
            Format::Vdi => &simple::Vdi,
            Format::Qed => &simple::Qed,
            Format::Iso => &iso::Iso,
            Format::Gpt => &gpt::Gpt,
            Format::Luks => &luks::Luks,
        })
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

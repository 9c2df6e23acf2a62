//! VMDK: hosted sparse extents (monolithicSparse, streamOptimized) and text
//! descriptor files, with oslo's descriptor, extent and footer checks.

use super::capture::{le32, le64, Capture};
use super::probe::{Completion, Details, FormatProbe, Seen, Tri, SECTOR};
use super::{Reason, VmdkDescriptorProblem, VmdkFooterProblem, TAIL_LEN};

const VMDK_MAGIC: &[u8] = b"KDMV";
const VMDK_MIN_HEADER: usize = 64;
const VMDK_DESC_OFFSET: u64 = 0x200;
const VMDK_DESC_MAX: usize = (1 << 20) - 1;
const VMDK_GD_AT_END: u64 = u64::MAX;
const VMDK_SPARSE_TYPES: [&str; 2] = ["monolithicsparse", "streamoptimized"];
const VMDK_NO_TYPE: &str = "formatnotfound";

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

/// VMDK: a hosted sparse extent (header, embedded descriptor, maybe a
/// streamOptimized footer) or a text descriptor file, followed through the
/// stream.
#[derive(Default)]
pub(super) struct Vmdk {
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
    /// Takes what it needs from `chunk` (at stream offset `at`; `pos` bytes
    /// seen with it) and moves on.
    pub(super) fn feed(&mut self, head: &Capture, pos: u64, at: u64, chunk: &[u8]) {
        self.offer(at, chunk);
        self.advance(head, pos, at, chunk);
    }

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
    pub(super) fn settle(&mut self, head: &Capture, pos: u64) {
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

    /// Bytes held in capture buffers (allocated capacity).
    #[cfg(test)]
    pub(super) fn buffered_bytes(&self) -> usize {
        match &self.state {
            VmdkState::Sparse { descriptor, .. } | VmdkState::Text { descriptor, .. } => {
                descriptor.data.capacity()
            }
            _ => 0,
        }
    }
}

impl FormatProbe for Vmdk {
    fn status(&self, seen: &Seen) -> Tri {
        let (head, finished) = (seen.head, seen.finished);
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

    fn details(&self, seen: &Seen) -> Details {
        let (tail, pos, finished) = (seen.tail, seen.pos, seen.finished);
        let details = |virtual_size, failed, complete, unreadable| Details {
            virtual_size,
            failed,
            complete,
            unreadable,
        };
        match &self.state {
            VmdkState::Pending | VmdkState::Truncated => {
                details(None, Vec::new(), Completion::Pending, false)
            }
            VmdkState::NotVmdk => details(None, Vec::new(), Completion::Done, false),
            VmdkState::Broken(why) => details(
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
                    return details(None, Vec::new(), complete, false);
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
                details(virtual_size, reasons, complete, false)
            }
            VmdkState::Text { .. } => {
                let Some(parsed) = &self.parsed else {
                    return details(None, Vec::new(), Completion::Pending, false);
                };
                // With no sparse header oslo cannot read the size of a sparse
                // type (KeyError), which Glance reports as a failed inspection.
                let sparse_type = parsed.text.as_deref().is_some_and(|t| !t.is_empty())
                    && VMDK_SPARSE_TYPES.contains(&parsed.create_type.as_str());
                let virtual_size = if sparse_type { None } else { Some(0) };
                details(
                    virtual_size,
                    descriptor_checks(parsed),
                    Completion::Done,
                    sparse_type,
                )
            }
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

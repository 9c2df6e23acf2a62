//! Why data is unsafe, or cannot be judged at all: the reasons an
//! [`Inspection`](super::Inspection) records.
//!
//! Their `Display` texts are shown to users and stored with staged images
//! (as strings), so they never change; [`Reason::parse`] reads them back.

use std::fmt;

use super::Format;

/// A failed safety check of the detected format, or why the data cannot be
/// judged (several formats matched, truncated structures, unreadable virtual
/// size). `Display` gives the recorded text, e.g. "qcow2 backing file".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Several formats matched (in [`Format::ALL`] order): the data cannot
    /// be judged. Glance: "Multiple formats detected: qcow2,gpt".
    Multiple(Vec<Format>),
    /// The format's structures end before the stream does, or lie where the
    /// inspector cannot capture them: the data cannot be safety checked.
    Incomplete(Format),
    /// The format's virtual size cannot be read.
    Unreadable(Format),
    /// A qcow2 naming a backing file.
    Qcow2BackingFile,
    /// A qcow2 keeping its data in an external file.
    Qcow2DataFile,
    /// A qcow2 v3 with incompatible features oslo does not know.
    Qcow2UnknownFeatures,
    /// A qcow2 header of a version other than 2 or 3 (such as qcow1).
    Qcow2UnsupportedVersion,
    /// QED is never allowed.
    QedBanned,
    /// A LUKS header of a version other than 1.
    LuksVersion(u16),
    /// The MBR of a GPT or MBR disk failed its check.
    GptMbr(MbrProblem),
    /// A VMDK whose sparse header or descriptor failed its check.
    VmdkDescriptor(VmdkDescriptorProblem),
    /// A streamOptimized VMDK whose footer failed its check.
    VmdkFooter(VmdkFooterProblem),
    /// A stored reason this inspector does not give (the text as stored):
    /// judged as a failed safety check.
    Unrecognised(String),
}

/// What is wrong with the MBR of a GPT or MBR disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MbrProblem {
    /// Partition table entry (0 to 3) with a boot flag other than 0x00 or 0x80.
    InvalidBootFlag(u8),
    /// The protective entry does not start at CHS 0/2/0.
    InvalidStartChs,
    /// The protective entry does not start at LBA 1.
    InvalidStartLba,
    /// A protective MBR with other partitions than its first entry.
    ExtraPartitions,
    /// No partition entry is in use.
    NoPartitions,
}

/// What is wrong with a VMDK's sparse header or descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmdkDescriptorProblem {
    /// A sparse header of a version other than 1 to 3.
    UnsupportedHeaderVersion,
    /// The sparse header puts the descriptor elsewhere than sector 1.
    WrongLocation,
    /// The descriptor is empty.
    NotFound,
    /// A createType (lower-cased) other than monolithicSparse and
    /// streamOptimized: the image needs other files.
    UnsupportedSubformat(String),
    /// A line that is no comment, `ddb`, `key=value` or extent line.
    InvalidData,
    /// An extent names a path.
    ExtentFilenames,
    /// The descriptor lists no extent.
    NoExtents,
}

/// What is wrong with a streamOptimized VMDK's footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmdkFooterProblem {
    /// The footer's signature differs from the header's.
    SignatureMismatch,
    /// The footer's version differs from the header's.
    VersionMismatch,
    /// The footer's descriptor offset or size differs from the header's.
    DescriptorMismatch,
    /// The footer says another footer follows.
    AnotherFooter,
    /// The marker before the footer is not a footer marker.
    InvalidMarker,
    /// The stream does not end with an end-of-stream marker.
    InvalidEndOfStream,
}

const MULTIPLE: &str = "Multiple formats detected: ";
const INCOMPLETE: &str = " incomplete file cannot be safety checked";
const UNREADABLE: &str = " virtual size cannot be read";
const LUKS_VERSION: (&str, &str) = ("luks version: LUKS version ", " is not supported");
const GPT_MBR: &str = "gpt mbr: ";
const VMDK_DESCRIPTOR: &str = "vmdk descriptor: ";
const VMDK_FOOTER: &str = "vmdk footer: ";
const BOOT_FLAG: (&str, &str) = ("MBR PTE ", " has invalid boot flag");
const SUBFORMAT: &str = "unsupported subformat ";

impl Reason {
    /// The reason whose text is `text` (as `Display` gives it), or
    /// [`Reason::Unrecognised`] when no reason reads that way.
    pub fn parse(text: &str) -> Reason {
        Reason::recognise(text)
            .filter(|r| r.to_string() == text)
            .unwrap_or_else(|| Reason::Unrecognised(text.to_string()))
    }

    /// A candidate for `text`; [`Reason::parse`] checks it reads back the same.
    fn recognise(text: &str) -> Option<Reason> {
        if let Some(list) = text.strip_prefix(MULTIPLE) {
            let formats: Option<Vec<Format>> = list.split(',').map(Format::parse).collect();
            return formats.map(Reason::Multiple);
        }
        if let Some(name) = text.strip_suffix(INCOMPLETE) {
            return Format::parse(name).map(Reason::Incomplete);
        }
        if let Some(name) = text.strip_suffix(UNREADABLE) {
            return Format::parse(name).map(Reason::Unreadable);
        }
        if let Some(version) = between(text, LUKS_VERSION) {
            return version.parse().ok().map(Reason::LuksVersion);
        }
        if let Some(why) = text.strip_prefix(GPT_MBR) {
            return MbrProblem::recognise(why).map(Reason::GptMbr);
        }
        if let Some(why) = text.strip_prefix(VMDK_DESCRIPTOR) {
            return VmdkDescriptorProblem::recognise(why).map(Reason::VmdkDescriptor);
        }
        if let Some(why) = text.strip_prefix(VMDK_FOOTER) {
            return VmdkFooterProblem::recognise(why).map(Reason::VmdkFooter);
        }
        [
            Reason::Qcow2BackingFile,
            Reason::Qcow2DataFile,
            Reason::Qcow2UnknownFeatures,
            Reason::Qcow2UnsupportedVersion,
            Reason::QedBanned,
        ]
        .into_iter()
        .find(|r| r.to_string() == text)
    }
}

/// The part of `text` between `prefix` and `suffix`.
fn between<'a>(text: &'a str, (prefix, suffix): (&str, &str)) -> Option<&'a str> {
    text.strip_prefix(prefix)?.strip_suffix(suffix)
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Multiple(formats) => {
                let names: Vec<&str> = formats.iter().map(|f| f.as_str()).collect();
                write!(f, "{MULTIPLE}{}", names.join(","))
            }
            Reason::Incomplete(format) => write!(f, "{format}{INCOMPLETE}"),
            Reason::Unreadable(format) => write!(f, "{format}{UNREADABLE}"),
            Reason::Qcow2BackingFile => f.write_str("qcow2 backing file"),
            Reason::Qcow2DataFile => f.write_str("qcow2 data file"),
            Reason::Qcow2UnknownFeatures => f.write_str("qcow2 unknown features"),
            Reason::Qcow2UnsupportedVersion => f.write_str("qcow2 unsupported version"),
            Reason::QedBanned => f.write_str("qed banned: this file format is not allowed"),
            Reason::LuksVersion(version) => {
                write!(f, "{}{version}{}", LUKS_VERSION.0, LUKS_VERSION.1)
            }
            Reason::GptMbr(problem) => write!(f, "{GPT_MBR}{problem}"),
            Reason::VmdkDescriptor(problem) => write!(f, "{VMDK_DESCRIPTOR}{problem}"),
            Reason::VmdkFooter(problem) => write!(f, "{VMDK_FOOTER}{problem}"),
            Reason::Unrecognised(text) => f.write_str(text),
        }
    }
}

impl MbrProblem {
    fn recognise(why: &str) -> Option<MbrProblem> {
        if let Some(entry) = between(why, BOOT_FLAG) {
            return entry.parse().ok().map(MbrProblem::InvalidBootFlag);
        }
        [
            MbrProblem::InvalidStartChs,
            MbrProblem::InvalidStartLba,
            MbrProblem::ExtraPartitions,
            MbrProblem::NoPartitions,
        ]
        .into_iter()
        .find(|p| p.to_string() == why)
    }
}

impl fmt::Display for MbrProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MbrProblem::InvalidBootFlag(entry) => {
                write!(f, "{}{entry}{}", BOOT_FLAG.0, BOOT_FLAG.1)
            }
            MbrProblem::InvalidStartChs => f.write_str("GPT MBR has invalid start CHS"),
            MbrProblem::InvalidStartLba => f.write_str("GPT MBR has invalid start LBA"),
            MbrProblem::ExtraPartitions => f.write_str("GPT MBR defines invalid extra partitions"),
            MbrProblem::NoPartitions => f.write_str("GPT MBR has no partitions defined"),
        }
    }
}

impl VmdkDescriptorProblem {
    fn recognise(why: &str) -> Option<VmdkDescriptorProblem> {
        if let Some(quoted) = why.strip_prefix(SUBFORMAT) {
            // Written with `{:?}`: a quoted string. Escapes do not read back,
            // which `Reason::parse` notices.
            let name = quoted.strip_prefix('"')?.strip_suffix('"')?;
            return Some(VmdkDescriptorProblem::UnsupportedSubformat(name.into()));
        }
        [
            VmdkDescriptorProblem::UnsupportedHeaderVersion,
            VmdkDescriptorProblem::WrongLocation,
            VmdkDescriptorProblem::NotFound,
            VmdkDescriptorProblem::InvalidData,
            VmdkDescriptorProblem::ExtentFilenames,
            VmdkDescriptorProblem::NoExtents,
        ]
        .into_iter()
        .find(|p| p.to_string() == why)
    }
}

impl fmt::Display for VmdkDescriptorProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use VmdkDescriptorProblem as P;
        match self {
            P::UnsupportedHeaderVersion => f.write_str("unsupported sparse header version"),
            P::WrongLocation => f.write_str("wrong descriptor location"),
            P::NotFound => f.write_str("no descriptor found"),
            P::UnsupportedSubformat(create_type) => write!(f, "{SUBFORMAT}{create_type:?}"),
            P::InvalidData => f.write_str("invalid VMDK descriptor data"),
            P::ExtentFilenames => f.write_str("invalid extent filenames found"),
            P::NoExtents => f.write_str("no extents found"),
        }
    }
}

impl VmdkFooterProblem {
    fn recognise(why: &str) -> Option<VmdkFooterProblem> {
        [
            VmdkFooterProblem::SignatureMismatch,
            VmdkFooterProblem::VersionMismatch,
            VmdkFooterProblem::DescriptorMismatch,
            VmdkFooterProblem::AnotherFooter,
            VmdkFooterProblem::InvalidMarker,
            VmdkFooterProblem::InvalidEndOfStream,
        ]
        .into_iter()
        .find(|p| p.to_string() == why)
    }
}

impl fmt::Display for VmdkFooterProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use VmdkFooterProblem as P;
        f.write_str(match self {
            P::SignatureMismatch => "header and footer signature do not match",
            P::VersionMismatch => "header and footer versions do not match",
            P::DescriptorMismatch => "footer specifies a different descriptor than header",
            P::AnotherFooter => "footer indicates another footer",
            P::InvalidMarker => "footer marker is invalid",
            P::InvalidEndOfStream => "end-of-stream marker is invalid",
        })
    }
}

//! Reason texts: exactly as recorded so far, and read back.

use super::*;

/// Every text the inspector records, as the inspector before the
/// `Reason` type wrote it.
fn recorded() -> Vec<(Reason, &'static str)> {
    use MbrProblem as M;
    use VmdkDescriptorProblem as D;
    use VmdkFooterProblem as F;
    vec![
        (
            Reason::Multiple(vec![Format::Qcow2, Format::Gpt]),
            "Multiple formats detected: qcow2,gpt",
        ),
        (
            Reason::Incomplete(Format::Vhd),
            "vhd incomplete file cannot be safety checked",
        ),
        (
            Reason::Unreadable(Format::Vmdk),
            "vmdk virtual size cannot be read",
        ),
        (Reason::Qcow2BackingFile, "qcow2 backing file"),
        (Reason::Qcow2DataFile, "qcow2 data file"),
        (Reason::Qcow2UnknownFeatures, "qcow2 unknown features"),
        (Reason::Qcow2UnsupportedVersion, "qcow2 unsupported version"),
        (
            Reason::QedBanned,
            "qed banned: this file format is not allowed",
        ),
        (
            Reason::LuksVersion(2),
            "luks version: LUKS version 2 is not supported",
        ),
        (
            Reason::GptMbr(M::InvalidBootFlag(3)),
            "gpt mbr: MBR PTE 3 has invalid boot flag",
        ),
        (
            Reason::GptMbr(M::InvalidStartChs),
            "gpt mbr: GPT MBR has invalid start CHS",
        ),
        (
            Reason::GptMbr(M::InvalidStartLba),
            "gpt mbr: GPT MBR has invalid start LBA",
        ),
        (
            Reason::GptMbr(M::ExtraPartitions),
            "gpt mbr: GPT MBR defines invalid extra partitions",
        ),
        (
            Reason::GptMbr(M::NoPartitions),
            "gpt mbr: GPT MBR has no partitions defined",
        ),
        (
            Reason::VmdkDescriptor(D::UnsupportedHeaderVersion),
            "vmdk descriptor: unsupported sparse header version",
        ),
        (
            Reason::VmdkDescriptor(D::WrongLocation),
            "vmdk descriptor: wrong descriptor location",
        ),
        (
            Reason::VmdkDescriptor(D::NotFound),
            "vmdk descriptor: no descriptor found",
        ),
        (
            Reason::VmdkDescriptor(D::UnsupportedSubformat("monolithicflat".into())),
            "vmdk descriptor: unsupported subformat \"monolithicflat\"",
        ),
        (
            Reason::VmdkDescriptor(D::InvalidData),
            "vmdk descriptor: invalid VMDK descriptor data",
        ),
        (
            Reason::VmdkDescriptor(D::ExtentFilenames),
            "vmdk descriptor: invalid extent filenames found",
        ),
        (
            Reason::VmdkDescriptor(D::NoExtents),
            "vmdk descriptor: no extents found",
        ),
        (
            Reason::VmdkFooter(F::SignatureMismatch),
            "vmdk footer: header and footer signature do not match",
        ),
        (
            Reason::VmdkFooter(F::VersionMismatch),
            "vmdk footer: header and footer versions do not match",
        ),
        (
            Reason::VmdkFooter(F::DescriptorMismatch),
            "vmdk footer: footer specifies a different descriptor than header",
        ),
        (
            Reason::VmdkFooter(F::AnotherFooter),
            "vmdk footer: footer indicates another footer",
        ),
        (
            Reason::VmdkFooter(F::InvalidMarker),
            "vmdk footer: footer marker is invalid",
        ),
        (
            Reason::VmdkFooter(F::InvalidEndOfStream),
            "vmdk footer: end-of-stream marker is invalid",
        ),
    ]
}

#[test]
fn reasons_read_as_recorded_and_parse_back() {
    for (reason, text) in recorded() {
        assert_eq!(reason.to_string(), text);
        assert_eq!(Reason::parse(text), reason, "{text}");
    }
}

#[test]
fn unknown_texts_stay_as_they_are() {
    for text in [
        "",
        "something else",
        "Multiple formats detected: qcow2,ploop",
        "ploop incomplete file cannot be safety checked",
        "luks version: LUKS version 02 is not supported",
        "gpt mbr: MBR PTE 9999 has invalid boot flag",
        "vmdk descriptor: unsupported subformat \"a\\\"b\"",
        "vmdk footer: it is broken",
        "qcow2 backing file ",
    ] {
        let reason = Reason::parse(text);
        assert_eq!(reason, Reason::Unrecognised(text.into()), "{text}");
        assert_eq!(reason.to_string(), text);
    }
}

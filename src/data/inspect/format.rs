//! The disk formats the inspector can detect.

use std::fmt;

/// A disk format the inspector can detect, named (by [`Format::as_str`]) as
/// Glance names disk formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Data that matches no other format.
    Raw,
    /// QEMU copy-on-write, versions 2 and 3.
    Qcow2,
    /// Virtual PC (a dynamic or differencing disk: a fixed VHD looks raw).
    Vhd,
    /// Hyper-V virtual hard disk.
    Vhdx,
    /// VMware disk: a hosted sparse extent or a text descriptor.
    Vmdk,
    /// VirtualBox disk image.
    Vdi,
    /// QEMU enhanced disk (always refused).
    Qed,
    /// ISO 9660 or UDF optical disc image.
    Iso,
    /// A partitioned disk: an MBR, protective (GPT) or classic.
    Gpt,
    /// A LUKS encrypted volume.
    Luks,
}

impl Format {
    /// Every format, in oslo's order (which is also the order used when
    /// listing several matches). These are also the formats oslo can inspect:
    /// declaring any other disk format (`ami`, `aki`, `ari`, `ploop`, ...) is
    /// accepted for data that looks raw.
    pub const ALL: [Format; 10] = [
        Format::Raw,
        Format::Qcow2,
        Format::Vhd,
        Format::Vhdx,
        Format::Vmdk,
        Format::Vdi,
        Format::Qed,
        Format::Iso,
        Format::Gpt,
        Format::Luks,
    ];

    /// Glance's `disk_format` name for the format.
    pub const fn as_str(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vmdk => "vmdk",
            Format::Vdi => "vdi",
            Format::Qed => "qed",
            Format::Iso => "iso",
            Format::Gpt => "gpt",
            Format::Luks => "luks",
        }
    }

    /// The format Glance names `name` (exactly: names are lower case), or
    /// `None` for a disk format the inspector cannot detect.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_format() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.as_str()), Some(format));
            assert_eq!(format.to_string(), format.as_str());
        }
        for other in ["ami", "aki", "ari", "ploop", "QCOW2", "", "vpc"] {
            assert_eq!(Format::parse(other), None, "{other}");
        }
    }
}

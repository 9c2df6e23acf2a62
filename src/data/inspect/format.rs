//! The disk formats the inspector can detect.

use crate::wire_enum::wire_enum;

wire_enum! {
    /// A disk format the inspector can detect, named (by [`Format::as_str`]) as
    /// Glance names disk formats. [`Format::ALL`] is oslo's order (which is
    /// also the order used when listing several matches). These are also the
    /// formats oslo can inspect: declaring any other disk format (`ami`, `aki`,
    /// `ari`, `ploop`, ...) is accepted for data that looks raw.
    pub enum Format {
        /// Data that matches no other format.
        Raw = "raw",
        /// QEMU copy-on-write, versions 2 and 3.
        Qcow2 = "qcow2",
        /// Virtual PC (a dynamic or differencing disk: a fixed VHD looks raw).
        Vhd = "vhd",
        /// Hyper-V virtual hard disk.
        Vhdx = "vhdx",
        /// VMware disk: a hosted sparse extent or a text descriptor.
        Vmdk = "vmdk",
        /// VirtualBox disk image.
        Vdi = "vdi",
        /// QEMU enhanced disk (always refused).
        Qed = "qed",
        /// ISO 9660 or UDF optical disc image.
        Iso = "iso",
        /// A partitioned disk: an MBR, protective (GPT) or classic.
        Gpt = "gpt",
        /// A LUKS encrypted volume.
        Luks = "luks",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_to_their_format() {
        for &format in Format::ALL {
            assert_eq!(Format::parse(format.as_str()), Some(format));
            assert_eq!(format.to_string(), format.as_str());
        }
        for other in ["ami", "aki", "ari", "ploop", "QCOW2", "", "vpc"] {
            assert_eq!(Format::parse(other), None, "{other}");
        }
    }
}

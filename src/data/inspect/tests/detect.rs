//! Which format is detected, with what virtual size, in bounded memory.

use super::qemu::{make_image, qemu_info, Scratch};
use super::*;

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
    for name in Format::ALL {
        assert!(Format::ALL.iter().filter(|f| *f == name).count() == 1);
    }
    let dir = Scratch::new("names");
    let data = make_image(&dir, "a.vdi", &["-f", "vdi", "a.vdi", "1M"]);
    assert!(Format::ALL.contains(&inspect_all(&data).format));
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

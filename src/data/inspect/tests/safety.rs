//! The formats' safety checks.

use super::qemu::{make_image, qcow2_with_backing_file, Scratch};
use super::*;

#[test]
fn qcow2_backing_file_is_unsafe() {
    let dir = Scratch::new("backing");
    let data = qcow2_with_backing_file(&dir);
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
fn qed_is_banned() {
    let dir = Scratch::new("qed");
    let data = make_image(&dir, "a.qed", &["-f", "qed", "a.qed", "10M"]);
    let inspection = inspect_all(&data);
    assert_eq!(inspection.format, Format::Qed);
    assert!(verdict("qed", &inspection).is_err());
    assert!(verdict("raw", &inspection).is_err());
}

use super::iso::ISO_PVD_AT;
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
        Err(FormatError::Unsafe(reasons)) => {
            let texts: Vec<String> = reasons.iter().map(Reason::to_string).collect();
            texts.join("; ")
        }
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

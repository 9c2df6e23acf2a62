//! Refusing an upload before it has all been stored.

use super::qemu::{make_image, qcow2_with_backing_file, Scratch};
use super::*;

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
    let data = qcow2_with_backing_file(&dir);
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

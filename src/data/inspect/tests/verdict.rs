//! Glance's decision for the declared disk format.

use super::qemu::{make_image, Scratch};
use super::*;

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

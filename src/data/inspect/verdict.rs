//! Glance's decision on an inspection for the declared disk format.

use std::fmt;

use super::{Format, Inspection, Reason};

/// Why data is refused (the API answers 415 or 400 — the caller decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The data is not in the declared disk format. Glance: "Image disk_format
    /// qcow2 does not match stream data raw".
    Mismatch {
        /// The image's `disk_format`.
        declared: String,
        /// The format the data is really in.
        detected: Format,
    },
    /// The detected format failed a safety check (or could not be judged:
    /// several formats matched, truncated structures). Holds the reasons: the
    /// one why the data cannot be judged, or every failed check. The
    /// `Display` text is Glance's message for the case.
    Unsafe(Vec<Reason>),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Mismatch { declared, detected } => {
                write!(
                    f,
                    "Image disk_format {declared} does not match stream data {detected}"
                )
            }
            FormatError::Unsafe(reasons) => match reasons.as_slice() {
                [Reason::Multiple(_), ..] => f.write_str(&join(reasons)),
                [.., Reason::Incomplete(_)] => {
                    f.write_str("Incomplete file cannot be safety checked")
                }
                [.., Reason::Unreadable(_)] => f.write_str("Image format inspection failed"),
                _ => f.write_str("Image failed safety checks"),
            },
        }
    }
}

impl std::error::Error for FormatError {}

/// Glance's decision for `declared` disk_format given the inspection:
/// `Ok(virtual size to record)` (`None`: leave it unset) or the refusal.
///
/// As in Glance's `set_data`: several matching formats are refused; a format
/// equal to the declared one gives its virtual size; raw-looking data declared
/// as a format oslo cannot inspect (`ami`, `aki`, `ari`, `ploop`, ...) is
/// accepted without a virtual size; a `raw` declaration accepts any data, with
/// the byte count as virtual size; anything else is a [`FormatError::Mismatch`].
/// Then the detected format's safety checks must have passed, except that for
/// `aki`/`ari` the MBR check does not count, and a GPT whose only failures do
/// not count is accepted. A zero virtual size is left unset, as Glance does.
pub fn verdict(declared: &str, inspection: &Inspection) -> Result<Option<u64>, FormatError> {
    let reasons = &inspection.unsafe_reasons;
    let only = |r: &Reason| Err(FormatError::Unsafe(vec![r.clone()]));
    if let Some(multiple) = reasons.iter().find(|r| matches!(r, Reason::Multiple(_))) {
        return only(multiple);
    }
    let detected = inspection.format;
    let declared_format = Format::parse(declared);
    let virtual_size = if declared_format == Some(detected) {
        if let Some(r) = reasons.iter().find(|r| matches!(r, Reason::Unreadable(_))) {
            return only(r);
        }
        inspection.virtual_size
    } else if detected == Format::Raw && declared_format.is_none() {
        None
    } else if declared_format == Some(Format::Raw) {
        Some(inspection.actual_size)
    } else {
        return Err(FormatError::Mismatch {
            declared: declared.to_string(),
            detected,
        });
    };
    if let Some(r) = reasons.iter().find(|r| matches!(r, Reason::Incomplete(_))) {
        return only(r);
    }
    let failures: Vec<Reason> = reasons
        .iter()
        .filter(|r| !matches!(r, Reason::Unreadable(_)))
        .cloned()
        .collect();
    if !failures.is_empty() {
        // Kernel and ramdisk images may carry an intentionally invalid MBR.
        let lenient_mbr = matches!(declared, "aki" | "ari");
        let fatal = failures
            .iter()
            .any(|r| !(lenient_mbr && matches!(r, Reason::GptMbr(_))));
        if detected != Format::Gpt || fatal {
            return Err(FormatError::Unsafe(failures));
        }
    }
    Ok(virtual_size.filter(|&v| v > 0))
}

/// The reasons' texts, `; `-separated.
fn join(reasons: &[Reason]) -> String {
    let texts: Vec<String> = reasons.iter().map(Reason::to_string).collect();
    texts.join("; ")
}

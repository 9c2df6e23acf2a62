//! What every format's inspection answers: whether the data is in the format,
//! and (once it is) its virtual size and failed checks.

use super::{Format, Reason};

/// Size of the fixed headers oslo captures before judging most formats.
pub(super) const SECTOR: usize = 512;

/// One format's detection and safety checks, as oslo's inspector for that
/// format does them.
pub(super) trait FormatProbe {
    /// Whether the data seen is in this format (final unless `Pending`).
    fn status(&self, seen: &Seen) -> Tri;

    /// Virtual size and checks of data whose status is `Yes`. Before the
    /// stream ends the failed checks are final: more may follow, none goes.
    fn details(&self, seen: &Seen) -> Details;
}

/// What the inspector has seen, as the probes read it.
pub(super) struct Seen<'a> {
    /// The first bytes of the stream (up to 256 KiB).
    pub(super) head: &'a [u8],
    /// The last bytes seen (at least 1.5 KiB once that many were seen).
    pub(super) tail: &'a [u8],
    /// Bytes seen.
    pub(super) pos: u64,
    /// Whether the stream has ended.
    pub(super) finished: bool,
}

impl Seen<'_> {
    /// Whether `magic` sits at `at`, judged once `need` bytes were seen.
    pub(super) fn magic(&self, at: usize, magic: &[u8], need: usize) -> Tri {
        let head = self.head;
        let avail = head.len().min(at + magic.len());
        if avail > at && head[at..avail] != magic[..avail - at] {
            return Tri::No;
        }
        if avail == at + magic.len() && self.pos >= need as u64 {
            Tri::Yes
        } else if self.finished {
            Tri::No
        } else {
            Tri::Pending
        }
    }
}

/// A three-way answer: certainly yes, certainly no, or not known yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tri {
    /// Certainly yes.
    Yes,
    /// Certainly no.
    No,
    /// Not known yet: the rest of the stream decides.
    Pending,
}

impl From<bool> for Tri {
    fn from(b: bool) -> Self {
        if b {
            Tri::Yes
        } else {
            Tri::No
        }
    }
}

/// Whether every region a format needs was captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Completion {
    /// Yes.
    Done,
    /// Not yet; the rest of the stream may still supply it.
    Pending,
    /// Never: the needed bytes have gone by (or the parse stopped).
    Never,
}

/// What a probe reports on data in its format.
pub(super) struct Details {
    /// Virtual size, when the format records it.
    pub(super) virtual_size: Option<u64>,
    /// Failed safety checks (on what was captured).
    pub(super) failed: Vec<Reason>,
    /// Whether the structures the checks need were all captured.
    pub(super) complete: Completion,
    /// The virtual size cannot be read.
    pub(super) unreadable: bool,
}

impl Details {
    /// Details of a format whose checks need only what was seen.
    pub(super) fn checked(virtual_size: Option<u64>, failed: Vec<Reason>) -> Self {
        Details {
            virtual_size,
            failed,
            complete: Completion::Done,
            unreadable: false,
        }
    }

    /// The virtual size and reasons the inspection records for data in
    /// `format`: the failed checks, or [`Reason::Incomplete`] instead when
    /// their structures are (or stay, now the stream has ended) incomplete;
    /// then [`Reason::Unreadable`] when the size cannot be read.
    pub(super) fn judge(self, format: Format, finished: bool) -> (Option<u64>, Vec<Reason>) {
        let incomplete = match self.complete {
            Completion::Done => false,
            Completion::Never => true,
            Completion::Pending => finished,
        };
        let mut reasons = if incomplete {
            vec![Reason::Incomplete(format)]
        } else {
            self.failed
        };
        if self.unreadable {
            reasons.push(Reason::Unreadable(format));
        }
        (self.virtual_size, reasons)
    }
}

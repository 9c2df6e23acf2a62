//! Range requests on downloads, read the way Glance (webob) reads them.

use crate::data::blob::ByteRange;

/// Outcome of reading a `Range` request header against data of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// No range asked: the whole data.
    Whole,
    /// One satisfiable range: 206.
    Partial(ByteRange),
    /// Several ranges: 400.
    Multiple,
    /// Unparseable or outside the data: 416.
    Unsatisfiable,
}

/// Parses `Range: bytes=a-b | a- | -n` (or the legacy request header
/// `Content-Range: bytes a-b/*`) the way Glance (webob) reads it.
pub fn parse_range(range: Option<&str>, content_range: Option<&str>, size: u64) -> RangeRequest {
    if let Some(r) = range {
        let r = r.trim();
        let Some(spec) = r.strip_prefix("bytes=") else {
            return RangeRequest::Unsatisfiable;
        };
        if spec.contains(',') {
            return RangeRequest::Multiple;
        }
        return one_range(spec, size);
    }
    if let Some(cr) = content_range {
        let spec = cr.trim().strip_prefix("bytes ").unwrap_or("");
        let spec = spec.split('/').next().unwrap_or("");
        if spec.contains('-') && !spec.starts_with('-') {
            return one_range(spec, size);
        }
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Whole
}

fn one_range(spec: &str, size: u64) -> RangeRequest {
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Unsatisfiable;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| s.parse::<u64>().ok();
    let range = match (a.is_empty(), b.is_empty()) {
        // The last n bytes; the last 0 bytes is no range at all (416).
        (true, false) => num(b)
            .filter(|n| *n > 0)
            .map(|n| (size - n.min(size), size.saturating_sub(1))),
        (false, true) => num(a).map(|first| (first, size.saturating_sub(1))),
        (false, false) => match (num(a), num(b)) {
            (Some(first), Some(last)) if last >= first => {
                Some((first, last.min(size.saturating_sub(1))))
            }
            _ => None,
        },
        (true, true) => None,
    };
    match range {
        Some((first, last)) if size > 0 && first < size && first <= last => {
            RangeRequest::Partial(ByteRange { first, last })
        }
        _ => RangeRequest::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(r: &str, size: u64) -> RangeRequest {
        parse_range(Some(r), None, size)
    }

    fn p(first: u64, last: u64) -> RangeRequest {
        RangeRequest::Partial(ByteRange { first, last })
    }

    #[test]
    fn ranges_as_glance_reads_them() {
        assert_eq!(range("bytes=0-0", 1000), p(0, 0));
        assert_eq!(range("bytes=10-19", 1000), p(10, 19));
        assert_eq!(range("bytes=-5", 1000), p(995, 999));
        assert_eq!(range("bytes=990-", 1000), p(990, 999));
        assert_eq!(range("bytes=995-2000", 1000), p(995, 999));
        assert_eq!(range("bytes=-0", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=1000-", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=5-2", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=abc", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(range("items=0-1", 1000), RangeRequest::Unsatisfiable);
        assert_eq!(range("bytes=0-1,3-4", 1000), RangeRequest::Multiple);
        assert_eq!(parse_range(None, Some("bytes 2-5/*"), 10), p(2, 5));
        assert_eq!(parse_range(None, None, 10), RangeRequest::Whole);
    }
}

//! UTC timestamps in Glance's wire format, `YYYY-MM-DDTHH:MM:SSZ`.
//!
//! Stored in that same form, so SQL string comparison orders them correctly.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, UTC, whole seconds (Glance shows no fraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Timestamp(secs)
    }

    /// Parses ISO 8601 as Glance's list filters accept it: a date, optionally a
    /// time (`T` or space, seconds and fraction optional), optionally `Z` or an
    /// offset `±HH:MM` / `±HHMM`. No offset means UTC.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let b = s.as_bytes();
        let year = num(b, 0, 4)?;
        if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
            return None;
        }
        let month = num(b, 5, 2)?;
        let day = num(b, 8, 2)?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        let mut secs = days_from_civil(year, month, day) * 86_400;
        let mut i = 10;
        if i < b.len() && (b[i] == b'T' || b[i] == b't' || b[i] == b' ') {
            let hour = num(b, i + 1, 2)?;
            if b.get(i + 3) != Some(&b':') {
                return None;
            }
            let minute = num(b, i + 4, 2)?;
            i += 6;
            let mut second = 0;
            if b.get(i) == Some(&b':') {
                second = num(b, i + 1, 2)?;
                i += 3;
                if b.get(i) == Some(&b'.') || b.get(i) == Some(&b',') {
                    i += 1;
                    let start = i;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i == start {
                        return None;
                    }
                }
            }
            if hour > 24 || minute > 59 || second > 60 {
                return None;
            }
            secs += hour * 3600 + minute * 60 + second;
        }
        match b.get(i) {
            None => {}
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => {}
            Some(&sign @ (b'+' | b'-')) => {
                let oh = num(b, i + 1, 2)?;
                let rest = &b[i + 3..];
                let om = match rest {
                    [] => 0,
                    [b':', ..] if rest.len() == 3 => num(rest, 1, 2)?,
                    _ if rest.len() == 2 => num(rest, 0, 2)?,
                    _ => return None,
                };
                let offset = oh * 3600 + om * 60;
                secs -= if sign == b'+' { offset } else { -offset };
            }
            _ => return None,
        }
        Some(Timestamp(secs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let rem = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

fn num(b: &[u8], at: usize, len: usize) -> Option<i64> {
    let digits = b.get(at..at + len)?;
    digits.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_glance_does() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(951_782_400).to_string(), "2000-02-29T00:00:00Z");
        assert_eq!(Timestamp(1_700_000_000).to_string(), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn parses_the_forms_glance_accepts() {
        let t = Timestamp(1_700_000_000);
        assert_eq!(Timestamp::parse("2023-11-14T22:13:20Z"), Some(t));
        assert_eq!(Timestamp::parse("2023-11-14T22:13:20"), Some(t));
        assert_eq!(Timestamp::parse("2023-11-14T22:13:20.123456Z"), Some(t));
        assert_eq!(Timestamp::parse("2023-11-14 22:13:20"), Some(t));
        assert_eq!(Timestamp::parse("2023-11-15T00:13:20+02:00"), Some(t));
        assert_eq!(Timestamp::parse("2023-11-14T20:13:20-0200"), Some(t));
        assert_eq!(
            Timestamp::parse("2023-11-14"),
            Some(Timestamp(1_699_920_000))
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "yesterday",
            "2023-13-01",
            "2023-02-30",
            "2023-11-14T25",
            "2023-11-14Tx",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips() {
        for secs in [0, 86_399, 1_234_567_890, 4_102_444_800] {
            let t = Timestamp(secs);
            assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
        }
    }
}

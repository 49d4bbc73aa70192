//! RFC3339 UTC timestamps as Kraken writes them (`2026-08-02T05:43:30.758130Z`, 0-9 fractional
//! digits) → microseconds since the epoch, fractions beyond µs truncated, as
//! `connector/kraken/messages.py::ts_micros`. Other spellings (offsets) return None: the caller's
//! Python path handles them.

fn digits(b: &[u8]) -> Option<i64> {
    let mut v = 0i64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as i64;
    }
    Some(v)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

pub fn ts_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (y, mo, d) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (h, mi, s) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if y < 1
        || !(1..=12).contains(&mo)
        || d < 1
        || d > days_in_month(y, mo)
        || h > 23
        || mi > 59
        || s > 59
    {
        return None;
    }
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + s;
    let rest = &b[19..];
    let micros = match rest {
        b"" | b"Z" => 0,
        [b'.', frac @ .., b'Z'] if !frac.is_empty() && frac.iter().all(u8::is_ascii_digit) => {
            let mut v = digits(&frac[..frac.len().min(6)])?;
            for _ in frac.len()..6 {
                v *= 10;
            }
            v
        }
        _ => return None,
    };
    Some(seconds * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kraken_timestamps() {
        assert_eq!(ts_micros("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            ts_micros("2026-08-02T05:43:30.758130Z"),
            Some(1_785_649_410_758_130)
        );
        assert_eq!(
            ts_micros("2026-08-02T05:43:30.758130999Z"),
            Some(1_785_649_410_758_130)
        );
        assert_eq!(
            ts_micros("2026-08-02T05:43:30.7Z"),
            Some(1_785_649_410_700_000)
        );
        assert_eq!(ts_micros("2024-02-29T00:00:00Z").is_some(), true);
        assert_eq!(ts_micros("2023-02-29T00:00:00Z"), None);
        assert_eq!(ts_micros("2026-08-02T05:43:30+00:00"), None);
        assert_eq!(ts_micros("2026-08-02T05:43:30.Z"), None);
    }
}

//! Exact decimal text ↔ fixed-point integers, with the semantics of `schemas/checksum.py::to_fixed`.
//!
//! No float ever carries a price or a quantity: a decimal text becomes an integer in units of
//! 10^-precision, exactly, or an error. Trailing zeros beyond the precision are allowed
//! (`"4.000000000"` at 8 decimals); any other excess digit is an error, never rounded.

/// Largest precision accepted: 10^38 still fits an i128.
pub const MAX_PRECISION: u32 = 30;

/// Decimal text → integer in units of 10^-precision (Err with the reason on bad text or excess digits).
pub fn to_fixed(text: &str, precision: u32) -> Result<i128, String> {
    if precision > MAX_PRECISION {
        return Err(format!("precision {precision} is out of range"));
    }
    let (neg, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if body.bytes().any(|b| b == b'e' || b == b'E') {
        return from_exponent(text, neg, body, precision);
    }
    let (whole, frac) = match body.find('.') {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // as the reference: "12", "12.", "12.5", ".5" and even "." (zero) are decimals; "", "1.2.3", "+1"
    // are not
    let valid = match frac {
        None => !whole.is_empty() && digits_ok(whole),
        Some(f) => digits_ok(whole) && digits_ok(f),
    };
    if !valid {
        return Err(format!("not a decimal: {text:?}"));
    }
    let mut frac = frac.unwrap_or("");
    if frac.len() > precision as usize {
        if frac[precision as usize..].bytes().any(|b| b != b'0') {
            return Err(format!("{text:?} has more than {precision} decimals"));
        }
        frac = &frac[..precision as usize];
    }
    let mut value: i128 = 0;
    for b in whole.bytes().chain(frac.bytes()) {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(|| format!("{text:?} is too large"))?;
    }
    for _ in frac.len()..precision as usize {
        value = value
            .checked_mul(10)
            .ok_or_else(|| format!("{text:?} is too large"))?;
    }
    Ok(if neg { -value } else { value })
}

/// `1.5e-3` and friends (Decimal(text).scaleb(precision) must be integral).
fn from_exponent(text: &str, neg: bool, body: &str, precision: u32) -> Result<i128, String> {
    let bad = || format!("not a decimal: {text:?}");
    let e = body.find(['e', 'E']).ok_or_else(bad)?;
    let (mantissa, exp) = (&body[..e], &body[e + 1..]);
    let exp: i64 = exp.parse().map_err(|_| bad())?;
    let (whole, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if (whole.is_empty() && frac.is_empty())
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // value = digits × 10^(exp - len(frac)); scaled = digits × 10^(exp - len(frac) + precision)
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    let shift = exp - frac.len() as i64 + precision as i64;
    let (digits, shift) = if shift < 0 {
        let cut = (-shift) as usize;
        if cut >= digits.len() {
            if digits.bytes().any(|b| b != b'0') {
                return Err(format!("{text:?} has more than {precision} decimals"));
            }
            ("", 0)
        } else {
            let (keep, drop) = digits.split_at(digits.len() - cut);
            if drop.bytes().any(|b| b != b'0') {
                return Err(format!("{text:?} has more than {precision} decimals"));
            }
            (keep, 0)
        }
    } else {
        (digits, shift)
    };
    let mut value: i128 = 0;
    let too_large = || format!("{text:?} is too large");
    for b in digits.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i128))
            .ok_or_else(too_large)?;
    }
    for _ in 0..shift {
        if value == 0 {
            break;
        }
        value = value.checked_mul(10).ok_or_else(too_large)?;
    }
    Ok(if neg { -value } else { value })
}

/// Kraken's checksum rendering of a non-negative fixed-point value: its digits, "" for zero.
pub fn checksum_digits(value: i128, out: &mut String) {
    if value > 0 {
        use std::fmt::Write;
        let _ = write!(out, "{value}");
    }
}

/// `to_fixed` that also appends the checksum digits of the value to `out` ("" for zero), without
/// formatting an integer in the usual case: plain digits with at most `precision` decimals.
pub fn to_fixed_digits(text: &str, precision: u32, out: &mut String) -> Result<i128, String> {
    let b = text.as_bytes();
    let dot = b.iter().position(|&c| c == b'.');
    let frac_len = dot.map_or(0, |d| b.len() - d - 1);
    // "12", "12.5": digits, at most one '.' between digits, no more decimals than the precision
    let plain = !b.is_empty()
        && dot != Some(0)
        && dot != Some(b.len() - 1)
        && frac_len <= precision as usize
        && b.iter()
            .enumerate()
            .all(|(i, c)| c.is_ascii_digit() || Some(i) == dot);
    if plain && b.len() + (precision as usize) < 38 {
        let start = out.len();
        let mut value: i128 = 0;
        for &c in b {
            if c != b'.' {
                value = value * 10 + (c - b'0') as i128;
                if value != 0 {
                    out.push(c as char);
                }
            }
        }
        for _ in frac_len..precision as usize {
            value *= 10;
            if value != 0 {
                out.push('0');
            }
        }
        if value == 0 {
            out.truncate(start);
        }
        return Ok(value);
    }
    let value = to_fixed(text, precision)?;
    if value > 0 {
        checksum_digits(value, out);
    }
    Ok(value)
}

/// Number of decimals a text carries (the fallback precision of a pair without instrument data).
pub fn decimals(text: &str) -> u32 {
    if text.bytes().any(|b| b == b'e' || b == b'E') {
        // Decimal(text).normalize(): trailing zeros of the mantissa do not count
        let body = text.trim_start_matches('-');
        let e = body.find(['e', 'E']).unwrap_or(body.len());
        let exp: i64 = body.get(e + 1..).and_then(|s| s.parse().ok()).unwrap_or(0);
        let mantissa = &body[..e];
        let (whole, frac) = match mantissa.find('.') {
            Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
            None => (mantissa, ""),
        };
        let digits = format!("{whole}{frac}");
        let trimmed = digits.trim_end_matches('0');
        if trimmed.trim_start_matches('0').is_empty() {
            return 0;
        }
        let exponent = exp - frac.len() as i64 + (digits.len() - trimmed.len()) as i64;
        return if exponent < 0 { (-exponent) as u32 } else { 0 };
    }
    match text.find('.') {
        Some(i) => (text.len() - i - 1) as u32,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_point() {
        assert_eq!(to_fixed("123.45", 2), Ok(12345));
        assert_eq!(to_fixed("123.4", 2), Ok(12340));
        assert_eq!(to_fixed("4.000000000", 8), Ok(400000000));
        assert_eq!(to_fixed("0", 8), Ok(0));
        assert_eq!(to_fixed(".5", 1), Ok(5));
        assert_eq!(to_fixed("12.", 1), Ok(120));
        assert_eq!(to_fixed("-1.5", 1), Ok(-15));
        assert_eq!(to_fixed("1.5e-3", 4), Ok(15));
        assert_eq!(to_fixed("1.5E2", 0), Ok(150));
        assert_eq!(to_fixed("0e5", 2), Ok(0));
        assert!(to_fixed("1.234", 2).is_err());
        assert!(to_fixed("1.5e-3", 3).is_err());
        assert!(to_fixed("", 2).is_err());
        assert_eq!(to_fixed(".", 2), Ok(0));
        assert_eq!(to_fixed("-.", 2), Ok(0));
        assert!(to_fixed("+1", 2).is_err());
        assert!(to_fixed("1.2.3", 2).is_err());
    }

    #[test]
    fn digits_as_the_checksum_renders_them() {
        for (text, p, digits) in [
            ("29430.3", 1, "294303"),
            ("0.566", 4, "5660"),
            ("0.00012", 8, "12000"),
            ("0", 8, ""),
            ("0.0", 1, ""),
            ("4.000000000", 8, "400000000"),
            ("1.5e-3", 4, "15"),
            ("120", 0, "120"),
            ("007.5", 1, "75"),
        ] {
            let mut out = String::from("x");
            let v = to_fixed_digits(text, p, &mut out).unwrap();
            assert_eq!(out, format!("x{digits}"), "{text}");
            assert_eq!(v, to_fixed(text, p).unwrap());
        }
        assert!(to_fixed_digits("1.25", 1, &mut String::new()).is_err());
        assert!(to_fixed_digits("1.", 1, &mut String::new()).is_ok());
    }

    #[test]
    fn decimal_places() {
        assert_eq!(decimals("123.450"), 3);
        assert_eq!(decimals("7"), 0);
        assert_eq!(decimals("1.50e-3"), 4);
        assert_eq!(decimals("1e2"), 0);
    }
}

//! Text the Python reference writes, byte for byte: fixed-point ints as decimal text
//! (`schemas/checksum.py::fixed_to_text`), exact half-even ratios (`consumers/bars/domain.py::ratio_text`)
//! and `repr()` of a string (in error messages that end up in continuity events).

/// Scaled integer → decimal text with exactly `precision` decimals (the inverse of `to_fixed`).
pub fn fixed_to_text(value: i128, precision: u32) -> String {
    let p = precision as usize;
    let digits = digits_of(value.unsigned_abs());
    let mut out = String::with_capacity(digits.len() + p + 3);
    if value < 0 {
        out.push('-');
    }
    for _ in digits.len()..p + 1 {
        out.push('0'); // `str(abs(value)).rjust(precision + 1, "0")`
    }
    out.push_str(&digits);
    if p > 0 {
        out.insert(out.len() - p, '.');
    }
    out
}

/// Decimal digits of a value; through u64 when it fits (formatting a u128 costs several times more).
pub fn digits_of(value: u128) -> String {
    match u64::try_from(value) {
        Ok(v) => v.to_string(),
        Err(_) => value.to_string(),
    }
}

/// numerator/denominator (both ≥ 0, denominator > 0) rounded half-even to `decimals` decimals, as
/// text, exactly: long division, so no intermediate value exceeds 10 × denominator.
pub fn ratio_text(numerator: i128, denominator: i128, decimals: u32) -> Result<String, String> {
    if denominator <= 0 || numerator < 0 {
        return Err("ratio_text: needs a positive denominator and a non-negative numerator".into());
    }
    let overflow = || "ratio_text: value too large".to_string();
    let mut quotient = numerator / denominator;
    let mut remainder = numerator % denominator;
    for _ in 0..decimals {
        let scaled = remainder.checked_mul(10).ok_or_else(overflow)?;
        quotient = quotient
            .checked_mul(10)
            .and_then(|q| q.checked_add(scaled / denominator))
            .ok_or_else(overflow)?;
        remainder = scaled % denominator;
    }
    let twice = remainder.checked_mul(2).ok_or_else(overflow)?;
    if twice > denominator || (twice == denominator && quotient % 2 == 1) {
        quotient += 1;
    }
    Ok(fixed_to_text(quotient, decimals))
}

/// Python's `repr()` of a str (quotes and escapes), for error texts equal to the reference's.
pub fn py_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_text() {
        assert_eq!(fixed_to_text(12345, 2), "123.45");
        assert_eq!(fixed_to_text(5, 3), "0.005");
        assert_eq!(fixed_to_text(0, 0), "0");
        assert_eq!(fixed_to_text(0, 2), "0.00");
        assert_eq!(fixed_to_text(-5, 1), "-0.5");
        assert_eq!(fixed_to_text(120, 0), "120");
    }

    #[test]
    fn half_even() {
        assert_eq!(ratio_text(5, 10, 0).unwrap(), "0");
        assert_eq!(ratio_text(15, 10, 0).unwrap(), "2");
        assert_eq!(ratio_text(25, 10, 0).unwrap(), "2");
        assert_eq!(ratio_text(35, 10, 0).unwrap(), "4");
        assert_eq!(ratio_text(1, 3, 4).unwrap(), "0.3333");
        assert_eq!(ratio_text(2, 3, 4).unwrap(), "0.6667");
        assert_eq!(ratio_text(125, 1000, 2).unwrap(), "0.12");
        assert_eq!(ratio_text(135, 1000, 2).unwrap(), "0.14");
    }

    #[test]
    fn repr() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("a'b"), "\"a'b\"");
        assert_eq!(py_repr("a'b\""), "'a\\'b\"'");
    }
}

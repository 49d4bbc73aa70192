//! A single-pass scanner for the one frame shape that dominates Kraken's feed: a `book` data frame.
//!
//! It accepts exactly `{"channel":"book","type":..,"data":[{symbol, bids, asks, checksum,
//! timestamp}]}` with keys in any order, any JSON whitespace, numbers or plain strings as level
//! values, and nothing else: an escape sequence, an unknown or repeated key, or any other surprise
//! returns None, and the caller falls back to the general (serde) parser, which decides. So this
//! scanner only has to be right about what it accepts; the unit tests compare both on every
//! captured frame and on random frames.

/// Borrowed pieces of a book frame (numbers as their exact text).
pub struct RawBook<'a> {
    pub channel: &'a str,
    pub kind: &'a str,
    pub symbol: &'a str,
    pub bids: Vec<(&'a str, &'a str)>,
    pub asks: Vec<(&'a str, &'a str)>,
    pub checksum: &'a str,
    pub timestamp: Option<&'a str>,
}

struct Scanner<'a> {
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    /// A string without escapes or control characters.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            let c = *self.b.get(self.i)?;
            if c == b'"' {
                break;
            }
            if c == b'\\' || c < 0x20 {
                return None;
            }
            self.i += 1;
        }
        let s = &self.text[start..self.i];
        self.i += 1;
        Some(s)
    }

    /// A JSON number (the full grammar), as its text.
    fn number(&mut self) -> Option<&'a str> {
        self.ws();
        let start = self.i;
        let b = self.b;
        let mut i = self.i;
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(c) if c.is_ascii_digit() => {
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            let d = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == d {
                return None;
            }
        }
        if matches!(b.get(i), Some(b'e') | Some(b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+') | Some(b'-')) {
                i += 1;
            }
            let d = i;
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == d {
                return None;
            }
        }
        self.i = i;
        Some(&self.text[start..i])
    }

    fn null(&mut self) -> Option<()> {
        self.ws();
        if self.b[self.i..].starts_with(b"null") {
            self.i += 4;
            Some(())
        } else {
            None
        }
    }

    /// A decimal level value: a number's text, or a plain string's content.
    #[inline]
    fn decimal(&mut self) -> Option<&'a str> {
        if self.peek()? == b'"' {
            self.string()
        } else {
            let n = self.number()?;
            // the Python parser keeps str(int) for integers: only "-0" differs from its text
            Some(if n == "-0" { "0" } else { n })
        }
    }

    /// `[{"price":..,"qty":..}, ...]` or null.
    fn levels(&mut self) -> Option<Vec<(&'a str, &'a str)>> {
        let mut out = Vec::new();
        if self.peek()? == b'n' {
            self.null()?;
            return Some(out);
        }
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(out);
        }
        loop {
            self.eat(b'{')?;
            let (mut price, mut qty) = (None, None);
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                let slot = match key {
                    "price" => &mut price,
                    "qty" => &mut qty,
                    _ => return None,
                };
                if slot.is_some() {
                    return None;
                }
                *slot = Some(self.decimal()?);
                if self.eat(b',').is_none() {
                    self.eat(b'}')?;
                    break;
                }
            }
            out.push((price?, qty?));
            if self.eat(b',').is_none() {
                self.eat(b']')?;
                return Some(out);
            }
        }
    }

    fn data(&mut self) -> Option<Data<'a>> {
        self.eat(b'[')?;
        self.eat(b'{')?;
        let mut d = Data::default();
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            match key {
                "symbol" if d.symbol.is_none() => d.symbol = Some(self.string()?),
                "bids" if d.bids.is_none() => d.bids = Some(self.levels()?),
                "asks" if d.asks.is_none() => d.asks = Some(self.levels()?),
                "checksum" if d.checksum.is_none() => d.checksum = Some(self.number()?),
                "timestamp" if d.timestamp.is_none() => {
                    d.timestamp = Some(if self.peek()? == b'n' {
                        self.null()?;
                        None
                    } else {
                        Some(self.string()?)
                    })
                }
                _ => return None,
            }
            if self.eat(b',').is_none() {
                self.eat(b'}')?;
                break;
            }
        }
        self.eat(b']')?; // exactly one item
        Some(d)
    }
}

#[derive(Default)]
struct Data<'a> {
    symbol: Option<&'a str>,
    bids: Option<Vec<(&'a str, &'a str)>>,
    asks: Option<Vec<(&'a str, &'a str)>>,
    checksum: Option<&'a str>,
    timestamp: Option<Option<&'a str>>,
}

/// The book frame's pieces, or None when the frame is anything but the plain common shape.
pub fn scan_book(text: &str) -> Option<RawBook<'_>> {
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    s.eat(b'{')?;
    let (mut channel, mut kind, mut data) = (None, None, None);
    loop {
        let key = s.string()?;
        s.eat(b':')?;
        match key {
            // another channel's frame is refused as soon as its name is read (Kraken sends it first)
            "channel" if channel.is_none() => channel = Some(s.string().filter(|c| *c == "book")?),
            "type" if kind.is_none() => kind = Some(s.string()?),
            "data" if data.is_none() => data = Some(s.data()?),
            _ => return None,
        }
        if s.eat(b',').is_none() {
            s.eat(b'}')?;
            break;
        }
    }
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    let d = data?;
    Some(RawBook {
        channel: channel?,
        kind: kind?,
        symbol: d.symbol?,
        bids: d.bids.unwrap_or_default(),
        asks: d.asks.unwrap_or_default(),
        checksum: d.checksum?,
        timestamp: d.timestamp.flatten(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_the_common_shape_in_any_key_order() {
        let f = scan_book(
            r#" {"type":"update", "channel":"book","data":[{"checksum":12,"symbol":"BTC/USD","asks":[],
            "bids":[{"qty":"0.5","price":1.25e2},{"price":-0,"qty":0}],"timestamp":null}]} "#,
        )
        .unwrap();
        assert_eq!(
            (f.channel, f.kind, f.symbol, f.checksum),
            ("book", "update", "BTC/USD", "12")
        );
        assert_eq!(f.bids, vec![("1.25e2", "0.5"), ("0", "0")]);
        assert!(f.asks.is_empty() && f.timestamp.is_none());
    }

    #[test]
    fn refuses_anything_else() {
        for text in [
            r#"{"channel":"book","type":"update","data":[{"symbol":"A\/B","checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"A","checksum":1},{"symbol":"B","checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"A","checksum":1,"extra":1}]}"#,
            r#"{"channel":"book","channel":"book","type":"update","data":[{"symbol":"A","checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"A","checksum":01}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"A","checksum":1}]} x"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"A","bids":[{"price":1.}],"checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":"A","checksum":1}"#,
        ] {
            assert!(scan_book(text).is_none(), "{text}");
        }
    }
}

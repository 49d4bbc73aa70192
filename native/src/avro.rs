//! Avro binary encoding primitives (zig-zag varints, length-prefixed strings), byte for byte what
//! `schemas/avro_writer.py` and fastavro write, plus the matching readers.

#[inline]
pub fn write_long(buf: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

#[inline]
pub fn write_str(buf: &mut Vec<u8>, text: &str) {
    write_long(buf, text.len() as i64);
    buf.extend_from_slice(text.as_bytes());
}

/// A `["null", "boolean"]` union.
#[inline]
pub fn write_opt_bool(buf: &mut Vec<u8>, value: Option<bool>) {
    match value {
        None => buf.push(0),
        Some(v) => {
            buf.push(2);
            buf.push(v as u8);
        }
    }
}

/// A `["null", "long"]` union.
#[inline]
pub fn write_opt_long(buf: &mut Vec<u8>, value: Option<i64>) {
    match value {
        None => buf.push(0),
        Some(v) => {
            buf.push(2);
            write_long(buf, v);
        }
    }
}

/// Reads Avro binary from a byte slice; every read checks bounds (Err = truncated or corrupt data).
pub struct Reader<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], pos: usize) -> Self {
        Reader { data, pos }
    }

    pub fn long(&mut self) -> Result<i64, String> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let b = *self.data.get(self.pos).ok_or("truncated Avro long")?;
            self.pos += 1;
            n |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return Err("Avro long is too long".into());
            }
        }
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    pub fn str(&mut self) -> Result<&'a str, String> {
        let len = self.long()?;
        if len < 0 {
            return Err("negative Avro string length".into());
        }
        let end = self
            .pos
            .checked_add(len as usize)
            .ok_or("Avro string length overflows")?;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or("truncated Avro string")?;
        self.pos = end;
        std::str::from_utf8(bytes).map_err(|_| "Avro string is not UTF-8".to_string())
    }

    pub fn byte(&mut self) -> Result<u8, String> {
        let b = *self.data.get(self.pos).ok_or("truncated Avro data")?;
        self.pos += 1;
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_round_trip() {
        for v in [0i64, -1, 1, 63, -64, 64, 1 << 40, i64::MAX, i64::MIN] {
            let mut buf = Vec::new();
            write_long(&mut buf, v);
            assert_eq!(Reader::new(&buf, 0).long(), Ok(v));
        }
        let mut buf = Vec::new();
        write_long(&mut buf, -1);
        assert_eq!(buf, [1]);
        buf.clear();
        write_long(&mut buf, 64);
        assert_eq!(buf, [0x80, 0x01]);
    }
}

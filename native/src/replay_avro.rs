//! The Avro bodies the native replay reads and writes, byte for byte as `schemas/avro_reader.py` and
//! `schemas/avro_writer.py` do for `schemas/avro/*.avsc`: `kraken.book` and `kraken.trade` in (decoded
//! into ranges of the body, no copy of the text), `kracked.book.top` and `kracked.bars` out.
//!
//! A body must be exactly one record (as the Python reader requires); anything else is an error the
//! caller reports. Field order is the schema's; a change to those `.avsc` files needs a change here,
//! and the unit tests compare both writers on many records so a drift cannot go unnoticed.

use std::ops::Range;

use crate::avro::{write_long, write_opt_long, write_str, Reader};
use crate::bar_builder::Bar;

pub type Span = Range<u32>;

/// A decoded `kraken.book` body: text fields are spans of the body.
pub struct BookBody {
    pub symbol: Span,
    pub kind: Span,
    pub bids: Vec<(Span, Span)>,
    pub asks: Vec<(Span, Span)>,
    pub checksum: i64,
    pub price_precision: i64,
    pub qty_precision: i64,
    pub depth: i64,
    pub epoch: i64,
    pub ts_event: Option<i64>,
    pub ts_recv: i64,
}

/// A decoded `kraken.trade` body (the fields the bars need).
pub struct TradeBody {
    pub symbol: Span,
    pub side: Span,
    pub price: Span,
    pub qty: Span,
    pub trade_id: i64,
    pub ts_event: i64,
}

fn span(r: &mut Reader) -> Result<Span, String> {
    let text = r.str()?;
    let end = r.pos as u32;
    Ok(end - text.len() as u32..end)
}

/// Body text of a span (the body was checked to be UTF-8 where the span was read).
pub fn text<'a>(body: &'a [u8], s: &Span) -> &'a str {
    std::str::from_utf8(&body[s.start as usize..s.end as usize]).unwrap_or("")
}

fn opt_long(r: &mut Reader) -> Result<Option<i64>, String> {
    match r.long()? {
        0 => Ok(None),
        1 => Ok(Some(r.long()?)),
        i => Err(format!("union index {i} out of range")),
    }
}

fn opt_bool(r: &mut Reader) -> Result<Option<bool>, String> {
    match r.long()? {
        0 => Ok(None),
        1 => Ok(Some(r.byte()? != 0)),
        i => Err(format!("union index {i} out of range")),
    }
}

/// An Avro int (zig-zag like a long; the Python reader does not range-check it either).
fn int(r: &mut Reader) -> Result<i64, String> {
    r.long()
}

fn levels(r: &mut Reader) -> Result<Vec<(Span, Span)>, String> {
    let mut out = Vec::new();
    loop {
        let mut count = r.long()?;
        if count == 0 {
            return Ok(out);
        }
        if count < 0 {
            count = -count;
            r.long()?; // block size in bytes
        }
        if count as usize > r.data.len() {
            return Err("Avro array block longer than the data".into());
        }
        out.reserve(count as usize);
        for _ in 0..count {
            let price = span(r)?;
            let qty = span(r)?;
            out.push((price, qty));
        }
    }
}

fn finish(r: &Reader) -> Result<(), String> {
    if r.pos != r.data.len() {
        return Err(format!("{} bytes after the record", r.data.len() - r.pos));
    }
    Ok(())
}

/// Decode a `kraken.book` body (`body` = the value without its 5-byte Confluent header).
pub fn read_book(body: &[u8]) -> Result<BookBody, String> {
    let mut r = Reader::new(body, 0);
    let symbol = span(&mut r)?;
    let kind = span(&mut r)?;
    let bids = levels(&mut r)?;
    let asks = levels(&mut r)?;
    let checksum = r.long()?;
    let price_precision = int(&mut r)?;
    let qty_precision = int(&mut r)?;
    let depth = int(&mut r)?;
    let epoch = r.long()?;
    opt_bool(&mut r)?; // the connector's verdict: the book service computes its own
    let ts_event = opt_long(&mut r)?;
    let ts_recv = r.long()?;
    finish(&r)?;
    Ok(BookBody {
        symbol,
        kind,
        bids,
        asks,
        checksum,
        price_precision,
        qty_precision,
        depth,
        epoch,
        ts_event,
        ts_recv,
    })
}

/// Decode a `kraken.trade` body; returns it with its `ts_event`.
pub fn read_trade(body: &[u8]) -> Result<TradeBody, String> {
    let mut r = Reader::new(body, 0);
    let symbol = span(&mut r)?;
    span(&mut r)?; // type
    let side = span(&mut r)?;
    let price = span(&mut r)?;
    let qty = span(&mut r)?;
    span(&mut r)?; // ord_type
    let trade_id = r.long()?;
    let ts_event = r.long()?;
    r.long()?; // ts_recv
    finish(&r)?;
    Ok(TradeBody {
        symbol,
        side,
        price,
        qty,
        trade_id,
        ts_event,
    })
}

/// What a `kracked.book.top` record holds besides its levels (`BookService._publish`).
pub struct TopHead<'a> {
    pub symbol: &'a str,
    pub depth: i64,
    pub checksum: i64,
    pub checksum_ok: bool,
    pub valid: bool,
    pub epoch: i64,
    pub price_precision: i64,
    pub qty_precision: i64,
    pub ts_event: Option<i64>,
    pub ts_recv: i64,
    pub source_topic: &'a str,
    pub source_partition: i64,
    pub source_offset: i64,
}

fn write_levels<'a>(buf: &mut Vec<u8>, levels: impl ExactSizeIterator<Item = (&'a str, &'a str)>) {
    let n = levels.len();
    if n > 0 {
        write_long(buf, n as i64);
        for (price, qty) in levels {
            write_str(buf, price);
            write_str(buf, qty);
        }
    }
    buf.push(0);
}

/// Encode one `kracked.book.top` value (header + body).
pub fn write_top<'a>(
    header: &[u8],
    head: &TopHead,
    bids: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    asks: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(header.len() + 512);
    buf.extend_from_slice(header);
    write_str(&mut buf, head.symbol);
    write_str(&mut buf, "l2");
    write_long(&mut buf, head.depth);
    write_levels(&mut buf, bids);
    write_levels(&mut buf, asks);
    write_long(&mut buf, head.checksum);
    buf.push(head.checksum_ok as u8);
    buf.push(head.valid as u8);
    write_long(&mut buf, head.epoch);
    write_long(&mut buf, head.price_precision);
    write_long(&mut buf, head.qty_precision);
    write_opt_long(&mut buf, head.ts_event);
    write_opt_long(&mut buf, Some(head.ts_recv));
    write_long(&mut buf, head.ts_recv); // ts: the source record's ts_recv
    write_str(&mut buf, head.source_topic);
    write_long(&mut buf, head.source_partition);
    write_long(&mut buf, head.source_offset);
    buf
}

/// Encode one `kracked.bars` value (header + body), `ts` = the bar's end.
pub fn write_bar(header: &[u8], bar: &Bar) -> Vec<u8> {
    let mut buf = Vec::with_capacity(header.len() + 160);
    buf.extend_from_slice(header);
    write_str(&mut buf, &bar.symbol);
    write_long(&mut buf, bar.interval_s);
    write_long(&mut buf, bar.start);
    write_long(&mut buf, bar.end);
    for text in [
        &bar.open,
        &bar.high,
        &bar.low,
        &bar.close,
        &bar.volume,
        &bar.buy_volume,
        &bar.sell_volume,
    ] {
        write_str(&mut buf, text);
    }
    match &bar.vwap {
        None => buf.push(0),
        Some(v) => {
            buf.push(2);
            write_str(&mut buf, v);
        }
    }
    write_long(&mut buf, bar.trade_count);
    write_opt_long(&mut buf, Some(bar.first_trade_id));
    write_opt_long(&mut buf, Some(bar.last_trade_id));
    write_opt_long(&mut buf, Some(bar.source_partition));
    write_opt_long(&mut buf, Some(bar.first_offset));
    write_opt_long(&mut buf, Some(bar.last_offset));
    write_long(&mut buf, bar.end);
    buf
}

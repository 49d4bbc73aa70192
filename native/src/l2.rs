//! The connector's `book` channel without the interpreter: parse a Kraken v2 book frame, apply it to
//! the symbol's fixed-point book, verify Kraken's CRC32, and Avro-encode the `kraken.book` record.
//!
//! Semantics are those of the pure-Python reference `connector/integrity.py` (`BookVerifier("book")`,
//! `L2Book`, `EpochClock`) and `connector/mapping.py::book_record`; the unit tests run both on every
//! capture and on random books and require the same verdicts and byte-identical records.
//!
//! `feed` takes only frames it understands completely (a `book` data frame of the documented shape,
//! timestamps in Kraken's `Z` form). Anything else returns `None` and the caller's Python path parses
//! the frame, reports what is wrong with it, and calls `verify` with the parsed levels: the book state
//! lives here alone, whichever path a frame takes.

use std::borrow::Cow;
use std::collections::HashMap;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::avro;
use crate::decimal::{decimals, to_fixed_digits};
use crate::frame::scan_book;
use crate::time::ts_micros;

const CHECKSUM_DEPTH: usize = 10;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Precision {
    pub price: u32,
    pub qty: u32,
    pub inferred: bool,
}

/// One side: levels sorted by key (price for asks, -price for bids, so the best comes first), each
/// with its checksum piece (price digits followed by qty digits).
#[derive(Default)]
struct Side {
    keys: Vec<i128>,
    pieces: Vec<String>,
}

impl Side {
    fn set(&mut self, key: i128, piece: Option<String>) {
        match (self.keys.binary_search(&key), piece) {
            (Ok(i), Some(p)) => self.pieces[i] = p,
            (Ok(i), None) => {
                self.keys.remove(i);
                self.pieces.remove(i);
            }
            (Err(i), Some(p)) => {
                self.keys.insert(i, key);
                self.pieces.insert(i, p);
            }
            // deleting a level we do not hold is ignored (reference §5.9)
            (Err(_), None) => {}
        }
    }

    fn truncate(&mut self, depth: usize) {
        // levels pushed out of the subscribed depth get no delete from Kraken (reference §5.3)
        self.keys.truncate(depth);
        self.pieces.truncate(depth);
    }
}

struct Book {
    bids: Side,
    asks: Side,
    depth: usize,
    precision: Precision,
}

impl Book {
    fn apply<S: AsRef<str>>(&mut self, bids: &[(S, S)], asks: &[(S, S)]) -> Result<(), String> {
        let p = self.precision;
        for (levels, side, negate) in [(bids, &mut self.bids, true), (asks, &mut self.asks, false)]
        {
            if levels.is_empty() {
                continue;
            }
            for (price_text, qty_text) in levels {
                let (price_text, qty_text) = (price_text.as_ref(), qty_text.as_ref());
                let mut piece = String::with_capacity(price_text.len() + qty_text.len() + 8);
                let price = to_fixed_digits(price_text, p.price, &mut piece)?;
                let qty = to_fixed_digits(qty_text, p.qty, &mut piece)?;
                if price < 0 || qty < 0 {
                    return Err(format!(
                        "negative price or quantity {price_text:?} {qty_text:?}"
                    ));
                }
                let key = if negate { -price } else { price };
                side.set(key, if qty == 0 { None } else { Some(piece) });
            }
            side.truncate(self.depth);
        }
        Ok(())
    }

    fn checksum(&self, scratch: &mut Vec<u8>) -> u32 {
        // one CRC over the joined string: crc32fast is many times faster on one long input than
        // on twenty short ones
        scratch.clear();
        for side in [&self.asks, &self.bids] {
            for piece in side.pieces.iter().take(CHECKSUM_DEPTH) {
                scratch.extend_from_slice(piece.as_bytes());
            }
        }
        crc32fast::hash(scratch)
    }
}

struct State {
    book: Option<Book>,
    epoch: i64,
    precision: Precision,
}

impl State {
    fn verdict(&self, ok: Option<bool>, computed: Option<u32>, snapshot: bool) -> Verdict {
        Verdict {
            epoch: self.epoch,
            ok,
            computed,
            snapshot,
            precision: self.precision,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Verdict {
    pub epoch: i64,
    pub ok: Option<bool>,
    pub computed: Option<u32>,
    pub snapshot: bool,
    pub precision: Precision,
}

/// Books of the `book` channel for every symbol: precisions, epochs, verdicts (pure, no Python).
pub struct Books {
    depth: usize,
    precisions: HashMap<String, Precision>,
    states: HashMap<String, State>,
    epochs: HashMap<String, i64>,
    scratch: Vec<u8>,
}

impl Books {
    pub fn new(depth: usize) -> Self {
        Books {
            depth,
            precisions: HashMap::new(),
            states: HashMap::new(),
            epochs: HashMap::new(),
            scratch: Vec::new(),
        }
    }

    /// Apply one message of `symbol` and compare with Kraken's checksum (see `BookVerifier.verify`).
    pub fn verify<S: AsRef<str>>(
        &mut self,
        symbol: &str,
        snapshot: bool,
        bids: &[(S, S)],
        asks: &[(S, S)],
        checksum: i64,
        ts_recv: i64,
    ) -> Verdict {
        if snapshot {
            let precision = match self.precisions.get(symbol) {
                Some(p) => *p,
                None => infer_precision(bids.iter().chain(asks.iter())),
            };
            let last = self.epochs.get(symbol).copied().unwrap_or(0);
            let epoch = (last + 1).max(ts_recv);
            self.epochs.insert(symbol.to_string(), epoch);
            let book = Book {
                bids: Side::default(),
                asks: Side::default(),
                depth: self.depth,
                precision,
            };
            self.states.insert(
                symbol.to_string(),
                State {
                    book: Some(book),
                    epoch,
                    precision,
                },
            );
        }
        let Some(state) = self.states.get_mut(symbol) else {
            // an update before any snapshot (cannot happen with Kraken): nothing to verify against
            let precision = self.precisions.get(symbol).copied().unwrap_or(Precision {
                price: 0,
                qty: 0,
                inferred: true,
            });
            let epoch = self.epochs.get(symbol).copied().unwrap_or(0);
            return Verdict {
                epoch,
                ok: None,
                computed: None,
                snapshot: false,
                precision,
            };
        };
        let Some(book) = state.book.as_mut() else {
            return state.verdict(None, None, snapshot);
        };
        if book.apply(bids, asks).is_err() {
            state.book = None;
            return state.verdict(None, None, snapshot);
        }
        let computed = book.checksum(&mut self.scratch);
        if computed as i64 == checksum {
            // the computed checksum is reported for snapshots only (as the reference does)
            return state.verdict(Some(true), snapshot.then_some(computed), snapshot);
        }
        mismatch(state, computed, snapshot)
    }

    pub fn invalidate(&mut self, symbol: &str) {
        if let Some(state) = self.states.get_mut(symbol) {
            state.book = None;
        }
    }
}

fn mismatch(state: &mut State, computed: u32, snapshot: bool) -> Verdict {
    state.book = None;
    // an inferred precision is a guess: a difference proves nothing (no false mismatch, no loop)
    let ok = if state.precision.inferred {
        None
    } else {
        Some(false)
    };
    state.verdict(ok, Some(computed), snapshot)
}

fn infer_precision<'a, S: AsRef<str> + 'a>(levels: impl Iterator<Item = &'a (S, S)>) -> Precision {
    let (mut pp, mut qp) = (0, 0);
    for (price, qty) in levels {
        pp = pp.max(decimals(price.as_ref()));
        qp = qp.max(decimals(qty.as_ref()));
    }
    Precision {
        price: pp,
        qty: qp,
        inferred: true,
    }
}

// ------------------------------------------------------------------------------------------- frames

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<Vec<BookData<'a>>>,
}

#[derive(Deserialize)]
struct BookData<'a> {
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow, default)]
    bids: Option<Vec<LevelIn<'a>>>,
    #[serde(borrow, default)]
    asks: Option<Vec<LevelIn<'a>>>,
    #[serde(borrow)]
    checksum: &'a RawValue,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct LevelIn<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

/// A JSON value → its decimal text as the Python parser keeps it: a string as is, a number's text
/// (`str(int)` for integers, which only changes `-0`); None for anything else.
fn decimal_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let s = raw.get();
    let first = *s.as_bytes().first()?;
    if first == b'"' {
        return serde_json::from_str::<Cow<str>>(s).ok();
    }
    if first == b'-' || first.is_ascii_digit() {
        if s == "-0" {
            return Some(Cow::Borrowed("0"));
        }
        return Some(Cow::Borrowed(s));
    }
    None
}

/// Kraken's checksum field: a JSON integer (or a string of digits, as the Python parser accepts).
fn integer(raw: &RawValue) -> Option<i64> {
    let s = raw.get();
    if s.starts_with('"') {
        let text: Cow<str> = serde_json::from_str(s).ok()?;
        let digits = text.strip_prefix('-').unwrap_or(&text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        return text.parse().ok();
    }
    s.parse().ok()
}

/// A `book` frame parsed and checked completely; `S` is `&str` (text borrowed from the frame, the
/// scanner's case) or `Cow<str>` (serde's, which unescapes strings).
pub struct BookFrame<S> {
    pub symbol: S,
    pub snapshot: bool,
    pub bids: Vec<(S, S)>,
    pub asks: Vec<(S, S)>,
    pub checksum: i64,
    pub ts_event: Option<i64>,
}

type Levels<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn side_levels<'a>(side: Option<Vec<LevelIn<'a>>>) -> Option<Levels<'a>> {
    side.unwrap_or_default()
        .iter()
        .map(|lv| Some((decimal_text(lv.price)?, decimal_text(lv.qty)?)))
        .collect()
}

/// The general parser (serde): None unless `text` is a `book` data frame of the documented shape.
pub fn parse_book_frame(text: &str) -> Option<BookFrame<Cow<'_, str>>> {
    // one typed pass; a frame of another channel rarely even holds the word, and if it does the
    // typed parse fails or the channel check below refuses it: None either way
    if !text.contains("\"book\"") {
        return None;
    }
    let frame: Frame = serde_json::from_str(text).ok()?;
    if frame.channel.as_deref() != Some("book") {
        return None;
    }
    let snapshot = match frame.kind.as_deref() {
        Some("snapshot") => true,
        Some("update") => false,
        _ => return None,
    };
    let mut data = frame.data?;
    if data.len() != 1 {
        return None;
    }
    let d = data.pop()?;
    let bids = side_levels(d.bids)?;
    let asks = side_levels(d.asks)?;
    let checksum = integer(d.checksum)?;
    let ts_event = match d.timestamp {
        None => None,
        Some(ts) => Some(ts_micros(&ts)?),
    };
    Some(BookFrame {
        symbol: d.symbol,
        snapshot,
        bids,
        asks,
        checksum,
        ts_event,
    })
}

fn from_scan(raw: crate::frame::RawBook<'_>) -> Option<BookFrame<&str>> {
    if raw.channel != "book" {
        return None;
    }
    let snapshot = match raw.kind {
        "snapshot" => true,
        "update" => false,
        _ => return None,
    };
    let ts_event = match raw.timestamp {
        None => None,
        Some(ts) => Some(ts_micros(ts)?),
    };
    Some(BookFrame {
        symbol: raw.symbol,
        snapshot,
        bids: raw.bids,
        asks: raw.asks,
        checksum: raw.checksum.parse().ok()?,
        ts_event,
    })
}

/// The `kraken.book` Avro body (after the Confluent header), field by field as in kraken.book.avsc.
pub fn encode_book<S: AsRef<str>>(
    buf: &mut Vec<u8>,
    frame: &BookFrame<S>,
    v: &Verdict,
    depth: usize,
    ts_recv: i64,
) {
    avro::write_str(buf, frame.symbol.as_ref());
    avro::write_str(buf, if frame.snapshot { "snapshot" } else { "update" });
    for side in [&frame.bids, &frame.asks] {
        if !side.is_empty() {
            avro::write_long(buf, side.len() as i64);
            for (price, qty) in side {
                avro::write_str(buf, price.as_ref());
                avro::write_str(buf, qty.as_ref());
            }
        }
        buf.push(0);
    }
    avro::write_long(buf, frame.checksum);
    avro::write_long(buf, v.precision.price as i64);
    avro::write_long(buf, v.precision.qty as i64);
    avro::write_long(buf, depth as i64);
    avro::write_long(buf, v.epoch);
    avro::write_opt_bool(buf, v.ok);
    avro::write_opt_long(buf, frame.ts_event);
    avro::write_long(buf, ts_recv);
}

// ------------------------------------------------------------------------------------------- Python

/// `L2Verifier(depth, header)`: the `book` channel's books for the connector (see the module doc).
#[pyclass(module = "kracked_native")]
pub struct L2Verifier {
    books: Books,
    header: Vec<u8>,
    names: HashMap<String, Py<PyString>>,
    buf: Vec<u8>,
    last: Option<Verdict>,
}

fn verdict_tuple<'py>(py: Python<'py>, v: &Verdict) -> PyResult<Bound<'py, PyTuple>> {
    (
        v.epoch,
        v.ok,
        v.computed,
        v.snapshot,
        v.precision.price,
        v.precision.qty,
        v.precision.inferred,
    )
        .into_pyobject(py)
}

fn levels_of<'py>(side: &Bound<'py, PyAny>) -> PyResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    if side.is_none() {
        return Ok(out);
    }
    for level in side.try_iter()? {
        let level = level?;
        let price: String = level.get_item("price")?.extract()?;
        let qty: String = level.get_item("qty")?.extract()?;
        out.push((price, qty));
    }
    Ok(out)
}

impl L2Verifier {
    fn take<'py, S: AsRef<str>>(
        &mut self,
        py: Python<'py>,
        frame: &BookFrame<S>,
        ts_recv: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let symbol = frame.symbol.as_ref();
        let v = self.books.verify(
            symbol,
            frame.snapshot,
            &frame.bids,
            &frame.asks,
            frame.checksum,
            ts_recv,
        );
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(&self.header);
        encode_book(buf, frame, &v, self.books.depth, ts_recv);
        let value = PyBytes::new(py, buf);
        let name = match self.names.get(symbol) {
            Some(n) => n.bind(py).clone(),
            None => {
                let n = PyString::new(py, symbol);
                self.names.insert(symbol.to_string(), n.clone().unbind());
                n
            }
        };
        self.last = Some(v);
        // no epoch or computed checksum here: a new int per frame for what only a mismatch reads
        (name, value, v.ok).into_pyobject(py)
    }
}

#[pymethods]
impl L2Verifier {
    #[new]
    #[pyo3(signature = (depth, header = None))]
    fn new(depth: usize, header: Option<Vec<u8>>) -> Self {
        L2Verifier {
            books: Books::new(depth),
            header: header.unwrap_or_default(),
            names: HashMap::new(),
            buf: Vec::new(),
            last: None,
        }
    }

    #[getter]
    fn depth(&self) -> usize {
        self.books.depth
    }

    /// The Confluent wire-format header (magic byte + schema id) put before every encoded record.
    fn set_header(&mut self, header: Vec<u8>) {
        self.header = header;
    }

    /// The pair's precisions from the instrument channel (used from the symbol's next snapshot).
    fn set_precision(&mut self, symbol: &str, price: u32, qty: u32) -> PyResult<()> {
        if price > crate::decimal::MAX_PRECISION || qty > crate::decimal::MAX_PRECISION {
            return Err(PyValueError::new_err(format!(
                "precision out of range for {symbol}"
            )));
        }
        self.books.precisions.insert(
            symbol.to_string(),
            Precision {
                price,
                qty,
                inferred: false,
            },
        );
        Ok(())
    }

    /// Apply parsed levels (`{price, qty}` mappings of text): the Python path's way in.
    /// Returns (epoch, ok, computed, snapshot, price_precision, qty_precision, inferred).
    #[allow(clippy::too_many_arguments)]
    fn verify<'py>(
        &mut self,
        py: Python<'py>,
        symbol: &str,
        snapshot: bool,
        bids: &Bound<'py, PyAny>,
        asks: &Bound<'py, PyAny>,
        checksum: i64,
        ts_recv: i64,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let bids = levels_of(bids)?;
        let asks = levels_of(asks)?;
        let v = self
            .books
            .verify(symbol, snapshot, &bids, &asks, checksum, ts_recv);
        verdict_tuple(py, &v)
    }

    /// One WebSocket frame: None when it is not a book frame this path takes whole, else
    /// (symbol, Confluent-framed kraken.book value, ok); `last_verdict()` has the rest.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        raw: &Bound<'py, PyAny>,
        ts_recv: i64,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Ok(text) = raw.cast::<PyString>() else {
            return Ok(None);
        };
        let text = text.to_str()?;
        // the scanner takes the common shape; what it refuses, serde decides
        if let Some(raw) = scan_book(text) {
            return match from_scan(raw) {
                Some(frame) => self.take(py, &frame, ts_recv).map(Some),
                None => Ok(None),
            };
        }
        match parse_book_frame(text) {
            Some(frame) => self.take(py, &frame, ts_recv).map(Some),
            None => Ok(None),
        }
    }

    /// The full verdict of the last frame `feed` took: (epoch, ok, computed, snapshot,
    /// price_precision, qty_precision, inferred); None before the first.
    fn last_verdict<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        self.last.as_ref().map(|v| verdict_tuple(py, v)).transpose()
    }

    /// Forget the book (e.g. the connection dropped): updates are unverified until a snapshot.
    fn invalidate(&mut self, symbol: &str) {
        self.books.invalidate(symbol);
    }

    fn valid(&self, symbol: &str) -> bool {
        self.books
            .states
            .get(symbol)
            .is_some_and(|s| s.book.is_some())
    }

    fn epoch(&self, symbol: &str) -> Option<i64> {
        self.books.states.get(symbol).map(|s| s.epoch)
    }
}

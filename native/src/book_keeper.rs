//! L2 order books rebuilt from `kraken.book` records and verified on every record: the pure core of
//! the replay's native `book` path (no Python, no I/O).
//!
//! Semantics are those of the pure-Python reference `consumers/book/domain.py` (`BookKeeper` with
//! `level3=False`, `L2Book`): same verdicts, transitions and epochs, the same CRC32, the same top-N
//! rendered as exact decimal text at the pair's precision. The unit tests
//! (`tests/unit/test_replay_native.py`) run both on the real captures and on corrupted variants and
//! require byte-identical `kracked.book.top` output.

use std::collections::HashMap;

use crate::decimal::to_fixed;
use crate::render::{fixed_to_text, py_repr};

/// (price, qty) text of the levels of one side, best first.
pub type TextLevels<'a> = Vec<(&'a str, &'a str)>;

/// Kraken checksums the top 10 levels whatever the subscribed depth (reference §4.1).
const TOP: usize = 10;
/// Kraken's precisions are 0..10; a larger one is a broken record (as `_MAX_PRECISION`).
const MAX_PRECISION: i64 = 30;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Ok,
    Mismatch,
    WaitingForSnapshot,
    EpochMismatch,
    InvalidBook,
    BadRecord,
}

impl Verdict {
    /// The `Verdict` enum value of the Python reference (continuity detail text).
    pub fn value(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Mismatch => "checksum_mismatch",
            Verdict::WaitingForSnapshot => "waiting_for_snapshot",
            Verdict::EpochMismatch => "epoch_mismatch",
            Verdict::InvalidBook => "invalid_book",
            Verdict::BadRecord => "bad_record",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transition {
    None,
    BecameValid,
    BecameInvalid,
    Recovered,
}

/// Outcome of one record (`BookResult` of the reference).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: Verdict,
    pub valid: bool,
    pub epoch: Option<i64>,
    pub transition: Transition,
    pub top_changed: bool,
    pub expected: Option<i64>,
    pub computed: Option<i64>,
    pub error: Option<String>,
}

impl Outcome {
    fn plain(
        verdict: Verdict,
        valid: bool,
        epoch: Option<i64>,
        transition: Transition,
        top_changed: bool,
    ) -> Self {
        Outcome {
            verdict,
            valid,
            epoch,
            transition,
            top_changed,
            expected: None,
            computed: None,
            error: None,
        }
    }
}

/// One `kraken.book` record, borrowed from its decoded Avro body.
pub struct BookInput<'a> {
    pub symbol: &'a str,
    pub kind: &'a str,
    pub bids: &'a [(&'a str, &'a str)],
    pub asks: &'a [(&'a str, &'a str)],
    pub checksum: i64,
    pub price_precision: i64,
    pub qty_precision: i64,
    pub depth: i64,
    pub epoch: i64,
}

/// One level: its checksum piece and its rendered price and qty (rendered once, when the level
/// changes, so publishing a top copies text instead of formatting 20 numbers).
struct Level {
    piece: String,
    price: String,
    qty: String,
}

/// One side, sorted by key (price for asks, -price for bids: index 0 is the best level on both).
#[derive(Default)]
struct Side {
    keys: Vec<i128>,
    levels: Vec<Level>,
}

impl Side {
    fn clear(&mut self) {
        self.keys.clear();
        self.levels.clear();
    }

    fn truncate(&mut self, depth: usize) {
        self.keys.truncate(depth);
        self.levels.truncate(depth);
    }
}

/// `to_fixed` as the Python book parses a level (`_strict`): non-negative, ASCII only; "." and "-."
/// are 0, as in `schemas/checksum.py::to_fixed`. Errors carry the Python message.
pub fn book_fixed(text: &str, precision: u32) -> Result<i128, String> {
    let value = py_to_fixed(text, precision)?;
    if value < 0 {
        return Err(format!("negative book value {}", py_repr(text)));
    }
    Ok(value)
}

/// `schemas/checksum.py::to_fixed` for ASCII text, with its error messages (non-ASCII is refused
/// as "not a decimal", as every caller of the reference does before calling it).
pub fn py_to_fixed(text: &str, precision: u32) -> Result<i128, String> {
    if !text.is_ascii() {
        return Err(format!("not a decimal: {}", py_repr(text)));
    }
    to_fixed(text, precision).map_err(|e| {
        if e.contains("decimals") {
            format!("{} has more than {precision} decimals", py_repr(text))
        } else if e.starts_with("not a decimal") {
            format!("not a decimal: {}", py_repr(text))
        } else {
            e
        }
    })
}

pub struct L2Book {
    pub epoch: i64,
    depth: usize,
    pub price_precision: u32,
    pub qty_precision: u32,
    asks: Side,
    bids: Side,
    crc: Option<u32>,
}

impl L2Book {
    fn new(epoch: i64, depth: i64, pp: i64, qp: i64) -> Result<Self, String> {
        if depth < 1 {
            return Err(format!("book depth must be positive, got {depth}"));
        }
        if !((0..=MAX_PRECISION).contains(&pp) && (0..=MAX_PRECISION).contains(&qp)) {
            return Err(format!("precisions out of range: price {pp}, qty {qp}"));
        }
        Ok(L2Book {
            epoch,
            depth: depth as usize,
            price_precision: pp as u32,
            qty_precision: qp as u32,
            asks: Side::default(),
            bids: Side::default(),
            crc: None,
        })
    }

    fn apply_snapshot(
        &mut self,
        bids: &[(&str, &str)],
        asks: &[(&str, &str)],
    ) -> Result<(), String> {
        self.asks.clear();
        self.bids.clear();
        self.crc = None;
        let (pp, qp) = (self.price_precision, self.qty_precision);
        apply_side(&mut self.asks, asks, false, pp, qp)?;
        apply_side(&mut self.bids, bids, true, pp, qp)?;
        self.asks.truncate(self.depth);
        self.bids.truncate(self.depth);
        Ok(())
    }

    /// True when a top-10 level changed (`L2Book.apply_update`).
    fn apply_update(
        &mut self,
        bids: &[(&str, &str)],
        asks: &[(&str, &str)],
    ) -> Result<bool, String> {
        let (pp, qp) = (self.price_precision, self.qty_precision);
        let mut changed = false;
        if !asks.is_empty() && apply_side(&mut self.asks, asks, false, pp, qp)? {
            changed = true;
        }
        if !bids.is_empty() && apply_side(&mut self.bids, bids, true, pp, qp)? {
            changed = true;
        }
        // truncate only after the whole message: Kraken refills a removed level in the same message
        let depth = self.depth;
        if self.asks.keys.len() > depth || self.bids.keys.len() > depth {
            self.asks.truncate(depth);
            self.bids.truncate(depth);
            if depth < TOP {
                changed = true;
            }
        }
        if changed {
            self.crc = None;
        }
        Ok(changed)
    }

    pub fn checksum(&mut self) -> u32 {
        if let Some(crc) = self.crc {
            return crc;
        }
        // one CRC over the joined string: crc32fast is many times faster on one long input than on
        // twenty short ones
        let mut joined = [0u8; 1024];
        let mut len = 0;
        let mut h = crc32fast::Hasher::new();
        for side in [&self.asks, &self.bids] {
            for level in side.levels.iter().take(TOP) {
                let piece = level.piece.as_bytes();
                if len + piece.len() > joined.len() {
                    h.update(&joined[..len]);
                    len = 0;
                }
                if piece.len() > joined.len() {
                    h.update(piece);
                } else {
                    joined[len..len + piece.len()].copy_from_slice(piece);
                    len += piece.len();
                }
            }
        }
        h.update(&joined[..len]);
        let crc = h.finalize();
        self.crc = Some(crc);
        crc
    }

    /// Best `n` bids (high→low) and asks (low→high) as (price, qty) text.
    pub fn top(&self, n: usize) -> (TextLevels<'_>, TextLevels<'_>) {
        fn render(l: &Level) -> (&str, &str) {
            (l.price.as_str(), l.qty.as_str())
        }
        (
            self.bids.levels.iter().take(n).map(render).collect(),
            self.asks.levels.iter().take(n).map(render).collect(),
        )
    }
}

/// Absolute qty per level, 0 deletes, in array order; true when a level of rank < 10 changed.
fn apply_side(
    side: &mut Side,
    levels: &[(&str, &str)],
    negate: bool,
    pp: u32,
    qp: u32,
) -> Result<bool, String> {
    let mut touched = false;
    for &(price_text, qty_text) in levels {
        let price = book_fixed(price_text, pp)?;
        let qty = book_fixed(qty_text, qp)?;
        let key = if negate { -price } else { price };
        let found = side.keys.binary_search(&key);
        let i = match (found, qty) {
            (Ok(i), 0) => {
                side.keys.remove(i);
                side.levels.remove(i);
                i
            }
            (Err(_), 0) => continue, // deleting an unknown level is ignored (reference §5 rule 9)
            (Ok(i), q) => {
                let level = &mut side.levels[i];
                level.piece.clear();
                push_int(&mut level.piece, price);
                push_int(&mut level.piece, q);
                level.qty = fixed_to_text(q, qp);
                i
            }
            (Err(i), q) => {
                let mut piece = String::with_capacity(24);
                push_int(&mut piece, price);
                push_int(&mut piece, q);
                side.keys.insert(i, key);
                side.levels.insert(
                    i,
                    Level {
                        piece,
                        price: fixed_to_text(price, pp),
                        qty: fixed_to_text(q, qp),
                    },
                );
                i
            }
        };
        if i < TOP {
            touched = true;
        }
    }
    Ok(touched)
}

/// `str(value)` of a non-negative int (the checksum piece of a price, "0" included, as the reference).
fn push_int(out: &mut String, value: i128) {
    use std::fmt::Write;
    let _ = match u64::try_from(value) {
        Ok(v) => write!(out, "{v}"), // formatting a u64 is several times cheaper than an i128
        Err(_) => write!(out, "{value}"),
    };
}

#[derive(Default)]
struct State {
    book: Option<L2Book>,
    valid: bool,
    was_valid: bool,
}

/// Books of every symbol of `kraken.book`, verified record by record (`BookKeeper(level3=False)`).
#[derive(Default)]
pub struct Keeper {
    states: HashMap<String, State>,
}

impl Keeper {
    pub fn process(&mut self, rec: &BookInput) -> Outcome {
        if !self.states.contains_key(rec.symbol) {
            self.states.insert(rec.symbol.to_string(), State::default());
        }
        let state = self.states.get_mut(rec.symbol).expect("state exists");
        match rec.kind {
            "update" => {
                let Some(book) = state.book.as_mut() else {
                    return Outcome::plain(
                        Verdict::WaitingForSnapshot,
                        false,
                        None,
                        Transition::None,
                        false,
                    );
                };
                if rec.epoch != book.epoch {
                    return invalidate(state, Verdict::EpochMismatch, None, None, None);
                }
                if !state.valid {
                    return Outcome::plain(
                        Verdict::InvalidBook,
                        false,
                        Some(book.epoch),
                        Transition::None,
                        false,
                    );
                }
                let changed = match book.apply_update(rec.bids, rec.asks) {
                    Ok(changed) => changed,
                    Err(e) => return invalidate(state, Verdict::BadRecord, None, None, Some(e)),
                };
                let computed = book.checksum() as i64;
                if computed == rec.checksum {
                    return Outcome::plain(
                        Verdict::Ok,
                        true,
                        Some(book.epoch),
                        Transition::None,
                        changed,
                    );
                }
                invalidate(
                    state,
                    Verdict::Mismatch,
                    Some(rec.checksum),
                    Some(computed),
                    None,
                )
            }
            "snapshot" => snapshot(state, rec),
            other => invalidate(
                state,
                Verdict::BadRecord,
                None,
                None,
                Some(format!("unknown record type {}", py_repr(other))),
            ),
        }
    }

    pub fn book(&mut self, symbol: &str) -> Option<&mut L2Book> {
        self.states.get_mut(symbol).and_then(|s| s.book.as_mut())
    }

    pub fn is_valid(&self, symbol: &str) -> bool {
        self.states.get(symbol).is_some_and(|s| s.valid)
    }
}

fn snapshot(state: &mut State, rec: &BookInput) -> Outcome {
    let built = L2Book::new(rec.epoch, rec.depth, rec.price_precision, rec.qty_precision)
        .and_then(|mut book| book.apply_snapshot(rec.bids, rec.asks).map(|()| book));
    let mut book = match built {
        Ok(book) => book,
        Err(e) => {
            state.book = None; // nothing trustworthy left: the next updates wait for a snapshot
            return invalidate(state, Verdict::BadRecord, None, None, Some(e));
        }
    };
    let computed = book.checksum() as i64;
    let epoch = book.epoch;
    state.book = Some(book);
    if computed != rec.checksum {
        return invalidate(
            state,
            Verdict::Mismatch,
            Some(rec.checksum),
            Some(computed),
            None,
        );
    }
    let transition = if state.valid {
        Transition::None
    } else if state.was_valid {
        Transition::Recovered
    } else {
        Transition::BecameValid
    };
    state.valid = true;
    state.was_valid = true;
    Outcome::plain(Verdict::Ok, true, Some(epoch), transition, true)
}

fn invalidate(
    state: &mut State,
    verdict: Verdict,
    expected: Option<i64>,
    computed: Option<i64>,
    error: Option<String>,
) -> Outcome {
    let transition = if state.valid {
        Transition::BecameInvalid
    } else {
        Transition::None
    };
    state.valid = false;
    let epoch = state.book.as_ref().map(|b| b.epoch);
    Outcome {
        verdict,
        valid: false,
        epoch,
        transition,
        top_changed: false,
        expected,
        computed,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec<'a>(
        kind: &'a str,
        bids: &'a [(&'a str, &'a str)],
        asks: &'a [(&'a str, &'a str)],
        checksum: i64,
    ) -> BookInput<'a> {
        BookInput {
            symbol: "X/Y",
            kind,
            bids,
            asks,
            checksum,
            price_precision: 1,
            qty_precision: 2,
            depth: 10,
            epoch: 1,
        }
    }

    #[test]
    fn snapshot_then_updates() {
        let mut keeper = Keeper::default();
        let bids = [("9.0", "1")];
        let asks = [("10.0", "2.5")];
        let crc = crc32fast::hash(b"10025090100");
        let first = keeper.process(&rec("snapshot", &bids, &asks, crc as i64));
        assert_eq!(
            (first.verdict, first.transition),
            (Verdict::Ok, Transition::BecameValid)
        );
        let bad = keeper.process(&rec("update", &[], &[("10.0", "1")], 0));
        assert_eq!(
            (bad.verdict, bad.transition),
            (Verdict::Mismatch, Transition::BecameInvalid)
        );
        let ignored = keeper.process(&rec("update", &[], &[("10.0", "1")], 0));
        assert_eq!(ignored.verdict, Verdict::InvalidBook);
        let junk = keeper.process(&rec("snapshot", &[("x", "1")], &[], 0));
        assert_eq!(junk.verdict, Verdict::BadRecord);
        assert_eq!(junk.error.as_deref(), Some("not a decimal: 'x'"));
        assert!(keeper.book("X/Y").is_none());
    }

    #[test]
    fn top_is_rendered_at_precision() {
        let mut keeper = Keeper::default();
        let bids = [("9", "1"), ("9.5", "0.5")];
        let asks = [("10.0", "2.5")];
        keeper.process(&rec("snapshot", &bids, &asks, 0));
        let book = keeper.book("X/Y").unwrap();
        let (b, a) = book.top(10);
        assert_eq!(b, vec![("9.5", "0.50"), ("9.0", "1.00")]);
        assert_eq!(a, vec![("10.0", "2.50")]);
    }
}

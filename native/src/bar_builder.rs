//! OHLCV bars from trades by event time: the pure core of the replay's native `bars` path.
//!
//! Semantics are those of the pure-Python reference `consumers/bars/domain.py::BarBuilder` started
//! fresh (no bars emitted before, no pair precisions: what `BarsService` builds for a replay):
//! half-open epoch-aligned intervals, open/close by (ts_event, trade_id), duplicates (trade_id not
//! above the symbol's last) skipped, late trades (bar already closed) not added, output decimals =
//! the most decimals seen in the symbol's trade text (capped at `INTERNAL_SCALE`), VWAP rounded
//! half-even once from the exact ratio. Integers only: prices and quantities are i128 fixed-point
//! at 12 decimals; an overflow is an error, never a wrong figure. `tests/unit/test_replay_native.py`
//! requires byte-identical `kracked.bars` output from both.

use std::collections::{BTreeMap, HashMap};

use crate::book_keeper::py_to_fixed;
use crate::decimal::decimals;
use crate::render::{fixed_to_text, py_repr, ratio_text};

pub const INTERNAL_SCALE: u32 = 12;
const VWAP_EXTRA_DECIMALS: u32 = 4;
const SCALE: i128 = 1_000_000_000_000;
const US: i64 = 1_000_000;

/// One trade, borrowed from its decoded Avro body, with its Kafka partition and offset.
pub struct TradeInput<'a> {
    pub symbol: &'a str,
    pub side: &'a str,
    pub price: &'a str,
    pub qty: &'a str,
    pub trade_id: i64,
    pub ts_event: i64,
    pub partition: i64,
    pub offset: i64,
}

/// One closed bar, shaped like `kracked.bars` (without `ts`, which is the end).
#[derive(Debug, Clone)]
pub struct Bar {
    pub symbol: String,
    pub interval_s: i64,
    pub start: i64,
    pub end: i64,
    pub open: String,
    pub high: String,
    pub low: String,
    pub close: String,
    pub volume: String,
    pub buy_volume: String,
    pub sell_volume: String,
    pub vwap: Option<String>,
    pub trade_count: i64,
    pub first_trade_id: i64,
    pub last_trade_id: i64,
    pub source_partition: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

struct OpenBar {
    end: i64,
    open_key: (i64, i64),
    close_key: (i64, i64),
    open: i128,
    close: i128,
    high: i128,
    low: i128,
    volume: i128,
    buy: i128,
    sell: i128,
    notional: i128,
    count: i64,
    partition: i64,
    first_offset: i64,
    last_offset: i64,
}

impl OpenBar {
    fn new(end: i64, key: (i64, i64), price: i128, partition: i64, offset: i64) -> Self {
        OpenBar {
            end,
            open_key: key,
            close_key: key,
            open: price,
            close: price,
            high: price,
            low: price,
            volume: 0,
            buy: 0,
            sell: 0,
            notional: 0,
            count: 0,
            partition,
            first_offset: offset,
            last_offset: offset,
        }
    }

    fn add(
        &mut self,
        key: (i64, i64),
        price: i128,
        qty: i128,
        side: &str,
        partition: i64,
        offset: i64,
    ) -> Result<(), String> {
        if self.count > 0 {
            if key < self.open_key {
                self.open_key = key;
                self.open = price;
            }
            if key > self.close_key {
                self.close_key = key;
                self.close = price;
            }
            self.high = self.high.max(price);
            self.low = self.low.min(price);
        }
        let overflow = || "bar sums overflow 128-bit fixed point".to_string();
        self.count += 1;
        self.volume = self.volume.checked_add(qty).ok_or_else(overflow)?;
        let notional = price.checked_mul(qty).ok_or_else(overflow)?;
        self.notional = self.notional.checked_add(notional).ok_or_else(overflow)?;
        match side {
            "buy" => self.buy += qty,
            "sell" => self.sell += qty,
            _ => {}
        }
        self.partition = partition;
        self.first_offset = self.first_offset.min(offset);
        self.last_offset = self.last_offset.max(offset);
        Ok(())
    }
}

struct Symbol {
    price_dp: u32,
    qty_dp: u32,
    max_trade_id: Option<i64>,
    watermark: i64,
    bars: HashMap<i64, BTreeMap<i64, OpenBar>>, // interval_s → start → open bar
}

/// Open bars of every symbol and interval, closed by event-time watermark (`BarBuilder`).
pub struct BarBuilder {
    intervals_s: Vec<i64>,
    grace_us: i64,
    watermark: i64,
    symbols: HashMap<String, Symbol>,
}

impl BarBuilder {
    pub fn new(intervals_s: &[i64], grace_us: i64) -> Result<Self, String> {
        let mut intervals = intervals_s.to_vec();
        intervals.sort_unstable();
        intervals.dedup();
        if intervals.is_empty() || intervals[0] <= 0 {
            return Err(format!(
                "intervals must be positive seconds, got {intervals:?}"
            ));
        }
        if grace_us < 0 {
            return Err("grace_us must not be negative".into());
        }
        Ok(BarBuilder {
            intervals_s: intervals,
            grace_us,
            watermark: i64::MIN,
            symbols: HashMap::new(),
        })
    }

    /// Add one trade; the bars it closed, in (end, interval) order. Err on unreadable decimal text,
    /// before touching any state.
    pub fn add_trade(&mut self, t: &TradeInput) -> Result<Vec<Bar>, String> {
        if !(t.price.is_ascii() && t.qty.is_ascii()) {
            return Err(format!(
                "trade {} of {}: non-ASCII decimal text",
                t.trade_id, t.symbol
            ));
        }
        let price = py_to_fixed(t.price, INTERNAL_SCALE)?;
        let qty = py_to_fixed(t.qty, INTERNAL_SCALE)?;
        if price <= 0 || qty < 0 {
            return Err(format!(
                "trade {} of {}: price {} / qty {} out of range",
                t.trade_id,
                t.symbol,
                py_repr(t.price),
                py_repr(t.qty)
            ));
        }
        if !self.symbols.contains_key(t.symbol) {
            let state = Symbol {
                price_dp: 0,
                qty_dp: 0,
                max_trade_id: None,
                watermark: i64::MIN,
                bars: HashMap::new(),
            };
            self.symbols.insert(t.symbol.to_string(), state);
        }
        let state = self.symbols.get_mut(t.symbol).expect("symbol exists");
        if state.max_trade_id.is_some_and(|max| t.trade_id <= max) {
            return Ok(Vec::new()); // a duplicate (e.g. the trade snapshot after a reconnect)
        }
        state.max_trade_id = Some(t.trade_id);
        // output decimals only grow, capped by the internal scale (to_fixed refused any excess digit)
        state.price_dp = state.price_dp.max(decimals(t.price)).min(INTERNAL_SCALE);
        state.qty_dp = state.qty_dp.max(decimals(t.qty)).min(INTERNAL_SCALE);

        let watermark = self.watermark.max(state.watermark) as i128;
        let grace = self.grace_us as i128;
        let key = (t.ts_event, t.trade_id);
        for &interval in &self.intervals_s {
            let length = interval * US;
            let start = t.ts_event - t.ts_event.rem_euclid(length);
            let end = start + length;
            if end as i128 + grace <= watermark {
                continue; // late: its bar was already closed
            }
            let open = state.bars.entry(interval).or_default();
            let bar = open
                .entry(start)
                .or_insert_with(|| OpenBar::new(end, key, price, t.partition, t.offset));
            bar.add(key, price, qty, t.side, t.partition, t.offset)?;
        }
        if t.ts_event > state.watermark {
            state.watermark = t.ts_event;
        }
        let limit = self.watermark.max(state.watermark) as i128 - grace;
        let mut closed = Vec::new();
        close(t.symbol, state, limit, &mut closed)?;
        sort_bars(&mut closed);
        Ok(closed)
    }

    /// Move the global watermark (never backwards) and close every bar with end + grace ≤ it.
    pub fn advance(&mut self, watermark_us: i64) -> Result<Vec<Bar>, String> {
        if watermark_us > self.watermark {
            self.watermark = watermark_us;
        }
        let mut closed = Vec::new();
        for (symbol, state) in self.symbols.iter_mut() {
            let limit = self.watermark.max(state.watermark) as i128 - self.grace_us as i128;
            close(symbol, state, limit, &mut closed)?;
        }
        sort_bars(&mut closed);
        Ok(closed)
    }
}

fn sort_bars(bars: &mut [Bar]) {
    bars.sort_by(|a, b| (a.end, a.interval_s, &a.symbol).cmp(&(b.end, b.interval_s, &b.symbol)));
}

fn close(
    symbol: &str,
    state: &mut Symbol,
    limit: i128,
    closed: &mut Vec<Bar>,
) -> Result<(), String> {
    for (&interval, open) in state.bars.iter_mut() {
        while let Some(entry) = open.first_entry() {
            if entry.get().end as i128 > limit {
                break; // bars of one interval end in start order: the rest are still open
            }
            let start = *entry.key();
            let bar = entry.remove();
            closed.push(emit(
                symbol,
                interval,
                start,
                &bar,
                state.price_dp,
                state.qty_dp,
            )?);
        }
    }
    Ok(())
}

fn emit(
    symbol: &str,
    interval: i64,
    start: i64,
    bar: &OpenBar,
    pdp: u32,
    qdp: u32,
) -> Result<Bar, String> {
    let pdiv = 10i128.pow(INTERNAL_SCALE - pdp);
    let qdiv = 10i128.pow(INTERNAL_SCALE - qdp);
    let vwap = if bar.volume != 0 {
        // notional has 2·scale decimals, volume 1·scale: vwap = notional / (volume · 10^scale)
        let denominator = bar
            .volume
            .checked_mul(SCALE)
            .ok_or("bar volume overflows 128-bit fixed point")?;
        Some(ratio_text(
            bar.notional,
            denominator,
            pdp + VWAP_EXTRA_DECIMALS,
        )?)
    } else {
        None
    };
    Ok(Bar {
        symbol: symbol.to_string(),
        interval_s: interval,
        start,
        end: bar.end,
        open: fixed_to_text(bar.open / pdiv, pdp),
        high: fixed_to_text(bar.high / pdiv, pdp),
        low: fixed_to_text(bar.low / pdiv, pdp),
        close: fixed_to_text(bar.close / pdiv, pdp),
        volume: fixed_to_text(bar.volume / qdiv, qdp),
        buy_volume: fixed_to_text(bar.buy / qdiv, qdp),
        sell_volume: fixed_to_text(bar.sell / qdiv, qdp),
        vwap,
        trade_count: bar.count,
        first_trade_id: bar.open_key.1,
        last_trade_id: bar.close_key.1,
        source_partition: bar.partition,
        first_offset: bar.first_offset,
        last_offset: bar.last_offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade<'a>(id: i64, ts: i64, price: &'a str, qty: &'a str, side: &'a str) -> TradeInput<'a> {
        TradeInput {
            symbol: "BTC/USD",
            side,
            price,
            qty,
            trade_id: id,
            ts_event: ts,
            partition: 0,
            offset: id,
        }
    }

    #[test]
    fn a_bar_closes_when_the_next_interval_starts() {
        let mut b = BarBuilder::new(&[60], 0).unwrap();
        assert!(b
            .add_trade(&trade(1, 0, "10.5", "1", "buy"))
            .unwrap()
            .is_empty());
        assert!(b
            .add_trade(&trade(2, 1, "11", "3", "sell"))
            .unwrap()
            .is_empty());
        assert!(b
            .add_trade(&trade(2, 2, "99", "3", "sell"))
            .unwrap()
            .is_empty()); // duplicate
        let closed = b.add_trade(&trade(3, 60 * US, "12", "1", "buy")).unwrap();
        assert_eq!(closed.len(), 1);
        let bar = &closed[0];
        assert_eq!(
            (
                bar.open.as_str(),
                bar.high.as_str(),
                bar.low.as_str(),
                bar.close.as_str()
            ),
            ("10.5", "11.0", "10.5", "11.0")
        );
        assert_eq!(
            (
                bar.volume.as_str(),
                bar.buy_volume.as_str(),
                bar.sell_volume.as_str()
            ),
            ("4", "1", "3")
        );
        assert_eq!(bar.vwap.as_deref(), Some("10.87500")); // (10.5 + 33) / 4, 1 + 4 decimals
        assert_eq!(
            (bar.trade_count, bar.first_trade_id, bar.last_trade_id),
            (2, 1, 2)
        );
        assert!(b.add_trade(&trade(4, 0, "1", "x", "buy")).is_err());
    }
}

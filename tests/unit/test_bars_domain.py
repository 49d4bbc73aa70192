"""Bars domain against an independent, straightforward Decimal computation, on synthetic and captured trades."""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any

import pytest

from consumers.bars.domain import (
    KRAKEN_OHLC_MINUTES,
    VWAP_EXTRA_DECIMALS,
    Bar,
    BarBuilder,
    parse_interval,
    ratio_text,
)
from tests.conftest import FIXTURES, KRAKEN_CAPTURES

US = 1_000_000
T0 = 1_700_000_000 * US  # 2023-11-14T22:13:20Z


def trade(
    trade_id: int, ts: int, price: str, qty: str, side: str = "buy", symbol: str = "BTC/USD"
) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "type": "update",
        "side": side,
        "price": price,
        "qty": qty,
        "ord_type": "limit",
        "trade_id": trade_id,
        "ts_event": ts,
        "ts_recv": ts + 1000,
    }


def iso_us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * US + dt.microsecond


# -- the independent reference ----------------------------------------------------------------------------


def reference_bars(trades: list[dict[str, Any]], intervals: list[int], price_dp: dict[str, int]) -> dict:
    """(symbol, interval, start) → expected values as Decimals; Kraken candle semantics, written plainly."""
    groups: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        for interval in intervals:
            start = t["ts_event"] // (interval * US) * (interval * US)
            groups[(t["symbol"], interval, start)].append(t)
    out = {}
    for key, ts in groups.items():
        ordered = sorted(ts, key=lambda t: (t["ts_event"], t["trade_id"]))
        prices = [Decimal(t["price"]) for t in ordered]
        qtys = [Decimal(t["qty"]) for t in ordered]
        volume = sum(qtys, Decimal(0))
        with localcontext() as ctx:
            ctx.prec = 200  # far beyond any digit the inputs have: the division is exact enough to round once
            notional = sum((p * q for p, q in zip(prices, qtys, strict=True)), Decimal(0))
            exp = Decimal(1).scaleb(-(price_dp[key[0]] + VWAP_EXTRA_DECIMALS))
            vwap = (notional / volume).quantize(exp, rounding=ROUND_HALF_EVEN) if volume else None
        out[key] = {
            "open": prices[0],
            "close": prices[-1],
            "high": max(prices),
            "low": min(prices),
            "volume": volume,
            "buy_volume": sum(
                (q for t, q in zip(ordered, qtys, strict=True) if t["side"] == "buy"), Decimal(0)
            ),
            "sell_volume": sum(
                (q for t, q in zip(ordered, qtys, strict=True) if t["side"] == "sell"), Decimal(0)
            ),
            "vwap": vwap,
            "trade_count": len(ordered),
            "first_trade_id": ordered[0]["trade_id"],
            "last_trade_id": ordered[-1]["trade_id"],
        }
    return out


def as_values(bar: Bar) -> dict[str, Any]:
    return {
        "open": Decimal(bar.open),
        "close": Decimal(bar.close),
        "high": Decimal(bar.high),
        "low": Decimal(bar.low),
        "volume": Decimal(bar.volume),
        "buy_volume": Decimal(bar.buy_volume),
        "sell_volume": Decimal(bar.sell_volume),
        "vwap": None if bar.vwap is None else Decimal(bar.vwap),
        "trade_count": bar.trade_count,
        "first_trade_id": bar.first_trade_id,
        "last_trade_id": bar.last_trade_id,
    }


def run_all(builder: BarBuilder, trades: list[dict[str, Any]]) -> list[Bar]:
    bars: list[Bar] = []
    for offset, t in enumerate(trades):
        result = builder.add_trade(t, partition=0, offset=offset)
        assert not result.late and not result.duplicate
        bars += result.closed
    bars += builder.advance(2**62)
    return bars


def check_against_reference(
    bars: list[Bar], trades: list[dict[str, Any]], intervals: list[int], dp: dict
) -> None:
    expected = reference_bars(trades, intervals, dp)
    got = {(b.symbol, b.interval_s, b.start): as_values(b) for b in bars}
    assert len(got) == len(bars), "a bar was emitted twice"
    assert got == expected
    for b in bars:
        assert b.end == b.start + b.interval_s * US
        assert b.start % (b.interval_s * US) == 0
        assert len(b.open.split(".")[1]) == dp[b.symbol]  # rendered at the symbol's decimals
        assert b.vwap is not None and len(b.vwap.split(".")[1]) == dp[b.symbol] + VWAP_EXTRA_DECIMALS


def synthetic_trades(
    n: int, seed: int, symbols: tuple[str, ...] = ("BTC/USD", "ETH/USD")
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    ts = T0
    ids = dict.fromkeys(symbols, 1000)
    mids = {"BTC/USD": 300_000, "ETH/USD": 180_000, "DOGE/USD": 4_000_000}
    decimals = {"BTC/USD": 1, "ETH/USD": 2, "DOGE/USD": 7}
    trades = []
    for _ in range(n):
        ts += rng.choice((0, 0, 1, 10, 1000, 250_000, 3 * US, 45 * US))
        symbol = rng.choice(symbols)
        ids[symbol] += 1
        mids[symbol] += rng.randint(-3, 3)
        price = Decimal(mids[symbol]).scaleb(-decimals[symbol])
        qty = Decimal(rng.randint(1, 10**9)).scaleb(-8)
        trades.append(trade(ids[symbol], ts, f"{price:f}", f"{qty:f}", rng.choice(("buy", "sell")), symbol))
    return trades


# -- tests ----------------------------------------------------------------------------------------------


def test_ratio_text_is_half_even_and_exact() -> None:
    assert ratio_text(5, 10, 0) == "0"
    assert ratio_text(15, 10, 0) == "2"
    assert ratio_text(25, 10, 0) == "2"
    assert ratio_text(35, 10, 0) == "4"
    assert ratio_text(-25, 10, 0) == "-2"
    assert ratio_text(-15, 10, 0) == "-2"
    assert ratio_text(-4, 10, 0) == "0"
    assert ratio_text(2, 3, 4) == "0.6667"
    assert ratio_text(1, -3, 4) == "-0.3333"
    assert ratio_text(10**40 + 5, 10**41, 40) == "0.1000000000000000000000000000000000000000"  # tie → even
    assert ratio_text(10**40 + 6, 10**41, 40) == "0.1000000000000000000000000000000000000001"  # no float
    # Just above a tie: a Decimal division (rounded to 28 digits: 0.25) then quantize would give 0.2.
    assert ratio_text(25 * 10**39 + 1, 10**41, 1) == "0.3"


def test_parse_interval() -> None:
    assert parse_interval("1s") == 1
    assert parse_interval("5m") == 300
    assert parse_interval("4h") == 14400
    assert parse_interval("1d") == 86400
    assert parse_interval("1w") == 604800
    assert parse_interval("60") == 60 and parse_interval(60) == 60
    for bad in ("", "m", "-1m", "1.5m", "0s", 0):
        with pytest.raises(ValueError):
            parse_interval(bad)


def test_synthetic_trades_match_reference() -> None:
    trades = synthetic_trades(3000, seed=1)
    intervals = [1, 60, 300, 3600]
    bars = run_all(BarBuilder(intervals), trades)
    check_against_reference(bars, trades, intervals, {"BTC/USD": 1, "ETH/USD": 2})
    # Output order: per symbol and interval, bar ends increase (what a Kafka consumer of a key sees).
    last: dict[tuple[str, int], int] = {}
    for b in bars:
        assert b.end > last.get((b.symbol, b.interval_s), 0)
        last[(b.symbol, b.interval_s)] = b.end
    assert [(b.end, b.interval_s, b.symbol) for b in bars[-10:]] == sorted(
        (b.end, b.interval_s, b.symbol) for b in bars[-10:]
    )


def test_output_is_deterministic() -> None:
    trades = synthetic_trades(500, seed=2)
    first = run_all(BarBuilder([1, 60]), trades)
    second = run_all(BarBuilder([60, 1, 60]), trades)
    assert first == second


def test_captured_trades_match_reference() -> None:
    """Trades as the original kracked recorded them (BTC/USD and DOGE/USD, 2024-11-12), plus Kraken's own."""
    rows = list(csv.DictReader((FIXTURES / "seed-outputs" / "ex_out" / "trades.csv").open()))
    trades = [
        trade(int(r["trade_id"]), iso_us(r["ts_event"]), r["price"], r["qty"], r["side"], r["symbol"])
        for r in rows
    ]
    raw = json.loads((KRAKEN_CAPTURES / "cryptonorm_trade.json").read_text(), parse_float=str)
    trades += [
        trade(t["trade_id"], iso_us(t["timestamp"]), str(t["price"]), str(t["qty"]), t["side"], t["symbol"])
        for t in raw["data"]
    ]
    trades.sort(key=lambda t: (t["ts_event"], t["trade_id"]))
    # The cryptonorm capture is a BTC/USD trade of 2026 with "qty": 2.5e-05 (exponent text).
    assert any("e" in t["qty"] for t in trades)
    intervals = [60, 300, 900, 86400]
    builder = BarBuilder(intervals, precisions={"BTC/USD": (1, 8), "DOGE/USD": (7, 8)})
    bars = run_all(builder, trades)
    check_against_reference(bars, trades, intervals, {"BTC/USD": 1, "DOGE/USD": 7})
    daily = [b for b in bars if b.interval_s == 86400 and b.symbol == "DOGE/USD"]
    assert len(daily) == 1 and daily[0].trade_count == 60
    assert datetime.fromtimestamp(daily[0].start / US, UTC).isoformat() == "2024-11-12T00:00:00+00:00"


def test_kraken_interval_alignment() -> None:
    ts = iso_us("2023-10-04T16:27:31.123456Z")  # a Wednesday
    builder = BarBuilder([m * 60 for m in KRAKEN_OHLC_MINUTES])
    builder.add_trade(trade(1, ts, "0.5624", "100"))
    bars = {b.interval_s // 60: b for b in builder.advance(2**62)}

    def start(minutes: int) -> str:
        return datetime.fromtimestamp(bars[minutes].start / US, UTC).strftime("%Y-%m-%d %H:%M %a")

    assert start(1) == "2023-10-04 16:27 Wed"
    assert start(5) == "2023-10-04 16:25 Wed"  # as in Kraken's doc example (interval_begin 16:25)
    assert start(15) == "2023-10-04 16:15 Wed"
    assert start(240) == "2023-10-04 16:00 Wed"
    assert start(1440) == "2023-10-04 00:00 Wed"
    assert start(10080) == "2023-09-28 00:00 Thu"  # epoch multiples: weeks begin on Thursday
    assert bars[5].end - bars[5].start == 300 * US


def test_bar_values_and_traceability() -> None:
    builder = BarBuilder([60], precisions={"ETH/USD": (2, 8)})
    base = T0 - T0 % (60 * US)
    trades = [
        trade(11, base + 1, "1873.30", "0.50000000", "buy", "ETH/USD"),
        trade(12, base + 2, "1873.5", "1.25", "sell", "ETH/USD"),
        trade(13, base + 3, "1872.9", "0.25", "buy", "ETH/USD"),
        trade(14, base + 3, "1873.1", "1", "sell", "ETH/USD"),
    ]
    for i, t in enumerate(trades):
        builder.add_trade(t, partition=3, offset=100 + i)
    [bar] = builder.advance(base + 60 * US)
    assert (bar.open, bar.high, bar.low, bar.close) == ("1873.30", "1873.50", "1872.90", "1873.10")
    assert (bar.volume, bar.buy_volume, bar.sell_volume) == ("3.00000000", "0.75000000", "2.25000000")
    # (1873.3·0.5 + 1873.5·1.25 + 1872.9·0.25 + 1873.1·1) / 3 = 5619.85 / 3 = 1873.28333… → 6 decimals
    assert bar.vwap == "1873.283333"
    assert (bar.trade_count, bar.first_trade_id, bar.last_trade_id) == (4, 11, 14)
    assert (bar.source_partition, bar.first_offset, bar.last_offset) == (3, 100, 103)
    record = bar.as_record(ts=123)
    assert record["ts"] == 123 and record["symbol"] == "ETH/USD" and record["vwap"] == "1873.283333"


def test_late_trades_are_reported_not_lost_and_grace_accepts_stragglers() -> None:
    grace = 2 * US
    builder = BarBuilder([60], grace_us=grace)
    base = T0 - T0 % (60 * US)
    assert builder.add_trade(trade(1, base + 10 * US, "100.0", "1")).closed == []
    # A later trade in the next bar, within the grace of the first: the first bar stays open.
    assert builder.add_trade(trade(3, base + 61 * US, "101.0", "1")).closed == []
    # A straggler of the first bar (earlier event time, higher id) still counts, ordered by event time.
    straggler = builder.add_trade(trade(4, base + 5 * US, "99.0", "2"))
    assert straggler.late == () and straggler.closed == []
    # Event time passes end + grace: the first bar closes.
    result = builder.add_trade(trade(5, base + 62 * US, "102.0", "1"))
    [first] = result.closed
    assert (first.open, first.close, first.trade_count, first.volume) == ("99.0", "100.0", 2, "3")
    assert (first.first_trade_id, first.last_trade_id) == (4, 1)
    # Too late now: reported with its interval and counted, not added anywhere.
    late = builder.add_trade(trade(6, base + 59 * US, "1.0", "1000"))
    assert late.late == (60,) and late.closed == []
    assert builder.stats.late == {("BTC/USD", 60): 1}
    [second] = builder.advance(2**62)
    assert second.trade_count == 2 and second.low == "101.0"


def test_late_for_one_interval_still_counts_in_a_longer_one() -> None:
    builder = BarBuilder([1, 60])
    base = T0 - T0 % (60 * US)
    builder.add_trade(trade(1, base + 1 * US, "10", "1"))
    builder.add_trade(trade(2, base + 5 * US, "10", "1"))
    result = builder.add_trade(trade(3, base + 2 * US, "12", "1"))
    assert result.late == (1,)
    minute = [b for b in builder.advance(2**62) if b.interval_s == 60]
    assert minute[0].trade_count == 3 and minute[0].high == "12"


def test_quiet_symbol_closes_on_watermark() -> None:
    builder = BarBuilder([60, 3600], grace_us=US)
    base = T0 - T0 % (3600 * US)
    builder.add_trade(trade(1, base + 30 * US, "5.0", "1", symbol="QUIET/USD"))
    assert builder.advance(base + 60 * US) == []  # end + grace not reached yet
    [minute] = builder.advance(base + 61 * US)
    assert minute.interval_s == 60 and minute.symbol == "QUIET/USD"
    assert builder.advance(base + 3600 * US) == []
    [hour] = builder.advance(base + 3601 * US)
    assert hour.interval_s == 3600
    assert builder.advance(base + 10 * 3600 * US) == []  # no empty bars, as Kraken
    assert builder.open_bar_count() == 0
    # The watermark never goes back.
    builder.advance(0)
    assert builder.watermark == base + 10 * 3600 * US


def test_duplicate_trades_are_skipped() -> None:
    builder = BarBuilder([60])
    trades = synthetic_trades(200, seed=5, symbols=("BTC/USD",))
    bars: list[Bar] = []
    for t in trades[:150]:
        bars += builder.add_trade(t).closed
    # The trade snapshot after a reconnect repeats the last 50 trades, then the feed goes on.
    for t in trades[100:150]:
        result = builder.add_trade(dict(t, type="snapshot"))
        assert result.duplicate and not result.closed
    for t in trades[150:]:
        bars += builder.add_trade(t).closed
    bars += builder.advance(2**62)
    assert builder.stats.duplicates == 50
    check_against_reference(bars, trades, [60], {"BTC/USD": 1})


def test_bad_decimal_text_raises_before_any_state_change() -> None:
    builder = BarBuilder([60])
    builder.add_trade(trade(1, T0, "100.0", "1"))
    for bad in ({"price": "1,5"}, {"qty": "abc"}, {"price": "-1"}, {"qty": "0.0000000000001"}, {"qty": "１"}):
        with pytest.raises(ValueError):
            builder.add_trade(dict(trade(2, T0 + 1, "100.0", "1"), **bad))
    [bar] = builder.advance(2**62)
    assert bar.trade_count == 1
    assert builder.add_trade(trade(2, 2**61, "100.0", "1")).duplicate is False  # id 2 was never consumed


@pytest.mark.parametrize("cut", [1, 137, 600, 1499])
def test_restart_emits_no_duplicate_and_loses_nothing(cut: int) -> None:
    """Stop after `cut` trades (having published what closed), restart from the committed offsets."""
    trades = synthetic_trades(1500, seed=cut, symbols=("BTC/USD", "ETH/USD", "DOGE/USD"))
    intervals = [1, 60, 300]
    precisions = {"BTC/USD": (1, 8), "ETH/USD": (2, 8), "DOGE/USD": (7, 8)}
    partition_of = {"BTC/USD": 0, "ETH/USD": 1, "DOGE/USD": 0}
    # Kafka: two partitions, offsets per partition in arrival order.
    log: list[tuple[int, int, dict[str, Any]]] = []
    next_offset = [0, 0]
    for t in trades:
        p = partition_of[t["symbol"]]
        log.append((p, next_offset[p], t))
        next_offset[p] += 1

    def feed(builder: BarBuilder, items: list[tuple[int, int, dict[str, Any]]]) -> list[Bar]:
        out: list[Bar] = []
        for i, (p, o, t) in enumerate(items):
            out += builder.add_trade(t, partition=p, offset=o).closed
            if i % 97 == 0:  # the service's wall-clock watermark, a bit behind the data
                out += builder.advance(t["ts_event"] - 2 * US)
        return out

    end_of_time = 2**62
    reference = BarBuilder(intervals, precisions=precisions)
    uninterrupted = feed(reference, log) + reference.advance(end_of_time)

    first = BarBuilder(intervals, precisions=precisions)
    before = feed(first, log[:cut])
    # What the service persists when it commits: where to resume, and what it already published.
    offsets = first.replay_offsets()
    emitted = first.last_emitted()
    assert all(offsets[p] <= next(o for q, o, _ in reversed(log[:cut]) if q == p) + 1 for p in offsets)

    second = BarBuilder(intervals, last_emitted=emitted, precisions=precisions)
    replay = [(p, o, t) for p, o, t in log if o >= offsets.get(p, 0)]
    after = feed(second, replay) + second.advance(end_of_time)

    keys = [(b.symbol, b.interval_s, b.start) for b in before + after]
    assert len(keys) == len(set(keys)), "a bar was emitted twice"
    assert sorted(before + after, key=lambda b: (b.symbol, b.interval_s, b.start)) == sorted(
        uninterrupted, key=lambda b: (b.symbol, b.interval_s, b.start)
    )
    if before:
        assert second.stats.replayed > 0  # the replay went over trades of bars already published


def test_restart_without_state_would_duplicate() -> None:
    """Sanity check of the restart test: replaying without `last_emitted` re-emits published bars."""
    trades = synthetic_trades(400, seed=9, symbols=("BTC/USD",))
    first = BarBuilder([1])
    before: list[Bar] = []
    for o, t in enumerate(trades[:200]):
        before += first.add_trade(t, partition=0, offset=o).closed
    start = first.replay_offsets()[0]
    naive = BarBuilder([1])
    after: list[Bar] = []
    for o, t in enumerate(trades):
        if o >= start - 50:  # resuming a little too early, as a read-position commit could
            after += naive.add_trade(t, partition=0, offset=o).closed
    assert {b.start for b in before} & {b.start for b in after}

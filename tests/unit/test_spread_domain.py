"""Spread domain: known answers for the time-weighted mean, carry-over, coverage, lateness and restart."""

from __future__ import annotations

import random
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest

from consumers.bars.domain import ratio_text
from consumers.spread.domain import (
    SpreadBuilder,
    SpreadSample,
    SpreadStats,
    sample_from_ticker,
)

US = 1_000_000
BASE = 1_700_000_040 * US  # a multiple of 60 s (and of 1 s, 5 s)
assert BASE % (60 * US) == 0


def s(ts_s: float, bid: str | None, ask: str | None, symbol: str = "BTC/USD") -> SpreadSample:
    return SpreadSample(symbol, BASE + int(ts_s * US), bid, ask)


def round_to(x: Fraction, decimals: int) -> str:
    """Independent half-even rounding of an exact Fraction (Decimal with ample precision, then quantize)."""
    with localcontext() as ctx:
        ctx.prec = 100
        value = Decimal(x.numerator) / Decimal(x.denominator)
        return f"{value.quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_EVEN):f}"


def round4(x: Fraction) -> str:
    return round_to(x, 4)


def bps(bid: str, ask: str) -> Fraction:
    b, a = Fraction(bid), Fraction(ask)
    return 10000 * (a - b) / ((a + b) / 2)


def run(builder: SpreadBuilder, samples: list[SpreadSample], until: float) -> list[SpreadStats]:
    out: list[SpreadStats] = []
    for sample in samples:
        out += builder.add_sample(sample).closed
    return out + builder.advance(BASE + int(until * US))


def test_twa_known_answer() -> None:
    builder = SpreadBuilder("ticker", [60], precisions={"BTC/USD": 1})
    samples = [s(0, "100.0", "100.2"), s(15, "100.0", "100.4"), s(45, "100.1", "100.2")]
    [w] = run(builder, samples, 60)
    assert (w.start, w.end, w.interval_s, w.source) == (BASE, BASE + 60 * US, 60, "ticker")
    assert (w.open, w.close, w.min, w.max, w.sample_count) == ("0.2", "0.1", "0.1", "0.4", 3)
    # (0.2·15 + 0.4·30 + 0.1·15) / 60 = 16.5 / 60 = 0.275, at price decimals (1) + 4
    assert w.twa == "0.27500" and w.covered_us == 60 * US
    b1, b2, b3 = bps("100.0", "100.2"), bps("100.0", "100.4"), bps("100.1", "100.2")
    assert (w.open_bps, w.close_bps) == (round4(b1), round4(b3)) == ("19.9800", "9.9850")
    assert (w.min_bps, w.max_bps) == (round4(b3), round4(b2)) == ("9.9850", "39.9202")
    assert w.twa_bps == round4((b1 * 15 + b2 * 30 + b3 * 15) / 60) == "27.4513"
    record = w.as_record(ts=5)
    assert record["ts"] == 5 and "covered_us" not in record and record["twa_bps"] == "27.4513"


def test_carry_over_quiet_intervals_and_partial_coverage() -> None:
    builder = SpreadBuilder("ticker", [60], precisions={"BTC/USD": 1})
    samples = [
        s(30, "100.0", "100.2"),  # first ever sample: the window is covered from 30 s only
        s(90, "100.0", "100.3"),  # second window: 0.2 carried over 60..90, then 0.3
        s(200, "100.0", "100.1"),  # 120..180 is quiet (not published); 180..200 carries 0.3
    ]
    first, second, fourth = run(builder, samples, 240)
    assert first.covered_us == 30 * US and first.twa == "0.20000" and first.open == "0.2"
    assert (second.open, second.close, second.min, second.max, second.sample_count) == (
        "0.2",
        "0.3",
        "0.2",
        "0.3",
        1,
    )
    assert second.twa == "0.25000"  # (0.2·30 + 0.3·30) / 60
    assert fourth.start == BASE + 180 * US
    assert (fourth.open, fourth.close, fourth.max, fourth.sample_count) == ("0.3", "0.1", "0.3", 1)
    # (0.3·20 + 0.1·40) / 60 = 10/60 = 0.16666… → 0.16667
    assert fourth.twa == "0.16667"
    b3, b1 = bps("100.0", "100.3"), bps("100.0", "100.1")
    assert fourth.twa_bps == round4((b3 * 20 + b1 * 40) / 60)


def test_unknown_spread_is_not_covered() -> None:
    """book.top of an invalid book (or with an empty side) stops the coverage until a valid one."""
    builder = SpreadBuilder("book.top", [60], precisions={"ETH/USD": 2})

    def top(ts_s: int, valid: bool, bid: str | None, ask: str | None) -> dict[str, Any]:
        return {
            "symbol": "ETH/USD",
            "kind": "l2",
            "depth": 10,
            "bids": [] if bid is None else [{"price": bid, "qty": "1.0"}],
            "asks": [] if ask is None else [{"price": ask, "qty": "1.0"}],
            "checksum": 1,
            "checksum_ok": valid,
            "valid": valid,
            "epoch": 1,
            "price_precision": 2,
            "qty_precision": 8,
            "ts_event": None if ts_s == 50 else BASE + ts_s * US,
            "ts_recv": BASE + ts_s * US,
            "ts": BASE + ts_s * US + 5,
            "source_topic": "kracked.book.top",
            "source_partition": 0,
            "source_offset": ts_s,
        }

    out: list[SpreadStats] = []
    for record in (
        top(0, True, "1873.30", "1873.50"),
        top(10, False, "1873.30", "1873.50"),  # invalid book: unknown from 10 s
        top(40, True, "1873.30", None),  # empty ask side: still unknown
        top(50, True, "1873.00", "1873.60"),  # ts_event missing: ts_recv is the event time
    ):
        out += builder.add_book_top(record).closed
    [w] = out + builder.advance(BASE + 60 * US)
    assert w.covered_us == 20 * US and w.sample_count == 2 and w.source == "book.top"
    assert (w.open, w.close, w.min, w.max) == ("0.20", "0.60", "0.20", "0.60")
    assert w.twa == "0.400000"  # (0.2·10 + 0.6·10) / 20


def test_samples_close_windows_and_watermark_closes_quiet_symbols() -> None:
    builder = SpreadBuilder("ticker", [1, 60], grace_us=US)
    r1 = builder.add_sample(s(0.5, "10", "11"))
    r2 = builder.add_sample(s(1.5, "10", "12"))  # at/after the end of the 1 s window [0, 1): complete
    assert r1.closed == []
    [w0] = r2.closed
    assert (w0.interval_s, w0.start, w0.twa, w0.covered_us) == (1, BASE, "1.0000", US // 2)
    # The watermark closes [1, 2) (2 s + grace ≤ 60 s) but not the minute (60 s + grace > 60 s).
    [w1] = builder.advance(BASE + 60 * US)
    assert (w1.interval_s, w1.start, w1.open, w1.close, w1.twa) == (1, BASE + US, "1", "2", "1.5000")
    [minute] = builder.advance(BASE + 61 * US)
    assert minute.interval_s == 60 and minute.sample_count == 2
    assert minute.twa == ratio_text(1 * 1_000_000 + 2 * 58_500_000, 59_500_000, 4)  # 1 for 1 s, 2 for 58.5 s


def test_watermark_closing_and_grace() -> None:
    builder = SpreadBuilder("ticker", [60], grace_us=2 * US)
    builder.add_sample(s(10, "10", "11", symbol="QUIET/USD"))
    assert builder.advance(BASE + 61 * US) == []
    [w] = builder.advance(BASE + 62 * US)
    assert w.symbol == "QUIET/USD" and w.twa == "1.0000" and w.covered_us == 50 * US
    assert builder.advance(BASE + 3600 * US) == []  # no samples, nothing published


def test_out_of_order_and_late_samples() -> None:
    builder = SpreadBuilder("ticker", [60], grace_us=US)
    builder.add_sample(s(10, "10", "11"))
    older = builder.add_sample(s(5, "10", "19"))
    assert older.out_of_order and builder.stats.out_of_order == 1
    [w] = builder.advance(BASE + 61 * US)
    assert w.max == "1" and w.sample_count == 1  # the dropped sample never counted
    # A sample of the closed window arriving late: counted, not published, but its value holds after.
    late = builder.add_sample(s(59.5, "10", "13"))
    assert late.late == (60,) and builder.stats.late == {("BTC/USD", 60): 1}
    [nxt] = run(builder, [s(90, "10", "14")], 200)
    assert nxt.open == "3" and nxt.twa == "3.5000"  # 3 from 60 to 90 s, then 4


def test_min_max_bps_are_compared_exactly() -> None:
    """The smallest spread and the smallest bps can be different samples (different mids)."""
    builder = SpreadBuilder("ticker", [60])
    [w] = run(builder, [s(0, "1.0", "1.2"), s(10, "100.0", "100.3")], 60)
    assert (w.min, w.max) == ("0.2", "0.3")
    assert w.min_bps == round4(bps("100.0", "100.3")) and w.max_bps == round4(bps("1.0", "1.2"))


def test_ticker_sample_falls_back_to_ts_recv() -> None:
    record = {"symbol": "ALGO/USD", "bid": "0.10025", "ask": "0.10036", "ts_event": None, "ts_recv": 7}
    assert sample_from_ticker(record) == SpreadSample("ALGO/USD", 7, "0.10025", "0.10036")
    assert sample_from_ticker(dict(record, ts_event=3)).ts == 3


def test_bad_price_raises_before_state_change() -> None:
    builder = SpreadBuilder("ticker", [60])
    builder.add_sample(s(0, "10", "11"))
    for bid, ask in (("x", "11"), ("10", "-1"), ("0", "1"), ("１0", "11")):
        with pytest.raises(ValueError):
            builder.add_sample(s(30, bid, ask))
    [w] = builder.advance(BASE + 60 * US)
    assert w.sample_count == 1 and w.twa == "1.0000"


# -- against an independent reference, and restart ---------------------------------------------------------


def spread(x: SpreadSample) -> Fraction:
    if x.bid is None or x.ask is None:
        raise ValueError("unknown spread")
    return Fraction(x.ask) - Fraction(x.bid)


def reference(
    samples: list[SpreadSample], interval: int, until: int
) -> dict[tuple[str, int], dict[str, Any]]:
    """Brute force: integrate the step function of each symbol over every interval, with Fractions."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    length = interval * US
    for symbol in {x.symbol for x in samples}:
        series = [x for x in samples if x.symbol == symbol]
        for k, sample in enumerate(series):
            start = sample.ts - sample.ts % length
            if (symbol, start) in out:
                continue
            end = start + length
            # The step function restricted to [start, end): (from, to, value) pieces with a known value.
            pieces = []
            for j, x in enumerate(series):
                nxt = series[j + 1].ts if j + 1 < len(series) else until
                lo, hi = max(x.ts, start), min(nxt, end)
                if hi > lo and x.bid is not None and x.ask is not None:
                    pieces.append((lo, hi, Fraction(x.ask) - Fraction(x.bid), bps(x.bid, x.ask)))
            in_window = [
                x for x in series[k:] if start <= x.ts < end and x.bid is not None and x.ask is not None
            ]
            if not in_window:
                continue
            covered = sum(hi - lo for lo, hi, _, _ in pieces)
            out[(symbol, start)] = {
                "sample_count": len(in_window),
                "covered_us": covered,
                "twa": sum((v * (hi - lo) for lo, hi, v, _ in pieces), Fraction(0)) / covered,
                "twa_bps": round4(sum((b * (hi - lo) for lo, hi, _, b in pieces), Fraction(0)) / covered),
                # every sample seen in the window counts, even one replaced within the same µs
                "max": max([v for _, _, v, _ in pieces] + [spread(x) for x in in_window]),
                "min": min([v for _, _, v, _ in pieces] + [spread(x) for x in in_window]),
            }
    return out


def random_samples(
    n: int, seed: int, symbols: tuple[str, ...] = ("BTC/USD", "ETH/USD")
) -> list[SpreadSample]:
    rng = random.Random(seed)
    ts = BASE + 7 * US
    out = []
    for _ in range(n):
        ts += rng.choice((0, 1, 1000, 300_000, 2 * US, 20 * US, 130 * US))
        symbol = rng.choice(symbols)
        if rng.random() < 0.05:
            out.append(SpreadSample(symbol, ts, None, None))
            continue
        bid = rng.randint(29_000_00, 29_010_00)
        ask = bid + rng.randint(1, 50)
        out.append(SpreadSample(symbol, ts, f"{bid // 100}.{bid % 100:02d}", f"{ask // 100}.{ask % 100:02d}"))
    return out


def test_random_samples_match_reference() -> None:
    samples = random_samples(2000, seed=3)
    until = samples[-1].ts + 3600 * US
    builder = SpreadBuilder("ticker", [60], precisions={"BTC/USD": 2, "ETH/USD": 2})
    got: list[SpreadStats] = []
    for x in samples:
        got += builder.add_sample(x).closed
    got += builder.advance(until)
    expected = reference(samples, 60, until)
    assert len(got) == len(expected)
    for w in got:
        e = expected[(w.symbol, w.start)]
        assert (w.sample_count, w.covered_us, w.twa_bps) == (e["sample_count"], e["covered_us"], e["twa_bps"])
        assert w.twa == round_to(e["twa"], 2 + 4)
        assert (Fraction(w.min), Fraction(w.max)) == (e["min"], e["max"])


@pytest.mark.parametrize("cut", [1, 250, 999])
def test_restart_emits_no_duplicate_and_loses_nothing(cut: int) -> None:
    samples = random_samples(1000, seed=cut, symbols=("BTC/USD", "ETH/USD", "XRP/USD"))
    partition_of = {"BTC/USD": 0, "ETH/USD": 1, "XRP/USD": 1}
    log: list[tuple[int, int, SpreadSample]] = []
    next_offset = [0, 0]
    for x in samples:
        p = partition_of[x.symbol]
        log.append((p, next_offset[p], x))
        next_offset[p] += 1
    end_of_time = samples[-1].ts + 10**4 * US

    def feed(builder: SpreadBuilder, items: list[tuple[int, int, SpreadSample]]) -> list[SpreadStats]:
        out: list[SpreadStats] = []
        for i, (p, o, x) in enumerate(items):
            out += builder.add_sample(x, partition=p, offset=o).closed
            if i % 53 == 0:
                out += builder.advance(x.ts - US)
        return out

    intervals = [5, 60]
    reference_run = SpreadBuilder("ticker", intervals)
    uninterrupted = feed(reference_run, log) + reference_run.advance(end_of_time)

    first = SpreadBuilder("ticker", intervals)
    before = feed(first, log[:cut])
    offsets, emitted = first.replay_offsets(), first.last_emitted()
    second = SpreadBuilder("ticker", intervals, last_emitted=emitted)
    after = feed(second, [(p, o, x) for p, o, x in log if o >= offsets.get(p, 0)]) + second.advance(
        end_of_time
    )

    def key(w: SpreadStats) -> tuple[str, int, int]:
        return (w.symbol, w.interval_s, w.start)

    keys = [key(w) for w in before + after]
    assert len(keys) == len(set(keys)), "a window was published twice"
    assert sorted(before + after, key=key) == sorted(uninterrupted, key=key)

"""Bid/ask spread statistics per interval: the pure domain of the `spread` service (no Kafka, no I/O).

Input: spread samples taken from decoded `kraken.ticker` records (`bid`/`ask`) or `kracked.book.top`
records (best bid/ask of a valid book), see `sample_from_ticker` / `sample_from_book_top`. Output:
`SpreadStats` per symbol and interval, shaped like `kracked.spread`.

The spread (ask − bid) is a step function of event time (`ts_event`, else `ts_recv` when Kraken sent no
timestamp): each sample holds until the next one. For the half-open interval [start, end) (aligned to
a multiple of the interval since the Unix epoch, UTC):
* open = the spread in force at `start` (carried from the previous sample), or the first sample when
  none was known; close = the last spread held in the interval; min/max over the spreads held in the
  interval (the carried one and every sample);
* twa = Σ spread·duration / covered time — each value weighted by how long it lasted inside the interval.
  Time without a known spread (before the first sample, while a book is invalid or a side is empty) is
  not covered and does not count (`covered_us` says how much was);
* the same in basis points of the mid: bps = 10000·(ask − bid)/((ask + bid)/2);
* sample_count = samples with a known spread whose time falls in the interval. An interval is
  published only if it has at least one (quiet intervals are not, as for bars); the value it carries
  still opens the next published interval.

Exact arithmetic, no float: prices are fixed-point ints (`INTERNAL_SCALE` decimals). open/close/min/max
are exact decimal text at the symbol's price decimals (pair precision when known, raised to the most
decimals seen). Rounded values, all half-even: twa → price decimals + 4 (exact integer ratio, with
`consumers.bars.domain.ratio_text`); every bps value → 4 decimals, the per-sample ones exactly, twa_bps
from a Σ computed with `BPS_DIGITS` significant digits (Decimal) before the single rounding.

Closing: when a sample at or after an interval's end arrives (samples are applied in time order per
symbol; an older one than the last is dropped and counted as late), or when `advance(watermark)` reaches
end + grace (quiet symbols). A sample whose interval would already be closed by the watermark is late
for that interval (counted, reported); its value still holds from then on.

Restart: as `consumers.bars.domain` — `last_emitted` (constructor) suppresses intervals published before,
`replay_offsets()` (per partition) includes the sample that set each symbol's current spread, since that
value carries into the next interval. During a replay the service must not advance the watermark past
the replayed data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any, NamedTuple

from consumers.bars.domain import ratio_text, text_decimals
from schemas.checksum import fixed_to_text, to_fixed

Record = Mapping[str, Any]

INTERNAL_SCALE = 12  # decimals of the internal fixed-point prices (Kraken: price_precision ≤ 10)
TWA_EXTRA_DECIMALS = 4  # twa (price) decimals = price decimals + 4
BPS_DECIMALS = 4
BPS_DIGITS = 60  # significant digits of the time-weighted bps sum before its one rounding
_US = 1_000_000
_BPS_CONTEXT = Context(prec=BPS_DIGITS, rounding=ROUND_HALF_EVEN)
_BPS_QUANTUM = Decimal(1).scaleb(-BPS_DECIMALS)
_MIN_TS = -(2**63)

# A known spread: (ask − bid, ask + bid) as fixed-point ints; bps = 20000·spread/(ask + bid).
_Value = tuple[int, int]

_RECORD_FIELDS = (
    "symbol",
    "interval_s",
    "start",
    "end",
    "source",
    "open",
    "close",
    "min",
    "max",
    "twa",
    "open_bps",
    "close_bps",
    "min_bps",
    "max_bps",
    "twa_bps",
    "sample_count",
)


class SpreadSample(NamedTuple):
    """Best bid/ask of a symbol at an instant; bid/ask None when unknown (no valid book, empty side)."""

    symbol: str
    ts: int  # µs since the epoch (event time)
    bid: str | None
    ask: str | None


def sample_from_ticker(record: Record) -> SpreadSample:
    """A `kraken.ticker` record → sample (event time: `ts_event`, else `ts_recv`: older messages lack it)."""
    ts = record.get("ts_event")
    return SpreadSample(
        record["symbol"], record["ts_recv"] if ts is None else ts, record["bid"], record["ask"]
    )


def sample_from_book_top(record: Record) -> SpreadSample:
    """A `kracked.book.top` record → sample; an invalid book or an empty side gives an unknown spread."""
    ts = record.get("ts_event")
    if ts is None:
        ts = record["ts_recv"] if record.get("ts_recv") is not None else record["ts"]
    bids, asks = record["bids"], record["asks"]
    if not record["valid"] or not bids or not asks:
        return SpreadSample(record["symbol"], ts, None, None)
    return SpreadSample(record["symbol"], ts, bids[0]["price"], asks[0]["price"])


@dataclass(frozen=True, slots=True)
class SpreadStats:
    """Spread statistics of one symbol over [start, end) (µs, UTC); names as in `kracked.spread`."""

    symbol: str
    interval_s: int
    start: int
    end: int
    source: str
    open: str
    close: str
    min: str
    max: str
    twa: str
    open_bps: str
    close_bps: str
    min_bps: str
    max_bps: str
    twa_bps: str
    sample_count: int
    covered_us: int  # time of the interval with a known spread (the twa's denominator)
    source_partition: int | None
    first_offset: int | None
    last_offset: int | None

    def as_record(self, ts: int) -> dict[str, Any]:
        """The `kracked.spread` record, `ts` = publish time (µs)."""
        record = {name: getattr(self, name) for name in _RECORD_FIELDS}
        record["ts"] = ts
        return record


class SampleResult(NamedTuple):
    closed: list[SpreadStats]  # intervals completed by this sample, in (end, interval) order
    out_of_order: bool = False  # older than the symbol's last sample: dropped
    late: tuple[int, ...] = ()  # intervals (s) already closed by the watermark for this sample
    replayed: tuple[int, ...] = ()  # intervals (s) published before a restart


@dataclass
class SpreadCounters:
    samples: int = 0
    out_of_order: int = 0
    late: dict[tuple[str, int], int] = field(default_factory=dict)
    replayed: int = 0
    published: int = 0


def _bps_less(a: _Value, b: _Value) -> bool:
    """bps(a) < bps(b), exactly: 20000·sa/ma < 20000·sb/mb with ma, mb > 0."""
    return a[0] * b[1] < b[0] * a[1]


class _Window:
    __slots__ = (
        "close",
        "covered",
        "end",
        "first_offset",
        "last_offset",
        "max",
        "max_bps",
        "min",
        "min_bps",
        "open",
        "origin_offset",
        "partition",
        "samples",
        "start",
        "sum_bps",
        "sum_spread",
        "t",
    )

    def __init__(self, start: int, end: int, t: int) -> None:
        self.start = start
        self.end = end
        self.t = t  # time up to which the current value has been accumulated
        self.covered = 0
        self.sum_spread = 0  # Σ spread·µs (exact int)
        self.sum_bps = Decimal(0)  # Σ bps·µs (BPS_DIGITS significant digits)
        self.samples = 0
        self.open: _Value | None = None
        self.close: _Value | None = None
        self.min: _Value | None = None
        self.max: _Value | None = None
        self.min_bps: _Value | None = None
        self.max_bps: _Value | None = None
        self.partition: int | None = None
        self.first_offset: int | None = None
        self.last_offset: int | None = None
        self.origin_offset: int | None = None  # the sample whose value the window starts from

    def see(self, value: _Value) -> None:
        """A spread value held in the window (carried in, or a sample)."""
        if self.open is None:
            self.open = self.min = self.max = self.min_bps = self.max_bps = value
        else:
            assert self.min is not None and self.max is not None
            assert self.min_bps is not None and self.max_bps is not None
            if value[0] < self.min[0]:
                self.min = value
            if value[0] > self.max[0]:
                self.max = value
            if _bps_less(value, self.min_bps):
                self.min_bps = value
            if _bps_less(self.max_bps, value):
                self.max_bps = value
        self.close = value

    def hold(self, value: _Value | None, until: int) -> None:
        """`value` held from `self.t` to `until`."""
        t0 = self.t
        if until <= t0:
            return
        self.t = until
        if value is None:
            return
        duration = until - t0
        if self.open is None:  # carried in from before the window
            self.see(value)
        self.covered += duration
        self.sum_spread += value[0] * duration
        self.sum_bps += _BPS_CONTEXT.divide(Decimal(20000 * value[0] * duration), Decimal(value[1]))


class _Symbol:
    __slots__ = ("dp", "last_ts", "restored", "value", "value_offset", "value_partition", "windows")

    def __init__(self, dp: int) -> None:
        self.dp = dp
        self.last_ts = _MIN_TS
        self.value: _Value | None = None
        self.value_partition: int | None = None
        self.value_offset: int | None = None
        self.windows: dict[int, _Window] = {}
        self.restored: dict[int, int] = {}


class SpreadBuilder:
    """Spread windows of every symbol and interval, closed by event time and by the watermark.

    `source`: the `source` field of the output (`ticker` or `book.top`).
    `intervals_s`, `grace_us`, `last_emitted`, `precisions`: as `consumers.bars.domain.BarBuilder`
    (`precisions` values may be a price precision or a (price, qty) pair).
    """

    def __init__(
        self,
        source: str,
        intervals_s: Iterable[int],
        grace_us: int = 0,
        last_emitted: Mapping[tuple[str, int], int] | None = None,
        precisions: Mapping[str, int | tuple[int, int]] | None = None,
    ) -> None:
        intervals = sorted(set(intervals_s))
        if not intervals or intervals[0] <= 0:
            raise ValueError(f"intervals must be positive seconds, got {intervals!r}")
        if grace_us < 0:
            raise ValueError("grace_us must not be negative")
        self.source = source
        self.intervals_s: tuple[int, ...] = tuple(intervals)
        self.grace_us = grace_us
        self.stats = SpreadCounters()
        self._watermark = _MIN_TS
        self._symbols: dict[str, _Symbol] = {}
        self._precisions: dict[str, int] = {}
        for symbol, precision in (precisions or {}).items():
            self._precisions[symbol] = precision if isinstance(precision, int) else precision[0]
        self._restored = dict(last_emitted or {})
        self._emitted: dict[tuple[str, int], int] = dict(self._restored)
        self._next_offset: dict[int, int] = {}

    # -- input ---------------------------------------------------------------------------------------

    def set_precision(self, symbol: str, price_precision: int) -> None:
        self._precisions[symbol] = price_precision
        state = self._symbols.get(symbol)
        if state is not None:
            state.dp = min(max(state.dp, price_precision), INTERNAL_SCALE)

    def add_ticker(
        self, record: Record, partition: int | None = None, offset: int | None = None
    ) -> SampleResult:
        return self.add_sample(sample_from_ticker(record), partition, offset)

    def add_book_top(
        self, record: Record, partition: int | None = None, offset: int | None = None
    ) -> SampleResult:
        return self.add_sample(sample_from_book_top(record), partition, offset)

    def add_sample(
        self, sample: SpreadSample, partition: int | None = None, offset: int | None = None
    ) -> SampleResult:
        """Apply one sample. Raises ValueError on unreadable prices, before touching any state."""
        value: _Value | None = None
        decimals = 0
        if sample.bid is not None and sample.ask is not None:
            if not (sample.bid.isascii() and sample.ask.isascii()):  # to_fixed would take "１"
                raise ValueError(f"{sample.symbol}: non-ASCII decimal text")
            bid = to_fixed(sample.bid, INTERNAL_SCALE)
            ask = to_fixed(sample.ask, INTERNAL_SCALE)
            if bid <= 0 or ask <= 0:
                raise ValueError(f"{sample.symbol}: bid {sample.bid!r} / ask {sample.ask!r} out of range")
            value = (ask - bid, ask + bid)
            decimals = max(text_decimals(sample.bid), text_decimals(sample.ask))
        if partition is not None and offset is not None:
            self._next_offset[partition] = max(self._next_offset.get(partition, 0), offset + 1)

        symbol, ts = sample.symbol, sample.ts
        state = self._symbol(symbol)
        if ts < state.last_ts:
            # The spread is a step function in time: an older sample cannot be inserted afterwards.
            self.stats.out_of_order += 1
            return SampleResult([], out_of_order=True)
        self.stats.samples += 1
        state.dp = min(max(state.dp, decimals), INTERNAL_SCALE)
        watermark = max(self._watermark, state.last_ts)
        closed: list[SpreadStats] = []
        late: list[int] = []
        replayed: list[int] = []
        for interval in self.intervals_s:
            window = state.windows.get(interval)
            if window is not None and ts >= window.end:
                del state.windows[interval]
                window.hold(state.value, window.end)
                stats = self._finish(symbol, interval, state, window)
                if stats is not None:
                    closed.append(stats)
                window = None
            if window is None:
                length = interval * _US
                start = ts - ts % length
                end = start + length
                if end <= state.restored.get(interval, _MIN_TS):
                    replayed.append(interval)
                    continue
                if end + self.grace_us <= watermark:
                    late.append(interval)
                    key = (symbol, interval)
                    self.stats.late[key] = self.stats.late.get(key, 0) + 1
                    continue
                window = state.windows[interval] = _Window(start, end, max(start, state.last_ts))
                window.origin_offset = state.value_offset if state.value is not None else offset
            window.hold(state.value, ts)
            if value is not None:
                window.see(value)
                window.samples += 1
                if partition is not None:
                    window.partition = partition
                if offset is not None:
                    if window.first_offset is None:
                        window.first_offset = offset
                    window.last_offset = offset
                if window.origin_offset is None:
                    window.origin_offset = offset
        if replayed:
            self.stats.replayed += 1
        state.value = value
        state.last_ts = ts
        state.value_partition = partition
        state.value_offset = offset
        closed.sort(key=_order)
        return SampleResult(closed, False, tuple(late), tuple(replayed))

    def advance(self, watermark_us: int) -> list[SpreadStats]:
        """Move the global watermark (never backwards); close every window with end + grace ≤ it."""
        if watermark_us > self._watermark:
            self._watermark = watermark_us
        closed: list[SpreadStats] = []
        for symbol, state in self._symbols.items():
            limit = max(self._watermark, state.last_ts) - self.grace_us
            for interval in [i for i, w in state.windows.items() if w.end <= limit]:
                window = state.windows.pop(interval)
                window.hold(state.value, window.end)
                stats = self._finish(symbol, interval, state, window)
                if stats is not None:
                    closed.append(stats)
        closed.sort(key=_order)
        return closed

    # -- state for the service -----------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        return self._watermark

    def last_emitted(self) -> dict[tuple[str, int], int]:
        """(symbol, interval_s) → end of the last published (or restored) window."""
        return dict(self._emitted)

    def replay_offsets(self) -> dict[int, int]:
        """Partition → offset to resume from: the earliest sample an open window or a carried spread
        still needs, else the offset after the last record seen."""
        offsets = dict(self._next_offset)

        def need(partition: int | None, offset: int | None) -> None:
            if partition is not None and offset is not None:
                current = offsets.get(partition)
                if current is None or offset < current:
                    offsets[partition] = offset

        for state in self._symbols.values():
            need(state.value_partition, state.value_offset)
            for window in state.windows.values():
                need(
                    window.partition if window.partition is not None else state.value_partition,
                    window.origin_offset,
                )
        return offsets

    # -- internals -----------------------------------------------------------------------------------

    def _symbol(self, symbol: str) -> _Symbol:
        state = self._symbols.get(symbol)
        if state is None:
            state = self._symbols[symbol] = _Symbol(min(self._precisions.get(symbol, 0), INTERNAL_SCALE))
            for interval in self.intervals_s:
                end = self._restored.get((symbol, interval))
                if end is not None:
                    state.restored[interval] = end
        return state

    def _finish(self, symbol: str, interval: int, state: _Symbol, window: _Window) -> SpreadStats | None:
        if window.samples == 0:
            return None  # only unknown samples fell in it: nothing to publish
        self._emitted[(symbol, interval)] = window.end
        self.stats.published += 1
        assert window.open is not None and window.close is not None
        assert window.min is not None and window.max is not None
        assert window.min_bps is not None and window.max_bps is not None
        dp = state.dp
        div = 10 ** (INTERNAL_SCALE - dp)

        def price(value: _Value) -> str:
            return fixed_to_text(value[0] // div, dp)

        def bps(value: _Value) -> str:
            return ratio_text(20000 * value[0], value[1], BPS_DECIMALS)

        if window.covered:
            twa = ratio_text(window.sum_spread, window.covered * 10**INTERNAL_SCALE, dp + TWA_EXTRA_DECIMALS)
            twa_bps = _BPS_CONTEXT.divide(window.sum_bps, Decimal(window.covered))
        else:  # every known sample was replaced within the same µs: the last one stands for the mean
            twa = ratio_text(window.close[0], 10**INTERNAL_SCALE, dp + TWA_EXTRA_DECIMALS)
            twa_bps = _BPS_CONTEXT.divide(Decimal(20000 * window.close[0]), Decimal(window.close[1]))
        return SpreadStats(
            symbol=symbol,
            interval_s=interval,
            start=window.start,
            end=window.end,
            source=self.source,
            open=price(window.open),
            close=price(window.close),
            min=price(window.min),
            max=price(window.max),
            twa=twa,
            open_bps=bps(window.open),
            close_bps=bps(window.close),
            min_bps=bps(window.min_bps),
            max_bps=bps(window.max_bps),
            twa_bps=f"{twa_bps.quantize(_BPS_QUANTUM, rounding=ROUND_HALF_EVEN, context=_BPS_CONTEXT):f}",
            sample_count=window.samples,
            covered_us=window.covered,
            source_partition=window.partition,
            first_offset=window.first_offset,
            last_offset=window.last_offset,
        )


def _order(stats: SpreadStats) -> tuple[int, int, str]:
    return (stats.end, stats.interval_s, stats.symbol)

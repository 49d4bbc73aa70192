"""OHLCV bars from trades, by event time: the pure domain of the `bars` service (no Kafka, no I/O).

Input: decoded `kraken.trade` record dicts (one trade each). Output: `Bar`s, shaped like `kracked.bars`.

Semantics (those of Kraken's `ohlc` channel, reference §2.3):
* a bar covers the half-open interval [start, end) of `ts_event` (Kraken's trade time), start aligned to
  a multiple of the interval since the Unix epoch (UTC) — so 1440 min bars start at 00:00 UTC and 10080
  min bars on Thursdays, as epoch multiples do;
* open = price of the first trade, close = price of the last (ordered by (ts_event, trade_id), so the
  result does not depend on arrival order within the grace period), high/low, volume = Σ qty,
  vwap = Σ(price·qty)/Σ qty, trade_count; plus buy/sell volume by taker side (a side other than
  `buy`/`sell` counts in `volume` only), first/last trade id and first/last source offset;
* like Kraken, an interval without trades has NO bar (not an empty one).

Exactness: prices and quantities are fixed-point ints with `INTERNAL_SCALE` decimals; sums are exact.
Output text has the symbol's decimals: the pair precision when known (`precisions`), raised to the most
decimals seen in the trades' text, so every value is rendered exactly. VWAP is the only rounded value:
`ratio_text` rounds it half-even to price decimals + `VWAP_EXTRA_DECIMALS` (4) — one rounding, from the
exact ratio of two integers (no float, no intermediate Decimal rounding).

Closing: a bar closes when `end + grace ≤ watermark`, where the watermark of a symbol is the larger of
its newest trade time and the global watermark given to `advance()` (the service drives it from
heartbeats or the wall clock, so bars of quiet symbols close too). A trade whose bar would already be
closed is LATE: it is not added, and is reported (`TradeResult.late`, `stats.late`), never silently lost.
Trades whose `trade_id` is not above the symbol's last one are duplicates (e.g. the `trade` snapshot
after a reconnect repeats recent trades): skipped and counted.

Restart (no bar emitted twice, none lost): bars are emitted in end order per symbol and interval, so the
end of the last emitted bar per (symbol, interval) — `last_emitted`, a constructor argument the service
restores — marks everything already published. The service commits `replay_offsets()` (per partition,
the first offset any open bar still needs) instead of its read position; after a restart it replays
from there: trades of already emitted bars are skipped (`TradeResult.replayed`), open bars are rebuilt
from all their trades. During the replay it must not `advance()` the watermark past the replayed data
(wall clock), or the rebuilt bars would be late.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from schemas.checksum import fixed_to_text, to_fixed

Record = Mapping[str, Any]

INTERNAL_SCALE = 12  # decimals of internal fixed-point ints (Kraken: price_precision ≤ 10, qty ≤ 8)
VWAP_EXTRA_DECIMALS = 4  # vwap decimals = price decimals + 4
KRAKEN_OHLC_MINUTES = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)  # Kraken's `ohlc` intervals
_SCALE = 10**INTERNAL_SCALE
_US = 1_000_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def ratio_text(numerator: int, denominator: int, decimals: int) -> str:
    """numerator/denominator rounded half-even to `decimals` decimals, as text — exactly.

    The one rounding rule of the derived records (bar vwap, spread means): integer arithmetic on the
    exact ratio, so no float and no double rounding (a Decimal division would first round to the
    context precision, then `quantize` again).
    """
    if denominator == 0:
        raise ZeroDivisionError("ratio_text: zero denominator")
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    scaled = numerator * 10**decimals
    quotient, remainder = divmod(scaled, denominator)  # floor division: 0 ≤ remainder < denominator
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return fixed_to_text(quotient, decimals)


def parse_interval(value: str | int) -> int:
    """Interval in seconds from `60`, `"60"`, `"1s"`, `"5m"`, `"4h"`, `"1d"`, `"1w"` (ValueError otherwise)."""
    if isinstance(value, int):
        seconds = value
    else:
        text = value.strip().lower()
        unit = _UNITS.get(text[-1:]) if text else None
        number = text[:-1] if unit else text
        if not number.isdigit():
            raise ValueError(f"not an interval: {value!r} (e.g. 60, 1s, 5m, 4h, 1d, 1w)")
        seconds = int(number) * (unit or 1)
    if seconds <= 0:
        raise ValueError(f"interval must be positive: {value!r}")
    return seconds


def text_decimals(text: str) -> int:
    """Decimals written in a decimal text ("1873.30" → 2); for exponent forms, the decimals needed."""
    if "e" in text or "E" in text:
        from decimal import Decimal

        exponent = Decimal(text).normalize().as_tuple().exponent
        return max(0, -exponent) if isinstance(exponent, int) else 0
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


@dataclass(frozen=True, slots=True)
class Bar:
    """One closed bar; fields and names as in `kracked.bars` (times in µs since the epoch, UTC)."""

    symbol: str
    interval_s: int
    start: int
    end: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    buy_volume: str
    sell_volume: str
    vwap: str | None
    trade_count: int
    first_trade_id: int | None
    last_trade_id: int | None
    source_partition: int | None
    first_offset: int | None
    last_offset: int | None

    def as_record(self, ts: int) -> dict[str, Any]:
        """The `kracked.bars` record, `ts` = publish time (µs)."""
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["ts"] = ts
        return record


class TradeResult(NamedTuple):
    """Outcome of `BarBuilder.add_trade`."""

    closed: list[Bar]  # bars closed by this trade's event time, in (end, interval) order
    duplicate: bool = False  # trade_id not above the symbol's last one: skipped
    late: tuple[int, ...] = ()  # intervals (s) whose bar for this trade was already closed: not added
    replayed: tuple[int, ...] = ()  # intervals (s) whose bar was emitted before a restart: skipped


@dataclass
class BarStats:
    """Counters since start (for metrics and logs)."""

    trades: int = 0
    duplicates: int = 0
    late: dict[tuple[str, int], int] = field(default_factory=dict)  # (symbol, interval_s) → trades
    replayed: int = 0
    bars: int = 0


class _OpenBar:
    __slots__ = (
        "buy",
        "close",
        "close_key",
        "count",
        "end",
        "first_offset",
        "high",
        "last_offset",
        "low",
        "notional",
        "open",
        "open_key",
        "partition",
        "sell",
        "start",
        "volume",
    )

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.open_key: tuple[int, int] = (0, 0)
        self.close_key: tuple[int, int] = (0, 0)
        self.open = self.close = self.high = self.low = 0
        self.volume = self.buy = self.sell = self.notional = 0
        self.count = 0
        self.partition: int | None = None
        self.first_offset: int | None = None
        self.last_offset: int | None = None

    def add(
        self, key: tuple[int, int], price: int, qty: int, side: str, partition: int | None, offset: int | None
    ) -> None:
        if self.count == 0:
            self.open_key = self.close_key = key
            self.open = self.close = self.high = self.low = price
        else:
            if key < self.open_key:
                self.open_key, self.open = key, price
            if key > self.close_key:
                self.close_key, self.close = key, price
            if price > self.high:
                self.high = price
            elif price < self.low:
                self.low = price
        self.count += 1
        self.volume += qty
        self.notional += price * qty
        if side == "buy":
            self.buy += qty
        elif side == "sell":
            self.sell += qty
        if partition is not None:
            self.partition = partition
        if offset is not None:
            if self.first_offset is None or offset < self.first_offset:
                self.first_offset = offset
            if self.last_offset is None or offset > self.last_offset:
                self.last_offset = offset


class _Symbol:
    __slots__ = ("bars", "max_trade_id", "price_dp", "qty_dp", "restored", "watermark")

    def __init__(self, price_dp: int, qty_dp: int) -> None:
        self.price_dp = price_dp
        self.qty_dp = qty_dp
        self.max_trade_id: int | None = None
        self.watermark = -(2**63)  # newest ts_event of the symbol
        self.bars: dict[int, dict[int, _OpenBar]] = {}  # interval_s → start → open bar
        self.restored: dict[int, int] = {}  # interval_s → end of the last bar emitted before a restart


class BarBuilder:
    """Open bars of every symbol and interval; closes them by event-time watermark.

    `intervals_s`: bar lengths in seconds (any positive value; Kraken's are `KRAKEN_OHLC_MINUTES`).
    `grace_us`: how long after its end a bar still accepts late trades.
    `last_emitted`: (symbol, interval_s) → end (µs) of the last bar published before a restart.
    `precisions`: symbol → (price_precision, qty_precision), the minimum decimals of the output text.
    """

    def __init__(
        self,
        intervals_s: Iterable[int],
        grace_us: int = 0,
        last_emitted: Mapping[tuple[str, int], int] | None = None,
        precisions: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        intervals = sorted(set(intervals_s))
        if not intervals or intervals[0] <= 0:
            raise ValueError(f"intervals must be positive seconds, got {intervals!r}")
        if grace_us < 0:
            raise ValueError("grace_us must not be negative")
        self.intervals_s: tuple[int, ...] = tuple(intervals)
        self.grace_us = grace_us
        self.stats = BarStats()
        self._watermark = -(2**63)
        self._symbols: dict[str, _Symbol] = {}
        self._precisions: dict[str, tuple[int, int]] = dict(precisions or {})
        self._restored = dict(last_emitted or {})
        self._emitted: dict[tuple[str, int], int] = dict(self._restored)
        self._next_offset: dict[int, int] = {}  # partition → offset after the last record seen

    # -- input ---------------------------------------------------------------------------------------

    def set_precision(self, symbol: str, price_precision: int, qty_precision: int) -> None:
        """Pair precision from the instrument channel: the minimum decimals of the symbol's output."""
        self._precisions[symbol] = (price_precision, qty_precision)
        state = self._symbols.get(symbol)
        if state is not None:
            state.price_dp = min(max(state.price_dp, price_precision), INTERNAL_SCALE)
            state.qty_dp = min(max(state.qty_dp, qty_precision), INTERNAL_SCALE)

    def add_trade(
        self, record: Record, partition: int | None = None, offset: int | None = None
    ) -> TradeResult:
        """Add one `kraken.trade` record (its Kafka partition/offset, if known, trace the bar back).

        Raises ValueError on unreadable decimal text, before touching any state (the caller dead-letters).
        """
        symbol = record["symbol"]
        trade_id = record["trade_id"]
        ts = record["ts_event"]
        price_text = record["price"]
        qty_text = record["qty"]
        if not (price_text.isascii() and qty_text.isascii()):  # to_fixed would take "１" (str.isdigit)
            raise ValueError(f"trade {trade_id} of {symbol}: non-ASCII decimal text")
        price = to_fixed(price_text, INTERNAL_SCALE)
        qty = to_fixed(qty_text, INTERNAL_SCALE)
        if price <= 0 or qty < 0:
            raise ValueError(
                f"trade {trade_id} of {symbol}: price {price_text!r} / qty {qty_text!r} out of range"
            )
        if partition is not None and offset is not None:
            self._next_offset[partition] = max(self._next_offset.get(partition, 0), offset + 1)

        state = self._symbol(symbol)
        if state.max_trade_id is not None and trade_id <= state.max_trade_id:
            self.stats.duplicates += 1
            return TradeResult([], duplicate=True)
        state.max_trade_id = trade_id
        self.stats.trades += 1
        # Output decimals only grow, capped by the internal scale (to_fixed refused any excess digit).
        state.price_dp = min(max(state.price_dp, text_decimals(price_text)), INTERNAL_SCALE)
        state.qty_dp = min(max(state.qty_dp, text_decimals(qty_text)), INTERNAL_SCALE)

        watermark = max(self._watermark, state.watermark)
        grace = self.grace_us
        key = (ts, trade_id)
        late: list[int] = []
        replayed: list[int] = []
        for interval in self.intervals_s:
            length = interval * _US
            start = ts - ts % length
            end = start + length
            if end <= state.restored.get(interval, -(2**63)):
                replayed.append(interval)
                continue
            if end + grace <= watermark:
                late.append(interval)
                counter = (symbol, interval)
                self.stats.late[counter] = self.stats.late.get(counter, 0) + 1
                continue
            open_bars = state.bars.setdefault(interval, {})
            bar = open_bars.get(start)
            if bar is None:
                bar = open_bars[start] = _OpenBar(start, end)
            bar.add(key, price, qty, record["side"], partition, offset)
        if replayed:
            self.stats.replayed += 1
        if ts > state.watermark:
            state.watermark = ts
        closed = self._close(symbol, state, max(self._watermark, state.watermark))
        closed.sort(key=_bar_order)
        return TradeResult(closed, False, tuple(late), tuple(replayed))

    def advance(self, watermark_us: int) -> list[Bar]:
        """Move the global watermark (never backwards) and close every bar with end + grace ≤ it.

        Returns the closed bars ordered by (end, interval, symbol): per symbol and interval in end order.
        """
        if watermark_us > self._watermark:
            self._watermark = watermark_us
        closed: list[Bar] = []
        for symbol, state in self._symbols.items():
            closed.extend(self._close(symbol, state, max(self._watermark, state.watermark)))
        closed.sort(key=_bar_order)
        return closed

    # -- state for the service -----------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        return self._watermark

    def last_emitted(self) -> dict[tuple[str, int], int]:
        """(symbol, interval_s) → end of the last bar emitted (or restored): persist it for a restart."""
        return dict(self._emitted)

    def replay_offsets(self) -> dict[int, int]:
        """Partition → offset to resume from so that no open bar loses a trade (commit these).

        The smallest first offset of the open bars with trades from that partition, else the offset
        after the last record seen. Partitions never seen are absent.
        """
        offsets = dict(self._next_offset)
        for state in self._symbols.values():
            for open_bars in state.bars.values():
                for bar in open_bars.values():
                    if bar.partition is not None and bar.first_offset is not None:
                        current = offsets.get(bar.partition)
                        if current is None or bar.first_offset < current:
                            offsets[bar.partition] = bar.first_offset
        return offsets

    def open_bar_count(self) -> int:
        return sum(len(bars) for state in self._symbols.values() for bars in state.bars.values())

    # -- internals -----------------------------------------------------------------------------------

    def _symbol(self, symbol: str) -> _Symbol:
        state = self._symbols.get(symbol)
        if state is None:
            pp, qp = self._precisions.get(symbol, (0, 0))
            state = self._symbols[symbol] = _Symbol(min(pp, INTERNAL_SCALE), min(qp, INTERNAL_SCALE))
            for interval in self.intervals_s:
                end = self._restored.get((symbol, interval))
                if end is not None:
                    state.restored[interval] = end
        return state

    def _close(self, symbol: str, state: _Symbol, watermark: int) -> list[Bar]:
        limit = watermark - self.grace_us  # close bars with end ≤ limit
        closed: list[Bar] = []
        for interval, open_bars in state.bars.items():
            if not open_bars:
                continue
            done = [start for start, bar in open_bars.items() if bar.end <= limit]
            for start in sorted(done):
                bar = open_bars.pop(start)
                closed.append(self._emit(symbol, interval, state, bar))
        return closed

    def _emit(self, symbol: str, interval: int, state: _Symbol, bar: _OpenBar) -> Bar:
        pdp, qdp = state.price_dp, state.qty_dp
        pdiv = 10 ** (INTERNAL_SCALE - pdp)
        qdiv = 10 ** (INTERNAL_SCALE - qdp)
        self._emitted[(symbol, interval)] = max(self._emitted.get((symbol, interval), bar.end), bar.end)
        self.stats.bars += 1
        return Bar(
            symbol=symbol,
            interval_s=interval,
            start=bar.start,
            end=bar.end,
            open=fixed_to_text(bar.open // pdiv, pdp),
            high=fixed_to_text(bar.high // pdiv, pdp),
            low=fixed_to_text(bar.low // pdiv, pdp),
            close=fixed_to_text(bar.close // pdiv, pdp),
            volume=fixed_to_text(bar.volume // qdiv, qdp),
            buy_volume=fixed_to_text(bar.buy // qdiv, qdp),
            sell_volume=fixed_to_text(bar.sell // qdiv, qdp),
            # notional has 2·scale decimals, volume 1·scale: vwap = notional / (volume · 10^scale)
            vwap=ratio_text(bar.notional, bar.volume * _SCALE, pdp + VWAP_EXTRA_DECIMALS)
            if bar.volume
            else None,
            trade_count=bar.count,
            first_trade_id=bar.open_key[1],
            last_trade_id=bar.close_key[1],
            source_partition=bar.partition,
            first_offset=bar.first_offset,
            last_offset=bar.last_offset,
        )


def _bar_order(bar: Bar) -> tuple[int, int, str]:
    return (bar.end, bar.interval_s, bar.symbol)

"""Integrity checks of the feed, pure (no I/O): book checksums, book epochs and trade-id gaps.

* `L2Book` / `L3Book`: a per-symbol book kept in fixed-point integers only to verify Kraken's CRC32
  after every message (reference §4, §5): snapshot replaces, updates apply in array order (qty 0 /
  `delete` removes), each side is truncated to the subscribed depth after the whole message, then
  the top 10 levels are hashed. The consumers keep their own faster books; this one only has to be
  exact and cheap for small depths (sorted price lists with `bisect`, a cached checksum piece per
  level, so a checksum is one join and one CRC32).
* `BookVerifier`: the books of one channel, with each symbol's precision, epoch and validity. After a
  mismatch the book stays invalid (verdict `None`) until the next snapshot, which the caller obtains by
  resubscribing that symbol (reference §4.7).
* `EpochClock`: epoch = max(previous + 1, ts_recv of the snapshot in µs). It increases at every
  snapshot within a run, and across restarts as long as the wall clock does not go back by more than
  the time between two snapshots: a restarted connector has no memory yet its first epoch (a current
  timestamp) is above every epoch it wrote before.
* `NativeBookVerifier`: `BookVerifier("book")` in native code (`kracked_native.L2Verifier`, Rust, in
  native/src/l2.rs), which also takes a whole raw `book` frame (parse, verify, Avro-encode) without the
  interpreter: the connector's hot path. The pure-Python `BookVerifier` above stays the reference the
  tests hold it to (same verdicts, byte-identical records) and verifies `level3`.
* `TradeSequence`: Kraken's `trade_id` is a sequence per book (reference §2.4): a jump is a gap; trades
  of a snapshot that were already seen (the 50-trade history resent after a resubscribe) are
  duplicates to skip.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from schemas.checksum import CHECKSUM_DEPTH, crc32, to_fixed

try:
    from kracked_native import L2Verifier
except ImportError as exc:  # pragma: no cover - an install without the native extension
    raise ImportError(
        "kracked_native (native/, Rust) is not installed: run `make install` (needs cargo) "
        "or `pip install ./native`"
    ) from exc

# --------------------------------------------------------------------------------------------- precision


class Precision(NamedTuple):
    price: int
    qty: int
    inferred: bool = False  # True = guessed from the digits of a snapshot (no instrument data)


def infer_precision(values: Iterable[tuple[str, str]]) -> Precision:
    """Largest number of decimals among the prices and among the quantities of a snapshot.

    Fallback only, when the instrument channel gave no precision for a pair: it is right when Kraken's
    text carries every trailing zero (the docs say it does), wrong for float-mangled text.
    """
    pp = qp = 0
    for price, qty in values:
        pp = max(pp, _decimals(price))
        qp = max(qp, _decimals(qty))
    return Precision(pp, qp, True)


def _decimals(text: str) -> int:
    if "e" in text or "E" in text:
        from decimal import Decimal

        exp = Decimal(text).normalize().as_tuple().exponent
        return max(0, -exp) if isinstance(exp, int) else 0
    _, dot, frac = text.partition(".")
    return len(frac) if dot else 0


# --------------------------------------------------------------------------------------------- L2


_ZEROS = ["0" * i for i in range(64)]


def checksum_digits(text: str, precision: int) -> str:
    """Kraken's checksum rendering of a decimal text (reference §4.2): `precision` decimals, no '.', no
    leading zeros; "" for zero. The same as `str(to_fixed(text, precision))` (and "" for 0), without
    going through an int for the usual case: the text of a JSON number with at most `precision`
    decimals. Exponents, signs and extra decimals take the exact `to_fixed` path."""
    i = text.find(".") if text.isascii() else -2  # non-ASCII: to_fixed refuses it
    if i == -1:
        if text.isdigit():
            return (text + _ZEROS[precision]).lstrip("0")
    elif i >= 0:
        n = len(text) - i - 1
        body = text[:i] + text[i + 1 :]
        if n <= precision and body.isdigit():
            return (body + _ZEROS[precision - n]).lstrip("0")
    value = to_fixed(text, precision)
    if value < 0:
        raise ValueError(f"negative price or quantity {text!r}")
    return str(value) if value else ""


class _Side:
    """One side of an L2 book: sorted keys (price, or -price for bids so best is first), the checksum
    piece of each level (price digits + qty digits) and the joined top-10 string, kept until the side
    changes (an update usually touches one side, so the other side's string is reused)."""

    __slots__ = ("keys", "pieces", "qty", "top")

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.qty: dict[int, str] = {}  # qty checksum digits
        self.pieces: dict[int, str] = {}
        self.top: str | None = ""


_CACHE_LIMIT = 20_000
DigitCaches = tuple[dict[str, tuple[int, str]], dict[str, str]]


class L2Book:
    """Aggregated book of one symbol at one subscribed depth, in fixed-point integers.

    The checksum digits of each price and qty text are cached per book (bounded): a book keeps
    seeing the same prices and many of the same quantities, and a dict lookup is several times
    cheaper than rendering the text again.
    """

    __slots__ = ("_prices", "_qtys", "asks", "bids", "depth", "pp", "qp")

    def __init__(self, depth: int, precision: Precision, caches: DigitCaches | None = None) -> None:
        self.depth = depth
        self.pp = precision.price
        self.qp = precision.qty
        self.bids = _Side()
        self.asks = _Side()
        # text -> (fixed-point price, digits) and text -> digits; shared across the symbol's snapshots
        self._prices, self._qtys = caches if caches is not None else ({}, {})

    def _price(self, text: str) -> tuple[int, str]:
        digits = checksum_digits(text, self.pp)
        if len(self._prices) >= _CACHE_LIMIT:
            self._prices.clear()
        value = self._prices[text] = (int(digits or "0"), digits)
        return value

    def _qty(self, text: str) -> str:
        digits = checksum_digits(text, self.qp)
        if len(self._qtys) >= _CACHE_LIMIT:
            self._qtys.clear()
        self._qtys[text] = digits
        return digits

    def apply(self, bids: Sequence[Mapping[str, str]], asks: Sequence[Mapping[str, str]]) -> None:
        """Apply `{price, qty}` levels in array order (qty 0 deletes, last wins), then truncate to depth.

        ValueError when a value is not a non-negative decimal within the pair's precision.
        """
        if bids:
            self._apply(bids, self.bids, True)
        if asks:
            self._apply(asks, self.asks, False)

    def _apply(self, levels: Sequence[Mapping[str, str]], side: _Side, negate: bool) -> None:
        prices, qty_digits = self._prices, self._qtys
        side.top = None
        keys, qtys, pieces = side.keys, side.qty, side.pieces
        for level in levels:
            text = level["price"]
            cached = prices.get(text)
            value, price = cached if cached is not None else self._price(text)
            text = level["qty"]
            qty = qty_digits.get(text)
            if qty is None:
                qty = self._qty(text)
            key = -value if negate else value
            if not qty:
                # deleting a level we do not hold is ignored (reference §5.9)
                if qtys.pop(key, None) is not None:
                    del pieces[key]
                    del keys[bisect_left(keys, key)]
                continue
            if key not in qtys:
                insort(keys, key)
            qtys[key] = qty
            pieces[key] = price + qty
        if len(keys) > self.depth:
            # levels pushed out of the subscribed depth get no delete from Kraken (reference §5.3)
            for key in keys[self.depth :]:
                del qtys[key]
                del pieces[key]
            del keys[self.depth :]

    def checksum(self) -> int:
        a, b = self.asks, self.bids
        if a.top is None:
            pieces = a.pieces
            a.top = "".join([pieces[k] for k in a.keys[:CHECKSUM_DEPTH]])
        if b.top is None:
            pieces = b.pieces
            b.top = "".join([pieces[k] for k in b.keys[:CHECKSUM_DEPTH]])
        return zlib.crc32((a.top + b.top).encode())

    def top(self, n: int = CHECKSUM_DEPTH) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(bids best first, asks best first) as fixed-point (price, qty) pairs (tests, debugging)."""
        bids = [(-k, int(self.bids.qty[k])) for k in self.bids.keys[:n]]
        asks = [(k, int(self.asks.qty[k])) for k in self.asks.keys[:n]]
        return bids, asks


# --------------------------------------------------------------------------------------------- L3


class _L3Side:
    __slots__ = ("keys", "levels")

    def __init__(self) -> None:
        self.keys: list[int] = []
        # key -> {order_id: (price, qty)}; dicts keep insertion order = queue order
        self.levels: dict[int, dict[str, tuple[int, int]]] = {}


class L3Book:
    """Order-by-order book of one symbol (reference §3.5, §4.4), in fixed-point integers."""

    __slots__ = ("asks", "bids", "depth", "orders", "pp", "qp")

    def __init__(self, depth: int, precision: Precision) -> None:
        self.depth = depth
        self.pp = precision.price
        self.qp = precision.qty
        self.bids = _L3Side()
        self.asks = _L3Side()
        self.orders: dict[str, tuple[_L3Side, int]] = {}  # order_id -> (side, key)

    def apply(
        self,
        bids: Sequence[tuple[str, str, str, str | None, str | None]],
        asks: Sequence[tuple[str, str, str, str | None, str | None]],
    ) -> None:
        """Apply (order_id, limit_price, order_qty, event, timestamp) items in order, then truncate.

        Snapshot items have no event (= add). `add` appends to the level's queue, `modify` changes the
        remaining qty in place (or moves the order when its price changed), `delete` removes it.
        """
        for items, side, sign in ((bids, self.bids, -1), (asks, self.asks, 1)):
            for order_id, price_text, qty_text, event, _ in items:
                if event == "delete":
                    self._remove(order_id)
                    continue
                if event is not None and event != "add" and event != "modify":
                    raise ValueError(f"unknown level3 event {event!r}")
                price = to_fixed(price_text, self.pp)
                qty = to_fixed(qty_text, self.qp)
                key = sign * price
                where = self.orders.get(order_id)
                if where is not None and where[0] is side and where[1] == key:
                    if qty == 0:
                        self._remove(order_id)
                    else:
                        side.levels[key][order_id] = (price, qty)  # keeps queue position
                    continue
                if where is not None:
                    self._remove(order_id)
                if qty == 0:
                    continue
                level = side.levels.get(key)
                if level is None:
                    level = side.levels[key] = {}
                    insort(side.keys, key)
                level[order_id] = (price, qty)
                self.orders[order_id] = (side, key)
            if len(side.keys) > self.depth:
                # "truncate to subscribed depth after each update" (reference §3.5): no delete events
                for key in side.keys[self.depth :]:
                    for order_id in side.levels.pop(key):
                        del self.orders[order_id]
                del side.keys[self.depth :]

    def _remove(self, order_id: str) -> None:
        where = self.orders.pop(order_id, None)
        if where is None:
            return
        side, key = where
        level = side.levels[key]
        del level[order_id]
        if not level:
            del side.levels[key]
            del side.keys[bisect_left(side.keys, key)]

    def checksum(self) -> int:
        parts: list[str] = []
        for side in (self.asks, self.bids):
            for key in side.keys[:CHECKSUM_DEPTH]:
                for price, qty in side.levels[key].values():
                    parts.append(f"{price}{qty}")
        return crc32("".join(parts))


# --------------------------------------------------------------------------------------------- epochs


class EpochClock:
    """Per-key book epoch: max(previous + 1, ts_recv µs) at every snapshot (see module docstring)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, key: str, ts_recv: int) -> int:
        epoch = max(self._last.get(key, 0) + 1, ts_recv)
        self._last[key] = epoch
        return epoch

    def current(self, key: str) -> int | None:
        return self._last.get(key)


# --------------------------------------------------------------------------------------------- books


class Verdict(NamedTuple):
    epoch: int
    ok: bool | None  # None = could not verify (no book, invalid after a mismatch, unknown precision)
    computed: int | None  # own checksum (set on snapshots and mismatches; None on verified updates)
    snapshot: bool
    precision: Precision


@dataclass
class _BookState:
    book: L2Book | L3Book | None  # None = invalid until the next snapshot
    epoch: int
    precision: Precision
    ok: Verdict  # the verdict of a verified update, reused (no allocation per message)


class BookVerifier:
    """Books of one channel (`book` or `level3`) for every symbol: epochs and checksum verdicts."""

    def __init__(self, channel: str, depth: int, epochs: EpochClock | None = None) -> None:
        if channel not in ("book", "level3"):
            raise ValueError(f"no book for channel {channel!r}")
        self.channel = channel
        self.depth = depth
        self.epochs = epochs or EpochClock()
        self._states: dict[str, _BookState] = {}
        self._caches: dict[tuple[str, Precision], DigitCaches] = {}
        self._l3 = channel == "level3"

    def verify(
        self,
        symbol: str,
        snapshot: bool,
        bids: Sequence[Any],
        asks: Sequence[Any],
        checksum: int,
        ts_recv: int,
        precision: Precision | None,
    ) -> Verdict:
        """Apply one message of `symbol` and compare with Kraken's checksum.

        `bids`/`asks` are `{price, qty}` levels for `book`, `L3Order` tuples for `level3`.
        A ValueError from a value that does not fit the precision invalidates the book (verdict None).
        """
        state = self._states.get(symbol)
        if not snapshot and state is not None and state.book is not None:
            # the usual case: an update to a valid book
            try:
                state.book.apply(bids, asks)
                computed = state.book.checksum()
            except ValueError:
                state.book = None
                return Verdict(state.epoch, None, None, False, state.precision)
            if computed == checksum:
                return state.ok
            return self._mismatch(state, computed, False)
        if snapshot:
            if precision is None:
                precision = infer_precision(self._price_qty(bids, asks))
            epoch = self.epochs.next(f"{self.channel}:{symbol}", ts_recv)
            book: L2Book | L3Book
            if self._l3:
                book = L3Book(self.depth, precision)
            else:
                caches = self._caches.get((symbol, precision))
                if caches is None:
                    caches = self._caches[(symbol, precision)] = ({}, {})
                book = L2Book(self.depth, precision, caches)
            ok_verdict = Verdict(epoch, True, None, False, precision)
            state = self._states[symbol] = _BookState(book, epoch, precision, ok_verdict)
        elif state is None:
            # an update before any snapshot (cannot happen with Kraken): nothing to verify against
            precision = precision or Precision(0, 0, True)
            epoch = self.epochs.current(f"{self.channel}:{symbol}") or 0
            return Verdict(epoch, None, None, False, precision)
        book_or_none = state.book
        if book_or_none is None:
            return Verdict(state.epoch, None, None, snapshot, state.precision)
        try:
            book_or_none.apply(bids, asks)
            computed = book_or_none.checksum()
        except ValueError:
            state.book = None
            return Verdict(state.epoch, None, None, snapshot, state.precision)
        if computed == checksum:
            return state.ok if not snapshot else Verdict(state.epoch, True, computed, True, state.precision)
        return self._mismatch(state, computed, snapshot)

    @staticmethod
    def _mismatch(state: _BookState, computed: int, snapshot: bool) -> Verdict:
        state.book = None
        if state.precision.inferred:
            # our precision is a guess: a difference proves nothing, so no false mismatch (and no
            # resubscribe loop); the book is just left unverified until the next snapshot
            return Verdict(state.epoch, None, computed, snapshot, state.precision)
        return Verdict(state.epoch, False, computed, snapshot, state.precision)

    def invalidate(self, symbol: str) -> None:
        """Forget the book (e.g. the connection dropped): updates are unverified until a snapshot."""
        state = self._states.get(symbol)
        if state is not None:
            state.book = None

    def valid(self, symbol: str) -> bool:
        state = self._states.get(symbol)
        return state is not None and state.book is not None

    def epoch(self, symbol: str) -> int | None:
        state = self._states.get(symbol)
        return None if state is None else state.epoch

    def _price_qty(self, bids: Sequence[Any], asks: Sequence[Any]) -> list[tuple[str, str]]:
        if self._l3:
            return [(o[1], o[2]) for o in (*bids, *asks)]
        return [(lv["price"], lv["qty"]) for lv in (*bids, *asks)]


class NativeBookVerifier:
    """The `book` channel's books in native code, with `BookVerifier`'s interface (see module doc).

    `feed(raw, ts_recv)` is the hot path: None when the frame is not a `book` frame it takes whole
    (then the caller parses it and calls `verify`, so the book state lives in one place), else
    `(symbol, kraken.book value in the Confluent wire format, ok)`; `last()` is that frame's
    whole `Verdict` (read on a mismatch only).
    """

    def __init__(self, depth: int, header: bytes = b"") -> None:
        self.channel = "book"
        self.depth = depth
        self._native = native = L2Verifier(depth, header)
        self.feed = native.feed
        self.invalidate = native.invalidate
        self.valid = native.valid
        self.epoch = native.epoch

    def last(self) -> Verdict | None:
        """The whole verdict of the last frame `feed` took."""
        got = self._native.last_verdict()
        return None if got is None else self._verdict(got)

    @staticmethod
    def _verdict(got: tuple[int, bool | None, int | None, bool, int, int, bool]) -> Verdict:
        epoch, ok, computed, snapshot, pp, qp, inferred = got
        return Verdict(epoch, ok, computed, snapshot, Precision(pp, qp, inferred))

    def set_header(self, header: bytes) -> None:
        """The Confluent header (magic byte + schema id) of `kraken.book` values `feed` returns."""
        self._native.set_header(header)

    def set_precision(self, symbol: str, precision: Precision) -> None:
        """The pair's precision from instrument data (used from the symbol's next snapshot)."""
        self._native.set_precision(symbol, precision.price, precision.qty)

    def verify(
        self,
        symbol: str,
        snapshot: bool,
        bids: Sequence[Any],
        asks: Sequence[Any],
        checksum: int,
        ts_recv: int,
        precision: Precision | None,
    ) -> Verdict:
        """As `BookVerifier.verify` for `{price, qty}` levels."""
        if precision is not None and not precision.inferred:
            self._native.set_precision(symbol, precision.price, precision.qty)
        return self._verdict(self._native.verify(symbol, snapshot, bids, asks, checksum, ts_recv))


# --------------------------------------------------------------------------------------------- trades


class TradeCheck(NamedTuple):
    publish: bool  # False = already seen (a resent snapshot trade)
    expected: int | None  # set when this trade_id jumps over missing ids (a gap) or goes back
    last: int | None  # last trade_id seen before this one


class TradeSequence:
    """Last trade_id per symbol: gaps, and duplicates of resent snapshot history."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def check(self, symbol: str, trade_id: int, snapshot: bool) -> TradeCheck | None:
        """None for the usual case (next id in sequence, publish); a TradeCheck otherwise."""
        last = self._last.get(symbol)
        if last is not None and trade_id == last + 1:
            self._last[symbol] = trade_id
            return None
        if last is None:
            self._last[symbol] = trade_id
            return None
        if trade_id <= last:
            if snapshot:
                return TradeCheck(False, None, last)
            # ids went back on a live update: the exchange (or simulator) restarted its sequence;
            # publish it and report the discontinuity
            self._last[symbol] = trade_id
            return TradeCheck(True, last + 1, last)
        self._last[symbol] = trade_id
        return TradeCheck(True, last + 1, last)

    def last(self, symbol: str) -> int | None:
        return self._last.get(symbol)

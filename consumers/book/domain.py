"""Order-book rebuild and checksum verification: the pure domain of the `book` service (no Kafka, no I/O).

Input: decoded `kraken.book` (L2) or `kraken.level3` (L3) record dicts. `BookKeeper.process(record)` keeps
one book per symbol, applies the record by Kraken's rules and verifies Kraken's CRC32 on EVERY record,
returning a `BookResult` (verdict, validity, epoch, transition). The service turns results into
`kracked.book.top` records (`BookKeeper.top`) and transitions into `kracked.continuity` events.

Validity rules (reference §4.7, §5 and the record contract's `epoch`):
* a symbol has no book until its first snapshot: updates before it (consumption started mid-stream)
  are ignored and reported `WAITING_FOR_SNAPSHOT`;
* a checksum mismatch makes the book invalid until the next snapshot (Kraken has no sequence numbers,
  a fresh snapshot is the only recovery);
* an update whose `epoch` differs from the book's (it belongs to a snapshot this book was not built
  from) cannot be applied: the book becomes invalid until a snapshot arrives;
* a book is valid only right after its own checksum matched Kraken's: never unverified.

Speed (target ≥ 200k updates/s on one core with a check on every update; `bench/bench_book.py`):
no Decimal, no float. A side is three parallel lists sorted by an int key (price as a fixed-point int,
negated for bids so index 0 is the best level on both sides): keys, quantities and each level's checksum
piece `str(price) + str(qty)`. One `bisect` finds a level and its rank (a change touches the checksum iff
its index < 10). Price text → (int, str) goes through a bounded cache (prices repeat); a quantity is only
ever needed as checksum text, so it is turned into that text directly (digits without '.', leading zeros
stripped, padded to the precision, which equals `str(to_fixed(qty, qp))`). Each side caches its joined
top-10 text and the asks their CRC32, so an update re-joins only the side whose top 10 changed.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from schemas.checksum import CHECKSUM_DEPTH, fixed_to_text, l3_checksum, to_fixed

Record = Mapping[str, Any]

_POW10 = tuple(10**i for i in range(40))
_ZEROS = tuple("0" * i for i in range(40))
_MAX_PRECISION = 30  # Kraken's precisions are 0..10; a larger one is a broken record
_PARSE_CACHE_MAX = 200_000  # entries per precision; cleared when full (bounded memory, see DESIGN §4)
_TOP = CHECKSUM_DEPTH  # Kraken checksums the top 10 levels whatever the subscribed depth (reference §4.1)


class Verdict(StrEnum):
    """What happened to one record."""

    OK = "ok"  # applied; our CRC32 equals Kraken's
    MISMATCH = "checksum_mismatch"  # applied; CRC32 differs → book invalid until the next snapshot
    WAITING_FOR_SNAPSHOT = "waiting_for_snapshot"  # update before any snapshot of the symbol: ignored
    EPOCH_MISMATCH = "epoch_mismatch"  # update of another epoch than the book's: ignored, book invalid
    INVALID_BOOK = "invalid_book"  # update ignored: the book is invalid until the next snapshot
    BAD_RECORD = "bad_record"  # unreadable levels (bad decimal text, unknown type): ignored, book invalid


class Transition(StrEnum):
    """Change of a symbol's validity caused by one record (for continuity events)."""

    NONE = "none"
    BECAME_VALID = "became_valid"  # first verified snapshot of the symbol
    BECAME_INVALID = "became_invalid"  # a valid book stopped being trustworthy (see the verdict why)
    RECOVERED = "recovered"  # valid again after having been invalid (a new snapshot verified)


class BookResult(NamedTuple):
    """Outcome of `BookKeeper.process` for one record. Results of the OK path are shared, immutable."""

    symbol: str
    verdict: Verdict
    valid: bool  # the symbol's book is verified and usable after this record
    epoch: int | None  # epoch of the symbol's current book (None before any snapshot)
    transition: Transition
    top_changed: bool  # the top 10 levels of either side changed (always True for a snapshot)
    expected_checksum: int | None = None  # Kraken's checksum (set on mismatch only)
    computed_checksum: int | None = None  # ours (set on mismatch only)
    error: str | None = None  # why a record was BAD_RECORD


class Level(NamedTuple):
    """One aggregated price level as exact decimal text at the pair precision."""

    price: str
    qty: str


class BookTop(NamedTuple):
    """Top N levels of a symbol's book, best first, as decimal text."""

    symbol: str
    kind: str  # "l2" or "l3"
    epoch: int
    valid: bool
    checksum: int  # our CRC32 of the current book (equals Kraken's when valid)
    price_precision: int
    qty_precision: int
    bids: list[Level]
    asks: list[Level]


ParseCaches = dict[int, dict[str, tuple[int, str]]]  # precision → {text: (fixed-point int, str(int))}


def _strict_text(text: str, precision: int) -> str:
    """`str(to_fixed(text, precision))` for a book quantity, "" for zero (ValueError on bad/negative text)."""
    value = _strict(text, precision)
    return str(value) if value else ""


def _strict(text: str, precision: int) -> int:
    """`to_fixed`, refusing negative values (a book never holds one) and non-ASCII digits ("١")."""
    if not text.isascii():
        raise ValueError(f"not a decimal: {text!r}")
    value = to_fixed(text, precision)
    if value < 0:
        raise ValueError(f"negative book value {text!r}")
    return value


def _parse(text: str, precision: int) -> int:
    """Decimal text → fixed-point int: fast path for plain ASCII digits[.digits] (what Kraken sends, maybe
    float-round-tripped like "4.0"); anything else (exponent, excess digits, junk) via strict `to_fixed`."""
    whole, _, frac = text.partition(".")
    n = len(frac)
    digits = whole + frac
    if n <= precision and digits.isascii() and digits.isdigit():
        return int(digits) * _POW10[precision - n]
    return _strict(text, precision)


_RENDER_CACHES: dict[int, dict[int, str]] = {}


def _renderer(precision: int) -> Callable[[int], str]:
    """`fixed_to_text(value, precision)` with a bounded int→text cache (a top-N is rendered per change,
    and the same prices and sizes recur in every one)."""
    cache = _RENDER_CACHES.get(precision)
    if cache is None:
        cache = _RENDER_CACHES[precision] = {}

    def render(value: int) -> str:
        text = cache.get(value)
        if text is None:
            if len(cache) >= _PARSE_CACHE_MAX:
                cache.clear()
            text = cache[value] = fixed_to_text(value, precision)
        return text

    return render


class Book(Protocol):
    """What `BookKeeper` needs from an L2 or L3 book."""

    kind: str
    symbol: str
    epoch: int
    depth: int
    price_precision: int
    qty_precision: int

    def apply_snapshot(self, bids: Sequence[Record], asks: Sequence[Record]) -> None: ...

    def apply_update(self, bids: Sequence[Record], asks: Sequence[Record]) -> bool: ...

    def checksum(self) -> int: ...

    def top(self, n: int) -> tuple[list[Level], list[Level]]: ...


class _BookHead:
    """What an L2 and an L3 book share: identity, epoch, depth, the pair's precisions, the parse cache."""

    __slots__ = ("_pcache", "depth", "epoch", "price_precision", "qty_precision", "symbol")

    def __init__(
        self,
        symbol: str,
        epoch: int,
        depth: int,
        price_precision: int,
        qty_precision: int,
        caches: ParseCaches | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"book depth must be positive, got {depth}")
        if not (0 <= price_precision <= _MAX_PRECISION and 0 <= qty_precision <= _MAX_PRECISION):
            raise ValueError(f"precisions out of range: price {price_precision}, qty {qty_precision}")
        caches = {} if caches is None else caches
        self.symbol = symbol
        self.epoch = epoch
        self.depth = depth
        self.price_precision = price_precision
        self.qty_precision = qty_precision
        self._pcache = caches.setdefault(price_precision, {})


class L2Book(_BookHead):
    """Aggregated price levels of one symbol (Kraken `book` channel), fixed-point, truncated to depth.

    Each side is three parallel lists sorted by key: keys (ask key = price, bid key = -price, so index 0
    is the best level on both sides and `[:10]` is the checksum order, reference §4.1), quantities, and
    the level's checksum piece `str(price) + str(qty)`. `bisect` on the small key list finds a level and
    its rank at once: a change is in the top 10 iff its index < 10.
    """

    kind = "l2"
    __slots__ = (
        "_a_blob",
        "_a_crc",
        "_a_keys",
        "_a_pieces",
        "_a_qtys",
        "_b_blob",
        "_b_keys",
        "_b_pieces",
        "_b_qtys",
        "_crc",
    )

    def __init__(
        self,
        symbol: str,
        epoch: int,
        depth: int,
        price_precision: int,
        qty_precision: int,
        caches: ParseCaches | None = None,
    ) -> None:
        super().__init__(symbol, epoch, depth, price_precision, qty_precision, caches)
        self._a_keys: list[int] = []
        self._a_qtys: list[str] = []  # str(fixed-point qty): the checksum text, "" never stored
        self._a_pieces: list[str] = []
        self._b_keys: list[int] = []
        self._b_qtys: list[str] = []
        self._b_pieces: list[str] = []
        self._a_blob: bytes | None = None  # joined top-10 checksum text of the side; None = stale
        self._b_blob: bytes | None = None
        self._a_crc = 0  # CRC32 of the asks blob alone (the bids continue from it)
        self._crc: int | None = None

    # -- applying ------------------------------------------------------------------------------------

    def apply_snapshot(self, bids: Sequence[Record], asks: Sequence[Record]) -> None:
        """Replace the whole book (reference §5 rule 1); levels go through the update path, order is free."""
        for side in (self._a_keys, self._a_qtys, self._a_pieces, self._b_keys, self._b_qtys, self._b_pieces):
            side.clear()
        self._apply_side(asks, self._a_keys, self._a_qtys, self._a_pieces, 1)
        self._apply_side(bids, self._b_keys, self._b_qtys, self._b_pieces, -1)
        self._truncate()
        self._a_blob = self._b_blob = None
        self._crc = None

    def apply_update(self, bids: Sequence[Record], asks: Sequence[Record]) -> bool:
        """Apply one update message (reference §5 rules 2-3); True when a top-10 level changed."""
        changed = False
        if asks and self._apply_side(asks, self._a_keys, self._a_qtys, self._a_pieces, 1):
            self._a_blob = None
            changed = True
        if bids and self._apply_side(bids, self._b_keys, self._b_qtys, self._b_pieces, -1):
            self._b_blob = None
            changed = True
        # Truncate only after the whole message: Kraken refills a removed level with the next one in the
        # same message and never sends deletes for levels that fall out of scope (reference §5 rules 3, 5).
        depth = self.depth
        if len(self._a_keys) > depth or len(self._b_keys) > depth:
            self._truncate()
            if depth < _TOP:  # only then can truncation reach into the checksummed levels
                self._a_blob = self._b_blob = None
                changed = True
        if changed:
            self._crc = None
        return changed

    def _apply_side(
        self, levels: Sequence[Record], keys: list[int], qtys: list[str], pieces: list[str], sign: int
    ) -> bool:
        """Absolute qty per level, 0 deletes, in array order (the same price twice: last wins)."""
        # Hot loop, parsing inlined. Prices repeat a lot: a text → (int, str(int)) cache. Sizes rarely
        # repeat and are only needed as checksum text: plain ASCII digits with at most `qp` decimals
        # become the digits without '.', leading zeros stripped, padded to `qp` decimals — exactly
        # `str(to_fixed(qty, qp))` — with no int at all; anything else goes through strict `to_fixed`.
        pcache = self._pcache
        qp = self.qty_precision
        touched = False
        for level in levels:
            text = level["price"]
            hit = pcache.get(text)
            price, ptext = hit if hit is not None else self._parse_price(text)
            text = level["qty"]
            whole, _, frac = text.partition(".")
            n = len(frac)
            qtext = whole + frac
            if n <= qp and qtext.isascii() and qtext.isdigit():
                qtext = qtext.lstrip("0")
                if qtext and n < qp:
                    qtext += _ZEROS[qp - n]
            else:
                qtext = _strict_text(text, qp)
            key = price * sign
            i = bisect_left(keys, key)
            found = i < len(keys) and keys[i] == key
            if qtext:
                if found:
                    qtys[i] = qtext
                    pieces[i] = ptext + qtext
                else:
                    keys.insert(i, key)
                    qtys.insert(i, qtext)
                    pieces.insert(i, ptext + qtext)
            elif found:
                del keys[i]
                del qtys[i]
                del pieces[i]
            else:
                continue  # deleting an unknown level is ignored (reference §5 rule 9)
            if i < _TOP:
                touched = True
        return touched

    def _parse_price(self, text: str) -> tuple[int, str]:
        pcache = self._pcache
        price = _parse(text, self.price_precision)
        if len(pcache) >= _PARSE_CACHE_MAX:
            pcache.clear()
        hit = pcache[text] = (price, str(price))
        return hit

    def _truncate(self) -> None:
        depth = self.depth
        for side in (self._a_keys, self._a_qtys, self._a_pieces, self._b_keys, self._b_qtys, self._b_pieces):
            del side[depth:]

    # -- reading -------------------------------------------------------------------------------------

    def checksum(self) -> int:
        """Kraken's CRC32 of the current book (top 10 asks low→high, then top 10 bids high→low)."""
        crc = self._crc
        if crc is not None:
            return crc
        if self._a_blob is None:
            self._a_blob = "".join(self._a_pieces[:_TOP]).encode("ascii")
            self._a_crc = zlib.crc32(self._a_blob)
        if self._b_blob is None:
            self._b_blob = "".join(self._b_pieces[:_TOP]).encode("ascii")
        crc = self._crc = zlib.crc32(self._b_blob, self._a_crc) & 0xFFFFFFFF
        return crc

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """Best `n` bids (high→low) and asks (low→high) as exact decimal text."""
        price, qty = _renderer(self.price_precision), _renderer(self.qty_precision)
        bids = [Level(price(-k), qty(int(q))) for k, q in zip(self._b_keys[:n], self._b_qtys, strict=False)]
        asks = [Level(price(k), qty(int(q))) for k, q in zip(self._a_keys[:n], self._a_qtys, strict=False)]
        return bids, asks

    def levels(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """All (price, qty) fixed-point levels, best first: (bids high→low, asks low→high)."""
        return (
            [(-k, int(q)) for k, q in zip(self._b_keys, self._b_qtys, strict=True)],
            [(k, int(q)) for k, q in zip(self._a_keys, self._a_qtys, strict=True)],
        )


class L3Book(_BookHead):
    """Order-by-order book of one symbol (Kraken `level3`), queue order kept per price level.

    A level is a dict order_id → qty: Python dicts keep insertion order, which is the queue order; an
    `add` appends, a `modify` keeps the order's place (a partial fill keeps priority), a `delete` removes
    it (reference §3.5). Keys are signed like `L2Book` (bids negated).
    """

    kind = "l3"
    __slots__ = (
        "_crc",
        "_keys",
        "_levels",
        "_orders",
    )

    def __init__(
        self,
        symbol: str,
        epoch: int,
        depth: int,
        price_precision: int,
        qty_precision: int,
        caches: ParseCaches | None = None,
    ) -> None:
        super().__init__(symbol, epoch, depth, price_precision, qty_precision, caches)
        # index 0: asks (sign 1), index 1: bids (sign -1)
        self._keys: tuple[list[int], list[int]] = ([], [])
        self._levels: tuple[dict[int, dict[str, int]], dict[int, dict[str, int]]] = ({}, {})
        self._orders: dict[str, tuple[int, int]] = {}  # order_id → (side index, key)
        self._crc: int | None = None

    def apply_snapshot(self, bids: Sequence[Record], asks: Sequence[Record]) -> None:
        """Replace the whole book with the snapshot's orders (queue order within a level as sent)."""
        for keys in self._keys:
            keys.clear()
        for levels in self._levels:
            levels.clear()
        self._orders.clear()
        for side, orders in ((0, asks), (1, bids)):
            for order in orders:
                self._add(side, order["order_id"], order["limit_price"], order["order_qty"])
        self._truncate()
        self._crc = None

    def apply_update(self, bids: Sequence[Record], asks: Sequence[Record]) -> bool:
        """Apply every order event of the message in order, then truncate to depth (reference §3.5)."""
        for side, events in ((0, asks), (1, bids)):
            for order in events:
                event = order.get("event")
                order_id = order["order_id"]
                if event == "delete":
                    self._remove(order_id)
                elif event == "modify":
                    self._modify(side, order_id, order["limit_price"], order["order_qty"])
                elif event in ("add", None):
                    # An add of a known id takes a new queue place (remove first); None: treat as add.
                    self._remove(order_id)
                    self._add(side, order_id, order["limit_price"], order["order_qty"])
                else:
                    raise ValueError(f"unknown level3 event {event!r}")
        self._truncate()
        self._crc = None
        return True

    def _price(self, text: str) -> int:
        pcache = self._pcache
        hit = pcache.get(text)
        if hit is None:
            value = _parse(text, self.price_precision)
            if len(pcache) >= _PARSE_CACHE_MAX:
                pcache.clear()
            hit = pcache[text] = (value, str(value))
        return hit[0]

    def _add(self, side: int, order_id: str, price_text: str, qty_text: str) -> None:
        qty = _parse(qty_text, self.qty_precision)
        if qty == 0:
            return
        key = self._price(price_text) * (1 if side == 0 else -1)
        levels = self._levels[side]
        level = levels.get(key)
        if level is None:
            level = levels[key] = {}
            insort(self._keys[side], key)
        level[order_id] = qty
        self._orders[order_id] = (side, key)

    def _modify(self, side: int, order_id: str, price_text: str, qty_text: str) -> None:
        where = self._orders.get(order_id)
        if where is None:
            return  # unknown order (outside our depth or never seen): the checksum will tell
        key = self._price(price_text) * (1 if side == 0 else -1)
        qty = _parse(qty_text, self.qty_precision)
        if where != (side, key) or qty == 0:
            # A price change loses queue priority; qty 0 means nothing is left.
            self._remove(order_id)
            if qty:
                self._add(side, order_id, price_text, qty_text)
            return
        self._levels[side][key][order_id] = qty  # in place: keeps the queue position

    def _remove(self, order_id: str) -> None:
        where = self._orders.pop(order_id, None)
        if where is None:
            return
        side, key = where
        levels = self._levels[side]
        level = levels[key]
        del level[order_id]
        if not level:
            del levels[key]
            keys = self._keys[side]
            del keys[bisect_left(keys, key)]

    def _truncate(self) -> None:
        # No delete events come for levels that fall out of the subscribed depth (reference §3.5).
        depth = self.depth
        for side in (0, 1):
            keys = self._keys[side]
            if len(keys) > depth:
                levels = self._levels[side]
                for key in keys[depth:]:
                    for order_id in levels.pop(key):
                        del self._orders[order_id]
                del keys[depth:]

    def checksum(self) -> int:
        """Kraken's L3 CRC32: every order of the top 10 levels per side in queue order (reference §4.4)."""
        if self._crc is None:
            asks = [[(k, q) for q in self._levels[0][k].values()] for k in self._keys[0][:_TOP]]
            bids = [[(-k, q) for q in self._levels[1][k].values()] for k in self._keys[1][:_TOP]]
            self._crc = l3_checksum(asks, bids)
        return self._crc

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """Best `n` levels per side, orders aggregated per price (sum of visible qty)."""
        pp, qp = self.price_precision, self.qty_precision
        bids = [
            Level(fixed_to_text(-k, pp), fixed_to_text(sum(self._levels[1][k].values()), qp))
            for k in self._keys[1][:n]
        ]
        asks = [
            Level(fixed_to_text(k, pp), fixed_to_text(sum(self._levels[0][k].values()), qp))
            for k in self._keys[0][:n]
        ]
        return bids, asks

    def orders(self, side: str) -> list[tuple[int, list[tuple[str, int]]]]:
        """Levels of `side` ("bids"/"asks"), best first: (price, [(order_id, qty) in queue order])."""
        index = 1 if side == "bids" else 0
        sign = -1 if index else 1
        levels = self._levels[index]
        return [(k * sign, list(levels[k].items())) for k in self._keys[index]]

    def order_count(self) -> int:
        return len(self._orders)


class _State:
    """Per-symbol state of the keeper."""

    __slots__ = ("book", "ok_changed", "ok_same", "valid", "was_valid")

    def __init__(self) -> None:
        self.book: Book | None = None
        self.valid = False
        self.was_valid = False  # ever valid before: tells BECAME_VALID from RECOVERED
        self.ok_changed: BookResult | None = None  # shared results of the OK path for the current epoch
        self.ok_same: BookResult | None = None


class BookKeeper:
    """Books of every symbol of one topic (`kraken.book` or `kraken.level3`), verified record by record.

    `process(record)` does not raise on bad level data (decimal text, L3 events, precision): such a record
    is a `BAD_RECORD` verdict that invalidates the symbol's book (its state is unknown after a partial
    apply). Records are expected to have the schema's fields (they were decoded with it).
    """

    def __init__(self, level3: bool = False) -> None:
        self.level3 = level3
        self.kind = "l3" if level3 else "l2"
        self._book_type: type[L2Book] | type[L3Book] = L3Book if level3 else L2Book
        self._states: dict[str, _State] = {}
        self._caches: ParseCaches = {}

    # -- processing ----------------------------------------------------------------------------------

    def process(self, record: Record) -> BookResult:
        """Apply one `kraken.book` / `kraken.level3` record and verify Kraken's checksum."""
        symbol = record["symbol"]
        state = self._states.get(symbol)
        if state is None:
            state = self._states[symbol] = _State()
        kind = record["type"]
        if kind == "update":
            book = state.book
            if book is None:
                return BookResult(symbol, Verdict.WAITING_FOR_SNAPSHOT, False, None, Transition.NONE, False)
            if record["epoch"] != book.epoch:
                # The update belongs to a snapshot this book was not built from (a snapshot record was
                # skipped, e.g. consumption started between it and this update): no valid book.
                return self._invalidate(state, symbol, Verdict.EPOCH_MISMATCH)
            if not state.valid:
                return BookResult(symbol, Verdict.INVALID_BOOK, False, book.epoch, Transition.NONE, False)
            try:
                changed = book.apply_update(record["bids"], record["asks"])
            except (ValueError, KeyError, TypeError) as exc:
                return self._invalidate(state, symbol, Verdict.BAD_RECORD, error=str(exc))
            computed = book.checksum()
            expected = record["checksum"]
            if computed == expected:
                if changed:
                    result = state.ok_changed
                    if result is None:
                        result = state.ok_changed = BookResult(
                            symbol, Verdict.OK, True, book.epoch, Transition.NONE, True
                        )
                else:
                    result = state.ok_same
                    if result is None:
                        result = state.ok_same = BookResult(
                            symbol, Verdict.OK, True, book.epoch, Transition.NONE, False
                        )
                return result
            return self._invalidate(state, symbol, Verdict.MISMATCH, expected, computed)
        if kind == "snapshot":
            return self._snapshot(state, symbol, record)
        return self._invalidate(state, symbol, Verdict.BAD_RECORD, error=f"unknown record type {kind!r}")

    def _snapshot(self, state: _State, symbol: str, record: Record) -> BookResult:
        try:
            book = self._book_type(
                symbol,
                record["epoch"],
                record["depth"],
                record["price_precision"],
                record["qty_precision"],
                self._caches,
            )
            book.apply_snapshot(record["bids"], record["asks"])
        except (ValueError, KeyError, TypeError) as exc:
            state.book = None  # nothing trustworthy left: the next updates wait for a snapshot
            return self._invalidate(state, symbol, Verdict.BAD_RECORD, error=str(exc))
        state.book = book
        state.ok_changed = state.ok_same = None
        computed = book.checksum()
        expected = record["checksum"]
        if computed != expected:
            return self._invalidate(state, symbol, Verdict.MISMATCH, expected, computed)
        if state.valid:
            transition = Transition.NONE
        elif state.was_valid:
            transition = Transition.RECOVERED
        else:
            transition = Transition.BECAME_VALID
        state.valid = state.was_valid = True
        return BookResult(symbol, Verdict.OK, True, book.epoch, transition, True)

    def _invalidate(
        self,
        state: _State,
        symbol: str,
        verdict: Verdict,
        expected: int | None = None,
        computed: int | None = None,
        error: str | None = None,
    ) -> BookResult:
        transition = Transition.BECAME_INVALID if state.valid else Transition.NONE
        state.valid = False
        epoch = state.book.epoch if state.book is not None else None
        return BookResult(symbol, verdict, False, epoch, transition, False, expected, computed, error)

    # -- reading -------------------------------------------------------------------------------------

    def top(self, symbol: str, n: int = 10) -> BookTop | None:
        """Best `n` levels per side of `symbol` as decimal text (None before its first snapshot)."""
        state = self._states.get(symbol)
        if state is None or state.book is None:
            return None
        book = state.book
        bids, asks = book.top(n)
        return BookTop(
            symbol,
            book.kind,
            book.epoch,
            state.valid,
            book.checksum(),
            book.price_precision,
            book.qty_precision,
            bids,
            asks,
        )

    def book(self, symbol: str) -> Book | None:
        state = self._states.get(symbol)
        return None if state is None else state.book

    def is_valid(self, symbol: str) -> bool:
        state = self._states.get(symbol)
        return state is not None and state.valid

    def symbols(self) -> list[str]:
        return sorted(self._states)

    def forget(self, symbol: str) -> None:
        """Drop a symbol's book (e.g. its partition was revoked); its next update waits for a snapshot."""
        self._states.pop(symbol, None)

    def process_all(self, records: Iterable[Record]) -> list[BookResult]:
        return [self.process(r) for r in records]

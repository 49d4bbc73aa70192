"""Pure view state of `kracked dashboard`: what the page shows, built from decoded records.

`DashboardState.apply(topic, record)` folds one record of `kracked.book.top`, `kracked.bars`,
`kracked.spread`, `kracked.orders`, `kracked.continuity` or `kraken.trade` into per-symbol views
(latest book top, bars per interval and spread series bounded to the last N, order markers, last
trade) and page-wide sections (symbol list, feed health, per-strategy order table). Every structure
is bounded, so a dashboard left open for days holds the same memory as after an hour.

`collect(now_us)` turns what changed into push messages, at most `max_push_hz` per symbol (and for
the page-wide sections): a burst of 50 book tops in a second becomes a few pushes carrying the
latest state, so the page never falls behind. `snapshot(symbol)` / `global_snapshot()` give the full
state to a page that connects or that had to drop messages.

Prices stay exact decimal strings end to end; only the order ledger does arithmetic, in `Decimal`
(fills x average price, realised P&L by average cost), never in float. No Kafka or network import
here: the service feeds it from Kafka, the tests from lists.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any

from sortedcontainers import SortedDict

from schemas.topics import Topic

GLOBAL = ""  # coalescer key of the page-wide sections (symbol list, health, orders)

_CTX = Context(prec=60)  # wide enough that qty x price of any Kraken pair is exact
_ZERO = Decimal(0)

# Continuity events that change what we believe about a connection (DESIGN §3.3).
CONNECTION_STATES: dict[str, str] = {
    "connect": "up",
    "reconnect": "up",
    "resubscribe": "up",
    "disconnect": "down",
    "stale_feed": "stale",
}
# Events that mean data is missing for a while, even without gap_start/gap_end.
GAP_EVENTS = frozenset({"trade_id_gap", "stale_feed"})
# A checksum mismatch makes the book service drop the book and wait for a new snapshot: a resync.
RESYNC_EVENTS = frozenset({"checksum_mismatch"})
# Statuses of kracked.orders whose record replaces an earlier one of the same signal id.
DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Limits:
    """Bounds on everything the view keeps (per symbol unless said otherwise)."""

    bars_per_interval: int = 500
    spread_points: int = 600
    markers: int = 300
    recent_events: int = 50  # page-wide
    recent_orders: int = 50  # page-wide
    max_orders: int = 20_000  # page-wide: signal ids remembered for status and fill accounting


def to_decimal(text: str | None) -> Decimal | None:
    """Exact Decimal of a decimal string from a record; None for null or unusable text."""
    if text is None:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        return None
    return value if value.is_finite() else None


def decimal_text(value: Decimal, places: int = 10) -> str:
    """Plain text of a derived amount: exact when it has at most `places` decimals, else rounded
    half-even (an average cost can divide into a non-terminating fraction)."""
    if value.is_zero():
        return "0"
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN, context=_CTX)
    return format(value.normalize(_CTX), "f")


class Coalescer:
    """At most `max_per_s` pushes per key; between pushes the key only stays marked (latest wins)."""

    def __init__(self, max_per_s: float) -> None:
        if max_per_s <= 0:
            raise ValueError("max pushes per second must be > 0")
        self.min_gap_us = int(1_000_000 / max_per_s)
        self._dirty: set[str] = set()
        self._last: dict[str, int] = {}

    def mark(self, key: str) -> None:
        self._dirty.add(key)

    def pending(self) -> bool:
        return bool(self._dirty)

    def due(self, now_us: int) -> list[str]:
        """Marked keys whose last push is at least the minimum gap ago; they count as pushed now."""
        out = []
        for key in sorted(self._dirty):
            last = self._last.get(key)
            if last is None or now_us - last >= self.min_gap_us:
                out.append(key)
        for key in out:
            self._dirty.discard(key)
            self._last[key] = now_us
        return out


# ---------------------------------------------------------------------------------------------------
# record -> display dicts (exact strings kept as received)


def book_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The page's form of a `kracked.book.top` record, with cumulative depth and the verdict."""
    bids = [(lv["price"], lv["qty"]) for lv in record.get("bids") or ()]
    asks = [(lv["price"], lv["qty"]) for lv in record.get("asks") or ()]
    valid, ok = bool(record.get("valid")), bool(record.get("checksum_ok"))
    if valid and ok:
        verdict, reason = "verified", "own CRC32 equals Kraken's checksum"
    elif not ok:
        verdict, reason = "unverified", "checksum mismatch: waiting for a new snapshot"
    else:
        verdict, reason = "unverified", "book not valid (no verified snapshot yet)"
    best_bid = to_decimal(bids[0][0]) if bids else None
    best_ask = to_decimal(asks[0][0]) if asks else None
    spread = None
    if best_bid is not None and best_ask is not None:
        spread = decimal_text(best_ask - best_bid, 20)
    return {
        "kind": record.get("kind"),
        "depth": record.get("depth"),
        "bids": _ladder(bids),
        "asks": _ladder(asks),
        "spread": spread,
        "checksum": record.get("checksum"),
        "checksum_ok": ok,
        "valid": valid,
        "verdict": verdict,
        "verdict_reason": reason,
        "epoch": record.get("epoch"),
        "ts": record.get("ts"),
        "ts_event": record.get("ts_event"),
        "ts_recv": record.get("ts_recv"),
        "source": f"{record.get('source_topic')}[{record.get('source_partition')}]@{record.get('source_offset')}",
    }


def _ladder(levels: list[tuple[str, str]]) -> list[list[str]]:
    """[[price, qty, cumulative qty], ...] with the cumulative sum exact."""
    out: list[list[str]] = []
    total = _ZERO
    for price, qty in levels:
        q = to_decimal(qty)
        if q is not None:
            total = _CTX.add(total, q)
        out.append([price, qty, decimal_text(total, 20)])
    return out


def bar_view(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("open", "high", "low", "close", "volume", "buy_volume", "sell_volume", "vwap")
    return {
        "i": int(record["interval_s"]),
        "start": int(record["start"]),
        "end": int(record["end"]),
        **{k: record.get(k) for k in keys},
        "trades": record.get("trade_count", 0),
        "last_trade_id": record.get("last_trade_id"),
        "ts": record.get("ts"),
    }


def spread_view(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("open", "close", "min", "max", "twa", "open_bps", "close_bps", "min_bps", "max_bps", "twa_bps")
    return {
        "i": int(record["interval_s"]),
        "start": int(record["start"]),
        "end": int(record["end"]),
        "source": record.get("source"),
        **{k: record.get(k) for k in keys},
        "samples": record.get("sample_count", 0),
    }


def order_view(record: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "strategy",
        "symbol",
        "side",
        "order_type",
        "quantity",
        "limit_price",
        "trigger_price",
        "status",
        "reason",
        "mode",
        "exchange_order_id",
        "filled_qty",
        "avg_price",
        "ts_signal",
        "ts_done",
    )
    return {"id": record["signal_id"], **{k: record.get(k) for k in keys}}


def marker_view(order: Mapping[str, Any], effect: str | None) -> dict[str, Any]:
    """A point on the price chart: where (time, best known price) and how to draw it."""
    price = order.get("avg_price") or order.get("limit_price") or order.get("trigger_price")
    return {
        "id": order["id"],
        "ts": order.get("ts_done") or order.get("ts_signal"),
        "price": price,  # None: the page puts it on the close of the bar at that time
        "side": order.get("side"),
        "status": order.get("status"),
        "mode": order.get("mode"),
        "live": order.get("mode") == "live",
        "strategy": order.get("strategy"),
        "qty": order.get("filled_qty") or order.get("quantity"),
        "effect": effect,
    }


# ---------------------------------------------------------------------------------------------------
# orders: per-strategy table with P&L by average cost


@dataclass
class StrategyRow:
    """Orders of one strategy on one symbol: counts by status and the position built by fills."""

    strategy: str
    symbol: str
    statuses: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    fills: int = 0
    filled_qty: Decimal = _ZERO  # gross, both sides
    notional: Decimal = _ZERO  # gross filled qty x price, quote currency
    position: Decimal = _ZERO  # signed base quantity
    cost: Decimal = _ZERO  # signed quote amount of the open position (long: paid, short: received)
    realised: Decimal = _ZERO

    def fill(self, sign: int, qty: Decimal, notional: Decimal) -> str:
        """Apply a fill of `qty` (> 0) worth `notional` on side `sign` (+1 buy, -1 sell); entry or exit.

        Average cost: closing part of a position realises (fill price - average cost) x closed qty;
        what goes past flat opens a new position at the fill price.
        """
        c = _CTX
        self.fills += 1
        self.filled_qty = c.add(self.filled_qty, qty)
        self.notional = c.add(self.notional, notional)
        effect = "entry"
        if self.position.is_zero() or (self.position > 0) == (sign > 0):
            self.position = c.add(self.position, sign * qty)
            self.cost = c.add(self.cost, sign * notional)
            return effect
        effect = "exit"
        open_qty = abs(self.position)
        closed = min(qty, open_qty)
        money = notional if closed == qty else c.divide(c.multiply(notional, closed), qty)
        removed = self.cost if closed == open_qty else c.divide(c.multiply(self.cost, closed), open_qty)
        # long closed by a sell: money received - cost paid; short closed by a buy: received - paid
        self.realised = c.add(self.realised, c.subtract(-removed, sign * money))
        self.position = c.add(self.position, sign * closed)
        self.cost = c.subtract(self.cost, removed)
        rest = c.subtract(qty, closed)
        if rest > 0:
            self.position = c.add(self.position, sign * rest)
            self.cost = c.add(self.cost, sign * c.subtract(notional, money))
        if self.position.is_zero():
            self.cost = _ZERO
        return effect

    def view(self) -> dict[str, Any]:
        avg = None
        if not self.position.is_zero():
            avg = decimal_text(_CTX.divide(self.cost, self.position))
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "orders": sum(self.statuses.values()),
            "statuses": dict(sorted(self.statuses.items())),
            "modes": dict(sorted(self.modes.items())),
            "duplicates": self.duplicates,
            "fills": self.fills,
            "filled_qty": decimal_text(self.filled_qty, 20),
            "notional": decimal_text(self.notional, 20),
            "position": decimal_text(self.position, 20),
            "avg_cost": avg,
            "realised_pnl": decimal_text(self.realised) if self.fills else None,
        }


class OrderLedger:
    """Latest outcome per signal id (the topic is compacted by signal id), fills counted once."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.orders: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.rows: dict[tuple[str, str], StrategyRow] = {}
        self._counted: dict[str, tuple[Decimal, Decimal]] = {}  # signal id -> (qty, notional) counted
        self.recent: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def apply(self, record: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """Fold one kracked.orders record in; returns its order view and the fill's effect (if any)."""
        order = order_view(record)
        sid = order["id"]
        prev = self.orders.get(sid)
        if order["status"] == DUPLICATE:
            # A duplicate replaces the first handling in the compacted topic but nothing was sent:
            # keep the first outcome in the table and count the duplicate beside it.
            row = self._row(order)
            row.duplicates += 1
            if prev is None:
                first = dict(order, status=record.get("prior_status") or DUPLICATE)
                self._store(sid, first)
                row.statuses[first["status"]] += 1
                row.modes[str(first["mode"])] += 1
            self._remember(sid, order)
            return order, None
        if prev is not None:
            old = self._row(prev)
            old.statuses[prev["status"]] -= 1
            old.modes[str(prev["mode"])] -= 1
            old.statuses += Counter()  # drop zero counts
            old.modes += Counter()
        row = self._row(order)
        row.statuses[order["status"]] += 1
        row.modes[str(order["mode"])] += 1
        effect = self._fill(sid, order, row)
        self._store(sid, order)
        self._remember(sid, order)
        return order, effect

    def _fill(self, sid: str, order: Mapping[str, Any], row: StrategyRow) -> str | None:
        qty, price = to_decimal(order.get("filled_qty")), to_decimal(order.get("avg_price"))
        sign = {"buy": 1, "sell": -1}.get(str(order.get("side")))
        if qty is None or price is None or sign is None or qty <= 0:
            return None
        notional = _CTX.multiply(qty, price)
        q0, n0 = self._counted.get(sid, (_ZERO, _ZERO))
        dq = _CTX.subtract(qty, q0)
        if dq <= 0:  # the same fill seen again (or a lookup that went backwards): count it once
            return None
        self._counted[sid] = (qty, notional)
        return row.fill(sign, dq, _CTX.subtract(notional, n0))

    def _row(self, order: Mapping[str, Any]) -> StrategyRow:
        key = (str(order.get("strategy")), str(order.get("symbol")))
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = StrategyRow(*key)
        return row

    def _store(self, sid: str, order: dict[str, Any]) -> None:
        self.orders[sid] = order
        self.orders.move_to_end(sid)
        while len(self.orders) > self.limits.max_orders:
            old, _ = self.orders.popitem(last=False)
            self._counted.pop(old, None)

    def _remember(self, sid: str, order: dict[str, Any]) -> None:
        self.recent[sid] = order
        self.recent.move_to_end(sid)
        while len(self.recent) > self.limits.recent_orders:
            self.recent.popitem(last=False)

    def view(self) -> dict[str, Any]:
        rows = [self.rows[k].view() for k in sorted(self.rows)]
        return {"rows": rows, "recent": list(reversed(self.recent.values()))}


# ---------------------------------------------------------------------------------------------------
# feed health


class Health:
    """Continuity events counted page-wide and per symbol, connection states, consumer lag."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.counts: Counter[str] = Counter()
        self.reconnects = 0
        self.gaps = 0
        self.resyncs = 0
        self.connections: dict[str, dict[str, Any]] = {}
        self.recent: list[dict[str, Any]] = []
        self.lag: dict[str, int] = {}
        self.consumer: dict[str, Any] = {"state": "starting", "detail": "", "records": 0, "undecodable": 0}

    @staticmethod
    def classify(record: Mapping[str, Any]) -> tuple[bool, bool, bool]:
        """(is a reconnect, is a gap, is a checksum resync).

        A gap is a gap event or a record that says where missing data starts (`gap_start`). A
        `gap_end` alone is not one: the connector's first `connect` carries it as the time data
        begins, and `status_change` back to online closes the gap its earlier record opened.
        """
        event = str(record.get("event"))
        gap = event in GAP_EVENTS or record.get("gap_start") is not None
        return event == "reconnect", gap, event in RESYNC_EVENTS

    def apply(self, record: Mapping[str, Any]) -> None:
        event = str(record.get("event"))
        self.counts[event] += 1
        reconnect, gap, resync = self.classify(record)
        self.reconnects += reconnect
        self.gaps += gap
        self.resyncs += resync
        state = CONNECTION_STATES.get(event)
        if state is not None and (record.get("symbol") is None or event != "stale_feed"):
            key = str(record.get("source")) + (f"/{record['channel']}" if record.get("channel") else "")
            self.connections[key] = {"state": state, "since": record.get("ts"), "event": event}
        view = {
            k: record.get(k)
            for k in ("event", "source", "channel", "symbol", "gap_start", "gap_end", "detail", "ts")
        }
        view["gap"], view["resync"] = gap, resync
        self.recent.append(view)
        if len(self.recent) > self.limits.recent_events:
            del self.recent[: len(self.recent) - self.limits.recent_events]

    def view(self) -> dict[str, Any]:
        return {
            "connections": dict(sorted(self.connections.items())),
            "counts": dict(sorted(self.counts.items())),
            "reconnects": self.reconnects,
            "gaps": self.gaps,
            "resyncs": self.resyncs,
            "recent": list(reversed(self.recent)),
            "lag": dict(sorted(self.lag.items())),
            "consumer": dict(self.consumer),
        }


# ---------------------------------------------------------------------------------------------------
# per-symbol view


class SymbolView:
    """Everything the page shows for one symbol, plus what changed since the last push."""

    def __init__(self, symbol: str, limits: Limits) -> None:
        self.symbol = symbol
        self.limits = limits
        self.book: dict[str, Any] | None = None
        self.bars: dict[int, SortedDict] = {}  # interval_s -> start -> bar
        self.spreads: dict[int, SortedDict] = {}
        self.trade: dict[str, Any] | None = None
        self.markers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.health: Counter[str] = Counter()
        self._changed: set[str] = set()  # book, trade, health
        self._bars_changed: set[tuple[int, int]] = set()
        self._spreads_changed: set[tuple[int, int]] = set()
        self._markers_changed: set[str] = set()

    # ---- folding -----------------------------------------------------------------------------
    def set_book(self, record: Mapping[str, Any]) -> None:
        self.book = book_view(record)
        self._changed.add("book")

    def add_bar(self, record: Mapping[str, Any]) -> None:
        bar = bar_view(record)
        if _bounded_put(self.bars, bar, self.limits.bars_per_interval):
            self._bars_changed.add((bar["i"], bar["start"]))
        tid = bar.get("last_trade_id")
        if bar["trades"] and tid is not None:
            # the bar's close is the price of its last trade: use it unless a newer trade is known
            current = self.trade.get("trade_id") if self.trade else None
            if current is None or int(current) < int(tid):
                self.trade = {
                    "price": bar["close"],
                    "qty": None,
                    "side": None,
                    "trade_id": tid,
                    "ts": bar["end"],
                    "from": "bar",
                }
                self._changed.add("trade")

    def add_spread(self, record: Mapping[str, Any]) -> None:
        point = spread_view(record)
        if _bounded_put(self.spreads, point, self.limits.spread_points):
            self._spreads_changed.add((point["i"], point["start"]))

    def set_trade(self, record: Mapping[str, Any]) -> None:
        tid = record.get("trade_id")
        current = self.trade.get("trade_id") if self.trade else None
        if current is not None and tid is not None and int(tid) < int(current):
            return  # an older trade (e.g. the snapshot of recent trades after a resubscribe)
        self.trade = {
            "price": record.get("price"),
            "qty": record.get("qty"),
            "side": record.get("side"),
            "trade_id": tid,
            "ts": record.get("ts_event"),
            "from": "trade",
        }
        self._changed.add("trade")

    def add_marker(self, marker: dict[str, Any]) -> None:
        mid = marker["id"]
        self.markers[mid] = marker
        self.markers.move_to_end(mid)
        self._markers_changed.add(mid)
        while len(self.markers) > self.limits.markers:
            old, _ = self.markers.popitem(last=False)
            self._markers_changed.discard(old)

    def add_continuity(self, record: Mapping[str, Any]) -> None:
        reconnect, gap, resync = Health.classify(record)
        self.health["events"] += 1
        self.health["gaps"] += gap
        self.health["resyncs"] += resync
        self.health["reconnects"] += reconnect
        self.health[f"event:{record.get('event')}"] += 1
        self._changed.add("health")

    # ---- output ------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "type": "symbol",
            "symbol": self.symbol,
            "full": True,
            "book": self.book,
            "trade": self.trade,
            "health": dict(self.health),
            "bars": [bar for series in self.bars.values() for bar in series.values()],
            "spread": [p for series in self.spreads.values() for p in series.values()],
            "markers": list(self.markers.values()),
        }

    def delta(self) -> dict[str, Any] | None:
        """What changed since the last delta (cleared), or None when nothing did."""
        msg: dict[str, Any] = {"type": "symbol", "symbol": self.symbol, "full": False}
        if "book" in self._changed:
            msg["book"] = self.book
        if "trade" in self._changed:
            msg["trade"] = self.trade
        if "health" in self._changed:
            msg["health"] = dict(self.health)
        if self._bars_changed:
            msg["bars"] = _changed_items(self.bars, self._bars_changed)
        if self._spreads_changed:
            msg["spread"] = _changed_items(self.spreads, self._spreads_changed)
        if self._markers_changed:
            msg["markers"] = [self.markers[m] for m in self.markers if m in self._markers_changed]
        self._changed.clear()
        self._bars_changed.clear()
        self._spreads_changed.clear()
        self._markers_changed.clear()
        return msg if len(msg) > 3 else None

    def sizes(self) -> dict[str, int]:
        return {
            "bars": sum(len(s) for s in self.bars.values()),
            "spread": sum(len(s) for s in self.spreads.values()),
            "markers": len(self.markers),
        }


def _bounded_put(series: dict[int, SortedDict], item: dict[str, Any], limit: int) -> bool:
    """Upsert `item` by (interval, start), keeping the newest `limit` per interval; False if too old."""
    by_start = series.get(item["i"])
    if by_start is None:
        by_start = series[item["i"]] = SortedDict()
    start = item["start"]
    if start not in by_start and len(by_start) >= limit and start < by_start.keys()[0]:
        return False  # older than everything kept: outside the window
    by_start[start] = item
    while len(by_start) > limit:
        by_start.popitem(0)
    return True


def _changed_items(series: dict[int, SortedDict], changed: Iterable[tuple[int, int]]) -> list[dict[str, Any]]:
    out = []
    for interval, start in sorted(changed):
        item = series.get(interval, {}).get(start)
        if item is not None:  # may have been trimmed since
            out.append(item)
    return out


# ---------------------------------------------------------------------------------------------------
# the whole page


class DashboardState:
    """All symbol views and the page-wide sections, with coalesced output."""

    def __init__(self, limits: Limits | None = None, max_push_hz: float = 10.0) -> None:
        self.limits = limits or Limits()
        self.views: dict[str, SymbolView] = {}
        self.ledger = OrderLedger(self.limits)
        self.health = Health(self.limits)
        self.coalescer = Coalescer(max_push_hz)
        self._global_changed: set[str] = set()  # symbols, health, orders
        self._records_shown = 0

    def view(self, symbol: str) -> SymbolView:
        view = self.views.get(symbol)
        if view is None:
            view = self.views[symbol] = SymbolView(symbol, self.limits)
            self._mark_global("symbols")
        return view

    def symbols(self) -> list[str]:
        return sorted(self.views)

    # ---- input -------------------------------------------------------------------------------
    def apply(self, topic: Topic, record: Mapping[str, Any]) -> None:
        """Fold one decoded record of `topic` in (records of other topics are ignored)."""
        if topic is Topic.BOOK_TOP:
            self._symbol(record).set_book(record)
        elif topic is Topic.BARS:
            self._symbol(record).add_bar(record)
        elif topic is Topic.SPREAD:
            self._symbol(record).add_spread(record)
        elif topic is Topic.TRADE:
            self._symbol(record).set_trade(record)
        elif topic is Topic.ORDERS:
            order, effect = self.ledger.apply(record)
            self._mark_global("orders")
            if order["status"] != DUPLICATE:
                self._symbol(record).add_marker(marker_view(order, effect))
        elif topic is Topic.CONTINUITY:
            self.health.apply(record)
            self._mark_global("health")
            if record.get("symbol"):
                self._symbol(record).add_continuity(record)

    def _symbol(self, record: Mapping[str, Any]) -> SymbolView:
        symbol = str(record["symbol"])
        self.coalescer.mark(symbol)
        return self.view(symbol)

    def _mark_global(self, section: str) -> None:
        self._global_changed.add(section)
        self.coalescer.mark(GLOBAL)

    def set_lag(self, lag: Mapping[str, int]) -> None:
        """New lag figures (the reader calls this about once a second); the record counters ride along."""
        records = self.health.consumer["records"]
        if dict(lag) != self.health.lag or records != self._records_shown:
            self.health.lag = dict(lag)
            self._records_shown = records
            self._mark_global("health")

    def set_consumer(self, state: str, detail: str = "") -> None:
        c = self.health.consumer
        if (c["state"], c["detail"]) != (state, detail):
            c["state"], c["detail"] = state, detail
            self._mark_global("health")

    def count_records(self, n: int, undecodable: int = 0) -> None:
        """Counters shown in the health panel; they ride along with the next health push."""
        self.health.consumer["records"] += n
        self.health.consumer["undecodable"] += undecodable
        if undecodable:
            self._mark_global("health")

    # ---- output ------------------------------------------------------------------------------
    def collect(self, now_us: int) -> list[tuple[str, dict[str, Any]]]:
        """(key, message) pairs that are due: key is a symbol, or GLOBAL for page-wide messages."""
        out: list[tuple[str, dict[str, Any]]] = []
        for key in self.coalescer.due(now_us):
            if key == GLOBAL:
                msg = self._global_message(self._global_changed)
                self._global_changed.clear()
                if msg is not None:
                    out.append((GLOBAL, msg))
            else:
                view = self.views.get(key)
                delta = view.delta() if view is not None else None
                if delta is not None:
                    out.append((key, delta))
        return out

    def pending(self) -> bool:
        return self.coalescer.pending()

    def snapshot(self, symbol: str) -> dict[str, Any] | None:
        view = self.views.get(symbol)
        return view.snapshot() if view is not None else None

    def global_snapshot(self) -> dict[str, Any]:
        return {
            "type": "global",
            "symbols": self.symbols(),
            "health": self.health.view(),
            "orders": self.ledger.view(),
        }

    def _global_message(self, sections: set[str]) -> dict[str, Any] | None:
        if not sections:
            return None
        msg: dict[str, Any] = {"type": "global"}
        if "symbols" in sections:
            msg["symbols"] = self.symbols()
        if "health" in sections:
            msg["health"] = self.health.view()
        if "orders" in sections:
            msg["orders"] = self.ledger.view()
        return msg

    def sizes(self) -> dict[str, Any]:
        """How much the view holds (bounded: used by tests and the /state endpoint)."""
        return {
            "symbols": len(self.views),
            "orders": len(self.ledger.orders),
            "recent_events": len(self.health.recent),
            "per_symbol": {s: v.sizes() for s, v in sorted(self.views.items())},
        }

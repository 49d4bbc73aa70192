"""The simulator's order book: order-by-order (level3) price levels in fixed-point integers.

One book per symbol is the single truth: L2 `book` levels are the sum of the level's orders, so the
L2 and L3 feeds always agree. A side keeps its price keys in a SortedList (bids stored negated, so
rank 0 is always the best price) for O(log n) rank queries: every subscribed depth sees exactly the
top `depth` levels. The diff functions turn one market event's changes into what a subscriber of a
given depth must receive, following Kraken's rules (reference §5 for L2, §3.5 for L3): changes inside
the subscribed depth are sent, levels that scroll into the depth are sent in full (L2: the level, L3:
an `add` per order), levels pushed out are not sent (the client truncates), qty 0 / `delete` removes.

Each level also caches its checksum fragment `str(price) + str(qty)`: Kraken's checksum text of a
level is exactly the two scaled integers (reference §4.2, as in `schemas.checksum.checksum_string`),
so the per-event CRC32 costs one join over 20 cached strings.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from sortedcontainers import SortedList

from schemas.checksum import l2_checksum, l3_checksum


class Order:
    """A resting order; `oid` is a per-symbol counter, rendered as a Kraken-style id only when sent."""

    __slots__ = ("oid", "qty", "ts_ns")

    def __init__(self, oid: int, qty: int, ts_ns: int) -> None:
        self.oid = oid
        self.qty = qty
        self.ts_ns = ts_ns


class Level:
    __slots__ = ("frag", "orders", "price", "qty")

    def __init__(self, price: int) -> None:
        self.price = price
        self.qty = 0
        self.frag = ""
        self.orders: list[Order] = []


# One L3 event as sent: (event, oid, price, qty, ts_ns). event is "add" | "modify" | "delete".
L3Event = tuple[str, int, int, int, int]


class BookSide:
    """One side of the book. `touched` records, per event, whether a changed price existed before."""

    __slots__ = ("is_bid", "keys", "l2_changes", "l3_events", "levels", "sign", "touched")

    def __init__(self, is_bid: bool) -> None:
        self.is_bid = is_bid
        self.sign = -1 if is_bid else 1
        self.keys = SortedList()  # sort key = sign * price, so index 0 is the best level
        self.levels: dict[int, Level] = {}
        self.touched: dict[int, bool] = {}
        self.l2_changes: list[tuple[int, int]] = []
        self.l3_events: list[L3Event] = []

    def __len__(self) -> int:
        return len(self.levels)

    def reset_changes(self) -> None:
        self.touched = {}
        self.l2_changes = []
        self.l3_events = []

    def head_keys(self, n: int) -> list[int]:
        """Sort keys of the best `n` levels. Reads SortedList's first sublist directly when it is long
        enough (it almost always is: the hot path of every event), else slices the public way."""
        lists = self.keys._lists
        if lists and len(lists[0]) >= n:
            return list(lists[0][:n])
        return list(self.keys.islice(0, n))

    def price_at(self, rank: int) -> int:
        return int(self.keys[rank]) * self.sign

    def best(self) -> Level | None:
        lists = self.keys._lists
        return self.levels[self.sign * lists[0][0]] if lists else None

    def worst(self) -> Level | None:
        lists = self.keys._lists
        return self.levels[self.sign * lists[-1][-1]] if lists else None

    def rank(self, price: int) -> int:
        return int(self.keys.bisect_left(self.sign * price))

    def edge_key(self, depth: int) -> int | None:
        """Sort key of the depth-th best level (None if the side holds fewer than `depth` levels)."""
        lists = self.keys._lists
        if lists and len(lists[0]) >= depth:
            return int(lists[0][depth - 1])
        return int(self.keys[depth - 1]) if len(self.keys) >= depth else None

    def top(self, n: int) -> list[Level]:
        levels, sign = self.levels, self.sign
        return [levels[sign * k] for k in self.head_keys(n)]

    def checksum_text(self) -> str:
        """This side's part of the checksum string: top 10 levels, best first."""
        levels, sign = self.levels, self.sign
        return "".join([levels[sign * k].frag for k in self.head_keys(10)])

    # --- mutations (each one records the L2 change and the L3 event) ---------------------------

    def add_order(self, price: int, order: Order) -> None:
        levels = self.levels
        level = levels.get(price)
        if price not in self.touched:
            self.touched[price] = level is not None
        if level is None:
            level = Level(price)
            levels[price] = level
            self.keys.add(self.sign * price)
        level.orders.append(order)
        level.qty += order.qty
        level.frag = f"{price}{level.qty}"
        self.l2_changes.append((price, level.qty))
        self.l3_events.append(("add", order.oid, price, order.qty, order.ts_ns))

    def reduce_order(self, level: Level, index: int, new_qty: int, ts_ns: int) -> None:
        """Set an order's remaining qty (0 deletes the order, and the level once empty)."""
        price = level.price
        if price not in self.touched:
            self.touched[price] = True
        order = level.orders[index]
        level.qty -= order.qty - new_qty
        if new_qty > 0:
            order.qty = new_qty
            self.l3_events.append(("modify", order.oid, price, new_qty, ts_ns))
        else:
            del level.orders[index]
            self.l3_events.append(("delete", order.oid, price, order.qty, ts_ns))
        if not level.orders:
            del self.levels[price]
            self.keys.remove(self.sign * price)
            self.l2_changes.append((price, 0))
        else:
            level.frag = f"{price}{level.qty}"
            self.l2_changes.append((price, level.qty))

    # --- per-depth views ------------------------------------------------------------------------

    def _new_in_top(self, edge_key: int | None, depth: int) -> list[Level]:
        """Levels inside the top `depth` now that a subscriber of that depth did not hold before."""
        out: list[Level] = []
        levels, sign, keys = self.levels, self.sign, self.keys
        if edge_key is not None:
            # Levels from beyond the old edge that scrolled in: only possible if the edge moved out.
            new_edge = self.edge_key(depth)
            if new_edge is None or new_edge > edge_key:
                for k in keys.islice(keys.bisect_right(edge_key), depth):
                    out.append(levels[sign * k])
        for price, existed in self.touched.items():
            if existed or price not in levels:
                continue
            key = sign * price
            if (edge_key is None or key <= edge_key) and keys.bisect_left(key) < depth:
                out.append(levels[price])
        return out

    def l2_diff(self, edge_key: int | None, depth: int) -> list[tuple[int, int]]:
        """(price, qty) entries for a depth-`depth` subscriber; qty 0 deletes (reference §5)."""
        touched, sign = self.touched, self.sign
        if edge_key is None:
            out = [(p, q) for p, q in self.l2_changes if touched[p]]
        else:
            out = [(p, q) for p, q in self.l2_changes if touched[p] and sign * p <= edge_key]
        for lv in self._new_in_top(edge_key, depth):
            out.append((lv.price, lv.qty))
        return out

    def l3_diff(self, edge_key: int | None, depth: int) -> list[L3Event]:
        """Order events for a depth-`depth` level3 subscriber (reference §3.5)."""
        touched, sign = self.touched, self.sign
        out = [
            ev for ev in self.l3_events if touched[ev[2]] and (edge_key is None or sign * ev[2] <= edge_key)
        ]
        for lv in self._new_in_top(edge_key, depth):
            out.extend(("add", o.oid, lv.price, o.qty, o.ts_ns) for o in lv.orders)
        return out


class Book:
    """Both sides of one symbol's book."""

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(is_bid=True)
        self.asks = BookSide(is_bid=False)

    def reset_changes(self) -> None:
        self.bids.reset_changes()
        self.asks.reset_changes()

    def l2_checksum(self) -> int:
        """Kraken's CRC32 over the top 10 levels per side (reference §4.1), from the cached fragments.

        Equal to `schemas.checksum.l2_checksum` of the same levels (the unit tests check it on every
        event of a long run); `l2_checksum_reference` computes it that way."""
        text = self.asks.checksum_text() + self.bids.checksum_text()
        return zlib.crc32(text.encode("ascii")) & 0xFFFFFFFF

    def l2_checksum_reference(self) -> int:
        return l2_checksum(_pairs(self.asks.top(10)), _pairs(self.bids.top(10)))

    def l3_checksum(self) -> int:
        """Level3 CRC32: every order of the top 10 levels, in queue order (reference §4.4)."""
        return l3_checksum(
            ([(lv.price, o.qty) for o in lv.orders] for lv in self.asks.top(10)),
            ([(lv.price, o.qty) for o in lv.orders] for lv in self.bids.top(10)),
        )

    def bbo(self) -> tuple[int, int, int, int]:
        """(bid, bid_qty, ask, ask_qty) of the best levels (0s for an empty side)."""
        b, a = self.bids.best(), self.asks.best()
        return (b.price if b else 0, b.qty if b else 0, a.price if a else 0, a.qty if a else 0)


def _pairs(levels: Iterable[Level]) -> list[tuple[int, int]]:
    return [(lv.price, lv.qty) for lv in levels]

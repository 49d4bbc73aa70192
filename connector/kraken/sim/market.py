"""The synthetic market: deterministic from a seed, fixed-point integers only, no network.

One `SymbolMarket` per symbol owns the order book (book.py), the trade tape with sequential
`trade_id`s, 1-minute candles, and (from the first subscription on) the candles of other intervals
and the rolling 24h ticker statistics, built from the same trades, so every channel tells the same
story. Longer candles are exact aggregations of 1-minute candles (all intervals are whole minutes
aligned to the Unix epoch), so they can be built on demand without keeping them all up to date. One market *event* (`tick`) is one trade
(a taker hits the front order of the best bid or ask: trade price = best level price) plus one
resting-order change (add near the top / inside the spread / deeper, cancel, or partial reduce),
plus book maintenance far beyond any subscribed depth. The seeded `random.Random` only picks
integer steps and choices; prices and quantities never go through a float.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from .account import Account, make_id
from .book import Book, BookSide, Order
from .config import OHLC_INTERVALS, SimConfig
from .instruments import Instruments, PairSpec
from .wire import ts_us

DAY_NS = 86_400 * 1_000_000_000


class Trade(NamedTuple):
    trade_id: int
    ts_ns: int
    side: str  # taker side
    price: int
    qty: int
    ord_type: str


class Candle:
    """One ohlc candle: prices at price precision, volume at qty precision, pv = Σ price·qty."""

    __slots__ = ("begin_ns", "close", "count", "high", "low", "open", "pv", "volume")

    def __init__(self, begin_ns: int, price: int) -> None:
        self.begin_ns = begin_ns
        self.open = self.high = self.low = self.close = price
        self.volume = 0
        self.pv = 0
        self.count = 0


class CandleSeries:
    """Candles of one interval, begin aligned to a multiple of the interval since the Unix epoch."""

    __slots__ = ("closed", "current", "interval", "interval_ns")

    def __init__(self, interval: int, keep: int) -> None:
        self.interval = interval
        self.interval_ns = interval * 60 * 1_000_000_000
        self.closed: deque[Candle] = deque(maxlen=keep)
        self.current: Candle | None = None

    def add(self, ts_ns: int, price: int, qty: int) -> Candle:
        begin = ts_ns - ts_ns % self.interval_ns
        cur = self.current
        if cur is None or cur.begin_ns != begin:
            if cur is not None:
                self.closed.append(cur)
            cur = self.current = Candle(begin, price)
        else:
            if price > cur.high:
                cur.high = price
            if price < cur.low:
                cur.low = price
            cur.close = price
        cur.volume += qty
        cur.pv += price * qty
        cur.count += 1
        return cur

    def merge(self, c: Candle) -> None:
        """Fold a shorter candle (that lies inside one of this series' intervals) into the series."""
        begin = c.begin_ns - c.begin_ns % self.interval_ns
        cur = self.current
        if cur is None or cur.begin_ns != begin:
            if cur is not None:
                self.closed.append(cur)
            cur = self.current = Candle(begin, c.open)
            cur.high, cur.low = c.high, c.low
        else:
            cur.high = max(cur.high, c.high)
            cur.low = min(cur.low, c.low)
        cur.close = c.close
        cur.volume += c.volume
        cur.pv += c.pv
        cur.count += c.count

    def recent(self, n: int) -> list[Candle]:
        """The last `n` candles (the current one included), oldest first."""
        out = list(itertools.islice(reversed(self.closed), n - 1 if self.current is not None else n))[::-1]
        if self.current is not None:
            out.append(self.current)
        return out


class Rolling24h:
    """Ticker statistics over the trades of the last 24h (monotonic deques for low/high)."""

    __slots__ = ("maxq", "minq", "pv", "trades", "volume")

    def __init__(self) -> None:
        self.trades: deque[tuple[int, int, int]] = deque()
        self.minq: deque[tuple[int, int]] = deque()
        self.maxq: deque[tuple[int, int]] = deque()
        self.volume = 0
        self.pv = 0

    def add(self, ts_ns: int, price: int, qty: int) -> None:
        self.trades.append((ts_ns, price, qty))
        self.volume += qty
        self.pv += price * qty
        while self.minq and self.minq[-1][1] >= price:
            self.minq.pop()
        self.minq.append((ts_ns, price))
        while self.maxq and self.maxq[-1][1] <= price:
            self.maxq.pop()
        self.maxq.append((ts_ns, price))
        cutoff = ts_ns - DAY_NS
        trades = self.trades
        while trades[0][0] <= cutoff:
            _, p, q = trades.popleft()
            self.volume -= q
            self.pv -= p * q
        while self.minq[0][0] <= cutoff:
            self.minq.popleft()
        while self.maxq[0][0] <= cutoff:
            self.maxq.popleft()

    @property
    def open(self) -> int | None:
        return self.trades[0][1] if self.trades else None

    @property
    def low(self) -> int | None:
        return self.minq[0][1] if self.minq else None

    @property
    def high(self) -> int | None:
        return self.maxq[0][1] if self.maxq else None


class TickResult:
    """What one event changed, for the feed to render per subscription."""

    __slots__ = ("account", "bbo_changed", "edges", "symbol", "trade", "ts_ns")

    def __init__(self, symbol: str, ts_ns: int) -> None:
        self.symbol = symbol
        self.ts_ns = ts_ns
        self.trade: Trade | None = None
        self.bbo_changed = False
        # depth -> (bid edge key, ask edge key) before the event (see BookSide.edge_key)
        self.edges: dict[int, tuple[int | None, int | None]] = {}
        self.account: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None


class SymbolMarket:
    """Book, tape, candles and 24h stats of one symbol."""

    def __init__(
        self,
        spec: PairSpec,
        rng: random.Random,
        config: SimConfig,
        account: Account,
        salt: int,
        ts_ns: int,
    ) -> None:
        self.spec = spec
        self.symbol = spec.symbol
        self.rng = rng
        self._random = rng.random
        self.account = account
        self.account_every = config.account_trade_every
        self.salt = salt
        self.book = Book()
        self.target_levels = config.book_levels
        self.next_trade_id = self._int(10_000_000, 100_000_000)
        self.trades: deque[Trade] = deque(maxlen=config.max_trade_history)
        self.trade_count = 0
        self.snapshot_candles = config.ohlc_snapshot_candles
        # 1-minute candles always, enough of them to build a full snapshot of the longest interval.
        self.minutes = CandleSeries(1, max(OHLC_INTERVALS) * config.ohlc_snapshot_candles)
        self.candles: dict[int, CandleSeries] = {1: self.minutes}
        self.stats: Rolling24h | None = None
        self.last_price: int | None = None
        self.last_ts_ns = ts_ns
        self._orders = 0
        self._fill(ts_ns)
        self.book.reset_changes()

    # --- helpers ----------------------------------------------------------------------------------

    def _order(self, qty: int, ts_ns: int) -> Order:
        self._orders += 1
        return Order(self._orders, qty, ts_ns)

    def order_id(self, oid: int) -> str:
        """Kraken-style order id text of a resting order (level3)."""
        return make_id("O", oid, self.salt)

    def activate_interval(self, interval: int) -> CandleSeries:
        """Candles of `interval`, built from the 1-minute candles, then kept up to date per trade."""
        series = self.candles.get(interval)
        if series is None:
            series = CandleSeries(interval, self.snapshot_candles)
            for c in self.minutes.recent(len(self.minutes.closed) + 1):
                series.merge(c)
            self.candles[interval] = series
        return series

    def activate_ticker(self) -> Rolling24h:
        """24h statistics, built from the kept trade history, then kept up to date per trade."""
        if self.stats is None:
            self.stats = Rolling24h()
            for t in self.trades:
                if t.ts_ns > self.last_ts_ns - DAY_NS:
                    self.stats.add(t.ts_ns, t.price, t.qty)
        return self.stats

    def _int(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi): a float only picks the step, never carries a price or qty
        (several times cheaper than randrange, and just as deterministic for a given seed)."""
        return lo + int(self._random() * (hi - lo))

    def _rand_qty(self) -> int:
        inc, lo = self.spec.qty_increment, self.spec.qty_min
        steps = max(2, (lo * 2000) // inc)
        return inc * self._int(1, steps)

    def _side(self, is_bid: bool) -> BookSide:
        return self.book.bids if is_bid else self.book.asks

    def _add_deep(self, side: BookSide, ts_ns: int) -> bool:
        """Add a level just beyond the worst one (book maintenance; invisible to any depth served)."""
        inc = self.spec.price_increment
        worst = side.worst()
        if worst is None:
            return False
        step = inc * self._int(1, 3)
        price = worst.price - step if side.is_bid else worst.price + step
        if price <= 0:
            return False
        for _ in range(self._int(1, 4)):
            side.add_order(price, self._order(self._rand_qty(), ts_ns))
        return True

    def _fill(self, ts_ns: int) -> None:
        inc = self.spec.price_increment
        mid = self.spec.start_price
        self.book.bids.add_order(mid - inc, self._order(self._rand_qty(), ts_ns))
        self.book.asks.add_order(mid + inc, self._order(self._rand_qty(), ts_ns))
        for side in (self.book.bids, self.book.asks):
            while len(side) < self.target_levels and self._add_deep(side, ts_ns):
                pass

    # --- the event ---------------------------------------------------------------------------------

    def tick(
        self, ts_ns: int, depths: Collection[int], want_bbo: bool = False, want_account: bool = False
    ) -> TickResult:
        """One market event at `ts_ns`.

        `depths` are the book/level3 depths someone subscribes to, `want_bbo` asks whether the best
        bid/ask changed (ticker bbo), `want_account` lets the account take every N-th trade (only
        while someone listens to executions/balances; the market itself is the same either way).
        """
        book = self.book
        book.reset_changes()
        res = TickResult(self.symbol, ts_ns)
        bids, asks = book.bids, book.asks
        for d in depths:
            res.edges[d] = (bids.edge_key(d), asks.edge_key(d))
        bbo = book.bbo() if want_bbo else None
        self.last_ts_ns = ts_ns
        res.trade = self._taker(ts_ns)
        self._maker(ts_ns)
        self._maintain(ts_ns)
        if want_bbo:
            res.bbo_changed = book.bbo() != bbo
        if (
            want_account
            and res.trade is not None
            and self.account_every
            and self.trade_count % self.account_every == 0
        ):
            t = res.trade
            res.account = self.account.take(self.spec, t.side, t.price, t.qty, t.trade_id, ts_us(ts_ns))
        return res

    def _taker(self, ts_ns: int) -> Trade | None:
        rng = self.rng
        buy = rng.random() < 0.5
        side = self.book.asks if buy else self.book.bids
        level = side.best()
        if level is None or len(side) < 2:
            return None
        order = level.orders[0]
        inc = self.spec.qty_increment
        # Take the whole front order sometimes (the level may vanish), else part of it.
        take_all = rng.random() < 0.3 or order.qty <= inc
        qty = order.qty if take_all else inc * self._int(1, order.qty // inc)
        side.reduce_order(level, 0, order.qty - qty, ts_ns)
        trade = Trade(
            self.next_trade_id,
            ts_ns,
            "buy" if buy else "sell",
            level.price,
            qty,
            "market" if rng.random() < 0.4 else "limit",
        )
        self.next_trade_id += 1
        self.trade_count += 1
        self.trades.append(trade)
        self.last_price = trade.price
        for series in self.candles.values():
            series.add(ts_ns, trade.price, qty)
        if self.stats is not None:
            self.stats.add(ts_ns, trade.price, qty)
        return trade

    def _pick_level_rank(self, side: BookSide) -> int:
        n = len(side)
        return self._int(0, min(10, n)) if self.rng.random() < 0.7 else self._int(0, n)

    def _maker(self, ts_ns: int) -> None:
        rng = self.rng
        is_bid = rng.random() < 0.5
        side = self._side(is_bid)
        r = rng.random()
        if r < 0.45 or len(side) < 20 or self._spread_ticks() > 4:
            self._maker_add(side, is_bid, ts_ns)
            return
        level = side.levels[side.price_at(self._pick_level_rank(side))]
        idx = self._int(0, len(level.orders))
        order = level.orders[idx]
        inc = self.spec.qty_increment
        if r < 0.8 or order.qty // inc < 2:
            side.reduce_order(level, idx, 0, ts_ns)  # cancel
        else:
            side.reduce_order(level, idx, inc * self._int(1, order.qty // inc), ts_ns)  # partial

    def _spread_ticks(self) -> int:
        bid, ask = self.book.bids.best(), self.book.asks.best()
        if bid is None or ask is None:
            return 0
        return (ask.price - bid.price) // self.spec.price_increment

    def _maker_add(self, side: BookSide, is_bid: bool, ts_ns: int) -> None:
        rng, inc = self.rng, self.spec.price_increment
        bid, ask = self.book.bids.best(), self.book.asks.best()
        if bid is None or ask is None:
            return
        spread = (ask.price - bid.price) // inc
        # A wide spread attracts orders inside it (keeps the spread tight, as on a liquid pair).
        if spread > 1 and rng.random() < min(0.9, 0.2 * spread):
            step = inc * self._int(1, min(spread, 2 + spread // 2))  # improve, never crossing
            price = bid.price + step if is_bid else ask.price - step
        elif rng.random() < 0.8:
            step = inc * self._int(0, 15)
            price = bid.price - step if is_bid else ask.price + step
        else:
            price = side.price_at(self._int(0, len(side)))
        if price > 0:
            side.add_order(price, self._order(self._rand_qty(), ts_ns))

    def _maintain(self, ts_ns: int) -> None:
        """Every 8th event, bring each side back near `target_levels` levels. All of it happens far
        beyond the deepest depth served (target - 1000 levels of slack), so no subscriber sees it."""
        if self.trade_count & 7:
            return
        high = self.target_levels + self.target_levels // 20
        for side in (self.book.bids, self.book.asks):
            while len(side) < self.target_levels and self._add_deep(side, ts_ns):
                pass
            while len(side) > high:
                worst = side.worst()
                if worst is None:
                    break
                while worst.orders:
                    side.reduce_order(worst, 0, 0, ts_ns)

    # --- views -------------------------------------------------------------------------------------

    def recent_trades(self, n: int) -> list[Trade]:
        """The last `n` trades, oldest first."""
        return list(itertools.islice(reversed(self.trades), n))[::-1]


class Market:
    """All symbols' markets and the shared account; a clock that is wall time or virtual."""

    def __init__(self, config: SimConfig, instruments: Instruments, now_ns: Callable[[], int]) -> None:
        self.config = config
        self._wall = now_ns
        self._virtual = config.start_time_ns
        self._last_ns = 0
        start = self.now()
        self.account = Account(salt=config.seed * 7919)
        self.symbols: dict[str, SymbolMarket] = {}
        for i, sym in enumerate(config.symbols):
            spec = instruments.spec(sym)
            rng = random.Random(f"{config.seed}:{sym}")
            self.symbols[sym] = SymbolMarket(spec, rng, config, self.account, config.seed * 1_000 + i, start)
            self.account.add_pair(spec, ts_us(start))

    def peek(self) -> int:
        """The time of the latest event (for snapshots: does not advance the virtual clock)."""
        return self._last_ns

    def now(self) -> int:
        """Market time in ns: strictly increasing (wall clock) or start + n·step (virtual clock)."""
        if self._virtual is not None:
            t = self._virtual
            self._virtual += self.config.time_step_ns
        else:
            t = max(self._wall(), self._last_ns + 1000)
        self._last_ns = t
        return t

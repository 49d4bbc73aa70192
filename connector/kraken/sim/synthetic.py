"""Synthetic mode: one market for the whole simulator, fanned out to every subscription.

The market clock runs at `rate` events per second per symbol (or, with rate None, as fast as the
subscribed clients read). Each event's changes are rendered once per distinct subscription shape
(book depth, level3 depth, ohlc interval, ticker trigger) and the same pre-encoded frame is queued to
every subscriber, so all connections see one consistent market. A new subscription gets its snapshot
from the current state, queued right after its ack and before any later update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from .feed import Feed
from .market import Market, SymbolMarket, TickResult
from .render import Renderer, private_frame
from .session import MARKET_CHANNELS, Frame, Session, Sub
from .wire import ts_us

if TYPE_CHECKING:
    from .server import Simulator

log = logging.getLogger(__name__)

MAX_ROUNDS_PER_WAKE = 64  # paced mode: most market events per symbol between two sleeps
# Max-rate mode: events between two yields to the event loop. Small enough that an in-process client
# (tests) still gets turns, large enough that the yield costs little per event.
MAX_RATE_BURST = 16


class _SymbolSubs:
    """Who listens to one symbol, grouped by what they must receive."""

    __slots__ = ("book", "depths", "level3", "ohlc", "ticker_bbo", "ticker_trades", "trade")

    def __init__(self) -> None:
        self.book: dict[int, set[Session]] = {}
        self.level3: dict[int, set[Session]] = {}
        self.ohlc: dict[int, set[Session]] = {}
        self.trade: set[Session] = set()
        self.ticker_trades: set[Session] = set()
        self.ticker_bbo: set[Session] = set()
        self.depths: tuple[int, ...] = ()

    def group(self, sub: Sub) -> set[Session]:
        if sub.channel == "book":
            assert sub.depth is not None  # set by Session._parse
            return self.book.setdefault(sub.depth, set())
        if sub.channel == "level3":
            assert sub.depth is not None
            return self.level3.setdefault(sub.depth, set())
        if sub.channel == "ohlc":
            assert sub.interval is not None
            return self.ohlc.setdefault(sub.interval, set())
        if sub.channel == "ticker":
            return self.ticker_bbo if sub.event_trigger == "bbo" else self.ticker_trades
        return self.trade

    def refresh(self) -> None:
        for groups in (self.book, self.level3, self.ohlc):
            for key in [k for k, v in groups.items() if not v]:
                del groups[key]
        self.depths = tuple(sorted(set(self.book) | set(self.level3)))


class SyntheticFeed(Feed):
    """The seeded market and its subscribers."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.config = sim.config
        self.market = Market(sim.config, sim.instruments, time.time_ns)
        self.renderers = {sym: Renderer(m.spec, m.order_id) for sym, m in self.market.symbols.items()}
        self.subs = {sym: _SymbolSubs() for sym in self.market.symbols}
        self.instrument_frame = Frame(
            sim.instruments.snapshot_text(self.market.symbols).encode(), "instrument"
        )
        self.executions: set[Session] = set()
        self.balances: set[Session] = set()
        self.instrument: set[Session] = set()
        self.active: dict[Session, int] = {}  # session -> number of market-data subscriptions
        self._symbols = frozenset(self.market.symbols)
        self._activity: asyncio.Event | None = None
        self.events = 0

    def known_symbols(self) -> frozenset[str]:
        return self._symbols

    # --- subscriptions ----------------------------------------------------------------------------

    def _group(self, sub: Sub) -> set[Session]:
        if sub.channel == "executions":
            return self.executions
        if sub.channel == "balances":
            return self.balances
        if sub.channel == "instrument":
            return self.instrument
        assert sub.symbol is not None
        return self.subs[sub.symbol].group(sub)

    def subscribe(self, session: Session, sub: Sub) -> None:
        if sub.symbol is not None:
            m = self.market.symbols[sub.symbol]
            if sub.channel == "ohlc" and sub.interval is not None:
                m.activate_interval(sub.interval)
            elif sub.channel == "ticker":
                m.activate_ticker()
        self._group(sub).add(session)
        if sub.symbol is not None:
            self.subs[sub.symbol].refresh()
        if sub.channel in MARKET_CHANNELS:
            self.active[session] = self.active.get(session, 0) + 1
            if self._activity is not None:
                self._activity.set()
        if sub.channel in ("executions", "balances"):
            session.sequences.pop(sub.channel, None)  # `sequence` counts per subscription (§3.3)
        if sub.snapshot or sub.channel == "executions":
            self._snapshot(session, sub)

    def unsubscribe(self, session: Session, sub: Sub) -> None:
        self._group(sub).discard(session)
        if sub.symbol is not None:
            self.subs[sub.symbol].refresh()
        if sub.channel in MARKET_CHANNELS and session in self.active:
            self.active[session] -= 1
            if self.active[session] <= 0:
                del self.active[session]

    def session_closed(self, session: Session) -> None:
        for sub in list(session.subs.values()):
            self.unsubscribe(session, sub)
        session.subs.clear()
        self.active.pop(session, None)

    def _snapshot(self, session: Session, sub: Sub) -> None:
        ch = sub.channel
        if ch == "instrument":
            session.push(self.instrument_frame)
            return
        if ch == "executions":
            acct = self.market.account
            data: list[dict[str, Any]] = []
            if sub.snap_orders:
                data.extend(acct.open_orders)
            if sub.snap_trades:
                data.extend(acct.fills)
            if sub.snap_orders or sub.snap_trades:
                text = private_frame("executions", "snapshot", data, session.next_sequence("executions"))
                session.push(Frame(text.encode(), "executions"))
            return
        if ch == "balances":
            text = private_frame(
                "balances",
                "snapshot",
                self.market.account.balance_snapshot(),
                session.next_sequence("balances"),
            )
            session.push(Frame(text.encode(), "balances"))
            return
        assert sub.symbol is not None
        m = self.market.symbols[sub.symbol]
        r = self.renderers[sub.symbol]
        t_ns = self.market.peek()
        if ch == "book":
            assert sub.depth is not None
            text = r.book_snapshot(m.book, sub.depth, ts_us(t_ns))
            session.push(Frame(text.encode(), "book", sub.symbol, checksum=True))
        elif ch == "level3":
            assert sub.depth is not None
            text = r.l3_snapshot(m.book, sub.depth, t_ns)
            session.push(Frame(text.encode(), "level3", sub.symbol, checksum=True))
        elif ch == "trade":
            trades = m.recent_trades(self.config.trade_snapshot_size)
            ids = tuple(t.trade_id for t in trades)
            session.push(Frame(r.trades(trades, "snapshot").encode(), "trade", sub.symbol, trade_ids=ids))
        elif ch == "ticker":
            session.push(Frame(r.ticker(m, "snapshot", t_ns).encode(), "ticker", sub.symbol))
        elif ch == "ohlc":
            assert sub.interval is not None
            candles = m.candles[sub.interval].recent(self.config.ohlc_snapshot_candles)
            session.push(Frame(r.ohlc(candles, sub.interval, "snapshot", t_ns).encode(), "ohlc", sub.symbol))

    # --- the market clock -------------------------------------------------------------------------

    def round(self) -> None:
        """One market event for every symbol, fanned out."""
        market = self.market
        want_account = bool(self.executions or self.balances)
        for sym, m in market.symbols.items():
            subs = self.subs[sym]
            res = m.tick(market.now(), subs.depths, bool(subs.ticker_bbo), want_account)
            self._fan_out(m, subs, res)
        self.events += 1

    def _fan_out(self, m: SymbolMarket, subs: _SymbolSubs, res: TickResult) -> None:
        sym = m.symbol
        r = self.renderers[sym]
        book = m.book
        if subs.book:
            checksum = book.l2_checksum()
            ts = ts_us(res.ts_ns)
            for depth, sessions in subs.book.items():
                eb, ea = res.edges[depth]
                bids, asks = book.bids.l2_diff(eb, depth), book.asks.l2_diff(ea, depth)
                if bids or asks:
                    frame = Frame(
                        r.book_update(bids, asks, checksum, ts).encode(), "book", sym, checksum=True
                    )
                    for s in sessions:
                        s.push(frame)
        if subs.level3:
            checksum = book.l3_checksum()
            for depth, sessions in subs.level3.items():
                eb, ea = res.edges[depth]
                bev, aev = book.bids.l3_diff(eb, depth), book.asks.l3_diff(ea, depth)
                if bev or aev:
                    frame = Frame(
                        r.l3_update(bev, aev, checksum, res.ts_ns).encode(), "level3", sym, checksum=True
                    )
                    for s in sessions:
                        s.push(frame)
        trade = res.trade
        if trade is not None:
            if subs.trade:
                frame = Frame(r.trades([trade]).encode(), "trade", sym, trade_ids=(trade.trade_id,))
                for s in subs.trade:
                    s.push(frame)
            if subs.ticker_trades:
                frame = Frame(r.ticker(m, "update", res.ts_ns).encode(), "ticker", sym)
                for s in subs.ticker_trades:
                    s.push(frame)
            for interval, sessions in subs.ohlc.items():
                candle = m.candles[interval].current
                if candle is not None:
                    frame = Frame(r.ohlc([candle], interval, "update", res.ts_ns).encode(), "ohlc", sym)
                    for s in sessions:
                        s.push(frame)
        if res.bbo_changed and subs.ticker_bbo:
            frame = Frame(r.ticker(m, "update", res.ts_ns).encode(), "ticker", sym)
            for s in subs.ticker_bbo:
                s.push(frame)
        if res.account is not None:
            execs, ledgers = res.account
            for s in self.executions:
                for report in execs:
                    text = private_frame("executions", "update", [report], s.next_sequence("executions"))
                    s.push(Frame(text.encode(), "executions"))
            for s in self.balances:
                for entry in ledgers:
                    text = private_frame("balances", "update", [entry], s.next_sequence("balances"))
                    s.push(Frame(text.encode(), "balances"))

    async def _backpressure(self) -> None:
        for s in [s for s in self.active if s.congested]:
            await s.wait_drained()

    async def run(self) -> None:
        self._activity = asyncio.Event()
        loop = asyncio.get_running_loop()
        rate = self.config.rate
        if rate is None:
            log.info("market running at max rate (while something is subscribed)")
            while True:
                if not self.active:
                    self._activity.clear()
                    await self._activity.wait()
                    continue
                for _ in range(MAX_RATE_BURST):
                    self.round()
                await self._backpressure()
                await asyncio.sleep(0)
        period = 1.0 / rate
        log.info("market running at %s events/s per symbol", rate)
        next_t = loop.time()
        while True:
            now = loop.time()
            n = 0
            while next_t <= now and n < MAX_ROUNDS_PER_WAKE:
                self.round()
                next_t += period
                n += 1
            if n == MAX_ROUNDS_PER_WAKE:
                next_t = max(next_t, now)  # cannot keep up: do not try to catch up later in a burst
            await self._backpressure()
            await asyncio.sleep(max(0.0, next_t - loop.time()))

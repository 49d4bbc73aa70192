"""The synthetic market without any network: determinism, Kraken's book rules, checksums, candles.

A client-side book that follows reference §5 (absolute qty, qty 0 deletes, truncate to depth after
each message) and §3.5 (level3 add/modify/delete, truncate) is driven by the diffs the simulator
would send; after every event it must equal the market's true top-N, and Kraken's checksum (via
schemas.checksum) must match the simulator's fast checksum.
"""

from __future__ import annotations

import time

import pytest

from connector.kraken.sim.config import SimConfig
from connector.kraken.sim.instruments import Instruments
from connector.kraken.sim.market import Market, SymbolMarket
from connector.kraken.sim.render import Renderer, ratio
from schemas.checksum import l2_checksum, l3_checksum

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def make_market(symbols: tuple[str, ...] = ("BTC/USD",), seed: int = 1, step_ns: int = 1_000_000) -> Market:
    cfg = SimConfig(symbols=symbols, seed=seed, start_time_ns=T0, time_step_ns=step_ns)
    return Market(cfg, Instruments(), time.time_ns)


class ClientL2:
    """A Kraken L2 book as a client keeps it (reference §5)."""

    def __init__(self, m: SymbolMarket, depth: int) -> None:
        self.depth = depth
        self.bids = {lv.price: lv.qty for lv in m.book.bids.top(depth)}
        self.asks = {lv.price: lv.qty for lv in m.book.asks.top(depth)}

    def apply(self, bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> None:
        for side, levels, best_high in ((self.bids, bids, True), (self.asks, asks, False)):
            for price, qty in levels:
                if qty == 0:
                    side.pop(price, None)
                else:
                    side[price] = qty
            if len(side) > self.depth:
                for price in sorted(side, reverse=best_high)[self.depth :]:
                    del side[price]

    def top(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())


class ClientL3:
    """A Kraken level3 book as a client keeps it (reference §3.5)."""

    def __init__(self, m: SymbolMarket, depth: int) -> None:
        self.depth = depth
        self.bids = {lv.price: [(o.oid, o.qty) for o in lv.orders] for lv in m.book.bids.top(depth)}
        self.asks = {lv.price: [(o.oid, o.qty) for o in lv.orders] for lv in m.book.asks.top(depth)}

    def apply(self, bids: list, asks: list) -> None:
        for side, events, best_high in ((self.bids, bids, True), (self.asks, asks, False)):
            for event, oid, price, qty, _ts in events:
                level = side.setdefault(price, [])
                ids = [o for o, _ in level]
                if event == "add":
                    level.append((oid, qty))
                elif event == "modify":
                    level[ids.index(oid)] = (oid, qty)
                else:
                    del level[ids.index(oid)]
                if not level:
                    del side[price]
            if len(side) > self.depth:
                for price in sorted(side, reverse=best_high)[self.depth :]:
                    del side[price]


def test_same_seed_same_market_other_seed_other_market() -> None:
    runs = []
    for seed in (7, 7, 8):
        market = make_market(seed=seed)
        m = market.symbols["BTC/USD"]
        for _ in range(300):
            m.tick(market.now(), ())
        runs.append([(t.trade_id, t.side, t.price, t.qty) for t in m.trades])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


@pytest.mark.parametrize("symbol", ["BTC/USD", "ETH/USD", "MATIC/USD"])
def test_l2_diffs_follow_kraken_rules_at_every_depth(symbol: str) -> None:
    market = make_market((symbol,))
    m = market.symbols[symbol]
    depths = (10, 25, 100)
    clients = {d: ClientL2(m, d) for d in depths}
    for _ in range(1500):
        res = m.tick(market.now(), depths)
        for d, client in clients.items():
            eb, ea = res.edges[d]
            client.apply(m.book.bids.l2_diff(eb, d), m.book.asks.l2_diff(ea, d))
            bids, asks = client.top()
            assert bids == [(lv.price, lv.qty) for lv in m.book.bids.top(d)]
            assert asks == [(lv.price, lv.qty) for lv in m.book.asks.top(d)]
        # The client's own checksum (schemas.checksum over its top 10) equals what would be sent.
        bids10, asks10 = clients[10].top()
        assert l2_checksum(asks10, bids10) == m.book.l2_checksum() == m.book.l2_checksum_reference()
    assert len(m.book.bids) >= 1000 and len(m.book.asks) >= 1000  # depth 1000 can always refill


def test_depth_1000_refills_and_truncates() -> None:
    market = make_market()
    m = market.symbols["BTC/USD"]
    client = ClientL2(m, 1000)
    for _ in range(150):
        res = m.tick(market.now(), (1000,))
        eb, ea = res.edges[1000]
        client.apply(m.book.bids.l2_diff(eb, 1000), m.book.asks.l2_diff(ea, 1000))
    bids, asks = client.top()
    assert len(bids) == len(asks) == 1000
    assert bids == [(lv.price, lv.qty) for lv in m.book.bids.top(1000)]
    assert asks == [(lv.price, lv.qty) for lv in m.book.asks.top(1000)]


def test_level3_diffs_and_checksum() -> None:
    market = make_market(("ETH/USD",))
    m = market.symbols["ETH/USD"]
    clients = {d: ClientL3(m, d) for d in (10, 100)}
    for _ in range(1000):
        res = m.tick(market.now(), (10, 100))
        for d, client in clients.items():
            eb, ea = res.edges[d]
            client.apply(m.book.bids.l3_diff(eb, d), m.book.asks.l3_diff(ea, d))
            assert client.bids == {lv.price: [(o.oid, o.qty) for o in lv.orders] for lv in m.book.bids.top(d)}
            assert client.asks == {lv.price: [(o.oid, o.qty) for o in lv.orders] for lv in m.book.asks.top(d)}
        c = clients[10]
        expected = l3_checksum(
            ([(p, q) for _, q in c.asks[p]] for p in sorted(c.asks)),
            ([(p, q) for _, q in c.bids[p]] for p in sorted(c.bids, reverse=True)),
        )
        assert m.book.l3_checksum() == expected


def test_trades_hit_the_best_level_with_sequential_ids() -> None:
    market = make_market()
    m = market.symbols["BTC/USD"]
    for _ in range(500):
        bid, ask = m.book.bids.best(), m.book.asks.best()
        assert bid is not None and ask is not None
        best_bid, best_ask = bid.price, ask.price
        assert best_bid < best_ask  # never crossed
        res = m.tick(market.now(), ())
        t = res.trade
        assert t is not None
        assert t.price == (best_ask if t.side == "buy" else best_bid)
    ids = [t.trade_id for t in m.trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_candles_of_every_interval_aggregate_the_trades() -> None:
    # 2 s per event: 3000 events span 100 minutes, so 1/5/15/30/60-minute candles close many times.
    market = make_market(step_ns=2_000_000_000)
    m = market.symbols["BTC/USD"]
    for _ in range(1500):
        m.tick(market.now(), ())
    for interval in (5, 60):  # built on demand from the 1-minute candles...
        m.activate_interval(interval)
    for _ in range(1500):  # ...then kept up to date trade by trade
        m.tick(market.now(), ())
    trades = list(m.trades)
    for interval in (1, 5, 60):
        span = interval * 60 * 1_000_000_000
        expected: dict[int, list] = {}
        for t in trades:
            expected.setdefault(t.ts_ns - t.ts_ns % span, []).append(t)
        got = m.candles[interval].recent(10_000)
        assert [c.begin_ns for c in got] == sorted(expected)[-len(got) :]
        for c in got:
            ts = expected[c.begin_ns]
            assert (c.open, c.close) == (ts[0].price, ts[-1].price)
            assert (c.high, c.low) == (max(t.price for t in ts), min(t.price for t in ts))
            assert c.volume == sum(t.qty for t in ts)
            assert c.count == len(ts)
            assert c.pv == sum(t.price * t.qty for t in ts)


def test_ticker_24h_stats_from_trades() -> None:
    market = make_market(step_ns=60_000_000_000)  # 1 minute per event: 1600 events > 24h
    m = market.symbols["BTC/USD"]
    stats = m.activate_ticker()
    for _ in range(1600):
        m.tick(market.now(), ())
    cutoff = m.last_ts_ns - 86_400 * 1_000_000_000
    window = [t for t in m.trades if t.ts_ns > cutoff]
    assert len(window) < len(m.trades)  # the window really slid
    assert stats.volume == sum(t.qty for t in window)
    assert stats.low == min(t.price for t in window) and stats.high == max(t.price for t in window)
    assert stats.open == window[0].price


def test_rendered_numbers_have_exactly_the_pair_precision() -> None:
    market = make_market(("ETH/USD",))
    m = market.symbols["ETH/USD"]
    r = Renderer(m.spec, m.order_id)
    assert (m.spec.price_precision, m.spec.qty_precision) == (2, 8)  # real ETH/USD metadata
    assert r.p(300010) == "3000.10" and r.q(5100) == "0.00005100"
    assert ratio(5, 2) == 3 and ratio(-5, 2) == -3 and ratio(4, 3) == 1


def test_bundled_instrument_snapshot_is_the_fixture() -> None:
    import gzip
    import json

    from connector.kraken.sim.instruments import PACKAGED_SNAPSHOT
    from tests.conftest import KRAKEN_CAPTURES

    fixture = (KRAKEN_CAPTURES / "instrument_snapshot_683_pairs.json").read_text()
    assert json.loads(gzip.decompress(PACKAGED_SNAPSHOT.read_bytes())) == json.loads(fixture)
    spec = Instruments().spec("MATIC/USD")
    assert (spec.price_precision, spec.qty_precision, spec.price_increment) == (4, 8, 1)
    made_up = Instruments().spec("FOO/BAR")  # unknown pairs get plausible metadata
    assert (made_up.price_precision, made_up.qty_precision) == (2, 8)

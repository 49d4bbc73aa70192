"""Connector against the simulator, real broker and registry: every channel lands in its topic.

Also holds the helpers the other `test_connector_*` integration tests use (run a connector in a
thread against a simulator, wait for a condition, read a topic).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from connector.app import ConnectorApp, ConnectorThread
from connector.kraken.sim.config import DEFAULT_API_KEY, DEFAULT_API_SECRET, OHLC_INTERVALS, SimConfig
from connector.kraken.sim.server import SimThread, Simulator
from connector.settings import ConnectorSettings
from schemas.topics import Topic
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import read_all

ALL_CHANNELS = "ticker,book,trade,ohlc,instrument,status,executions,balances,level3"


def connector_env(kafka: KafkaTest, sim: Simulator, **extra: str) -> dict[str, str]:
    """Environment of a connector that talks to `sim` and writes under the test's topic prefix."""
    return {
        **kafka.env_vars(),
        "KRACKED_KRAKEN_WS_URL": sim.ws_url,
        "KRACKED_KRAKEN_WS_AUTH_URL": sim.auth_ws_url,
        "KRACKED_KRAKEN_WS_L3_URL": sim.l3_ws_url,
        "KRACKED_KRAKEN_REST_URL": sim.rest_url,
        "KRACKED_KRAKEN_API_KEY": DEFAULT_API_KEY,
        "KRACKED_KRAKEN_API_SECRET": DEFAULT_API_SECRET,
        **extra,
    }


@contextmanager
def running_connector(
    kafka: KafkaTest, sim: Simulator, argv: tuple[str, ...] = (), **env: str
) -> Iterator[ConnectorApp]:
    """A connector in a background thread; stopped (and flushed) when the block ends."""
    settings = ConnectorSettings.from_env(connector_env(kafka, sim, **env), list(argv))
    thread = ConnectorThread(settings)
    app = thread.start()
    try:
        thread.wait_ready()
        yield app
    finally:
        assert thread.stop() == 0


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


def frames(app: ConnectorApp, channel: str) -> int:
    return 0 if app.pipeline is None else app.pipeline.frames[channel]


def by_symbol(records: list[dict[str, Any]], field: str = "symbol") -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r[field]].append(r)
    return out


def test_every_channel_lands_in_its_topic(kafka: KafkaTest) -> None:
    kafka.create_topics()
    cfg = SimConfig(symbols=("BTC/USD", "ETH/USD"), rate=20.0, seed=7, account_trade_every=3)
    with SimThread(cfg) as sim:
        with running_connector(
            kafka,
            sim,
            KRACKED_SYMBOLS="BTC/USD,ETH/USD",
            KRACKED_CHANNELS=ALL_CHANNELS,
            KRACKED_BOOK_DEPTH="25",
            KRACKED_OHLC_INTERVALS=",".join(map(str, OHLC_INTERVALS)),
            KRACKED_TICKER_EVENT_TRIGGER="trades,bbo",
        ) as app:
            wait_for(
                lambda: (
                    all(frames(app, c) >= 30 for c in ("book", "trade", "ticker", "ohlc", "level3"))
                    and frames(app, "executions") >= 2
                    and frames(app, "balances") >= 2
                ),
                what="every channel",
            )
        sent = dict(sim.stats.by_channel)
        trades_sent = {s: sim.trades_sent(s) for s in cfg.symbols}
        token_requests = list(sim.rest_requests)

    precision = {"BTC/USD": (1, 8), "ETH/USD": (2, 8)}  # from Kraken's instrument data the sim serves

    books = read_all(kafka, Topic.BOOK)
    assert len(books) == sent["book"]
    for symbol, recs in by_symbol(books).items():
        assert recs[0]["type"] == "snapshot" and all(r["type"] == "update" for r in recs[1:])
        assert all(r["checksum_ok"] is True for r in recs), symbol
        assert {(r["price_precision"], r["qty_precision"], r["depth"]) for r in recs} == {
            (*precision[symbol], 25)
        }
        assert len({r["epoch"] for r in recs}) == 1
        assert all(r["ts_event"] is not None and r["ts_recv"] >= r["ts_event"] - 5_000_000 for r in recs)
    assert set(by_symbol(books)) == {"BTC/USD", "ETH/USD"}

    tickers = read_all(kafka, Topic.TICKER)
    assert len(tickers) == sent["ticker"]
    assert {(r["symbol"], r["event_trigger"]) for r in tickers} == {
        (s, t) for s in cfg.symbols for t in ("trades", "bbo")
    }

    trades = by_symbol(read_all(kafka, Topic.TRADE))
    for symbol in cfg.symbols:
        ids = [r["trade_id"] for r in trades[symbol]]
        # every trade the simulator delivered, once, in order (up to the last one read: frames written
        # while the connector was shutting down are never read)
        assert ids == [t for t in trades_sent[symbol] if t <= ids[-1]]
        assert ids == list(range(ids[0], ids[0] + len(ids)))

    ohlc = read_all(kafka, Topic.OHLC)
    assert len({(r["symbol"], r["interval"]) for r in ohlc}) == 2 * len(OHLC_INTERVALS)
    assert all(isinstance(r["open"], str) and r["interval_begin"] > 0 for r in ohlc)

    instruments = {(r["kind"], r["symbol"]) for r in read_all(kafka, Topic.INSTRUMENT)}
    assert {("pair", "BTC/USD"), ("pair", "ETH/USD"), ("asset", "BTC")} <= instruments

    statuses = read_all(kafka, Topic.STATUS)
    assert len(statuses) >= 5 and {r["system"] for r in statuses} == {"online"}

    level3 = read_all(kafka, Topic.LEVEL3)
    assert len(level3) == sent["level3"]
    assert all(r["checksum_ok"] is True and r["depth"] == 10 for r in level3)
    assert {r["symbol"] for r in level3} == set(cfg.symbols)

    executions = read_all(kafka, Topic.EXECUTIONS)
    assert executions and all(r["order_id"] and r["exec_type"] for r in executions)
    balances = read_all(kafka, Topic.BALANCES)
    assert {r["type"] for r in balances} >= {"snapshot"} and all(r["asset"] for r in balances)

    continuity = read_all(kafka, Topic.CONTINUITY)
    connects = [r for r in continuity if r["event"] == "connect"]
    assert len(connects) == 5  # public-ref, public-1, public-1-bbo, auth, level3-1
    assert not [r for r in continuity if r["event"] in ("reconnect", "checksum_mismatch", "trade_id_gap")]
    assert read_all(kafka, Topic.DEADLETTER) == []

    # a fresh token for each authenticated connection, from the REST endpoint, signed
    tokens = [r for r in token_requests if r.path.endswith("GetWebSocketsToken")]
    assert len(tokens) == 2 and all(r.ok for r in tokens)


def test_all_symbols_spread_over_connections(kafka: KafkaTest) -> None:
    """`all` = every online pair of the instrument snapshot, spread over several connections."""
    kafka.create_topics(Topic.BOOK, Topic.TRADE, Topic.CONTINUITY, Topic.DEADLETTER)
    symbols = ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "DOT/USD")
    with (
        SimThread(SimConfig(symbols=symbols, rate=10.0, seed=11)) as sim,
        running_connector(
            kafka,
            sim,
            ("--symbols", "all", "--symbols-per-connection", "2"),
            KRACKED_CHANNELS="book,trade",
        ) as app,
    ):
        names = sorted(c.name for c in app.connections)
        wait_for(lambda: frames(app, "book") >= 10 * len(symbols), what="books of every pair")
    assert names == ["public-1", "public-2", "public-3", "public-ref"]
    books = by_symbol(read_all(kafka, Topic.BOOK))
    assert set(books) == set(symbols)
    assert all(r["checksum_ok"] is True for recs in books.values() for r in recs)

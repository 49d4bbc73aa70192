"""End to end on a real broker: simulator → connector → topics → book / bars services.

* Injected wrong checksums are caught by the book service too, the book is never published as valid
  until the resubscribe's snapshot (a new epoch) verifies, and every valid top carries Kraken's checksum.
* A real capture through the connector: the book service agrees with Kraken's checksum on every message.
* Bars built from the trades equal Kraken's own candles (the `ohlc` channel) for the same intervals.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from connector.kraken.sim.config import FaultConfig, SimConfig
from connector.kraken.sim.server import SimThread
from consumers.bars.service import BarsService
from consumers.book.service import BookService
from schemas.topics import Topic
from tests.conftest import KRAKEN_CAPTURES
from tests.integration.conftest import KafkaTest
from tests.integration.helpers import ServiceThread, read_all
from tests.integration.test_connector_sim import frames, running_connector, wait_for

SYMBOLS = ("BTC/USD", "ETH/USD")


def test_injected_wrong_checksums_are_caught_and_recovered_at_the_next_snapshot(kafka: KafkaTest) -> None:
    kafka.create_topics()
    config = SimConfig(symbols=SYMBOLS, rate=60.0, seed=5, faults=FaultConfig(bad_checksum_every=45))
    with (
        SimThread(config) as sim,
        running_connector(kafka, sim, KRACKED_SYMBOLS=",".join(SYMBOLS), KRACKED_CHANNELS="book") as app,
    ):
        wait_for(lambda: frames(app, "book") >= 400, what="400 book frames")
    books = read_all(kafka, Topic.BOOK)
    ServiceThread(BookService(), kafka, stop_when_idle_s=3.0).start().wait_idle()
    tops = read_all(kafka, Topic.BOOK_TOP)
    events = [c for c in read_all(kafka, Topic.CONTINUITY) if c["source"] == "book"]

    bad = [b for b in books if b["checksum_ok"] is False]
    assert len(bad) >= 3, "the simulator should have injected wrong checksums"
    assert len([e for e in events if e["event"] == "checksum_mismatch"]) == len(bad)
    by_offset = dict(enumerate(books))
    invalid_from: dict[str, int] = {}
    for offset, record in by_offset.items():
        if record["checksum_ok"] is False:
            invalid_from.setdefault(record["symbol"], offset)
        elif record["type"] == "snapshot":
            invalid_from.pop(record["symbol"], None)
    for top in tops:
        source = by_offset[top["source_offset"]]
        if top["valid"]:
            assert source["checksum_ok"] is True and top["checksum"] == source["checksum"]
        else:
            assert source["checksum_ok"] is False
    # after each mismatch, the next valid top of that symbol comes from a later epoch
    for record in bad:
        later = [
            t
            for t in tops
            if t["symbol"] == record["symbol"] and t["valid"] and t["source_offset"] > books.index(record)
        ]
        if later:
            assert later[0]["epoch"] > record["epoch"]
    assert [e["event"] for e in events].count("snapshot_reset") >= len(bad)


def test_captured_book_through_connector_and_book_service_agrees_with_kraken(kafka: KafkaTest) -> None:
    kafka.create_topics()
    path = KRAKEN_CAPTURES / "python-kraken-sdk_orderbook-v2.json"
    with (
        SimThread(SimConfig(replay=(path,), rate=None)) as sim,
        running_connector(kafka, sim, KRACKED_SYMBOLS="BTC/USD", KRACKED_CHANNELS="book") as app,
    ):
        wait_for(lambda: frames(app, "book") >= 510, what="510 book frames")
    ServiceThread(BookService(), kafka, stop_when_idle_s=3.0).start().wait_idle()
    books = read_all(kafka, Topic.BOOK)
    tops = read_all(kafka, Topic.BOOK_TOP)
    assert len(books) == 510 and all(b["checksum_ok"] for b in books)
    assert all(t["valid"] and t["checksum"] == books[t["source_offset"]]["checksum"] for t in tops)
    assert not [c for c in read_all(kafka, Topic.CONTINUITY) if c["event"] == "checksum_mismatch"]
    assert tops[-1]["source_offset"] == 509


def test_bars_from_trades_equal_krakens_candles(kafka: KafkaTest) -> None:
    kafka.create_topics()
    # virtual market clock: 0.7 s of market time per event, so 1 and 5 minute candles close quickly
    config = SimConfig(
        symbols=SYMBOLS, rate=250.0, seed=8, start_time_ns=1_767_225_600_000_000_000, time_step_ns=700_000_000
    )
    with (
        SimThread(config) as sim,
        running_connector(
            kafka,
            sim,
            KRACKED_SYMBOLS=",".join(SYMBOLS),
            KRACKED_CHANNELS="trade,ohlc",
            KRACKED_OHLC_INTERVALS="1,5",
        ) as app,
    ):
        wait_for(lambda: frames(app, "trade") >= 2500, timeout=120, what="2500 trade frames")
    ServiceThread(
        BarsService((60, 300), grace_ms=0, settings=kafka.settings), kafka, stop_when_idle_s=3.0
    ).start().wait_idle()
    trades = read_all(kafka, Topic.TRADE)
    bars = {(b["symbol"], b["interval_s"], b["start"]): b for b in read_all(kafka, Topic.BARS)}
    candles: dict[tuple[str, int, int], dict[str, Any]] = {}
    for candle in read_all(kafka, Topic.OHLC):
        candles[(candle["symbol"], candle["interval"] * 60, candle["interval_begin"])] = (
            candle  # last update wins
        )
    first_trade = {s: min(t["ts_event"] for t in trades if t["symbol"] == s) for s in SYMBOLS}
    last_begin: dict[tuple[str, int], int] = defaultdict(int)
    for symbol, interval, begin in candles:
        last_begin[(symbol, interval)] = max(last_begin[(symbol, interval)], begin)
    compared = 0
    for (symbol, interval, begin), candle in candles.items():
        # complete candles only: after our first trade, and not the one still open at the end
        if begin <= first_trade[symbol] or begin == last_begin[(symbol, interval)]:
            continue
        bar = bars[(symbol, interval, begin)]
        for field in ("open", "high", "low", "close", "volume"):
            assert Decimal(bar[field]) == Decimal(candle[field]), (symbol, interval, begin, field)
        assert bar["trade_count"] == candle["trades"]
        exp = Decimal(candle["vwap"]).as_tuple().exponent
        assert Decimal(bar["vwap"]).quantize(Decimal(1).scaleb(exp), rounding=ROUND_HALF_UP) == Decimal(
            candle["vwap"]
        )
        compared += 1
    assert compared >= 20
